"""A centrally generated private key in CMP's ``CertifiedKeyPair.privateKey`` (RFC 4210 §5.3.4 as updated by
RFC 9480 §2.7: ``EncryptedKey ::= CHOICE { encryptedValue EncryptedValue, envelopedData [0] EnvelopedData }``).

Where the key comes from: the CA's KMC (GM/T 0014 ApplyKeyRes), as a GM/T 0010 SignedAndEnvelopedData whose
one recipient is the subscriber's *signing* key (SM2Cipher of an SM4 key) and whose content is SM4-ECB(d),
signed by the KMC over that ciphertext (``pkicore.envelope``). The CA never holds the key, so it can only
repackage those bytes, not re-encrypt them:

* ``to_encrypted_key`` (our CMP server) sends ``[0] EnvelopedData`` (RFC 5652 §6): one KeyTransRecipientInfo
  (the KMC's recipient identifier, keyEncryptionAlgorithm SM2 encryption 1.2.156.10197.1.301.3, encryptedKey
  the GM/T 0009 SM2Cipher), encryptedContentInfo SM4-ECB(d), and -- so the KMC's signature reaches the
  subscriber -- the KMC's whole SignedAndEnvelopedData as the one unprotected attribute (type
  1.2.156.10197.6.1.4.2.4). Deviation from RFC 9480 §2.7, said in the README: the encrypted content is the bare
  32-octet d (GM/T 0010), not a SignedData holding an AsymmetricKeyPackage (RFC 5958).
* ``from_encrypted_key`` (``CmpCA``) accepts that, an EnvelopedData or an EncryptedValue (RFC 4211 §4.2.1) of
  the same SM2/SM4-ECB shape without the KMC's envelope, and, in the untagged position, a GM/T 0010
  SignedAndEnvelopedData (bare or in its ContentInfo) or a GB/T 35276 SM2EnvelopedKey. It returns what the RA
  stores and the subscriber fetches as today: the GM/T 0010 envelope when there is one, else the GB/T 35276
  SM2EnvelopedKey built from the same ciphertexts.
"""
from __future__ import annotations

from asn1crypto import cms, core

from pkicore.envelope import (AlgorithmIdentifier, alg_id, build_sm2_enveloped_key, parse_signed_and_enveloped,
                              parse_sm2_cipher, parse_sm2_enveloped_key)
from pkicore.keys import point_from_public_key_info
from pkicore.oids import OID


class EncryptedValue(core.Sequence):
    """RFC 4211 §4.2.1 (IMPLICIT tags; deprecated by RFC 9480 but still sent by older CAs)."""
    _fields = [("intended_alg", AlgorithmIdentifier, {"implicit": 0, "optional": True}),
               ("symm_alg", AlgorithmIdentifier, {"implicit": 1, "optional": True}),
               ("enc_symm_key", core.OctetBitString, {"implicit": 2, "optional": True}),
               ("key_alg", AlgorithmIdentifier, {"implicit": 3, "optional": True}),
               ("value_hint", core.OctetString, {"implicit": 4, "optional": True}),
               ("enc_value", core.OctetBitString)]


class _ContentEncryption(core.Sequence):
    _fields = [("content_type", core.ObjectIdentifier), ("content_encryption_algorithm", AlgorithmIdentifier),
               ("encrypted_content", core.OctetString, {"implicit": 0, "optional": True})]


class _AnySet(core.SetOf):
    _child_spec = core.Any


class _Attribute(core.Sequence):
    _fields = [("type", core.ObjectIdentifier), ("values", _AnySet)]


class _Attributes(core.SetOf):
    _child_spec = _Attribute


class _KeyTrans(core.Sequence):
    _fields = [("version", core.Integer), ("rid", cms.RecipientIdentifier),
               ("key_encryption_algorithm", AlgorithmIdentifier), ("encrypted_key", core.OctetString)]


class _RecipientInfos(core.SetOf):
    _child_spec = _KeyTrans


class EnvelopedData(core.Sequence):
    """RFC 5652 §6.1 with KeyTransRecipientInfos only and opaque algorithm parameters (SM2, SM4)."""
    _fields = [("version", core.Integer),            # no originatorInfo (an optional Any would swallow the SET)
               ("recipient_infos", _RecipientInfos), ("encrypted_content_info", _ContentEncryption),
               ("unprotected_attrs", _Attributes, {"implicit": 1, "optional": True})]


SM2_KEY_ENCRYPTION = (OID.SM2_ENCRYPT, OID.SM2_EXCHANGE)


def to_encrypted_key(signed_and_enveloped: bytes) -> bytes:
    """DER of ``[0] EnvelopedData`` for ``CertifiedKeyPair.privateKey`` (the EncryptedKey, without the
    [0] EXPLICIT of privateKey itself), repackaged from the KMC's GM/T 0010 envelope."""
    env = parse_signed_and_enveloped(signed_and_enveloped)
    if env.cipher != OID.SM4_ECB:
        raise ValueError("the KMC's envelope is not under SM4-ECB")
    ed = EnvelopedData({
        "version": 0,
        "recipient_infos": [_KeyTrans({
            "version": 0,
            "rid": cms.RecipientIdentifier(name="issuer_and_serial_number", value=env.recipient.asn1()),
            "key_encryption_algorithm": alg_id(OID.SM2_ENCRYPT, null_params=False),
            "encrypted_key": env.encrypted_key})],
        "encrypted_content_info": {"content_type": env.content_type,
                                   "content_encryption_algorithm": alg_id(OID.SM4_ECB),
                                   "encrypted_content": env.encrypted_content},
        "unprotected_attrs": [_Attribute({"type": OID.GMT_SIGNED_AND_ENVELOPED_DATA,
                                          "values": [core.Any.load(signed_and_enveloped)]})],
    })
    return ed.retag({"implicit": 0}).dump()


def from_encrypted_key(der: bytes, public_key_info: bytes) -> bytes:
    """What the RA keeps for the subscriber from an EncryptedKey (DER, tagged as in the CHOICE) for the
    certified key ``public_key_info``: the GM/T 0010 SignedAndEnvelopedData when the CA sent one, else the
    GB/T 35276 SM2EnvelopedKey of the same ciphertexts. ValueError when it is none of the accepted forms
    or does not carry an SM2 key under SM4-ECB for an SM2 recipient."""
    _, point = point_from_public_key_info(public_key_info)
    if not der:
        raise ValueError("an empty EncryptedKey")
    if der[0] == 0xA0:                                          # [0] EnvelopedData
        ed = EnvelopedData.load(der, strict=True, implicit=0)
        for attr in () if isinstance(ed["unprotected_attrs"], core.Void) else ed["unprotected_attrs"]:
            if attr["type"].dotted == OID.GMT_SIGNED_AND_ENVELOPED_DATA and len(attr["values"]) == 1:
                inner = attr["values"][0].dump()
                env = parse_signed_and_enveloped(inner)
                ri = ed["recipient_infos"][0] if len(ed["recipient_infos"]) == 1 else None
                eci = ed["encrypted_content_info"]
                if ri is None or ri["encrypted_key"].native != env.encrypted_key \
                        or eci["encrypted_content"].native != env.encrypted_content:
                    raise ValueError("the EnvelopedData and the KMC's envelope it carries differ")
                return inner
        if len(ed["recipient_infos"]) != 1:
            raise ValueError("exactly one recipient (the subscriber's signing key) expected")
        ri, eci = ed["recipient_infos"][0], ed["encrypted_content_info"]
        if ri["key_encryption_algorithm"]["algorithm"].dotted not in SM2_KEY_ENCRYPTION:
            raise ValueError("the key is not encrypted to an SM2 key")
        if eci["content_encryption_algorithm"]["algorithm"].dotted != OID.SM4_ECB:
            raise ValueError("the private key is not under SM4-ECB")
        return build_sm2_enveloped_key(ri["encrypted_key"].native, point, eci["encrypted_content"].native or b"")
    if der[0] != 0x30:
        raise ValueError("not an EncryptedKey")
    with _suppress():
        parse_signed_and_enveloped(der)                         # GM/T 0010, bare or in its ContentInfo
        return der
    with _suppress():
        key = parse_sm2_enveloped_key(der)                       # GB/T 35276
        if key.public_point != point:
            raise ValueError("the SM2EnvelopedKey is for another key")
        return der
    ev = EncryptedValue.load(der, strict=True)                   # RFC 4211 §4.2.1
    if ev["key_alg"].native is None or ev["key_alg"]["algorithm"].dotted not in SM2_KEY_ENCRYPTION:
        raise ValueError("the EncryptedValue's key is not encrypted to an SM2 key")
    if ev["symm_alg"].native is None or ev["symm_alg"]["algorithm"].dotted != OID.SM4_ECB:
        raise ValueError("the EncryptedValue's private key is not under SM4-ECB")
    parse_sm2_cipher(ev["enc_symm_key"].native)
    return build_sm2_enveloped_key(ev["enc_symm_key"].native, point, ev["enc_value"].native)


class _suppress:
    """Try one form; a ValueError means "not this one"."""

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        return kind is not None and issubclass(kind, (ValueError, TypeError, KeyError))
