"""GM/T 0010 §8 EnvelopedData (content type 1.2.156.10197.6.1.4.2.3) for applications (SOF_EncryptData /
SOF_DecryptData): SM4-CBC content encryption (1.2.156.10197.1.104.2, the IV as an OCTET STRING parameter,
PKCS#7 padding) under a fresh 128-bit key from ``secrets``, the key SM2-encrypted (GM/T 0009 DER SM2Cipher,
1.2.156.10197.1.301.3) to each recipient's encryption certificate.

    EnvelopedData ::= SEQUENCE { version INTEGER (0), recipientInfos SET OF RecipientInfo,
                                 encryptedContentInfo EncryptedContentInfo }
    RecipientInfo ::= SEQUENCE { version INTEGER (0), issuerAndSerialNumber, keyEncryptionAlgorithm,
                                 encryptedKey OCTET STRING }          -- RFC 5652 §6.2.1 ktri shape

Encryption to a civil servant happens with the HSM's SM2 code and the recipient's public key (no key of
ours is involved); decryption for an application uses its own SM2 encryption key in the HSM, which
recovers the SM4 key (the private key never leaves the HSM; the content key lives in memory for the call).
"""
from __future__ import annotations

import secrets

from asn1crypto import cms, core
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from hsm import KeyManager
from hsm.errors import HsmUnavailable, PinIncorrect, PinLocked
from pkicore.errors import PkiError
from pkicore.envelope import AlgorithmIdentifier, EncryptedContentInfo, RecipientInfos, parse_sm2_cipher
from pkicore.oids import OID
from trust.errors import TrustError

SM4_CBC = "1.2.156.10197.1.104.2"
SM2_ENCRYPT = "1.2.156.10197.1.301.3"
SM2_KEY_OIDS = {SM2_ENCRYPT, "1.2.156.10197.1.301.2", OID.SM2_CURVE, OID.EC_PUBLIC_KEY}   # accepted on parse


class EnvelopedData(core.Sequence):
    _fields = [("version", core.Integer), ("recipient_infos", RecipientInfos),
               ("encrypted_content_info", EncryptedContentInfo)]


class EnvelopedContentInfo(core.Sequence):
    _fields = [("content_type", core.ObjectIdentifier), ("content", EnvelopedData, {"explicit": 0})]


def _sm4_cbc(key: bytes, iv: bytes, data: bytes, encrypt: bool) -> bytes:
    cipher = Cipher(algorithms.SM4(key), modes.CBC(iv))
    if encrypt:
        padder = padding.PKCS7(128).padder()
        enc = cipher.encryptor()
        return enc.update(padder.update(data) + padder.finalize()) + enc.finalize()
    dec = cipher.decryptor()
    padded = dec.update(data) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def encrypt(km: KeyManager, data: bytes, recipients: list[bytes]) -> bytes:
    """ContentInfo DER of an EnvelopedData for ``recipients`` (SM2 certificates, DER)."""
    if not recipients:
        raise TrustError("at least one recipient certificate is needed")
    key, iv = secrets.token_bytes(16), secrets.token_bytes(16)
    infos = []
    for der in recipients:
        cert = cms.Certificate.load(der)
        infos.append({"version": 0,
                      "issuer_and_serial_number": {"issuer": cert.issuer, "serial_number": cert.serial_number},
                      "key_encryption_algorithm": {"algorithm": SM2_ENCRYPT},
                      "encrypted_key": km.encrypt_to(cert.public_key.dump(), key)})
    body = EnvelopedData({"version": 0, "recipient_infos": infos, "encrypted_content_info": {
        "content_type": OID.GMT_DATA,
        "content_encryption_algorithm": AlgorithmIdentifier({"algorithm": SM4_CBC,
                                                             "parameters": core.OctetString(iv)}),
        "encrypted_content": _sm4_cbc(key, iv, data, True)}})
    return EnvelopedContentInfo({"content_type": OID.GMT_ENVELOPED_DATA, "content": body}).dump()


def recipients(der: bytes) -> list[tuple[str, int]]:
    """(issuer DER hex, serial) of each RecipientInfo."""
    return [(ri["issuer_and_serial_number"]["issuer"].dump().hex(), ri["issuer_and_serial_number"]["serial_number"].native)
            for ri in _load(der)["recipient_infos"]]


def _load(der: bytes) -> EnvelopedData:
    try:
        info = EnvelopedContentInfo.load(der, strict=True)
        if info["content_type"].dotted not in (OID.GMT_ENVELOPED_DATA, "1.2.840.113549.1.7.3"):
            raise TrustError("not an EnvelopedData (GM/T 0010 1.2.156.10197.6.1.4.2.3)")
        body = info["content"]
        body.native  # noqa: B018 - parse the whole structure now
        return body
    except (ValueError, TypeError, KeyError) as exc:
        raise TrustError(f"malformed EnvelopedData: {exc}") from exc


def decrypt(km: KeyManager, der: bytes, *, label: str, certificate: bytes) -> bytes:
    """The content of an EnvelopedData addressed to ``certificate``, whose SM2 key ``label`` is in the HSM."""
    body = _load(der)
    cert = cms.Certificate.load(certificate)
    mine = None
    for ri in body["recipient_infos"]:
        ias = ri["issuer_and_serial_number"]
        if ias["serial_number"].native == cert.serial_number and ias["issuer"] == cert.issuer:
            mine = ri
            break
    if mine is None:
        raise TrustError("the envelope is not addressed to this application's encryption certificate")
    if mine["key_encryption_algorithm"]["algorithm"].dotted not in SM2_KEY_OIDS:
        raise TrustError("the envelope's key is not SM2-encrypted")
    eci = body["encrypted_content_info"]
    if eci["content_encryption_algorithm"]["algorithm"].dotted != SM4_CBC:
        raise TrustError("the content is not SM4-CBC encrypted")
    try:
        parse_sm2_cipher(mine["encrypted_key"].native)
        iv = core.OctetString.load(eci["content_encryption_algorithm"]["parameters"].dump()).native
        if len(iv) != 16:
            raise ValueError("IV must be 16 bytes")
    except (ValueError, TypeError) as exc:
        raise TrustError(f"malformed envelope: {exc}") from exc
    try:
        key = km.decrypt(label, mine["encrypted_key"].native, "sm2-encrypt")
    except (HsmUnavailable, PinIncorrect, PinLocked):
        raise
    except PkiError as exc:      # a token refuses a bad C3 with an error of its own
        raise TrustError("the envelope's key cannot be decrypted with this application's key") from exc
    if len(key) != 16:
        raise TrustError("the envelope's content key is not an SM4 key")
    try:
        return _sm4_cbc(key, iv, eci["encrypted_content"].native or b"", False)
    except ValueError as exc:
        raise TrustError("the envelope's content does not decrypt (wrong key or altered)") from exc
