"""SM2 key envelopes: GM/T 0009 SM2Cipher, GB/T 35276 SM2EnvelopedKey and GM/T 0010 (GB/T 35275)
SignedAndEnvelopedData — asn1crypto specs with builders and parsers (public data only, no secrets).

The specs follow the definitions in docs/REFERENCES.md §3:

* ``SM2Cipher ::= SEQUENCE { XCoordinate INTEGER, YCoordinate INTEGER, HASH OCTET STRING (32),
  CipherText OCTET STRING }`` — C1 = (x, y), C3 = HASH, C2 = CipherText.
* ``SM2EnvelopedKey ::= SEQUENCE { symAlgID, symEncryptedKey SM2Cipher, sm2PublicKey BIT STRING,
  sm2EncryptedPrivateKey BIT STRING }``.
* ``SignedAndEnvelopedData`` (content type 1.2.156.10197.6.1.4.2.4) with ``RecipientInfo`` carrying a
  DER SM2Cipher as encryptedKey and PKCS#7-shaped ``SignerInfo``s (asn1crypto's ``cms.SignerInfo``).

What the signer signs (GB/T 35275 leaves it to the application): a key-management centre never holds
the clear private key outside its HSM, so the SignerInfo signature (SM2-with-SM3, default user ID,
no authenticated attributes) covers the *encryptedContent* octets — ``signed_content(sed)`` returns
exactly those bytes. A subscriber checks the signature, decrypts, and checks d·G = Q.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509

from pkicore import asn1 as _asn1  # noqa: F401  (SM3 / SM2 names for asn1crypto)
from pkicore.keys import point_from_public_key_info, public_key_info_from_point, verify_signature
from pkicore.algorithms import algorithm
from pkicore.oids import OID
from pkicore.sm2 import SM2PublicKey


class AlgorithmIdentifier(core.Sequence):
    """RFC 5280 AlgorithmIdentifier with opaque parameters (asn1crypto's typed ones know no SM4)."""

    _fields = [("algorithm", core.ObjectIdentifier), ("parameters", core.Any, {"optional": True})]


def alg_id(oid: str, null_params: bool = True) -> AlgorithmIdentifier:
    value = {"algorithm": oid}
    if null_params:
        value["parameters"] = core.Null()
    return AlgorithmIdentifier(value)


# ------------------------------------------------------------------ GM/T 0009 SM2Cipher

class SM2Cipher(core.Sequence):
    _fields = [("x", core.Integer), ("y", core.Integer), ("hash", core.OctetString),
               ("cipher_text", core.OctetString)]


@dataclass(frozen=True)
class SM2CipherParts:
    x: int
    y: int
    c3: bytes
    c2: bytes

    def raw_c1c3c2(self) -> bytes:
        """04 || x || y || C3 || C2 (GB/T 32918.4-2016 order)."""
        return b"\x04" + self.x.to_bytes(32, "big") + self.y.to_bytes(32, "big") + self.c3 + self.c2


def parse_sm2_cipher(der: bytes) -> SM2CipherParts:
    """Strict DER SM2Cipher; C1 must be a point on the curve, C3 32 bytes."""
    try:
        c = SM2Cipher.load(der, strict=True)
        parts = SM2CipherParts(c["x"].native, c["y"].native, c["hash"].native, c["cipher_text"].native)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"malformed SM2Cipher: {exc}") from exc
    if c.dump(force=True) != der:
        raise ValueError("SM2Cipher is not DER")
    if len(parts.c3) != 32:
        raise ValueError("SM2Cipher HASH must be 32 bytes")
    SM2PublicKey(parts.x, parts.y)  # C1 on the curve (raises ValueError)
    return parts


def build_sm2_cipher(x: int, y: int, c3: bytes, c2: bytes) -> bytes:
    return SM2Cipher({"x": x, "y": y, "hash": c3, "cipher_text": c2}).dump()


# ------------------------------------------------------------------ GB/T 35276 SM2EnvelopedKey

class SM2EnvelopedKey(core.Sequence):
    _fields = [("sym_alg_id", AlgorithmIdentifier), ("sym_encrypted_key", SM2Cipher),
               ("sm2_public_key", core.OctetBitString), ("sm2_encrypted_private_key", core.OctetBitString)]


@dataclass(frozen=True)
class EnvelopedKey:
    """A parsed SM2EnvelopedKey: which cipher, the SM2Cipher of the SM4 key, the key pair's public point
    and SM4-ECB(d)."""

    sym_algorithm: str
    sym_encrypted_key: bytes     # DER SM2Cipher
    public_point: bytes          # 04 || X || Y
    encrypted_private_key: bytes  # SM4-ECB(d), 32 bytes

    @property
    def public_key_info(self) -> bytes:
        return public_key_info_from_point("sm2p256v1", self.public_point)


def build_sm2_enveloped_key(sym_encrypted_key: bytes, public_point: bytes, encrypted_private_key: bytes,
                            sym_oid: str = OID.SM4_ECB) -> bytes:
    """DER SM2EnvelopedKey from its parts (the SM2Cipher as DER, e.g. from KeyManager.wrap_to)."""
    SM2PublicKey.from_point(public_point)
    parse_sm2_cipher(sym_encrypted_key)          # also proves it is DER, so it goes in verbatim
    if len(encrypted_private_key) != 32:
        raise ValueError("sm2EncryptedPrivateKey must be SM4-ECB of a 32-byte d")
    # direct DER (byte-identical to _sm2_enveloped_key_asn1, tested)
    return _der(0x30, _alg_null_der(sym_oid) + bytes(sym_encrypted_key) + _der(0x03, b"\x00" + bytes(public_point))
                + _der(0x03, b"\x00" + bytes(encrypted_private_key)))


def _sm2_enveloped_key_asn1(sym_encrypted_key: bytes, public_point: bytes, encrypted_private_key: bytes,
                            sym_oid: str = OID.SM4_ECB) -> bytes:
    """The same SM2EnvelopedKey through asn1crypto (the reference the direct encoding is tested against)."""
    return SM2EnvelopedKey({
        "sym_alg_id": alg_id(sym_oid),
        "sym_encrypted_key": SM2Cipher.load(sym_encrypted_key),
        "sm2_public_key": public_point,
        "sm2_encrypted_private_key": encrypted_private_key,
    }).dump()


def parse_sm2_enveloped_key(der: bytes) -> EnvelopedKey:
    """Strict parse; the public point must be on the curve and the encrypted key 32 bytes."""
    try:
        env = SM2EnvelopedKey.load(der, strict=True)
        sym = env["sym_alg_id"]["algorithm"].dotted
        cipher = env["sym_encrypted_key"].dump()
        point = env["sm2_public_key"].native
        enc = env["sm2_encrypted_private_key"].native
    except (ValueError, TypeError) as exc:
        raise ValueError(f"malformed SM2EnvelopedKey: {exc}") from exc
    if env.dump(force=True) != der:
        raise ValueError("SM2EnvelopedKey is not DER")
    if sym != OID.SM4_ECB:
        raise ValueError(f"unsupported symmetric algorithm {sym}")
    parse_sm2_cipher(cipher)
    SM2PublicKey.from_point(point)
    if len(enc) != 32:
        raise ValueError("sm2EncryptedPrivateKey must be 32 bytes")
    return EnvelopedKey(sym, cipher, point, enc)


# ------------------------------------------------------------------ GM/T 0010 SignedAndEnvelopedData

class RecipientInfo(core.Sequence):
    _fields = [("version", core.Integer), ("issuer_and_serial_number", cms.IssuerAndSerialNumber),
               ("key_encryption_algorithm", AlgorithmIdentifier), ("encrypted_key", core.OctetString)]


class RecipientInfos(core.SetOf):
    _child_spec = RecipientInfo


class DigestAlgorithms(core.SetOf):
    _child_spec = AlgorithmIdentifier


class EncryptedContentInfo(core.Sequence):
    _fields = [("content_type", core.ObjectIdentifier),
               ("content_encryption_algorithm", AlgorithmIdentifier),
               ("encrypted_content", core.OctetString, {"implicit": 0, "optional": True}),
               ("shared_info1", core.OctetString, {"implicit": 1, "optional": True}),
               ("shared_info2", core.OctetString, {"implicit": 2, "optional": True})]


class SignerInfos(core.SetOf):
    _child_spec = cms.SignerInfo


class SignedAndEnvelopedData(core.Sequence):
    _fields = [("version", core.Integer), ("recipient_infos", RecipientInfos),
               ("digest_algorithms", DigestAlgorithms), ("encrypted_content_info", EncryptedContentInfo),
               ("certificates", cms.CertificateSet, {"implicit": 0, "optional": True}),
               ("crls", cms.RevocationInfoChoices, {"implicit": 1, "optional": True}),
               ("signer_infos", SignerInfos)]


class GmContentInfo(core.Sequence):
    """ContentInfo with a GM/T 0010 content type (content kept opaque)."""

    _fields = [("content_type", core.ObjectIdentifier), ("content", core.Any, {"explicit": 0, "optional": True})]


class SignedAndEnvelopedContentInfo(core.Sequence):
    """ContentInfo { 1.2.156.10197.6.1.4.2.4, [0] EXPLICIT SignedAndEnvelopedData }."""

    _fields = [("content_type", core.ObjectIdentifier), ("content", SignedAndEnvelopedData, {"explicit": 0})]


@dataclass(frozen=True)
class Party:
    """IssuerAndSerialNumber of a certificate (recipient or signer)."""

    issuer: asn1_x509.Name
    serial: int

    @classmethod
    def from_certificate(cls, cert_der: bytes) -> "Party":
        cert = asn1_x509.Certificate.load(cert_der)
        return cls(cert.issuer, cert.serial_number)

    def asn1(self) -> cms.IssuerAndSerialNumber:
        return cms.IssuerAndSerialNumber({"issuer": self.issuer, "serial_number": self.serial})

    def dump(self) -> bytes:
        """DER IssuerAndSerialNumber (memoised: a Party is immutable)."""
        der = self.__dict__.get("_der")
        if der is None:
            # SEQUENCE { issuer Name, serialNumber INTEGER } (RFC 5652 10.2.4) concatenated directly: the
            # issuer's DER is cached by asn1crypto, and a KMC makes one Party per escrowed key
            der = _der(0x30, self.issuer.dump() + core.Integer(self.serial).dump())
            object.__setattr__(self, "_der", der)
        return der


def _der(tag: int, content: bytes) -> bytes:
    """One DER TLV (X.690 §8.1: definite length, short form below 128)."""
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    length = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(length))) + length + content


@functools.lru_cache(maxsize=64)
def _oid_contents(dotted: str) -> bytes:
    return core.ObjectIdentifier(dotted).contents


@functools.lru_cache(maxsize=64)
def _alg_null_der(dotted: str) -> bytes:
    return alg_id(dotted).dump()


_DER_INT_1 = core.Integer(1).dump()
_DER_ALG_SM2_ENCRYPT = alg_id(OID.SM2_ENCRYPT, null_params=False).dump()
_DER_DIGEST_ALGS_SM3 = DigestAlgorithms([alg_id(OID.SM3, null_params=False)]).dump()
_REFERENCE_SIGNER = cms.SignerInfo({"version": "v1", "digest_algorithm": {"algorithm": "sm3"},
                                    "signature_algorithm": {"algorithm": OID.SM2_SIGN}})
_DER_SIGNER_ALGS = _REFERENCE_SIGNER["digest_algorithm"].dump() + _REFERENCE_SIGNER["signature_algorithm"].dump()
del _REFERENCE_SIGNER
_DER_OID_SIGNED_AND_ENVELOPED = core.ObjectIdentifier(OID.GMT_SIGNED_AND_ENVELOPED_DATA).dump()


def build_signed_and_enveloped(*, recipient: Party, encrypted_key: bytes, encrypted_content: bytes,
                               signer: Party, sign: Callable[[bytes], bytes],
                               certificates: tuple[bytes, ...] = (), content_oid: str = OID.GMT_DATA,
                               cipher_oid: str = OID.SM4_ECB, content_info: bool = False) -> bytes:
    """SignedAndEnvelopedData (version 1) for one recipient and one signer.

    ``encrypted_key``: DER SM2Cipher of the content-encryption key to the recipient's SM2 key;
    ``encrypted_content``: the content under that key (``cipher_oid``); ``sign(data) -> DER (r, s)``:
    SM2-with-SM3 with the default ID over ``encrypted_content`` (see the module docstring).
    ``content_info=True`` wraps the result in a ContentInfo of type 1.2.156.10197.6.1.4.2.4.
    """
    parse_sm2_cipher(encrypted_key)
    signature = sign(encrypted_content)
    if not certificates:
        # the KMC's hot path (one per escrowed key): the same DER as below, concatenated directly from
        # cached constant parts instead of through asn1crypto's object tree (~2.5 ms -> ~50 us)
        sed = _der(0x30, b"".join((
            _DER_INT_1,
            _der(0x31, _der(0x30, b"".join((_DER_INT_1, recipient.dump(), _DER_ALG_SM2_ENCRYPT,
                                            _der(0x04, encrypted_key))))),
            _DER_DIGEST_ALGS_SM3,
            _der(0x30, _der(0x06, _oid_contents(content_oid)) + _alg_null_der(cipher_oid)
                 + _der(0x80, encrypted_content)),
            _der(0x31, _der(0x30, _DER_INT_1 + signer.dump() + _DER_SIGNER_ALGS + _der(0x04, signature))),
        )))
        if content_info:
            return _der(0x30, _DER_OID_SIGNED_AND_ENVELOPED + _der(0xA0, sed))
        return sed
    return _signed_and_enveloped_asn1(recipient, encrypted_key, encrypted_content, signer, signature,
                                      certificates, content_oid, cipher_oid, content_info)


def _signed_and_enveloped_asn1(recipient: Party, encrypted_key: bytes, encrypted_content: bytes, signer: Party,
                               signature: bytes, certificates: tuple[bytes, ...], content_oid: str,
                               cipher_oid: str, content_info: bool) -> bytes:
    """The same structure through asn1crypto's object tree (with certificates; the reference the direct
    encoding is tested against)."""
    signer_info = cms.SignerInfo({
        "version": "v1",
        "sid": cms.SignerIdentifier(name="issuer_and_serial_number", value=signer.asn1()),
        "digest_algorithm": {"algorithm": "sm3"},
        "signature_algorithm": {"algorithm": OID.SM2_SIGN},
        "signature": signature,
    })
    value = {
        "version": 1,
        "recipient_infos": [RecipientInfo({
            "version": 1, "issuer_and_serial_number": recipient.asn1(),
            "key_encryption_algorithm": alg_id(OID.SM2_ENCRYPT, null_params=False),
            "encrypted_key": encrypted_key})],
        "digest_algorithms": [alg_id(OID.SM3, null_params=False)],
        "encrypted_content_info": {"content_type": content_oid,
                                   "content_encryption_algorithm": alg_id(cipher_oid),
                                   "encrypted_content": encrypted_content},
        "signer_infos": [signer_info],
    }
    if certificates:
        value["certificates"] = [cms.CertificateChoices(name="certificate", value=asn1_x509.Certificate.load(c))
                                 for c in certificates]
    sed = SignedAndEnvelopedData(value)
    if content_info:
        return SignedAndEnvelopedContentInfo({"content_type": OID.GMT_SIGNED_AND_ENVELOPED_DATA,
                                              "content": sed}).dump()
    return sed.dump()


@dataclass(frozen=True)
class SignedEnvelope:
    """A parsed SignedAndEnvelopedData with one recipient and one signer (what a KMC returns)."""

    recipient: Party
    encrypted_key: bytes           # DER SM2Cipher
    content_type: str
    cipher: str
    encrypted_content: bytes
    signer: Party
    digest_algorithm: str
    signature_algorithm: str
    signature: bytes               # DER (r, s)
    certificates: tuple[bytes, ...]


def parse_signed_and_enveloped(der: bytes) -> SignedEnvelope:
    """Strict parse of a bare SignedAndEnvelopedData or one wrapped in a GM/T 0010 ContentInfo."""
    try:
        first = core.Asn1Value.load(der, strict=True)
        if isinstance(first, core.Sequence) and first.contents[:1] == b"\x06":
            ci = GmContentInfo.load(der, strict=True)
            if ci["content_type"].dotted != OID.GMT_SIGNED_AND_ENVELOPED_DATA:
                raise ValueError(f"content type {ci['content_type'].dotted} is not signedAndEnvelopedData")
            sed = SignedAndEnvelopedContentInfo.load(der, strict=True)["content"]
        else:
            sed = SignedAndEnvelopedData.load(der, strict=True)
        if sed["version"].native != 1:
            raise ValueError("version must be 1")
        if len(sed["recipient_infos"]) != 1 or len(sed["signer_infos"]) != 1:
            raise ValueError("exactly one recipient and one signer expected")
        ri = sed["recipient_infos"][0]
        if ri["key_encryption_algorithm"]["algorithm"].dotted not in (OID.SM2_ENCRYPT, OID.SM2_EXCHANGE):
            raise ValueError("recipient key encryption is not SM2")
        eci = sed["encrypted_content_info"]
        si = sed["signer_infos"][0]
        sid = si["sid"]
        if sid.name != "issuer_and_serial_number":
            raise ValueError("signer must be named by issuer and serial number")
        if si["signed_attrs"].native is not None:
            raise ValueError("authenticated attributes are not supported")
        content = eci["encrypted_content"].native
        if content is None:
            raise ValueError("no encrypted content")
        certs = tuple(c.chosen.dump() for c in sed["certificates"]) if sed["certificates"].native else ()
        out = SignedEnvelope(
            recipient=Party(ri["issuer_and_serial_number"]["issuer"], ri["issuer_and_serial_number"]["serial_number"].native),
            encrypted_key=ri["encrypted_key"].native,
            content_type=eci["content_type"].dotted,
            cipher=eci["content_encryption_algorithm"]["algorithm"].dotted,
            encrypted_content=content,
            signer=Party(sid.chosen["issuer"], sid.chosen["serial_number"].native),
            digest_algorithm=si["digest_algorithm"]["algorithm"].dotted,
            signature_algorithm=si["signature_algorithm"]["algorithm"].dotted,
            signature=si["signature"].native,
            certificates=certs,
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"malformed SignedAndEnvelopedData: {exc}") from exc
    parse_sm2_cipher(out.encrypted_key)
    return out


def signed_content(envelope: SignedEnvelope) -> bytes:
    """The exact bytes the SignerInfo signature covers (the encryptedContent octets)."""
    return envelope.encrypted_content


@dataclass(frozen=True)
class EnvelopeCheck:
    """Verdict on a SignedAndEnvelopedData's signature: ``ok`` plus the reasons when not."""

    ok: bool
    reasons: tuple[str, ...] = ()


def verify_signed_and_enveloped(der: bytes, signer_public_key_info: bytes,
                                signer_certificate: bytes | None = None) -> EnvelopeCheck:
    """Check structure, algorithms and the SM2 signature (and the signer id against the certificate)."""
    try:
        env = parse_signed_and_enveloped(der)
    except ValueError as exc:
        return EnvelopeCheck(False, (str(exc),))
    reasons = []
    if env.digest_algorithm != OID.SM3:
        reasons.append("digest algorithm is not SM3")
    if env.signature_algorithm not in (OID.SM2_SIGN, OID.SM2_WITH_SM3, OID.SM2_CURVE):
        reasons.append("signature algorithm is not SM2")
    if signer_certificate is not None:
        cert_party = Party.from_certificate(signer_certificate)
        if cert_party.serial != env.signer.serial or cert_party.issuer.dump() != env.signer.issuer.dump():
            reasons.append("signer identifier does not name the signer certificate")
    try:
        curve, _ = point_from_public_key_info(signer_public_key_info)
    except ValueError:
        curve = None
    if curve != "sm2p256v1":
        reasons.append("signer key is not an SM2 key")
    elif not verify_signature(signer_public_key_info, algorithm("sm2-sm3"), signed_content(env), env.signature):
        reasons.append("signature does not verify")
    return EnvelopeCheck(not reasons, tuple(reasons))


def enveloped_key_from_signed_and_enveloped(der: bytes, public_key_info: bytes) -> bytes:
    """The GB/T 35276 SM2EnvelopedKey carrying the same key as a GM/T 0010 SignedAndEnvelopedData whose
    content is the private key under SM4-ECB (what a KMC returns over GM/T 0014): both hold the same
    SM2Cipher of the SM4 key and the same SM4-ECB(d), so the repackaging needs no key at all. The KMC's
    signature is not carried over — check it (``verify_signed_and_enveloped``) before relying on this."""
    env = parse_signed_and_enveloped(der)
    if env.cipher != OID.SM4_ECB:
        raise ValueError("the enveloped private key is not under SM4-ECB")
    _, point = point_from_public_key_info(public_key_info)
    return build_sm2_enveloped_key(env.encrypted_key, point, env.encrypted_content)
