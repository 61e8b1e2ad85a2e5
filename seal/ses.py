"""GB/T 38540-2020 electronic seal structures (SESeal v4, TBS_Sign, SES_Signature) and the GM/T 0031-2014
v1 forms (read and verify only): ASN.1 specs over asn1crypto, building, signing and verification.

Facts checked against outside documents (REFERENCES §5): the seal maker signs DER(SES_SealInfo) alone;
the document signer signs DER(TBS_Sign); signatures are SM2 with the default user ID, stored as the DER
SEQUENCE {r, s} in the BIT STRING (64-byte raw r || s is accepted on input).
"""
from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Callable

from asn1crypto import core, tsp, x509

import pkicore  # noqa: F401 - registers sm3 / sm2_sm3 / the SM2 curve with asn1crypto
from pkicore.algorithms import Algorithm, algorithm
from pkicore.cms import tlv, verify_signed_data
from pkicore.keys import verify_signature
from pkicore.signatures import raw_to_der
from pkicore.names import display_name
from pkicore.sm2 import sm3
from pkicore.validation import Finding, SubIndication, failed, indeterminate

SEAL_VERSION = 4
HEADER_ID = "ES"

# SES_ESPropertyInfo.type (GB/T 38540 §7.1.2 leaves values to the vendor; these follow common practice)
SEAL_TYPES = {"official": 1, "contract": 2, "finance": 3, "personal": 4, "invoice": 5, "legal_person": 6,
              "business": 7}
SEAL_TYPE_NAMES = {v: k for k, v in SEAL_TYPES.items()}
PICTURE_TYPES = ("PNG", "GIF", "JPG", "BMP", "OFD", "SVG")


# ------------------------------------------------------------------ ASN.1 (GB/T 38540 §7, Annex A)

class SESHeader(core.Sequence):
    _fields = [("id", core.IA5String), ("version", core.Integer), ("vid", core.IA5String)]


class CertDigestObj(core.Sequence):
    _fields = [("type", core.PrintableString), ("value", core.OctetString)]


class CertDigestList(core.SequenceOf):
    _child_spec = CertDigestObj


class CertList(core.SequenceOf):
    _child_spec = core.OctetString


class ExtData(core.Sequence):
    _fields = [("extn_id", core.ObjectIdentifier), ("critical", core.Boolean, {"default": False}),
               ("extn_value", core.OctetString)]


class ExtensionDatas(core.SequenceOf):
    _child_spec = ExtData


class SESESPropertyInfo(core.Sequence):
    # certList is an untagged CHOICE of two SEQUENCE OFs: told apart by certListType, so read as Any
    _fields = [("type", core.Integer), ("name", core.UTF8String), ("cert_list_type", core.Integer),
               ("cert_list", core.Any), ("create_date", core.GeneralizedTime),
               ("valid_start", core.GeneralizedTime), ("valid_end", core.GeneralizedTime)]


class SESESPictureInfo(core.Sequence):
    _fields = [("type", core.IA5String), ("data", core.OctetString), ("width", core.Integer),
               ("height", core.Integer)]


class SESSealInfo(core.Sequence):
    _fields = [("header", SESHeader), ("es_id", core.IA5String), ("property", SESESPropertyInfo),
               ("picture", SESESPictureInfo), ("ext_datas", ExtensionDatas, {"optional": True})]


class SESeal(core.Sequence):
    _fields = [("e_seal_info", SESSealInfo), ("cert", core.OctetString),
               ("sign_alg_id", core.ObjectIdentifier), ("signed_value", core.OctetBitString)]


class TBSSign(core.Sequence):
    _fields = [("version", core.Integer), ("eseal", SESeal), ("time_info", core.GeneralizedTime),
               ("data_hash", core.OctetBitString), ("property_info", core.IA5String),
               ("ext_datas", ExtensionDatas, {"explicit": 0, "optional": True})]


class SESSignature(core.Sequence):
    _fields = [("to_sign", TBSSign), ("cert", core.OctetString), ("signature_alg_id", core.ObjectIdentifier),
               ("signature", core.OctetBitString),
               ("time_stamp", core.OctetBitString, {"explicit": 0, "optional": True})]


# GM/T 0031-2014 (v1), read only
class SESESPropertyInfoV1(core.Sequence):
    _fields = [("type", core.Integer), ("name", core.UTF8String), ("cert_list", CertList),
               ("create_date", core.UTCTime), ("valid_start", core.UTCTime), ("valid_end", core.UTCTime)]


class SESSealInfoV1(core.Sequence):
    _fields = [("header", SESHeader), ("es_id", core.IA5String), ("property", SESESPropertyInfoV1),
               ("picture", SESESPictureInfo), ("ext_datas", ExtensionDatas, {"optional": True})]


class SESSignInfoV1(core.Sequence):
    _fields = [("cert", core.OctetString), ("signature_algorithm", core.ObjectIdentifier),
               ("sign_data", core.OctetBitString)]


class SESealV1(core.Sequence):
    _fields = [("e_seal_info", SESSealInfoV1), ("sign_info", SESSignInfoV1)]


class TBSSignV1(core.Sequence):
    _fields = [("version", core.Integer), ("eseal", SESealV1), ("time_info", core.Any),
               ("data_hash", core.OctetBitString), ("property_info", core.IA5String),
               ("cert", core.OctetString), ("signature_algorithm", core.ObjectIdentifier)]


class SESSignatureV1(core.Sequence):
    _fields = [("to_sign", TBSSignV1), ("signature", core.OctetBitString)]


# ------------------------------------------------------------------ parsed views

_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)


@dataclass(frozen=True)
class SealView:
    """The facts of a parsed seal (v4 or v1) and the exact bytes each signature covers."""

    version: int
    vid: str
    es_id: str
    seal_type: int
    name: str
    cert_list_type: int               # 1 certificates, 2 certificate digests
    certs: tuple[bytes, ...]          # certList certificates (certListType 1)
    cert_digests: tuple[tuple[str, bytes], ...]  # (type, value) (certListType 2)
    create_date: dt.datetime
    valid_start: dt.datetime
    valid_end: dt.datetime
    picture_type: str
    picture: bytes
    width_mm: int
    height_mm: int
    maker_cert: bytes
    sign_alg_oid: str
    signed_bytes: bytes               # v4: DER(SES_SealInfo) as received; v1: DER(SEQUENCE{info, cert, alg})
    signature: bytes
    der: bytes


def _sig_bytes(value: core.OctetBitString) -> bytes:
    raw = value.native
    if len(raw) == 64:              # some products store raw r || s
        return raw_to_der(raw)
    return raw


def parse_seal(der: bytes) -> SealView:
    """Parse a SESeal (v4, GB/T 38540) or a v1 seal (GM/T 0031); ValueError when it is neither."""
    try:
        outer = core.Sequence.load(der, strict=True)
        info = core.Sequence.load(outer[0].dump())
        version = SESHeader.load(info[0].dump())["version"].native
        if version == 4:
            seal = SESeal.load(der, strict=True)
            si = seal["e_seal_info"]
            prop = si["property"]
            clt = prop["cert_list_type"].native
            certs: tuple[bytes, ...] = ()
            digests: tuple[tuple[str, bytes], ...] = ()
            if clt == 1:
                certs = tuple(c.native for c in CertList.load(prop["cert_list"].dump(), strict=True))
            elif clt == 2:
                digests = tuple((d["type"].native, d["value"].native)
                                for d in CertDigestList.load(prop["cert_list"].dump(), strict=True))
            else:
                raise ValueError(f"certListType {clt} is neither 1 (certificates) nor 2 (digests)")
            maker, alg_oid, sig = seal["cert"].native, seal["sign_alg_id"].dotted, seal["signed_value"]
        elif version in (1, 2, 3):
            seal = SESealV1.load(der, strict=True)
            si = seal["e_seal_info"]
            prop = si["property"]
            clt, certs, digests = 1, tuple(c.native for c in prop["cert_list"]), ()
            info_ = seal["sign_info"]
            maker, alg_oid, sig = info_["cert"].native, info_["signature_algorithm"].dotted, info_["sign_data"]
            # GM/T 0031 v1 (as ofdrw makes it): the maker signs DER(SEQUENCE {sealInfo, cert, signatureAlgorithm})
            body = si.dump() + info_["cert"].dump() + info_["signature_algorithm"].dump()
            signed = tlv(0x30, body)
        else:
            raise ValueError(f"unknown seal version {version}")
        if version == 4:
            signed = si.dump()
        pic = si["picture"]
        header = si["header"]
        return SealView(
            version=version, vid=header["vid"].native, es_id=si["es_id"].native, seal_type=prop["type"].native,
            name=prop["name"].native, cert_list_type=clt, certs=certs, cert_digests=digests,
            create_date=prop["create_date"].native, valid_start=prop["valid_start"].native,
            valid_end=prop["valid_end"].native, picture_type=pic["type"].native, picture=pic["data"].native,
            width_mm=pic["width"].native, height_mm=pic["height"].native, maker_cert=maker,
            sign_alg_oid=alg_oid, signed_bytes=signed, signature=_sig_bytes(sig), der=der)
    except _PARSE_ERRORS as exc:
        raise ValueError(f"not a GB/T 38540 or GM/T 0031 seal: {exc}") from exc


@dataclass(frozen=True)
class SignatureView:
    version: int
    seal: SealView
    seal_der: bytes
    time_info: dt.datetime
    data_hash: bytes
    property_info: str
    signer_cert: bytes
    sign_alg_oid: str
    signed_bytes: bytes           # DER(TBS_Sign) as received
    signature: bytes
    time_stamp: bytes | None


def _v1_time(value: core.Any) -> dt.datetime:
    raw = value.dump()
    tag = raw[0]
    if tag == 0x17:
        return core.UTCTime.load(raw).native
    if tag == 0x18:
        return core.GeneralizedTime.load(raw).native
    if tag == 0x03:    # some v1 producers put the time text in a BIT STRING
        inner = core.OctetBitString.load(raw).native
        if inner[:1] in (b"\x17", b"\x18"):   # ofdrw: a BIT STRING wrapping DER UTCTime
            return _v1_time(core.Any.load(inner))
        text = inner.decode("ascii").strip()
        for fmt in ("%Y%m%d%H%M%SZ", "%y%m%d%H%M%SZ", "%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S"):
            try:
                return dt.datetime.strptime(text, fmt).replace(tzinfo=dt.timezone.utc)
            except ValueError:
                continue
    raise ValueError("unreadable v1 timeInfo")


def parse_signature(der: bytes) -> SignatureView:
    """Parse an SES_Signature (v4, or v1 read-only); ValueError when it is neither."""
    try:
        outer = core.Sequence.load(der, strict=True)
        tbs = core.Sequence.load(outer[0].dump())
        version = tbs[0].native
        if version == 4:
            sig = SESSignature.load(der, strict=True)
            to_sign = sig["to_sign"]
            seal_der = to_sign["eseal"].dump()
            ts = sig["time_stamp"]
            return SignatureView(
                version=4, seal=parse_seal(seal_der), seal_der=seal_der, time_info=to_sign["time_info"].native,
                data_hash=to_sign["data_hash"].native, property_info=to_sign["property_info"].native,
                signer_cert=sig["cert"].native, sign_alg_oid=sig["signature_alg_id"].dotted,
                signed_bytes=to_sign.dump(), signature=_sig_bytes(sig["signature"]),
                time_stamp=None if isinstance(ts, core.Void) or ts.native is None else ts.native)
        sig = SESSignatureV1.load(der, strict=True)
        to_sign = sig["to_sign"]
        seal_der = to_sign["eseal"].dump()
        return SignatureView(
            version=version, seal=parse_seal(seal_der), seal_der=seal_der, time_info=_v1_time(to_sign["time_info"]),
            data_hash=to_sign["data_hash"].native, property_info=to_sign["property_info"].native,
            signer_cert=to_sign["cert"].native, sign_alg_oid=to_sign["signature_algorithm"].dotted,
            signed_bytes=to_sign.dump(), signature=_sig_bytes(sig["signature"]), time_stamp=None)
    except _PARSE_ERRORS as exc:
        raise ValueError(f"not an SES_Signature: {exc}") from exc


# ------------------------------------------------------------------ verification (frozen results)
# Structure, cryptography and binding only: whether the seal is trusted, valid at the signing time and
# not revoked is decided by seal.validation under a trust policy.

@dataclass(frozen=True)
class SealCheck:
    """A seal's structure and its maker's signature over DER(SES_SealInfo) (GB/T 38540 §8.2 a–c):
    findings (empty: intact) and what the seal says."""

    findings: tuple[Finding, ...] = ()
    warnings: tuple[str, ...] = ()
    view: SealView | None = None
    intact: bool | None = None        # the maker's signature verified
    maker_subject: str | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(f.message for f in self.findings)

    def as_dict(self) -> dict:
        v = self.view
        return {"ok": self.ok, "signature_intact": self.intact, "reasons": list(self.reasons),
                "warnings": list(self.warnings), "version": v.version if v else None, "es_id": v.es_id if v else None,
                "name": v.name if v else None, "seal_type": v.seal_type if v else None, "vid": v.vid if v else None,
                "valid_start": _iso(v.valid_start) if v else None, "valid_end": _iso(v.valid_end) if v else None,
                "maker": self.maker_subject, "picture_type": v.picture_type if v else None}


@dataclass(frozen=True)
class SignatureCheck:
    """An SES_Signature's structure, the document signature over DER(TBS_Sign), the seal inside, the
    signer certificate's binding to the seal, dataHash and propertyInfo (GB/T 38540 §8.3 a–f)."""

    findings: tuple[Finding, ...] = ()
    warnings: tuple[str, ...] = ()
    view: SignatureView | None = None
    intact: bool | None = None        # both the document and the seal maker's signatures verified
    seal: SealCheck | None = None
    signer_subject: str | None = None

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(f.message for f in self.findings)

    @property
    def sign_time(self) -> dt.datetime | None:
        return self.view.time_info if self.view else None

    @property
    def property_info(self) -> str | None:
        return self.view.property_info if self.view else None

    def as_dict(self) -> dict:
        v = self.view
        return {"ok": self.ok, "signature_intact": self.intact, "reasons": list(self.reasons),
                "warnings": list(self.warnings), "version": v.version if v else None,
                "seal": self.seal.as_dict() if self.seal else None, "signer": self.signer_subject,
                "sign_time": _iso(v.time_info) if v else None, "property_info": v.property_info if v else None,
                "data_hash": v.data_hash.hex() if v else None, "timestamp": v is not None and v.time_stamp is not None}


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _check_signature(cert_der: bytes, alg_oid: str, data: bytes, signature: bytes, who: str,
                     findings: list[Finding]) -> tuple[x509.Certificate | None, bool]:
    """(certificate, signature verified)."""
    try:
        cert = x509.Certificate.load(cert_der, strict=True)
        spki = cert.public_key.dump()
    except _PARSE_ERRORS as exc:
        findings.append(failed(SubIndication.FORMAT_FAILURE, f"{who} certificate unreadable: {exc}"))
        return None, False
    try:
        alg = algorithm(alg_oid)
    except KeyError:
        findings.append(indeterminate(SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
                                      f"{who} signature algorithm {alg_oid} not supported"))
        return cert, False
    try:
        ok = verify_signature(spki, alg, data, signature)
    except (ValueError, TypeError) as exc:
        findings.append(failed(SubIndication.SIG_CRYPTO_FAILURE, f"{who} signature unverifiable: {exc}"))
        return cert, False
    if not ok:
        findings.append(failed(SubIndication.SIG_CRYPTO_FAILURE, f"{who} signature invalid"))
    return cert, ok


def verify_seal(der: bytes) -> SealCheck:
    """A seal's structure, header and the seal maker's signature over DER(SES_SealInfo)."""
    try:
        view = parse_seal(der)
    except ValueError as exc:
        return SealCheck((failed(SubIndication.FORMAT_FAILURE, str(exc)),))
    return _verify_seal_view(view)


def _verify_seal_view(view: SealView) -> SealCheck:
    findings: list[Finding] = []
    warnings: list[str] = []
    cert, ok = _check_signature(view.maker_cert, view.sign_alg_oid, view.signed_bytes, view.signature,
                                "seal maker", findings)
    if view.version != 4:
        warnings.append(f"GM/T 0031 v{view.version} seal (read-only support)")
    if view.valid_end < view.valid_start:
        findings.append(failed(SubIndication.FORMAT_FAILURE, "seal validity period ends before it starts"))
    if view.cert_list_type == 1 and not view.certs:
        findings.append(failed(SubIndication.FORMAT_FAILURE, "seal binds no signing certificate"))
    return SealCheck(tuple(findings), tuple(warnings), view, ok,
                     display_name(cert.subject) if cert is not None else None)


def _cert_bound(view: SealView, signer_cert: bytes) -> bool:
    if view.cert_list_type == 1:
        return signer_cert in view.certs
    for kind, value in view.cert_digests:
        name = {"SM3": "sm3", "SHA1": "sha1", "SHA256": "sha256", "SHA-256": "sha256"}.get(kind.upper().strip())
        if name == "sm3" and sm3(signer_cert) == value:
            return True
        if name and name != "sm3" and hashlib.new(name, signer_cert).digest() == value:
            return True
    return False


def verify_ses_signature(der: bytes, *, signed_data: bytes | None = None,
                         property_info: str | None = None) -> SignatureCheck:
    """An SES_Signature's structure, the document signature over DER(TBS_Sign), the seal inside (maker
    signature), the signer certificate bound to the seal, dataHash = SM3(``signed_data``) and
    ``property_info`` when given. Time, trust and revocation: seal.validation."""
    try:
        view = parse_signature(der)
    except ValueError as exc:
        return SignatureCheck((failed(SubIndication.FORMAT_FAILURE, str(exc)),))
    findings: list[Finding] = []
    seal = _verify_seal_view(view.seal)
    findings += [Finding(f.indication, f.sub_indication, f"seal: {f.message}") for f in seal.findings]
    warnings = [f"seal: {w}" for w in seal.warnings]
    cert, ok = _check_signature(view.signer_cert, view.sign_alg_oid, view.signed_bytes, view.signature,
                                "document", findings)
    if not _cert_bound(view.seal, view.signer_cert):
        findings.append(failed(SubIndication.SIG_CONSTRAINTS_FAILURE,
                               "signer certificate is not bound to the seal (not in its certList)"))
    if signed_data is not None and sm3(signed_data) != view.data_hash:
        findings.append(failed(SubIndication.HASH_FAILURE, "dataHash does not match the signed data (document altered)"))
    if property_info is not None and view.property_info != property_info:
        findings.append(failed(SubIndication.FORMAT_FAILURE,
                               f"propertyInfo {view.property_info!r} does not name {property_info!r}"))
    return SignatureCheck(tuple(findings), tuple(warnings), view, bool(ok and seal.intact), seal,
                          display_name(cert.subject) if cert is not None else None)


def open_timestamp(token: bytes, stamped: bytes):
    """(genTime, None, signed) when ``token`` is an intact RFC 3161 token over ``stamped``, else (genTime?,
    reason, signed); ``signed`` is the token's verified SignedData (signer certificate and certificates),
    so that the caller validates the TSA's path without verifying the token a second time. The TSA's
    trust: seal.validation.check_timestamp."""
    result = verify_signed_data(token)
    gen_time, why = _timestamp_imprint(result, stamped)
    return gen_time, why, result


def _timestamp_imprint(result, stamped: bytes) -> tuple[dt.datetime | None, str | None]:
    try:
        info = tsp.TSTInfo.load(result.content) if result.content else None
    except _PARSE_ERRORS:
        info = None
    if info is None:
        return None, "not an RFC 3161 token" + (f" ({'; '.join(result.reasons)})" if result.reasons else "")
    try:
        gen_time = info["gen_time"].native
        imprint = info["message_imprint"]
        digest_name = imprint["hash_algorithm"]["algorithm"].native
        hashed = imprint["hashed_message"].native
    except _PARSE_ERRORS as exc:
        return None, f"unreadable TSTInfo: {exc}"
    try:
        expect = sm3(stamped) if digest_name == "sm3" else hashlib.new(digest_name, stamped).digest()
    except (ValueError, TypeError):
        return gen_time, f"unsupported imprint digest {digest_name}"
    if not result.ok:
        return gen_time, "; ".join(result.reasons)
    if hashed != expect:
        return gen_time, "message imprint does not match the signature value"
    return gen_time, None


# ------------------------------------------------------------------ building (v4 only)

SignFunction = Callable[[bytes], bytes]


def build_seal_info(*, vid: str, es_id: str, seal_type: int, name: str, certs: list[bytes],
                    create_date: dt.datetime, valid_start: dt.datetime, valid_end: dt.datetime,
                    picture_type: str, picture: bytes, width_mm: int, height_mm: int) -> SESSealInfo:
    """SES_SealInfo v4 with certListType 1 (the unit's signing certificates themselves)."""
    if picture_type not in PICTURE_TYPES:
        raise ValueError(f"picture type {picture_type!r} not one of {PICTURE_TYPES}")
    if not certs:
        raise ValueError("a seal binds at least one signing certificate")
    return SESSealInfo({
        "header": {"id": HEADER_ID, "version": SEAL_VERSION, "vid": vid},
        "es_id": es_id,
        "property": {"type": seal_type, "name": name, "cert_list_type": 1,
                     "cert_list": core.Any.load(CertList(certs).dump()),
                     "create_date": _gt(create_date), "valid_start": _gt(valid_start), "valid_end": _gt(valid_end)},
        "picture": {"type": picture_type, "data": picture, "width": width_mm, "height": height_mm},
    })


def _gt(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.timezone.utc).replace(microsecond=0)


def make_seal(seal_info: SESSealInfo, maker_cert: bytes, sign: SignFunction, alg: Algorithm) -> bytes:
    """SESeal v4 DER: the maker signs DER(SES_SealInfo) with ``sign`` (an HSM call)."""
    info_der = seal_info.dump(force=True)
    signature = sign(info_der)
    return SESeal({"e_seal_info": SESSealInfo.load(info_der), "cert": maker_cert, "sign_alg_id": alg.oid,
                   "signed_value": signature}).dump()


def build_tbs_sign(seal_der: bytes, *, time_info: dt.datetime, data_hash: bytes, property_info: str) -> bytes:
    """DER(TBS_Sign) v4 around an existing seal (its bytes kept as they are)."""
    tbs = TBSSign({"version": SEAL_VERSION, "eseal": SESeal.load(seal_der), "time_info": _gt(time_info),
                   "data_hash": data_hash, "property_info": property_info})
    return tbs.dump()


def sign_document(seal_der: bytes, *, data: bytes, property_info: str, signer_cert: bytes, sign: SignFunction,
                  alg: Algorithm, time_info: dt.datetime | None = None,
                  timestamp: Callable[[bytes], bytes] | None = None) -> bytes:
    """SES_Signature v4 DER: dataHash = SM3(``data``); the signer signs DER(TBS_Sign); ``timestamp``
    (optional) returns an RFC 3161 token over the signature value."""
    tbs_der = build_tbs_sign(seal_der, time_info=time_info or dt.datetime.now(dt.timezone.utc),
                             data_hash=sm3(data), property_info=property_info)
    signature = sign(tbs_der)
    value = {"to_sign": TBSSign.load(tbs_der), "cert": signer_cert, "signature_alg_id": alg.oid,
             "signature": signature}
    if timestamp is not None:
        value["time_stamp"] = timestamp(signature)
    return SESSignature(value).dump()


def cert_subject(cert_der: bytes) -> str:
    return display_name(x509.Certificate.load(cert_der).subject)


__all__ = ["SESeal", "SESSealInfo", "TBSSign", "SESSignature", "SESealV1", "SESSignatureV1", "SealView",
           "SignatureView", "SealCheck", "SignatureCheck", "parse_seal", "parse_signature", "verify_seal",
           "verify_ses_signature", "open_timestamp", "build_seal_info", "make_seal", "build_tbs_sign",
           "sign_document", "SEAL_TYPES", "SEAL_TYPE_NAMES", "PICTURE_TYPES", "cert_subject"]
