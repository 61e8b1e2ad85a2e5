"""CMP message protection (RFC 4210 §5.1.3, RFC 9481 §6): PasswordBasedMac (RFC 4211 §4.4), PBMAC1
(RFC 8018 §7.1 with PBKDF2) and signatures (ECDSA, RSA PKCS#1 v1.5, SM2-with-SM3 with the default user ID
1234567812345678, GB/T 35276 §7) over ProtectedPart = SEQUENCE { header, body }.

Verification returns a bool; the caller says why in a PKIFailureInfo. Secrets never appear in errors.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from asn1crypto import algos, core

from ca_bridge.cmp import asn1
from pkicore.algorithms import Algorithm, algorithm
from pkicore.keys import verify_signature

PASSWORD_BASED_MAC = "1.2.840.113533.7.66.13"
PBMAC1 = "1.2.840.113549.1.5.14"
PBKDF2 = "1.2.840.113549.1.5.12"

# digest OIDs (owf of PasswordBasedMac) and HMAC OIDs (RFC 9481 §6.2.1) -> hashlib names
DIGESTS = {"1.3.14.3.2.26": "sha1", "2.16.840.1.101.3.4.2.4": "sha224", "2.16.840.1.101.3.4.2.1": "sha256",
           "2.16.840.1.101.3.4.2.2": "sha384", "2.16.840.1.101.3.4.2.3": "sha512", "1.2.156.10197.1.401": "sm3"}
HMACS = {"1.3.6.1.5.5.8.1.2": "sha1", "1.2.840.113549.2.7": "sha1", "1.2.840.113549.2.8": "sha224",
         "1.2.840.113549.2.9": "sha256", "1.2.840.113549.2.10": "sha384", "1.2.840.113549.2.11": "sha512",
         "1.2.156.10197.1.401.2": "sm3"}                  # HMAC-SM3 (GM/T 0006)
HMAC_OID = {"sha1": "1.2.840.113549.2.7", "sha256": "1.2.840.113549.2.9", "sha384": "1.2.840.113549.2.10",
            "sha512": "1.2.840.113549.2.11", "sm3": "1.2.156.10197.1.401.2"}
DIGEST_OID = {v: k for k, v in DIGESTS.items()}
MAX_ITERATIONS = 100_000          # RFC 9481 §4.4: the receiver bounds the work a sender can ask for
MIN_ITERATIONS = 100
MIN_SALT = 8


class ProtectionError(ValueError):
    """The protection cannot be checked as given (unknown algorithm, absurd parameters)."""


def protected_part(header: asn1.PKIHeader, body: asn1.PKIBody) -> bytes:
    """DER of ProtectedPart from the header and body exactly as received (RFC 4210 §5.1.3): the SEQUENCE
    of their two encodings, as they are (no parse and re-encode: the bytes would be the same)."""
    inner = header.dump() + body.dump()
    return b"\x30" + _length(len(inner)) + inner


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def is_mac(protection_alg: algos.AlgorithmIdentifier) -> bool:
    return protection_alg["algorithm"].dotted in (PASSWORD_BASED_MAC, PBMAC1)


def _pbm(secret: bytes, params_der: bytes, data: bytes) -> bytes:
    params = asn1.PBMParameter.load(params_der)
    owf = DIGESTS.get(params["owf"]["algorithm"].dotted)
    mac = HMACS.get(params["mac"]["algorithm"].dotted)
    count = params["iteration_count"].native
    salt = params["salt"].native
    if owf is None or mac is None:
        raise ProtectionError("unsupported PasswordBasedMac owf or MAC algorithm")
    if not MIN_ITERATIONS <= count <= MAX_ITERATIONS or len(salt) < MIN_SALT:
        raise ProtectionError("PasswordBasedMac iteration count or salt out of bounds")
    key = secret + salt
    for _ in range(count):
        key = hashlib.new(owf, key).digest()
    return hmac.new(key, data, mac).digest()


def _pbmac1(secret: bytes, params_der: bytes, data: bytes) -> bytes:
    params = asn1.PBMAC1Params.load(params_der)
    kdf = params["key_derivation_func"]
    if kdf["algorithm"].dotted != PBKDF2:
        raise ProtectionError("PBMAC1 needs PBKDF2")
    kdf_params = kdf["parameters"]
    salt = kdf_params["salt"].native
    count = kdf_params["iteration_count"].native
    prf = HMACS.get(kdf_params["prf"]["algorithm"].dotted)
    mac = HMACS.get(params["message_auth_scheme"]["algorithm"].dotted)
    length = kdf_params["key_length"].native
    if prf is None or mac is None or not isinstance(salt, bytes):
        raise ProtectionError("unsupported PBMAC1 parameters")
    if not MIN_ITERATIONS <= count <= MAX_ITERATIONS or len(salt) < MIN_SALT:
        raise ProtectionError("PBMAC1 iteration count or salt out of bounds")
    length = length or hashlib.new(mac).digest_size
    if not 16 <= length <= 64:
        raise ProtectionError("PBMAC1 key length out of bounds")
    key = hashlib.pbkdf2_hmac(prf, secret, salt, count, length)
    return hmac.new(key, data, mac).digest()


def mac_value(secret: bytes, protection_alg: algos.AlgorithmIdentifier, data: bytes) -> bytes:
    oid = protection_alg["algorithm"].dotted
    params = protection_alg["parameters"]
    if not params.contents:
        raise ProtectionError("MAC protection without parameters")
    try:
        if oid == PASSWORD_BASED_MAC:
            return _pbm(secret, params.dump(), data)
        if oid == PBMAC1:
            return _pbmac1(secret, params.dump(), data)
    except (ValueError, TypeError, KeyError) as exc:
        if isinstance(exc, ProtectionError):
            raise
        raise ProtectionError("malformed MAC parameters") from None
    raise ProtectionError("not a MAC algorithm")


def verify_mac(message: asn1.PKIMessage, secret: bytes) -> bool:
    alg = message["header"]["protection_alg"]
    expected = mac_value(secret, alg, protected_part(message["header"], message["body"]))
    protection = message["protection"]
    if not protection.contents:
        return False
    return hmac.compare_digest(expected, bytes(protection.contents[1:]))


def pbm_algorithm(*, iterations: int = 10_000, owf: str = "sha256", mac: str = "sha256",
                  salt: bytes | None = None) -> algos.AlgorithmIdentifier:
    """A fresh PasswordBasedMac AlgorithmIdentifier (RFC 9481 §6.1.1)."""
    params = asn1.PBMParameter({"salt": salt or secrets.token_bytes(16), "owf": {"algorithm": DIGEST_OID[owf]},
                                "iteration_count": iterations, "mac": {"algorithm": HMAC_OID[mac]}})
    return algos.AlgorithmIdentifier({"algorithm": PASSWORD_BASED_MAC, "parameters": core.Any.load(params.dump())})


def pbmac1_algorithm(*, iterations: int = 10_000, prf: str = "sha256", mac: str = "sha256",
                     salt: bytes | None = None) -> algos.AlgorithmIdentifier:
    """A fresh PBMAC1 AlgorithmIdentifier with PBKDF2 (RFC 9481 §6.1.3)."""
    kdf = algos.KdfAlgorithm({"algorithm": "pbkdf2", "parameters": {
        "salt": algos.Pbkdf2Salt(name="specified", value=salt or secrets.token_bytes(16)), "iteration_count": iterations,
        "key_length": hashlib.new(mac).digest_size, "prf": {"algorithm": prf}}})
    params = asn1.PBMAC1Params({"key_derivation_func": kdf, "message_auth_scheme": {"algorithm": HMAC_OID[mac]}})
    return algos.AlgorithmIdentifier({"algorithm": PBMAC1, "parameters": core.Any.load(params.dump())})


def answer_mac_algorithm(request_alg: algos.AlgorithmIdentifier) -> algos.AlgorithmIdentifier:
    """The MAC algorithm of an answer: the request's kind and functions with a fresh salt (RFC 9483 §3.2)."""
    oid = request_alg["algorithm"].dotted
    params = request_alg["parameters"].dump()
    if oid == PASSWORD_BASED_MAC:
        p = asn1.PBMParameter.load(params)
        return pbm_algorithm(iterations=min(p["iteration_count"].native, MAX_ITERATIONS),
                             owf=DIGESTS[p["owf"]["algorithm"].dotted], mac=HMACS[p["mac"]["algorithm"].dotted])
    p = asn1.PBMAC1Params.load(params)
    kdf = p["key_derivation_func"]["parameters"]
    return pbmac1_algorithm(iterations=kdf["iteration_count"].native, prf=HMACS[kdf["prf"]["algorithm"].dotted],
                            mac=HMACS[p["message_auth_scheme"]["algorithm"].dotted])


@dataclass(frozen=True)
class SignatureCheck:
    ok: bool
    algorithm: Algorithm | None
    why: str = ""


def signature_algorithm(alg_id: algos.AlgorithmIdentifier) -> Algorithm | None:
    try:
        return algorithm(alg_id["algorithm"].dotted)
    except KeyError:
        return None


def verify_signature_protection(message: asn1.PKIMessage, signer_cert) -> SignatureCheck:
    """Check a signature-protected message against its protection certificate (an asn1crypto
    Certificate): the algorithm must suit the key, and the signature must verify over ProtectedPart."""
    alg = signature_algorithm(message["header"]["protection_alg"])
    if alg is None:
        return SignatureCheck(False, None, "unsupported protection algorithm")
    spki = signer_cert["tbs_certificate"]["subject_public_key_info"]
    key_type = {"ec": "ec", "rsa": "rsa"}.get(spki["algorithm"]["algorithm"].native, "?")
    if key_type == "ec" and spki["algorithm"]["parameters"].chosen.native == "sm2p256v1":
        key_type = "sm2"
    if key_type != alg.key_type:
        return SignatureCheck(False, alg, "the protection algorithm does not suit the sender's key")
    signature = bytes(message["protection"].contents[1:]) if message["protection"].contents else b""
    ok = verify_signature(spki.dump(), alg, protected_part(message["header"], message["body"]), signature)
    return SignatureCheck(ok, alg, "" if ok else "the signature over the message does not verify")
