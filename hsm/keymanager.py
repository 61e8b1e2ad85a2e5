"""The one door to keys: every private and secret key the RA centre owns is used through this class.

Generate, find, sign, verify, encrypt, decrypt, wrap, unwrap and random over PKCS#11 (v2.40 §5.7-§5.14)
with a vendor profile translating logical mechanism names ("sm2-sign-sm3", "sm4-ecb", ...) into the
module's codes. SM2 signatures are returned DER-encoded (GB/T 35276 §7.2) whatever the token emits.
Keys never leave the HSM in clear: export exists only as ``wrap`` under another HSM key.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import threading
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable

import pkcs11
import pkcs11.exceptions as p11e
from asn1crypto import algos as asn1_algos
from asn1crypto import core as asn1_core
from asn1crypto import keys as asn1_keys
from pkcs11 import Attribute, KeyType, MechanismFlag, ObjectClass

from hsm.cmac import cmac
from hsm.config import HsmConfig
from hsm.errors import DataConflict, HsmError, KeyNotFound, MechanismUnsupported, SignatureInvalid
from hsm.keys import DEFAULT_SIGN_MECHANISM, KEY_SPECS, KeyInfo, KeyRef, KeySpec
from hsm.session_pool import PooledSession, SessionPool
from hsm.vendor import VendorProfile, detect_profile, load_profile
from pkicore.keys import inspect_key, public_key_info_from_point
from pkicore.signatures import der_to_raw, raw_to_der
from pkicore.sm2 import DEFAULT_USER_ID, SM2PublicKey, sm2_e

log = logging.getLogger(__name__)

# sign/verify run thousands of times a second with the same few key names: parse each once
_parse_ref = functools.lru_cache(maxsize=1024)(KeyRef.parse)

_CURVE_PARAMS = {name: asn1_keys.ECDomainParameters(name="named", value=name).dump()
                 for name in ("secp256r1", "secp384r1")}
_SM2_OID_DER = bytes.fromhex("06082a811ccf5501822d")
_CURVE_PARAMS["sm2p256v1"] = _SM2_OID_DER
_CURVE_BY_PARAMS = {v: k for k, v in _CURVE_PARAMS.items()}
_SIG_SIZE = {"sm2p256v1": 32, "secp256r1": 32, "secp384r1": 48}

_PREHASH = {
    "ecdsa-sha256": ("sha256", "ecdsa"), "ecdsa-sha384": ("sha384", "ecdsa"),
    "rsa-pkcs1-sha256": ("sha256", "rsa-pkcs1"), "rsa-pkcs1-sha384": ("sha384", "rsa-pkcs1"),
    "rsa-pkcs1-sha512": ("sha512", "rsa-pkcs1"),
}

# RFC 8017 §9.1 / PKCS#11 §2.1.11: PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt
_PARAMS = {"rsa-pss-sha256": (pkcs11.Mechanism.SHA256, pkcs11.MGF.SHA256, 32)}

_PAIR_CAPS = {
    "sm2": (MechanismFlag.SIGN | MechanismFlag.VERIFY | MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT),
    "ec": MechanismFlag.SIGN | MechanismFlag.VERIFY,
    "rsa": MechanismFlag.SIGN | MechanismFlag.VERIFY,
}
_SECRET_CAPS = {
    "sm4": MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT | MechanismFlag.WRAP | MechanismFlag.UNWRAP,
    "aes": MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT | MechanismFlag.WRAP | MechanismFlag.UNWRAP,
    "generic": MechanismFlag.SIGN | MechanismFlag.VERIFY,
}


@dataclass(frozen=True)
class TokenInfo:
    module: str
    token: str
    manufacturer: str
    model: str
    serial: str
    vendor_profile: str
    mechanisms: list[str]

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class EnvelopedPair:
    """What ``generate_enveloped_pair`` leaves of a key pair: public data and wrapped copies only."""

    public_key_info: bytes          # SPKI DER
    archived: bytes                 # d wrapped under the caller's HSM key
    sym_encrypted_key: bytes        # DER SM2Cipher of the SM4 key, to the recipient
    encrypted_private_key: bytes    # d under that SM4 key


# label -> a context manager held while a token key of that label is looked for and made
CreationLock = Callable[[str], AbstractContextManager]


class _ProcessLocks:
    """The default ``CreationLock``: one lock per label, for the threads of this process only."""

    def __init__(self):
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def __call__(self, label: str):
        with self._guard:
            lock = self._locks.setdefault(label, threading.Lock())
        with lock:
            yield


class KeyManager:
    """HSM-backed key operations for the whole centre. Thread-safe; share one per process.

    ``creation_lock``: PKCS#11 does not keep labels unique (v2.40 §4.4: CKA_LABEL is a plain attribute),
    so two processes that each find no key ``label`` and generate one leave two objects, after which
    every use of the label fails. Every token key is therefore looked for and made under
    ``creation_lock(label)``. The default covers the threads of one process; a service shares its
    token with other processes and hosts and passes a lock of its database
    (``racentre.services.Services`` wires ``store.db.named_lock``), never a local file."""

    def __init__(self, config: HsmConfig, *, creation_lock: CreationLock | None = None):
        self.config = config
        self.creation_lock: CreationLock = creation_lock or _ProcessLocks()
        module_profile = None if config.vendor == "auto" else load_profile(config.vendor)
        # Only modules proven thread-safe run unserialised; the profile says which.
        probe_profile = module_profile
        if probe_profile is None:
            lib = pkcs11.lib(config.module)
            probe_profile = detect_profile(lib.manufacturer_id)
        self.profile: VendorProfile = probe_profile
        self.pool = SessionPool(config.module, config.token, config.pin, config.pool_size,
                                thread_safe=self.profile.quirks.thread_safe)
        self._supported = {int(m) for m in self.pool.token.slot.get_mechanisms()}
        # logical name -> Mechanism / supported flag; the profile and the token's list are fixed
        self._mechanisms: dict = {}
        self._supports: dict = {}

    def supports(self, logical: str) -> bool:
        """True when the vendor profile names the mechanism and the token lists it."""
        hit = self._supports.get(logical)
        if hit is None:
            hit = self._supports[logical] = (self.profile.has(logical)
                                             and int(self.profile.mechanism(logical)) in self._supported)
        return hit

    # ----------------------------------------------------------------- internals
    def _find_typed(self, pooled: PooledSession, ref: KeyRef, object_class: ObjectClass):
        """(object, logical key type), cached per session: the hot signing path asks no attributes."""
        cache_key = (ref, object_class, "typed")
        hit = pooled.objects.get(cache_key)
        if hit is None:
            obj = self._find(pooled, ref, object_class)
            hit = pooled.objects[cache_key] = (obj, self._key_type_name(obj))
        return hit

    def _find(self, pooled: PooledSession, ref: KeyRef, object_class: ObjectClass):
        cache_key = (ref, object_class)
        obj = pooled.objects.get(cache_key)
        if obj is None:
            attrs = {Attribute.CLASS: object_class}
            if ref.label:
                attrs[Attribute.LABEL] = ref.label
            if ref.key_id:
                attrs[Attribute.ID] = ref.key_id
            found = list(pooled.session.get_objects(attrs))
            if not found:
                raise KeyNotFound(f"no {object_class.name.lower().replace('_', ' ')} {ref} in the HSM")
            if len(found) > 1:
                raise HsmError(f"{len(found)} objects match {ref}; give an id as well")
            obj = found[0]
            pooled.objects[cache_key] = obj
        return obj

    def _mechanism(self, logical: str):
        mech = self._mechanisms.get(logical)
        if mech is None:
            try:
                mech = self._mechanisms[logical] = self.profile.mechanism(logical)
            except KeyError:
                raise MechanismUnsupported(
                    f"mechanism {logical!r} is not available with HSM profile {self.profile.name!r}") from None
        return mech

    def _key_type_name(self, key) -> str:
        kt = key[Attribute.KEY_TYPE]
        for logical in ("sm2", "sm4"):
            if logical in self.profile.key_types and kt == self.profile.key_types[logical]:
                return logical
        if kt == KeyType.EC:
            try:
                if bytes(key[Attribute.EC_PARAMS]) == _SM2_OID_DER:
                    return "sm2"
            except p11e.PKCS11Error:
                pass
            return "ec"
        return {KeyType.RSA: "rsa", KeyType.AES: "aes", KeyType.GENERIC_SECRET: "generic"}.get(kt, "unknown")

    @staticmethod
    def _spki(pub, key_type: str) -> bytes:
        if key_type in ("sm2", "ec"):
            curve = _CURVE_BY_PARAMS.get(bytes(pub[Attribute.EC_PARAMS]))
            if curve is None:
                raise HsmError("public key on an unsupported curve")
            raw = bytes(pub[Attribute.EC_POINT])
            point = asn1_core.OctetString.load(raw).native if raw[:1] == b"\x04" and len(raw) > 2 \
                and raw[1] == len(raw) - 2 else raw
            return public_key_info_from_point(curve, point)
        if key_type == "rsa":
            return asn1_keys.PublicKeyInfo({
                "algorithm": {"algorithm": "rsa"},
                "public_key": asn1_keys.RSAPublicKey({
                    "modulus": int.from_bytes(pub[Attribute.MODULUS], "big"),
                    "public_exponent": int.from_bytes(pub[Attribute.PUBLIC_EXPONENT], "big")}),
            }).dump()
        raise HsmError(f"no public key for key type {key_type}")

    def _describe(self, pooled: PooledSession, obj) -> KeyInfo:
        key_type = self._key_type_name(obj)
        label = obj[Attribute.LABEL]
        key_id = bytes(obj[Attribute.ID] or b"")
        pair = obj.object_class == ObjectClass.PRIVATE_KEY
        spki = None
        if pair:
            pub = self._find(pooled, KeyRef(label=label, key_id=key_id or None), ObjectClass.PUBLIC_KEY)
            spki = self._spki(pub, key_type)
            algorithm = {"sm2": "sm2"}.get(key_type) or self._pair_algorithm(pub, key_type)
        else:
            length = obj[Attribute.VALUE_LEN] * 8 if key_type != "sm4" else 128
            algorithm = {"sm4": "sm4", "aes": f"aes-{length}", "generic": f"generic-{length}"}[key_type]
        return KeyInfo(label=label, key_id=key_id, algorithm=algorithm, key_type=key_type, pair=pair,
                       sensitive=bool(obj[Attribute.SENSITIVE]), extractable=bool(obj[Attribute.EXTRACTABLE]),
                       public_key_info=spki)

    @staticmethod
    def _pair_algorithm(pub, key_type: str) -> str:
        if key_type == "ec":
            return {"secp256r1": "ec-p256", "secp384r1": "ec-p384"}[_CURVE_BY_PARAMS[bytes(pub[Attribute.EC_PARAMS])]]
        return f"rsa-{len(pub[Attribute.MODULUS]) * 8}"

    # ----------------------------------------------------------------- key life cycle
    def _creating(self, label: str, token: bool) -> AbstractContextManager:
        return self.creation_lock(label) if token else nullcontext()

    def generate_key_pair(self, label: str, algorithm: str = "sm2", *, key_id: bytes | None = None,
                          extractable: bool = False, token: bool = True) -> KeyInfo:
        """Generate a key pair inside the HSM (private half sensitive, by default never extractable);
        a token key is refused when one with that label exists (checked under ``creation_lock``).

        ``token=False``: both halves are session objects (CKA_TOKEN false, PKCS#11 v2.40 §4.4): never
        written to the token's storage, visible to this process's sessions only, and destroyed when the
        session that made them closes -- for short-lived pairs that are wrapped and destroyed at once."""
        with self._creating(label, token):
            return self._generate_key_pair(label, algorithm, key_id=key_id, extractable=extractable, token=token)

    def _generate_key_pair(self, label: str, algorithm: str, *, key_id: bytes | None = None,
                           extractable: bool = False, token: bool = True) -> KeyInfo:
        spec = self._spec(algorithm, pair=True)
        key_id = key_id or self.random(16)
        mech = self._mechanism(spec.keygen)
        key_type = self._key_type(spec)
        public_template = {Attribute.TOKEN: token, Attribute.PRIVATE: False}
        private_template = {Attribute.TOKEN: token, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                            Attribute.EXTRACTABLE: extractable}
        if spec.curve:
            public_template[Attribute.EC_PARAMS] = _CURVE_PARAMS[spec.curve]
        if spec.key_type == "sm2":  # SM2 encryption keys also carry key envelopes (GB/T 35276 §7.3)
            public_template[Attribute.WRAP] = True
            private_template[Attribute.UNWRAP] = True

        def op(pooled):
            if token:
                self._ensure_absent(pooled, label)
            pub, priv = pooled.session.generate_keypair(
                key_type, spec.bits if spec.key_type == "rsa" else None, id=key_id, label=label, store=token,
                capabilities=_PAIR_CAPS[spec.key_type], mechanism=mech,
                public_template=public_template, private_template=private_template)
            log.info("generated %s key pair %r in the HSM", spec.name, label)
            return self._describe(pooled, priv)

        return self.pool.run(f"generating {spec.name} key pair", op)

    def generate_secret_key(self, label: str, algorithm: str = "sm4", *, key_id: bytes | None = None,
                            extractable: bool = False, token: bool = True) -> KeyInfo:
        """Generate a secret key (SM4/AES key-encryption key, HMAC key) inside the HSM; a token key is
        refused when one with that label exists (checked under ``creation_lock``)."""
        with self._creating(label, token):
            return self._generate_secret_key(label, algorithm, key_id=key_id, extractable=extractable, token=token)

    def _generate_secret_key(self, label: str, algorithm: str, *, key_id: bytes | None = None,
                             extractable: bool = False, token: bool = True) -> KeyInfo:
        spec = self._spec(algorithm, pair=False)
        key_id = key_id or self.random(16)
        mech = self._mechanism(spec.keygen)
        template = {Attribute.TOKEN: token, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: extractable}

        def op(pooled):
            if token:
                self._ensure_absent(pooled, label)
            key = pooled.session.generate_key(
                self._key_type(spec), spec.bits, id=key_id, label=label, store=token,
                capabilities=_SECRET_CAPS[spec.key_type], mechanism=mech, template=template)
            log.info("generated %s secret key %r in the HSM", spec.name, label)
            return self._describe(pooled, key)

        return self.pool.run(f"generating {spec.name} key", op)

    def _spec(self, algorithm: str, *, pair: bool) -> KeySpec:
        spec = KEY_SPECS.get(algorithm)
        if spec is None or spec.pair != pair:
            names = ", ".join(n for n, s in KEY_SPECS.items() if s.pair == pair)
            raise MechanismUnsupported(f"unknown key algorithm {algorithm!r} (choose one of {names})")
        return spec

    def _key_type(self, spec: KeySpec) -> KeyType:
        try:
            return self.profile.key_type(spec.key_type)
        except KeyError:
            raise MechanismUnsupported(
                f"key type {spec.key_type!r} is not available with HSM profile {self.profile.name!r}") from None

    def _ensure_absent(self, pooled: PooledSession, label: str) -> None:
        if list(pooled.session.get_objects({Attribute.LABEL: label})):
            raise HsmError(f"a key labelled {label!r} already exists in the HSM; refusing to overwrite it")

    def find_key(self, ref: KeyRef | str) -> KeyInfo:
        ref = KeyRef.parse(ref)

        def op(pooled):
            try:
                obj = self._find(pooled, ref, ObjectClass.PRIVATE_KEY)
            except KeyNotFound:
                obj = self._find(pooled, ref, ObjectClass.SECRET_KEY)
            return self._describe(pooled, obj)

        return self.pool.run("finding a key", op)

    def list_keys(self) -> list[KeyInfo]:
        def op(pooled):
            out = []
            for cls in (ObjectClass.PRIVATE_KEY, ObjectClass.SECRET_KEY):
                # materialise first: a nested search in the same session is CKR_OPERATION_ACTIVE
                for obj in list(pooled.session.get_objects({Attribute.CLASS: cls, Attribute.TOKEN: True})):
                    out.append(self._describe(pooled, obj))
            return sorted(out, key=lambda k: k.label)

        return self.pool.run("listing keys", op)

    def delete_key(self, ref: KeyRef | str) -> None:
        """Destroy a key (both halves of a pair). Audited by the caller."""
        ref = KeyRef.parse(ref)

        def op(pooled):
            attrs = {}
            if ref.label:
                attrs[Attribute.LABEL] = ref.label
            if ref.key_id:
                attrs[Attribute.ID] = ref.key_id
            objs = [o for o in pooled.session.get_objects(attrs)
                    if o.object_class in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY, ObjectClass.SECRET_KEY)]
            if not objs:
                raise KeyNotFound(f"no key {ref} in the HSM")
            labels, ids = set(), set()
            for obj in objs:
                labels.add(obj[Attribute.LABEL])
                ids.add(bytes(obj[Attribute.ID] or b""))
            try:
                for obj in objs:
                    obj.destroy()
            finally:
                self.pool.forget_objects(labels, ids)

        self.pool.run("deleting a key", op)

    def ensure_key_pair(self, label: str, algorithm: str = "sm2") -> bytes:
        """SubjectPublicKeyInfo DER of the key pair ``label``, generated (non-extractable) when absent."""
        return self._ensure(label, lambda: self._generate_key_pair(label, algorithm)).public_key_info

    def ensure_secret_key(self, label: str, algorithm: str = "sm4") -> KeyInfo:
        """The secret key ``label``, generated (non-extractable) when absent."""
        return self._ensure(label, lambda: self._generate_secret_key(label, algorithm))

    def _ensure(self, label: str, generate) -> KeyInfo:
        """Find or make one key: looked for, then, when absent, looked for again and made under
        ``creation_lock(label)``, so racing processes (gunicorn workers, nodes sharing a network HSM)
        end with one object. ``racentre setup`` makes every key of the centre before it serves."""
        try:
            return self.find_key(label)
        except KeyNotFound:
            pass
        with self.creation_lock(label):
            try:
                return self.find_key(label)
            except KeyNotFound:
                return generate()

    def public_key_info(self, ref: KeyRef | str) -> bytes:
        """SubjectPublicKeyInfo DER of a key pair's public half."""
        info = self.find_key(ref)
        if info.public_key_info is None:
            raise HsmError(f"{ref} is a secret key; it has no public key")
        return info.public_key_info

    # ----------------------------------------------------------------- signatures
    def sign(self, ref: KeyRef | str, data: bytes, mechanism: str | None = None, *,
             user_id: bytes | None = None) -> bytes:
        """Sign ``data`` in the HSM. SM2/ECDSA: DER SEQUENCE{r,s}; RSA: the PKCS#1 signature block.

        SM2 with SM3 (GB/T 32918.2 §6.1): the token computes Z when it can take the user ID;
        otherwise (non-default ID, or a vendor without a message-in mechanism) e = SM3(Z || M) is
        computed here from public data and the token signs the digest.
        """
        ref = _parse_ref(ref)

        def op(pooled):
            key, key_type = self._find_typed(pooled, ref, ObjectClass.PRIVATE_KEY)
            logical = mechanism or DEFAULT_SIGN_MECHANISM.get(key_type)
            if logical is None:
                raise MechanismUnsupported(f"{ref} cannot sign")
            if key_type == "sm2" and logical == "sm2-sign-sm3":
                return self._sm2_sign(pooled, ref, key, data, user_id or DEFAULT_USER_ID)
            message, logical = self._prehash_if_needed(data, logical)
            raw = key.sign(message, mechanism=self._mechanism(logical), mechanism_param=_PARAMS.get(logical))
            if key_type in ("ec", "sm2") and not self.profile.quirks.der_signature(key_type):
                return raw_to_der(raw)
            return raw

        return self.pool.run("signing", op)

    def _prehash_if_needed(self, data: bytes, logical: str) -> tuple[bytes, str]:
        """Tokens without hash-and-sign mechanisms (SoftHSMv2 2.6 lacks CKM_ECDSA_SHA256) get the
        digest computed here (public data) and the raw mechanism: ECDSA over H(m) (SEC 1 §4.1.3),
        RSA PKCS#1 v1.5 over DigestInfo (RFC 8017 §9.2)."""
        if self.supports(logical) or logical not in _PREHASH:
            return data, logical
        digest_name, raw_logical = _PREHASH[logical]
        digest = hashlib.new(digest_name, data).digest()
        if raw_logical == "rsa-pkcs1":
            digest = asn1_algos.DigestInfo({"digest_algorithm": {"algorithm": digest_name},
                                            "digest": digest}).dump()
        return digest, raw_logical

    def _sm2_sign(self, pooled, ref: KeyRef, key, data: bytes, user_id: bytes) -> bytes:
        q = self.profile.quirks
        can_message = self.supports("sm2-sign-sm3")
        if can_message and (user_id == DEFAULT_USER_ID or q.sm2_user_id_parameter):
            param = user_id if (q.sm2_user_id_parameter and user_id != DEFAULT_USER_ID) else None
            sig = key.sign(data, mechanism=self._mechanism("sm2-sign-sm3"), mechanism_param=param)
        else:
            pub = self._find(pooled, ref, ObjectClass.PUBLIC_KEY)
            point = SM2PublicKey.from_point(self._ec_point(pub))
            sig = key.sign(sm2_e(point, data, user_id), mechanism=self._mechanism("sm2-sign-digest"))
        return sig if q.sm2_der_signature else raw_to_der(sig)

    @staticmethod
    def _ec_point(pub) -> bytes:
        raw = bytes(pub[Attribute.EC_POINT])
        if len(raw) == 67 and raw[0] == 0x04 and raw[1] == 65:
            return raw[2:]
        return raw

    def verify(self, ref: KeyRef | str, data: bytes, signature: bytes, mechanism: str | None = None, *,
               user_id: bytes | None = None) -> bool:
        """Verify in the HSM with the key pair's public half (signature in the form ``sign`` returns)."""
        ref = _parse_ref(ref)

        def op(pooled):
            pub, key_type = self._find_typed(pooled, ref, ObjectClass.PUBLIC_KEY)
            logical = mechanism or DEFAULT_SIGN_MECHANISM[key_type]
            sig = signature
            if key_type in ("sm2", "ec") and not self.profile.quirks.der_signature(key_type):
                try:
                    sig = der_to_raw(signature, 48 if logical == "ecdsa-sha384" else 32)
                except ValueError:
                    return False
            param = None
            message = data
            if key_type != "sm2":
                message, logical = self._prehash_if_needed(data, logical)
            if key_type == "sm2" and logical == "sm2-sign-sm3":
                uid = user_id or DEFAULT_USER_ID
                if not self.supports("sm2-sign-sm3") or (
                        uid != DEFAULT_USER_ID and not self.profile.quirks.sm2_user_id_parameter):
                    message = sm2_e(SM2PublicKey.from_point(self._ec_point(pub)), data, uid)
                    logical = "sm2-sign-digest"
                elif uid != DEFAULT_USER_ID:
                    param = uid
            try:
                return bool(pub.verify(message, sig, mechanism=self._mechanism(logical),
                                       mechanism_param=param if param is not None else _PARAMS.get(logical)))
            except (p11e.SignatureInvalid, p11e.SignatureLenRange):
                return False

        return self.pool.run("verifying", op)

    # ----------------------------------------------------------------- encryption and wrapping
    def encrypt(self, ref: KeyRef | str, data: bytes, mechanism: str, *, iv: bytes | None = None) -> bytes:
        """Encrypt with a secret key or a key pair's public half (SM2: GM/T 0009 DER SM2Cipher)."""
        ref = KeyRef.parse(ref)

        def op(pooled):
            try:
                key = self._find(pooled, ref, ObjectClass.SECRET_KEY)
            except KeyNotFound:
                key = self._find(pooled, ref, ObjectClass.PUBLIC_KEY)
            return key.encrypt(data, mechanism=self._mechanism(mechanism), mechanism_param=iv)

        return self.pool.run("encrypting", op)

    def decrypt(self, ref: KeyRef | str, data: bytes, mechanism: str, *, iv: bytes | None = None) -> bytes:
        ref = KeyRef.parse(ref)

        def op(pooled):
            try:
                key = self._find(pooled, ref, ObjectClass.SECRET_KEY)
            except KeyNotFound:
                key = self._find(pooled, ref, ObjectClass.PRIVATE_KEY)
            return key.decrypt(data, mechanism=self._mechanism(mechanism), mechanism_param=iv)

        return self.pool.run("decrypting", op)

    @staticmethod
    def _outside_sm2_point(public_key_info: bytes) -> bytes:
        try:
            key = inspect_key(public_key_info)         # checks the point is on the curve
            if key.family != "sm2":
                raise ValueError("not an SM2 key")
        except ValueError as exc:
            raise MechanismUnsupported(f"recipient key is not a valid SM2 public key: {exc}") from exc
        return key.point

    def _session_public_key(self, pooled, point: bytes):
        """Import an outside SM2 public key as a session object (gone when destroyed or the session ends)."""
        return pooled.session.create_object({
            Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: self._key_type(KEY_SPECS["sm2"]),
            Attribute.TOKEN: False, Attribute.ENCRYPT: True, Attribute.WRAP: True, Attribute.VERIFY: True,
            Attribute.EC_PARAMS: _SM2_OID_DER, Attribute.EC_POINT: asn1_core.OctetString(point).dump()})

    def mac(self, ref: KeyRef | str, message: bytes) -> bytes:
        """SM4-CMAC (NIST SP 800-38B, 16 bytes) of ``message`` under the HSM SM4 key ``ref``: the one MAC
        construction of the centre (sealed secrets, the KMC archive). The HSM runs every block operation
        (``hsm.cmac``: E_K(0) for the subkeys, CBC with a zero IV for the chain); the key never leaves it."""
        zero = bytes(16)
        return cmac(lambda: self.encrypt(ref, zero, "sm4-ecb"),
                    lambda data: self.encrypt(ref, data, "sm4-cbc", iv=zero), message)

    def encrypt_to(self, public_key_info: bytes, data: bytes) -> bytes:
        """SM2-encrypt to a public key that is not ours (a subscriber's): imported as a session object."""
        point = self._outside_sm2_point(public_key_info)

        def op(pooled):
            pub = self._session_public_key(pooled, point)
            try:
                return pub.encrypt(data, mechanism=self._mechanism("sm2-encrypt"))
            finally:
                pub.destroy()

        return self.pool.run("encrypting to a public key", op)

    def wrap_to(self, public_key_info: bytes, key: KeyRef | str) -> bytes:
        """Wrap an extractable HSM secret key (e.g. an SM4 envelope key) to an outside SM2 public key:
        GM/T 0009 DER SM2Cipher of the key value (the symEncryptedKey of GB/T 35276 SM2EnvelopedKey)."""
        key = KeyRef.parse(key)
        point = self._outside_sm2_point(public_key_info)

        def op(pooled):
            target = self._find(pooled, key, ObjectClass.SECRET_KEY)
            pub = self._session_public_key(pooled, point)
            try:
                return pub.wrap_key(target, mechanism=self._mechanism("sm2-encrypt"))
            finally:
                pub.destroy()

        return self.pool.run("wrapping a key to a public key", op)

    def generate_enveloped_pair(self, wrapping: KeyRef | str, recipient_public_key_info: bytes, *,
                                label: str = "", mechanism: str = "sm4-ecb") -> "EnvelopedPair":
        """A new SM2 key pair for someone else (a key-management centre's encryption key pair), in one
        session and without any clear private key outside the HSM: the pair and a fresh SM4 key are
        session objects (sensitive; extractable only by wrapping), d is wrapped under the HSM key
        ``wrapping`` (the archive copy) and under the SM4 key, which is wrapped to the outside SM2 key
        ``recipient_public_key_info`` (GM/T 0009 SM2Cipher); then all of them are destroyed, so the
        wrapped copies are the only ones left. Same objects and wraps as ``generate_key_pair(token=
        False)`` + ``wrap`` + ``generate_secret_key(token=False)`` + ``wrap`` + ``wrap_to`` +
        ``delete_key``, without the look-ups between the calls."""
        wrapping = KeyRef.parse(wrapping)
        point = self._outside_sm2_point(recipient_public_key_info)
        pair_spec, sym_spec = KEY_SPECS["sm2"], KEY_SPECS["sm4"]
        pair_mech, sym_mech = self._mechanism(pair_spec.keygen), self._mechanism(sym_spec.keygen)
        wrap_mech, sm2_mech = self._mechanism(mechanism), self._mechanism("sm2-encrypt")
        pair_type, sym_type = self._key_type(pair_spec), self._key_type(sym_spec)
        public_template = {Attribute.TOKEN: False, Attribute.PRIVATE: False,
                           Attribute.EC_PARAMS: _CURVE_PARAMS[pair_spec.curve], Attribute.WRAP: True}
        private_template = {Attribute.TOKEN: False, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                            Attribute.EXTRACTABLE: True, Attribute.UNWRAP: True}
        sym_template = {Attribute.TOKEN: False, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                        Attribute.EXTRACTABLE: True}

        def op(pooled):
            wkey = self._find(pooled, wrapping, ObjectClass.SECRET_KEY)
            made = []
            try:
                pub, priv = pooled.session.generate_keypair(
                    pair_type, None, label=label, store=False, capabilities=_PAIR_CAPS["sm2"],
                    mechanism=pair_mech, public_template=public_template, private_template=private_template)
                made += [pub, priv]
                spki = self._spki(pub, "sm2")
                archived = wkey.wrap_key(priv, mechanism=wrap_mech)
                sym = pooled.session.generate_key(sym_type, sym_spec.bits, label=label, store=False,
                                                  capabilities=_SECRET_CAPS["sm4"], mechanism=sym_mech,
                                                  template=sym_template)
                made.append(sym)
                encrypted_private_key = sym.wrap_key(priv, mechanism=wrap_mech)
                recipient = self._session_public_key(pooled, point)
                made.append(recipient)
                sym_encrypted_key = recipient.wrap_key(sym, mechanism=sm2_mech)
            finally:
                for obj in reversed(made):
                    obj.destroy()
            return EnvelopedPair(spki, archived, sym_encrypted_key, encrypted_private_key)

        return self.pool.run("generating an enveloped key pair", op)

    def wrap(self, wrapping: KeyRef | str, key: KeyRef | str, mechanism: str, *, iv: bytes | None = None) -> bytes:
        """Wrap an extractable key under another HSM key (the only way a key leaves the HSM)."""
        wrapping, key = KeyRef.parse(wrapping), KeyRef.parse(key)

        def op(pooled):
            try:
                wkey = self._find(pooled, wrapping, ObjectClass.SECRET_KEY)
            except KeyNotFound:
                wkey = self._find(pooled, wrapping, ObjectClass.PUBLIC_KEY)
            try:
                target = self._find(pooled, key, ObjectClass.PRIVATE_KEY)
            except KeyNotFound:
                target = self._find(pooled, key, ObjectClass.SECRET_KEY)
            return wkey.wrap_key(target, mechanism=self._mechanism(mechanism), mechanism_param=iv)

        return self.pool.run("wrapping a key", op)

    def unwrap(self, unwrapping: KeyRef | str, blob: bytes, mechanism: str, *, label: str, algorithm: str,
               iv: bytes | None = None, extractable: bool = False, token: bool = True,
               public_key_info: bytes | None = None) -> KeyInfo:
        """Unwrap a key into the HSM as a new object (sensitive; extractable only if asked).

        PKCS#11 unwraps only the private half of a key pair (v2.40 §5.14 C_UnwrapKey), so the public object
        is rebuilt beside it. Its point is read from the private key where the token keeps CKA_EC_POINT
        there (the ``*_private_key_ec_point`` quirks); otherwise the caller names the expected
        ``public_key_info`` and the pair is proved consistent in the token (a signature over random data by
        the new private key verified with that point; FIPS 140-3 IG 10.3.A's pair-wise consistency test),
        so a wrapped key that is not the expected one is refused either way, and the returned
        ``public_key_info`` is the point the private key answers to."""
        unwrapping = KeyRef.parse(unwrapping)
        spec = KEY_SPECS.get(algorithm)
        if spec is None:
            raise MechanismUnsupported(f"unknown key algorithm {algorithm!r}")
        object_class = ObjectClass.PRIVATE_KEY if spec.pair else ObjectClass.SECRET_KEY
        template = {Attribute.TOKEN: token, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
                    Attribute.EXTRACTABLE: extractable, Attribute.LABEL: label, Attribute.ID: self.random(16)}
        if spec.pair:
            template[Attribute.SIGN] = True
            if spec.key_type == "sm2":
                template[Attribute.DECRYPT] = True
            if spec.curve:
                template[Attribute.EC_PARAMS] = _CURVE_PARAMS[spec.curve]
        else:
            template.update({Attribute.ENCRYPT: True, Attribute.DECRYPT: True,
                             Attribute.WRAP: True, Attribute.UNWRAP: True})

        def op(pooled):
            try:
                ukey = self._find(pooled, unwrapping, ObjectClass.SECRET_KEY)
            except KeyNotFound:
                ukey = self._find(pooled, unwrapping, ObjectClass.PRIVATE_KEY)
            if token:
                self._ensure_absent(pooled, label)        # under creation_lock (below)
            caps = _PAIR_CAPS[spec.key_type] if spec.pair else _SECRET_CAPS[spec.key_type]
            new = ukey.unwrap_key(object_class, self._key_type(spec), blob, label=label, store=token,
                                  capabilities=caps, mechanism=self._mechanism(mechanism), mechanism_param=iv,
                                  template=template)
            spki = None
            if spec.pair and spec.curve:
                from_token = self.profile.quirks.private_key_ec_point(spec.key_type)
                if from_token:
                    point = new[Attribute.EC_POINT]
                elif public_key_info is not None:
                    point = asn1_core.OctetString(self._expected_point(public_key_info, spec)).dump()
                else:
                    new.destroy()
                    raise MechanismUnsupported(
                        f"this token keeps no public point on unwrapped {spec.key_type} private keys "
                        f"(vendor profile {self.profile.name!r}): the caller must name the expected public key")
                pub = pooled.session.create_object({
                    Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.KEY_TYPE: self._key_type(spec),
                    Attribute.TOKEN: token, Attribute.LABEL: label, Attribute.ID: template[Attribute.ID],
                    Attribute.EC_PARAMS: _CURVE_PARAMS[spec.curve], Attribute.EC_POINT: point,
                    Attribute.VERIFY: True, Attribute.ENCRYPT: spec.key_type == "sm2"})
                if not from_token and not self._pair_consistent(new, pub, spec.key_type):
                    pub.destroy()
                    new.destroy()
                    raise SignatureInvalid(f"the unwrapped key {label!r} is not the private half of the expected "
                                           "public key")
                spki = self._spki(pub, spec.key_type)
            return KeyInfo(label=label, key_id=template[Attribute.ID], algorithm=spec.name,
                           key_type=spec.key_type, pair=spec.pair, sensitive=True, extractable=extractable,
                           public_key_info=spki)

        with self._creating(label, token):
            return self.pool.run("unwrapping a key", op)

    @staticmethod
    def _expected_point(public_key_info: bytes, spec) -> bytes:
        """The uncompressed point of an expected SPKI of ``spec``'s family (checked on its curve)."""
        try:
            key = inspect_key(public_key_info)
        except ValueError as exc:
            raise MechanismUnsupported(f"expected public key: {exc}") from exc
        if key.family != spec.key_type:
            raise MechanismUnsupported(f"expected public key is {key.family}, not {spec.key_type}")
        return key.point

    def _pair_consistent(self, private, public, key_type: str) -> bool:
        """Sign 32 random bytes with ``private`` and verify with ``public``, both in the token, with the
        raw digest mechanism of the family (SM2: e given; ECDSA: H(m) given)."""
        logical = "sm2-sign-digest" if key_type == "sm2" else "ecdsa"
        challenge = self.random(32)
        signature = private.sign(challenge, mechanism=self._mechanism(logical))
        try:
            return bool(public.verify(challenge, signature, mechanism=self._mechanism(logical)))
        except (p11e.SignatureInvalid, p11e.SignatureLenRange):
            return False

    # ----------------------------------------------------------------- data objects
    # Small records kept in the token (CKO_DATA, PKCS#11 v2.40 base §4.5), always CKA_PRIVATE: read and
    # written only after C_Login (our soft token seals their value under the token's master key), and a
    # public object someone made without the PIN is never taken for one. Every access looks the object up
    # afresh (C_FindObjectsInit), never through a cached handle, so a value another process or host wrote
    # is what is read. Updating: C_SetAttributeValue on CKA_VALUE where the module allows it (our soft
    # token); a module that keeps a data object's value read-only (SoftHSMv2 2.6: CKR_ATTRIBUTE_READ_ONLY,
    # within §4.5, which does not mark CKA_VALUE modifiable) gets the new object created first and the old
    # one destroyed after, so a crash in between leaves both values, never none (``read_data_values``).
    @staticmethod
    def _data_objects(pooled: PooledSession, label: str) -> list:
        return list(pooled.session.get_objects({Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: label,
                                                Attribute.PRIVATE: True}))

    def read_data_values(self, label: str) -> list[bytes]:
        """The values of the private token data objects labelled ``label`` (more than one only after an
        update interrupted between creating the new object and destroying the old)."""
        def op(pooled):
            return [bytes(o[Attribute.VALUE]) for o in self._data_objects(pooled, label)]

        return self.pool.run("reading a data object", op)

    def read_data(self, label: str) -> bytes | None:
        """The value of the token data object ``label`` (None when there is none; HsmError when several)."""
        values = self.read_data_values(label)
        if len(values) > 1:
            raise HsmError(f"{len(values)} data objects are labelled {label!r}; expected one")
        return values[0] if values else None

    def list_data(self, application: str) -> dict[str, bytes]:
        """label -> value of every private token data object whose CKA_APPLICATION is ``application``."""
        def op(pooled):
            objs = list(pooled.session.get_objects({Attribute.CLASS: ObjectClass.DATA, Attribute.PRIVATE: True,
                                                    Attribute.APPLICATION: application}))
            return {o[Attribute.LABEL]: bytes(o[Attribute.VALUE]) for o in objs}

        return self.pool.run("listing data objects", op)

    def compare_and_set_data(self, label: str, expected: bytes | None, value: bytes, *, application: str) -> None:
        """Make ``value`` the one value of the data object ``label`` if it holds ``expected`` now
        (``expected`` None: create it, refusing if it exists; after an interrupted update, ``expected``
        must be one of the values left); ``DataConflict`` (with a current value) otherwise. PKCS#11 has no
        atomic compare-and-set, so this is read-compare-write in one session under ``creation_lock(label)``
        (a lock of the database every node shares): every writer going through it is serialised, and one
        that wrote behind the lock's back is noticed by the next compare."""
        def op(pooled):
            objs = self._data_objects(pooled, label)
            values = [bytes(o[Attribute.VALUE]) for o in objs]
            if (expected is None and objs) or (expected is not None and expected not in values):
                raise DataConflict(f"data object {label!r} does not hold the expected value",
                                   values[0] if values else None)
            keep = None
            if objs:
                target = objs[values.index(expected)]
                try:
                    target[Attribute.VALUE] = value
                    keep = target
                except p11e.AttributeReadOnly:
                    keep = None
            if keep is None:
                keep = pooled.session.create_object({
                    Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True, Attribute.PRIVATE: True,
                    Attribute.LABEL: label, Attribute.APPLICATION: application, Attribute.VALUE: value})
            for obj in objs:
                if obj is not keep:
                    obj.destroy()
            written = [bytes(o[Attribute.VALUE]) for o in self._data_objects(pooled, label)]
            if written != [value]:
                raise HsmError(f"data object {label!r}: the value written does not read back")

        with self.creation_lock(label):
            self.pool.run("updating a data object", op)

    def delete_data(self, label: str) -> bool:
        """Destroy the data object(s) ``label``; False when there was none."""
        def op(pooled):
            found = self._data_objects(pooled, label)
            for obj in found:
                obj.destroy()
            return bool(found)

        with self.creation_lock(label):
            return self.pool.run("deleting a data object", op)

    # ----------------------------------------------------------------- misc
    def random(self, n: int) -> bytes:
        """``n`` random bytes from the HSM's generator (C_GenerateRandom)."""
        return self.pool.run("drawing random bytes", lambda pooled: pooled.session.generate_random(n * 8))

    def digest(self, data: bytes, mechanism: str = "sm3") -> bytes:
        return self.pool.run("digesting", lambda pooled: pooled.session.digest(data, mechanism=self._mechanism(mechanism)))

    def info(self) -> TokenInfo:
        token = self.pool.token
        slot = token.slot
        names = []
        reverse = {v: k for k, v in self.profile.vendor_mechanisms.items()}
        for m in sorted(int(x) for x in slot.get_mechanisms()):
            names.append(reverse.get(m) or getattr(pkcs11.Mechanism._value2member_map_.get(m), "name", None)
                         or f"0x{m:08x}")
        return TokenInfo(module=self.config.module, token=token.label, manufacturer=token.manufacturer_id,
                         model=token.model, serial=token.serial.decode("ascii", "replace").strip(),
                         vendor_profile=self.profile.name, mechanisms=names)

    def close(self) -> None:
        self.pool.close()
