"""GM/T 0014 CA <-> KMC messages (CARequest / KMRespond): asn1crypto specs, builders and parsers.

Reconstructed structure (REFERENCES §4): a CA sends ``CARequest { KSRequest, signatureAlgorithm,
signatureValue }`` whose KSRequest holds ApplyKeyReq / RestoreKeyReq / RevokeKeyReq items, a
requestTime and a taskNo; the KMC answers ``KMRespond { KSRespond, ... }`` with one Respond per item
(RetKeyRespond, RevokeKeyRespond or ErrorPkgRespond). Both are signed SM2-with-SM3 (default user ID)
over the DER of the inner KSRequest / KSRespond; signatureValue holds the DER (r, s).
"""
from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from asn1crypto import core, keys, x509

from pkicore.envelope import AlgorithmIdentifier, SignedAndEnvelopedData, alg_id
from pkicore.oids import OID
from pkicore.sm2 import sm3

CONTENT_TYPE = "application/octet-stream"   # POST /kmc/v1/request: DER CARequest in, DER KMRespond out


class ErrNo(enum.IntEnum):
    """errNo values of our ErrorPkgRespond (GM/T 0014 leaves the numbering to the KMC)."""

    BAD_REQUEST = 1
    BAD_SIGNATURE = 2
    UNKNOWN_CA = 3
    REPLAY = 4
    STALE = 5
    UNSUPPORTED_ALGORITHM = 6
    NOT_FOUND = 7
    CONFLICT = 8
    INTERNAL = 9


# ---------------------------------------------------------------------- specs

class EntName(core.Sequence):
    _fields = [("hash_algorithm", AlgorithmIdentifier), ("ent_name", x509.GeneralName),
               ("ent_pub_key_hash", core.OctetString), ("serial_number", core.Integer)]


class AppUserInfo(core.Sequence):
    _fields = [("user_cert_no", core.Integer), ("user_pub_key", keys.PublicKeyInfo),
               ("not_before", core.GeneralizedTime), ("not_after", core.GeneralizedTime),
               ("user_name", core.OctetString, {"explicit": 0, "optional": True}),
               ("ds_code", core.OctetString, {"explicit": 1, "optional": True}),
               ("extend_info", core.OctetString, {"explicit": 2, "optional": True})]


class ApplyKeyReq(core.Sequence):
    _fields = [("app_key_type", AlgorithmIdentifier), ("app_key_len", core.Integer),
               ("ret_asym_alg", AlgorithmIdentifier), ("ret_sym_alg", AlgorithmIdentifier),
               ("ret_hash_alg", AlgorithmIdentifier), ("app_user_info", AppUserInfo)]


class RestoreKeyReq(core.Sequence):
    _fields = [("ret_asym_alg", AlgorithmIdentifier), ("ret_sym_alg", AlgorithmIdentifier),
               ("ret_hash_alg", AlgorithmIdentifier), ("user_cert_no", core.Integer),
               ("user_pub_key", keys.PublicKeyInfo)]


class RevokeKeyReq(core.Sequence):
    _fields = [("user_cert_no", core.Integer)]


class Request(core.Choice):
    _alternatives = [("apply_key_req", ApplyKeyReq, {"implicit": 0}),
                     ("restore_key_req", RestoreKeyReq, {"implicit": 1}),
                     ("revoke_key_req", RevokeKeyReq, {"implicit": 2})]


class RequestList(core.SequenceOf):
    _child_spec = Request


class KSRequest(core.Sequence):
    _fields = [("version", core.Integer), ("ca_name", EntName), ("request_list", RequestList),
               ("request_time", core.GeneralizedTime), ("task_no", core.Integer)]


class CARequest(core.Sequence):
    _fields = [("ks_request", KSRequest), ("signature_algorithm", AlgorithmIdentifier),
               ("signature_value", core.OctetString)]


class RetKeyRespond(core.Sequence):
    _fields = [("user_cert_no", core.Integer), ("ret_pub_key", keys.PublicKeyInfo),
               ("ret_pri_key", SignedAndEnvelopedData)]


class RevokeKeyRespond(core.Sequence):
    _fields = [("user_cert_no", core.Integer)]


class ErrorPkgRespond(core.Sequence):
    _fields = [("err_no", core.Integer), ("err_desc", core.UTF8String, {"explicit": 0, "optional": True})]


class Respond(core.Choice):
    _alternatives = [("ret_key_respond", RetKeyRespond, {"implicit": 0}),
                     ("ret_restore_respond", RetKeyRespond, {"implicit": 1}),
                     ("revoke_key_respond", RevokeKeyRespond, {"implicit": 2}),
                     ("error_pkg_respond", ErrorPkgRespond, {"implicit": 3})]


class RespondList(core.SequenceOf):
    _child_spec = Respond


class KSRespond(core.Sequence):
    _fields = [("version", core.Integer), ("km_name", EntName), ("respond_list", RespondList),
               ("respond_time", core.GeneralizedTime), ("task_no", core.Integer)]


class KMRespond(core.Sequence):
    _fields = [("ks_respond", KSRespond), ("signature_algorithm", AlgorithmIdentifier),
               ("signature_value", core.OctetString)]


# ---------------------------------------------------------------------- plain data

@dataclass(frozen=True)
class ApplyKey:
    user_cert_no: int
    user_public_key_info: bytes        # the subscriber's SIGNING public key (envelope recipient)
    not_before: dt.datetime
    not_after: dt.datetime
    user_name: str | None = None


@dataclass(frozen=True)
class RestoreKey:
    user_cert_no: int
    user_public_key_info: bytes        # the subscriber's current signing public key


@dataclass(frozen=True)
class RevokeKey:
    user_cert_no: int


@dataclass(frozen=True)
class RetKey:
    user_cert_no: int
    public_key_info: bytes             # encryption public key
    signed_and_enveloped: bytes        # DER SignedAndEnvelopedData
    restored: bool = False


@dataclass(frozen=True)
class Revoked:
    user_cert_no: int


@dataclass(frozen=True)
class Failure:
    err_no: int
    description: str


def public_key_hash(spki_der: bytes) -> bytes:
    """SM3 of the subjectPublicKey bits (EntName.entPubKeyHash, GM/T 0014)."""
    return sm3(keys.PublicKeyInfo.load(spki_der)["public_key"].contents[1:])


def ent_name(certificate: bytes) -> EntName:
    """EntName of a certificate holder: SM3, its subject, SM3 of its public key bits, its serial."""
    cert = x509.Certificate.load(certificate)
    return EntName({"hash_algorithm": alg_id(OID.SM3, null_params=False),
                    "ent_name": x509.GeneralName(name="directory_name", value=cert.subject),
                    "ent_pub_key_hash": public_key_hash(cert.public_key.dump()),
                    "serial_number": cert.serial_number})


def _time(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.timezone.utc).replace(microsecond=0)


_SM2_KEY = alg_id(OID.SM2_CURVE, null_params=False)
_SM2_ENC = alg_id(OID.SM2_ENCRYPT, null_params=False)
_SM4 = alg_id(OID.SM4_ECB)
_SM3 = alg_id(OID.SM3, null_params=False)
SIGNATURE_ALGORITHM = OID.SM2_WITH_SM3


def encode_request(item) -> Request:
    if isinstance(item, ApplyKey):
        info = {"user_cert_no": item.user_cert_no, "user_pub_key": keys.PublicKeyInfo.load(item.user_public_key_info),
                "not_before": _time(item.not_before), "not_after": _time(item.not_after)}
        if item.user_name:
            info["user_name"] = item.user_name.encode()
        return Request(name="apply_key_req", value={
            "app_key_type": _SM2_KEY, "app_key_len": 256, "ret_asym_alg": _SM2_ENC, "ret_sym_alg": _SM4,
            "ret_hash_alg": _SM3, "app_user_info": info})
    if isinstance(item, RestoreKey):
        return Request(name="restore_key_req", value={
            "ret_asym_alg": _SM2_ENC, "ret_sym_alg": _SM4, "ret_hash_alg": _SM3, "user_cert_no": item.user_cert_no,
            "user_pub_key": keys.PublicKeyInfo.load(item.user_public_key_info)})
    if isinstance(item, RevokeKey):
        return Request(name="revoke_key_req", value={"user_cert_no": item.user_cert_no})
    raise TypeError(f"not a GM/T 0014 request item: {item!r}")


def build_ks_request(ca_certificate: bytes, items, task_no: int, request_time: dt.datetime) -> KSRequest:
    return KSRequest({"version": 1, "ca_name": ent_name(ca_certificate),
                      "request_list": [encode_request(i) for i in items],
                      "request_time": _time(request_time), "task_no": task_no})


def sign_message(outer_cls, inner, sign) -> bytes:
    """Outer { inner, SM2-with-SM3, OCTET STRING DER(r,s) } with ``sign(DER(inner)) -> DER (r, s)``."""
    inner_der = inner.dump()
    return outer_cls({list(outer_cls._fields)[0][0]: inner, "signature_algorithm": alg_id(SIGNATURE_ALGORITHM, False),
                      "signature_value": sign(inner_der)}).dump()


def encode_respond(item) -> Respond:
    if isinstance(item, RetKey):
        return Respond(name="ret_restore_respond" if item.restored else "ret_key_respond", value={
            "user_cert_no": item.user_cert_no, "ret_pub_key": keys.PublicKeyInfo.load(item.public_key_info),
            "ret_pri_key": SignedAndEnvelopedData.load(item.signed_and_enveloped)})
    if isinstance(item, Revoked):
        return Respond(name="revoke_key_respond", value={"user_cert_no": item.user_cert_no})
    if isinstance(item, Failure):
        return Respond(name="error_pkg_respond", value={"err_no": int(item.err_no), "err_desc": item.description})
    raise TypeError(f"not a GM/T 0014 respond item: {item!r}")


def build_ks_respond(kmc_certificate: bytes, items, task_no: int, respond_time: dt.datetime) -> KSRespond:
    return KSRespond({"version": 1, "km_name": ent_name(kmc_certificate),
                      "respond_list": [encode_respond(i) for i in items],
                      "respond_time": _time(respond_time), "task_no": task_no})


def decode_respond(choice: Respond):
    v = choice.chosen
    if choice.name in ("ret_key_respond", "ret_restore_respond"):
        return RetKey(v["user_cert_no"].native, v["ret_pub_key"].dump(), v["ret_pri_key"].dump(),
                      restored=choice.name == "ret_restore_respond")
    if choice.name == "revoke_key_respond":
        return Revoked(v["user_cert_no"].native)
    return Failure(v["err_no"].native, v["err_desc"].native or "")


def load_strict(cls, der: bytes):
    """Strict DER load of a whole message (no trailing data, no BER)."""
    msg = cls.load(der, strict=True)
    msg.native  # noqa: B018 - parse every field now, so malformed content fails here
    if msg.dump(force=True) != der:
        raise ValueError("not DER")
    return msg
