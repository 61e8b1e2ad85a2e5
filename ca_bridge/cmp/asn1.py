"""ASN.1 of CMP (RFC 4210 §5 / RFC 9480 Appendix A, PKIXCMP-2021, EXPLICIT tags) and CRMF (RFC 4211
Appendix B, PKIXCRMF-2005, IMPLICIT tags) in asn1crypto, as far as the Lightweight CMP Profile (RFC 9483)
and our server and client need: every body type is named, the ones we never read or write stay ``Any``.

Tags follow the modules: CMP's are explicit; CRMF's implicit except where the tagged type is a CHOICE
(Name, Time, POPOPrivKey, GeneralName), which X.680 §31.2.7 makes explicit.
"""
from __future__ import annotations

from asn1crypto import algos, cms, core, crl, csr, keys, x509

# ------------------------------------------------------------------------------------- CRMF (RFC 4211)


class AttributeTypeAndValue(core.Sequence):
    _fields = [("type", core.ObjectIdentifier), ("value", core.Any, {"optional": True})]


class Controls(core.SequenceOf):
    _child_spec = AttributeTypeAndValue


class OptionalValidity(core.Sequence):
    """RFC 4211 §5: at least one of the two is present."""
    _fields = [("not_before", x509.Time, {"explicit": 0, "optional": True}),
               ("not_after", x509.Time, {"explicit": 1, "optional": True})]


class CertTemplate(core.Sequence):
    """RFC 4211 §5."""
    _fields = [
        ("version", core.Integer, {"implicit": 0, "optional": True}),
        ("serial_number", core.Integer, {"implicit": 1, "optional": True}),
        ("signing_alg", algos.SignedDigestAlgorithm, {"implicit": 2, "optional": True}),
        ("issuer", x509.Name, {"explicit": 3, "optional": True}),
        ("validity", OptionalValidity, {"implicit": 4, "optional": True}),
        ("subject", x509.Name, {"explicit": 5, "optional": True}),
        ("public_key", keys.PublicKeyInfo, {"implicit": 6, "optional": True}),
        ("issuer_uid", core.BitString, {"implicit": 7, "optional": True}),
        ("subject_uid", core.BitString, {"implicit": 8, "optional": True}),
        ("extensions", x509.Extensions, {"implicit": 9, "optional": True}),
    ]


class CertRequest(core.Sequence):
    _fields = [("cert_req_id", core.Integer), ("cert_template", CertTemplate),
               ("controls", Controls, {"optional": True})]


class PKMACValue(core.Sequence):
    _fields = [("alg_id", algos.AlgorithmIdentifier), ("value", core.BitString)]


class POPOSigningKeyInput(core.Sequence):
    _fields = [("auth_info", core.Any), ("public_key", keys.PublicKeyInfo)]


class POPOSigningKey(core.Sequence):
    """RFC 4211 §4.1: without poposkInput the signature is over the DER of the certReq."""
    _fields = [("poposk_input", POPOSigningKeyInput, {"implicit": 0, "optional": True}),
               ("algorithm_identifier", algos.SignedDigestAlgorithm), ("signature", core.OctetBitString)]


class ProofOfPossession(core.Choice):
    _alternatives = [("ra_verified", core.Null, {"implicit": 0}), ("signature", POPOSigningKey, {"implicit": 1}),
                     ("key_encipherment", core.Any, {"explicit": 2}), ("key_agreement", core.Any, {"explicit": 3})]


class CertReqMsg(core.Sequence):
    _fields = [("cert_req", CertRequest), ("popo", ProofOfPossession, {"optional": True}),
               ("reg_info", Controls, {"optional": True})]


class CertReqMessages(core.SequenceOf):
    _child_spec = CertReqMsg


class CertId(core.Sequence):
    """RFC 4211 §6.5 (the oldCertID control of a kur)."""
    _fields = [("issuer", x509.GeneralName), ("serial_number", core.Integer)]


# -------------------------------------------------------------------------------------- CMP (RFC 4210)


class PKIFreeText(core.SequenceOf):
    _child_spec = core.UTF8String


class PKIFailureInfo(core.BitString):
    """RFC 4210 §5.2.3 (the bits 0..26)."""
    _map = {0: "bad_alg", 1: "bad_message_check", 2: "bad_request", 3: "bad_time", 4: "bad_cert_id",
            5: "bad_data_format", 6: "wrong_authority", 7: "incorrect_data", 8: "missing_time_stamp", 9: "bad_pop",
            10: "cert_revoked", 11: "cert_confirmed", 12: "wrong_integrity", 13: "bad_recipient_nonce",
            14: "time_not_available", 15: "unaccepted_policy", 16: "unaccepted_extension",
            17: "add_info_not_available", 18: "bad_sender_nonce", 19: "bad_cert_template", 20: "signer_not_trusted",
            21: "transaction_id_in_use", 22: "unsupported_version", 23: "not_authorized", 24: "system_unavail",
            25: "system_failure", 26: "duplicate_cert_req"}


class PKIStatusInfo(core.Sequence):
    """status: 0 accepted, 1 grantedWithMods, 2 rejection, 3 waiting, 4 revocationWarning,
    5 revocationNotification, 6 keyUpdateWarning."""
    _fields = [("status", core.Integer), ("status_string", PKIFreeText, {"optional": True}),
               ("fail_info", PKIFailureInfo, {"optional": True})]


class AlgorithmIdentifiers(core.SequenceOf):
    _child_spec = algos.AlgorithmIdentifier


class InfoType(core.ObjectIdentifier):
    """RFC 4210 §5.3.19 and RFC 9480 §2.13-§2.17 id-it-* (the ones we read or write)."""
    _map = {"1.3.6.1.5.5.7.4.2": "sign_key_pair_types", "1.3.6.1.5.5.7.4.13": "implicit_confirm",
            "1.3.6.1.5.5.7.4.14": "confirm_wait_time", "1.3.6.1.5.5.7.4.17": "ca_certs",
            "1.3.6.1.5.5.7.4.18": "root_ca_key_update", "1.3.6.1.5.5.7.4.19": "cert_req_template",
            "1.3.6.1.5.5.7.4.20": "root_ca_cert", "1.3.6.1.5.5.7.4.22": "crl_status_list",
            "1.3.6.1.5.5.7.4.23": "crls"}


class InfoTypeAndValue(core.Sequence):
    _fields = [("info_type", InfoType), ("info_value", core.Any, {"optional": True})]
    _oid_pair = ("info_type", "info_value")
    _oid_specs: dict = {}


class InfoTypeAndValues(core.SequenceOf):
    _child_spec = InfoTypeAndValue


class Certificates(core.SequenceOf):
    _child_spec = x509.Certificate


class PKIHeader(core.Sequence):
    _fields = [
        ("pvno", core.Integer),
        ("sender", x509.GeneralName),
        ("recipient", x509.GeneralName),
        ("message_time", core.GeneralizedTime, {"explicit": 0, "optional": True}),
        ("protection_alg", algos.AlgorithmIdentifier, {"explicit": 1, "optional": True}),
        ("sender_kid", core.OctetString, {"explicit": 2, "optional": True}),
        ("recip_kid", core.OctetString, {"explicit": 3, "optional": True}),
        ("transaction_id", core.OctetString, {"explicit": 4, "optional": True}),
        ("sender_nonce", core.OctetString, {"explicit": 5, "optional": True}),
        ("recip_nonce", core.OctetString, {"explicit": 6, "optional": True}),
        ("free_text", PKIFreeText, {"explicit": 7, "optional": True}),
        ("general_info", InfoTypeAndValues, {"explicit": 8, "optional": True}),
    ]


class EncryptedKey(core.Choice):
    """RFC 4211 §4.2 as updated by RFC 9480 §2.7: the EnvelopedData form carries a centrally
    generated private key (or the GM/T 0010 envelope, which we accept as ``Any``)."""
    _alternatives = [("encrypted_value", core.Any), ("enveloped_data", cms.EnvelopedData, {"implicit": 0})]


class CertOrEncCert(core.Choice):
    _alternatives = [("certificate", x509.Certificate, {"explicit": 0}),
                     ("encrypted_cert", core.Any, {"explicit": 1})]


class RawElement(core.Asn1Value):
    """A constructed element kept as its content octets: ``privateKey [0] EXPLICIT EncryptedKey`` holds one
    EncryptedKey TLV, which may be ``[0] EnvelopedData``, an EncryptedValue or a GM/T 0010 / GB/T 35276 form
    (``keypkg``); asn1crypto's Any cannot hold a context-tagged value without a spec."""
    method = 1

    def __init__(self, value: bytes | None = None, **kwargs):
        super().__init__(**kwargs)
        if value is not None:
            self.contents = value

    @property
    def native(self):
        return self.contents


class CertifiedKeyPair(core.Sequence):
    """RFC 4210 §5.3.4: ``privateKey [0] EXPLICIT EncryptedKey`` modelled as the IMPLICIT [0] of the
    EncryptedKey's TLV (the same octets)."""
    _fields = [("cert_or_enc_cert", CertOrEncCert),
               ("private_key", RawElement, {"implicit": 0, "optional": True}),
               ("publication_info", core.Any, {"explicit": 1, "optional": True})]


class CertResponse(core.Sequence):
    _fields = [("cert_req_id", core.Integer), ("status", PKIStatusInfo),
               ("certified_key_pair", CertifiedKeyPair, {"optional": True}),
               ("rsp_info", core.OctetString, {"optional": True})]


class CertResponses(core.SequenceOf):
    _child_spec = CertResponse


class CertRepMessage(core.Sequence):
    _fields = [("ca_pubs", Certificates, {"explicit": 1, "optional": True}), ("response", CertResponses)]


class RevDetails(core.Sequence):
    _fields = [("cert_details", CertTemplate), ("crl_entry_details", x509.Extensions, {"optional": True})]


class RevReqContent(core.SequenceOf):
    _child_spec = RevDetails


class PKIStatusInfos(core.SequenceOf):
    _child_spec = PKIStatusInfo


class CertIds(core.SequenceOf):
    _child_spec = CertId


class CertificateLists(core.SequenceOf):
    _child_spec = crl.CertificateList


class RevRepContent(core.Sequence):
    _fields = [("status", PKIStatusInfos), ("rev_certs", CertIds, {"explicit": 0, "optional": True}),
               ("crls", CertificateLists, {"explicit": 1, "optional": True})]


class CertStatus(core.Sequence):
    _fields = [("cert_hash", core.OctetString), ("cert_req_id", core.Integer),
               ("status_info", PKIStatusInfo, {"optional": True}),
               ("hash_alg", algos.DigestAlgorithm, {"explicit": 0, "optional": True})]


class CertConfirmContent(core.SequenceOf):
    _child_spec = CertStatus


class ErrorMsgContent(core.Sequence):
    _fields = [("pki_status_info", PKIStatusInfo), ("error_code", core.Integer, {"optional": True}),
               ("error_details", PKIFreeText, {"optional": True})]


class PollReq(core.Sequence):
    _fields = [("cert_req_id", core.Integer)]


class PollReqContent(core.SequenceOf):
    _child_spec = PollReq


class PollRep(core.Sequence):
    _fields = [("cert_req_id", core.Integer), ("check_after", core.Integer),
               ("reason", PKIFreeText, {"optional": True})]


class PollRepContent(core.SequenceOf):
    _child_spec = PollRep


BODY_TYPES = {"ir": 0, "ip": 1, "cr": 2, "cp": 3, "p10cr": 4, "kur": 7, "kup": 8, "rr": 11, "rp": 12,
              "pkiconf": 19, "genm": 21, "genp": 22, "error": 23, "cert_conf": 24, "poll_req": 25, "poll_rep": 26}


class PKIBody(core.Choice):
    """RFC 4210 §5.1.2 (every alternative tagged explicitly, [0]..[26])."""
    _alternatives = [
        ("ir", CertReqMessages, {"explicit": 0}), ("ip", CertRepMessage, {"explicit": 1}),
        ("cr", CertReqMessages, {"explicit": 2}), ("cp", CertRepMessage, {"explicit": 3}),
        ("p10cr", csr.CertificationRequest, {"explicit": 4}), ("popdecc", core.Any, {"explicit": 5}),
        ("popdecr", core.Any, {"explicit": 6}), ("kur", CertReqMessages, {"explicit": 7}),
        ("kup", CertRepMessage, {"explicit": 8}), ("krr", core.Any, {"explicit": 9}),
        ("krp", core.Any, {"explicit": 10}), ("rr", RevReqContent, {"explicit": 11}),
        ("rp", RevRepContent, {"explicit": 12}), ("ccr", core.Any, {"explicit": 13}),
        ("ccp", core.Any, {"explicit": 14}), ("ckuann", core.Any, {"explicit": 15}),
        ("cann", core.Any, {"explicit": 16}), ("rann", core.Any, {"explicit": 17}),
        ("crlann", core.Any, {"explicit": 18}), ("pkiconf", core.Null, {"explicit": 19}),
        ("nested", core.Any, {"explicit": 20}), ("genm", InfoTypeAndValues, {"explicit": 21}),
        ("genp", InfoTypeAndValues, {"explicit": 22}), ("error", ErrorMsgContent, {"explicit": 23}),
        ("cert_conf", CertConfirmContent, {"explicit": 24}), ("poll_req", PollReqContent, {"explicit": 25}),
        ("poll_rep", PollRepContent, {"explicit": 26}),
    ]


class PKIMessage(core.Sequence):
    _fields = [("header", PKIHeader), ("body", PKIBody),
               ("protection", core.OctetBitString, {"explicit": 0, "optional": True}),
               ("extra_certs", Certificates, {"explicit": 1, "optional": True})]


class ProtectedPart(core.Sequence):
    _fields = [("header", PKIHeader), ("body", PKIBody)]


class PBMParameter(core.Sequence):
    """RFC 4211 §4.4 PasswordBasedMac parameters (RFC 9481 §6.1.1)."""
    _fields = [("salt", core.OctetString), ("owf", algos.DigestAlgorithm), ("iteration_count", core.Integer),
               ("mac", algos.HmacAlgorithm)]


class PBMAC1Params(core.Sequence):
    """RFC 8018 Appendix A.5 (RFC 9481 §6.1.3)."""
    _fields = [("key_derivation_func", algos.KdfAlgorithm), ("message_auth_scheme", algos.HmacAlgorithm)]


class RootCaKeyUpdateContent(core.Sequence):
    """RFC 9480 §2.14."""
    _fields = [("new_with_new", x509.Certificate), ("new_with_old", x509.Certificate, {"explicit": 0, "optional": True}),
               ("old_with_new", x509.Certificate, {"explicit": 1, "optional": True})]


class CertReqTemplateContent(core.Sequence):
    """RFC 9480 §2.15: a template and controls (key-type hints) for the next request."""
    _fields = [("cert_template", CertTemplate), ("key_spec", core.Any, {"optional": True})]


class CRLSource(core.Choice):
    _alternatives = [("dpn", core.Any, {"explicit": 0}), ("issuer", x509.GeneralNames, {"explicit": 1})]


class CRLStatus(core.Sequence):
    _fields = [("source", CRLSource), ("this_update", x509.Time, {"optional": True})]


class CRLStatusList(core.SequenceOf):
    _child_spec = CRLStatus


InfoTypeAndValue._oid_specs = {
    "implicit_confirm": core.Null, "confirm_wait_time": core.GeneralizedTime, "ca_certs": Certificates,
    "root_ca_key_update": RootCaKeyUpdateContent, "cert_req_template": CertReqTemplateContent,
    "root_ca_cert": x509.Certificate, "crl_status_list": CRLStatusList, "crls": CertificateLists,
    "sign_key_pair_types": AlgorithmIdentifiers,
}
