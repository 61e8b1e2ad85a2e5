"""CMS SignedData (RFC 5652 §5) with signed attributes and ESS signing-certificate-v2 (RFC 5035), for
SM2/SM3 (GM/T 0010 algorithms in the RFC 5652 structure, as Bouncy Castle and GmSSL emit) and ECDSA/RSA.

The signer is a callable ``sign(data) -> signature`` (DER r,s for SM2/ECDSA, the PKCS#1 block for
RSA) plus its certificate and algorithm row, so keys stay wherever the caller keeps them (the HSM).
``SignedDataTemplate`` precomputes every constant DER piece once per signer, so each signature costs
one digest, one signing call and some byte concatenation (used on the timestamp hot path).
``verify_signed_data`` returns a frozen ``CmsVerification`` with one verdict and the reasons.
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
from dataclasses import dataclass, field
from typing import Callable, Sequence

from asn1crypto import cms, core, tsp, x509  # noqa: F401 - tsp registers the ESS attribute specs

from pkicore import asn1 as _asn1  # noqa: F401 - registers sm3 / sm2_sm3 with asn1crypto
from pkicore.algorithms import ALGORITHMS, Algorithm
from pkicore.keys import verify_signature
from pkicore.oids import OID

ID_DATA = "1.2.840.113549.1.7.1"
ID_SIGNED_DATA = "1.2.840.113549.1.7.2"
ID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
ID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
ID_SIGNING_TIME = "1.2.840.113549.1.9.5"
ID_SIGNING_CERTIFICATE = "1.2.840.113549.1.9.16.2.12"
ID_SIGNING_CERTIFICATE_V2 = "1.2.840.113549.1.9.16.2.47"
ID_SIGNATURE_TIME_STAMP_TOKEN = "1.2.840.113549.1.9.16.2.14"   # RFC 3161 Appendix A, id-aa-signatureTimeStampToken
# GM/T 0010-2012 §7 content types: the same structures as RFC 5652 under Chinese OIDs (REFERENCES §1)
GM_DATA = "1.2.156.10197.6.1.4.2.1"
GM_SIGNED_DATA = "1.2.156.10197.6.1.4.2.2"
_DATA_TYPES = {ID_DATA, GM_DATA}

DIGEST_OIDS = {"sm3": OID.SM3, "sha256": OID.SHA256, "sha384": OID.SHA384, "sha512": OID.SHA512,
               "sha1": "1.3.14.3.2.26"}
DIGEST_BY_OID = {v: k for k, v in DIGEST_OIDS.items()}

# SignerInfo.signatureAlgorithm values other signers put there: the bare key algorithm (RFC 5652
# allows rsaEncryption / id-ecPublicKey; GM/T 0010 signers use sm2-1 or the curve OID).
_KEY_ONLY_SIG_OIDS = {OID.RSA: "rsa", OID.EC_PUBLIC_KEY: "ec", OID.SM2_SIGN: "sm2", OID.SM2_CURVE: "sm2"}


# ------------------------------------------------------------------ DER by hand (the hot path)

def der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, body: bytes) -> bytes:
    """One DER TLV with a single-byte tag."""
    return bytes((tag,)) + der_length(len(body)) + body


def read_tlv(buf: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER TLV at ``pos``: one-byte tags, minimal definite
    lengths up to 3 bytes; IndexError for anything else."""
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise IndexError("multi-byte tag")
    first = buf[pos + 1]
    if first < 0x80:
        start, length = pos + 2, first
    else:
        n = first & 0x7F
        if n == 0 or n > 3 or buf[pos + 2] == 0:
            raise IndexError("indefinite or non-minimal length")
        length = int.from_bytes(buf[pos + 2:pos + 2 + n], "big")
        if length < 0x80:
            raise IndexError("non-minimal length")
        start = pos + 2 + n
    end = start + length
    if end > len(buf):
        raise IndexError("truncated")
    return tag, start, end


def der_integer(value: int) -> bytes:
    if value < 0:
        raise ValueError("only non-negative integers are encoded here")
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return tlv(0x02, body)


@functools.lru_cache(maxsize=256)
def der_oid(dotted: str) -> bytes:
    return core.ObjectIdentifier(dotted).dump()


def der_set_of(items: Sequence[bytes]) -> bytes:
    """DER SET OF: elements sorted as octet strings (X.690 §11.6)."""
    if len(items) == 1:
        return tlv(0x31, items[0])
    longest = max((len(i) for i in items), default=0)
    return tlv(0x31, b"".join(sorted(items, key=lambda i: i.ljust(longest, b"\x00"))))


def algorithm_identifier(oid: str, null_params: bool = False) -> bytes:
    return tlv(0x30, der_oid(oid) + (b"\x05\x00" if null_params else b""))


def signature_algorithm_identifier(alg: Algorithm) -> bytes:
    """SignerInfo.signatureAlgorithm: SM2 -> sm2-with-sm3 (1.2.156.10197.1.501, no parameters, as BC
    1.72 and GmSSL write it); ECDSA -> ecdsa-with-SHAx (no parameters, RFC 5758); RSA -> shaXWithRSA
    with NULL (RFC 4055)."""
    if alg.asn1_name == "rsassa_pss":
        raise ValueError("RSASSA-PSS SignerInfos are not supported")
    return algorithm_identifier(alg.oid, alg.params_null)


def _attribute(oid: str, value: bytes) -> bytes:
    return tlv(0x30, der_oid(oid) + tlv(0x31, value))


def generalized_time(when: dt.datetime, fraction_digits: int = 0) -> bytes:
    """DER GeneralizedTime in UTC, fraction with trailing zeros removed (X.690 §11.7)."""
    if when.tzinfo is not dt.timezone.utc:
        when = when.astimezone(dt.timezone.utc)
    # by hand: strftime costs several microseconds on the timestamp hot path
    text = f"{when.year:04d}{when.month:02d}{when.day:02d}{when.hour:02d}{when.minute:02d}{when.second:02d}"
    if fraction_digits:
        frac = f"{when.microsecond:06d}"[:fraction_digits].rstrip("0")
        if frac:
            text += "." + frac
    return tlv(0x18, (text + "Z").encode("ascii"))


def signing_time_value(when: dt.datetime) -> bytes:
    """RFC 5652 §11.3: UTCTime for 1950-2049, GeneralizedTime otherwise."""
    when = when.astimezone(dt.timezone.utc)
    if 1950 <= when.year < 2050:
        return tlv(0x17, when.strftime("%y%m%d%H%M%SZ").encode("ascii"))
    return generalized_time(when)


def ess_cert_id_v2(cert_der: bytes, digest: str = "sha256") -> bytes:
    """ESSCertIDv2 (RFC 5035 §3): hash of the whole certificate plus issuerSerial; the hash algorithm
    is omitted when it is the DEFAULT sha256."""
    cert = x509.Certificate.load(cert_der)
    issuer_serial = tlv(0x30, tlv(0x30, tlv(0xA4, cert.issuer.dump())) + der_integer(cert.serial_number))
    alg = b"" if digest == "sha256" else algorithm_identifier(DIGEST_OIDS[digest])
    return tlv(0x30, alg + tlv(0x04, hashlib.new(digest, cert_der).digest()) + issuer_serial)


def default_ess_digest(digest: str) -> str:
    """The hash of the ESSCertIDv2 in our signing-certificate-v2 attributes (RFC 5035 §3 lets the signer
    choose): SM3 when the signature digests with SM3 (the SM2 family keeps to SM algorithms; Bouncy Castle,
    pyHanko and our verifier accept it: seal.pades's docstring has the evidence), else SHA-256, the DEFAULT
    and so omitted."""
    return "sm3" if digest == "sm3" else "sha256"



def signing_certificate_v2_attribute(cert_der: bytes, digest: str = "sha256") -> bytes:
    return _attribute(ID_SIGNING_CERTIFICATE_V2, tlv(0x30, tlv(0x30, ess_cert_id_v2(cert_der, digest))))


def issuer_and_serial(cert_der: bytes) -> bytes:
    cert = x509.Certificate.load(cert_der)
    return tlv(0x30, cert.issuer.dump() + der_integer(cert.serial_number))


# ------------------------------------------------------------------ building

_V1, _V3 = der_integer(1), der_integer(3)        # CMSVersion values of a SignedData

SignFunction = Callable[[bytes], bytes]


@dataclass(frozen=True)
class CmsSigner:
    """Who signs: the signing callable (keys stay in the HSM), the certificate and the algorithm row."""

    sign: SignFunction
    certificate: bytes
    algorithm: Algorithm
    chain: tuple[bytes, ...] = ()      # further certificates to carry (issuing CAs)


def signature_timestamp_attribute(token: bytes) -> bytes:
    """The unsigned attribute id-aa-signatureTimeStampToken (RFC 3161 Appendix A) holding ``token`` (a
    TimeStampToken ContentInfo DER over the SignerInfo's signature value)."""
    return _attribute(ID_SIGNATURE_TIME_STAMP_TOKEN, token)


class SignedDataTemplate:
    """Every constant DER piece of a SignedData (RFC 5652 §5) for one signer, computed once: the one
    SignedData/SignerInfo builder of the code base (TSA tokens, trust-service signatures and evidence,
    PAdES seals).

    ``build(content, content_type)`` costs one digest, one signature and concatenation. Where the
    signature is made by someone else (pyHanko's interrupted PDF signing: the digest is the document's
    /ByteRange digest and the HSM call is pyHanko's), a template made by ``external`` gives the bytes to
    sign (``signed_attributes(digest)``) and the ContentInfo (``content_info(signed_attributes, signature)``).
    """

    signer: CmsSigner | None

    def __init__(self, signer: CmsSigner, *, ess_digest: str | None = None, include_chain: bool = True):
        alg = signer.algorithm
        self.signer = signer
        self._prepare(signer.certificate, alg.digest, algorithm_identifier(DIGEST_OIDS[alg.digest]),
                      signature_algorithm_identifier(alg),
                      tlv(0xA0, b"".join([signer.certificate, *(signer.chain if include_chain else ())])),
                      ess_digest)

    @classmethod
    def external(cls, certificate: bytes, digest: str, signature_algorithm: bytes, *,
                 digest_algorithm: bytes | None = None, certificate_set: Sequence[bytes] = (),
                 ess_digest: str | None = None) -> "SignedDataTemplate":
        """A template without a signing callable (``build`` refuses): the AlgorithmIdentifier DERs as the
        signer writes them (``digest_algorithm`` defaults to ours, parameters absent), and the
        certificates to carry as a DER SET OF (X.690 §11.6: sorted) rather than in the given order."""
        self = cls.__new__(cls)
        self.signer = None
        self._prepare(certificate, digest, digest_algorithm or algorithm_identifier(DIGEST_OIDS[digest]),
                      signature_algorithm, b"\xa0" + der_set_of(list(certificate_set) or [certificate])[1:],
                      ess_digest)
        return self

    def _prepare(self, certificate: bytes, digest: str, digest_algorithm: bytes, signature_algorithm: bytes,
                 certificates: bytes, ess_digest: str | None) -> None:
        self.certificate = certificate
        self.digest_name = digest
        self._digest_alg = digest_algorithm
        self._digest_algs_set = tlv(0x31, digest_algorithm)
        self._sig_alg = signature_algorithm
        self._sid = issuer_and_serial(certificate)
        self._certs_only_signer = tlv(0xA0, certificate)
        self._certs_all = certificates
        self._ess_attr = signing_certificate_v2_attribute(certificate, ess_digest or default_ess_digest(digest))
        self._content_type_attrs: dict[str, bytes] = {}
        self._signer_info_version = _V1
        self._digest_proto = hashlib.new(digest)   # copy() skips the by-name lookup per token
        self.digest_size = self._digest_proto.digest_size

    def _content_type_attr(self, content_type: str) -> bytes:
        attr = self._content_type_attrs.get(content_type)
        if attr is None:
            attr = _attribute(ID_CONTENT_TYPE, der_oid(content_type))
            self._content_type_attrs[content_type] = attr
        return attr

    def _digest(self, content: bytes) -> bytes:
        h = self._digest_proto.copy()
        h.update(content)
        return h.digest()

    def signed_attributes(self, message_digest: bytes, content_type: str = ID_DATA, *,
                          signing_time: dt.datetime | None = None, extra_attributes: Sequence[bytes] = ()) -> bytes:
        """DER SET OF the signed attributes (RFC 5652 §5.3, §5.4: what the signature covers): content-type,
        message-digest (``message_digest``, the content's digest), signing-certificate-v2 (RFC 5035),
        ``extra_attributes`` and signing-time when given."""
        if len(message_digest) != self.digest_size:
            raise ValueError(f"a {self.digest_name} digest has {self.digest_size} bytes, not {len(message_digest)}")
        return self._signed_attributes(message_digest, content_type, signing_time, extra_attributes)

    def _signed_attributes(self, message_digest: bytes, content_type: str, signing_time: dt.datetime | None,
                           extra_attributes: Sequence[bytes]) -> bytes:
        attrs = [self._content_type_attr(content_type), _attribute(ID_MESSAGE_DIGEST, tlv(0x04, message_digest)),
                 self._ess_attr, *extra_attributes]
        if signing_time is not None:
            attrs.append(_attribute(ID_SIGNING_TIME, signing_time_value(signing_time)))
        return der_set_of(attrs)

    def content_info(self, signed_attributes: bytes, signature: bytes, content_type: str = ID_DATA, *,
                     content: bytes | None = None, unsigned_attributes: Sequence[bytes] = (),
                     include_certificates: bool = True, chain: bool = True,
                     outer_type: str = ID_SIGNED_DATA) -> bytes:
        """ContentInfo DER of the SignedData (RFC 5652 §5.1) with one SignerInfo (§5.3) over
        ``signed_attributes`` (``signed_attributes()``) and ``signature``; ``content`` None: detached.
        ``unsigned_attributes``: Attribute DERs for unsignedAttrs (e.g. ``signature_timestamp_attribute``)."""
        return self._content_info(signed_attributes, signature, content_type, content, list(unsigned_attributes),
                                  include_certificates, chain, outer_type)

    def _content_info(self, signed_attributes: bytes, signature: bytes, content_type: str, content: bytes | None,
                      unsigned_attributes: Sequence[bytes], include_certificates: bool, chain: bool,
                      outer_type: str) -> bytes:
        unsigned = b"\xa1" + der_set_of(unsigned_attributes)[1:] if unsigned_attributes else b""
        signer_info = tlv(0x30, self._signer_info_version + self._sid + self._digest_alg
                          + b"\xa0" + signed_attributes[1:] + self._sig_alg + tlv(0x04, signature) + unsigned)
        econtent = der_oid(content_type)
        if content is not None:
            econtent += tlv(0xA0, tlv(0x04, content))
        version = _V1 if content_type in _DATA_TYPES else _V3   # RFC 5652 §5.1 (GM/T 0010 data: 1 too)
        certs = b""
        if include_certificates:
            certs = self._certs_all if chain else self._certs_only_signer
        signed_data = tlv(0x30, version + self._digest_algs_set + tlv(0x30, econtent) + certs
                          + tlv(0x31, signer_info))
        return tlv(0x30, der_oid(outer_type) + tlv(0xA0, signed_data))

    def build(self, content: bytes, content_type: str = ID_DATA, *, detached: bool = False,
              signing_time: dt.datetime | None = None, include_certificates: bool = True,
              chain: bool = True, extra_attributes: Sequence[bytes] = (),
              unsigned_attributes: Callable[[bytes], Sequence[bytes]] | None = None,
              outer_type: str = ID_SIGNED_DATA) -> bytes:
        """ContentInfo DER of a SignedData over ``content`` (RFC 5652 §5.1, §5.3, §5.4), signed by the
        signer's callable: ``signed_attributes`` then ``content_info`` (positionally, for the TSA's hot path).

        ``unsigned_attributes(signature)`` gives the SignerInfo's unsignedAttrs (RFC 5652 §5.3), e.g. an
        RFC 3161 signatureTimeStampToken over the signature value; ``outer_type`` GM_SIGNED_DATA with
        ``content_type`` GM_DATA gives the GM/T 0010 §7 form."""
        if self.signer is None:
            raise TypeError("this template has no signing callable: use signed_attributes() and content_info()")
        signed_attrs = self._signed_attributes(self._digest(content), content_type, signing_time, extra_attributes)
        signature = self.signer.sign(signed_attrs)
        unsigned = list(unsigned_attributes(signature)) if unsigned_attributes is not None else ()
        return self._content_info(signed_attrs, signature, content_type, None if detached else content, unsigned,
                                  include_certificates, chain, outer_type)


def sign_data(content: bytes, signer: CmsSigner, *, content_type: str = ID_DATA, detached: bool = False,
              signing_time: dt.datetime | None = None, include_certificates: bool = True) -> bytes:
    """One-off SignedData (ContentInfo DER); keep a SignedDataTemplate for repeated signing."""
    return SignedDataTemplate(signer).build(content, content_type, detached=detached,
                                            signing_time=signing_time,
                                            include_certificates=include_certificates)


# ------------------------------------------------------------------ verifying

@dataclass(frozen=True)
class CmsVerification:
    """One verdict for a SignedData with one SignerInfo checked (the first, or the only one)."""

    ok: bool
    reasons: tuple[str, ...] = ()
    content_type: str | None = None
    content: bytes | None = None
    signer_certificate: bytes | None = None
    certificates: tuple[bytes, ...] = ()
    algorithm: str | None = None            # our algorithm name (pkicore.algorithms)
    signing_time: dt.datetime | None = None
    digest_algorithm: str | None = None
    attributes: dict = field(default_factory=dict)   # OID -> DER of the attribute values SET
    signer_count: int = 0                   # SignerInfos in the SignedData
    signature: bytes | None = None          # the checked SignerInfo's signature value
    unsigned_attributes: dict = field(default_factory=dict)   # OID -> DER of the values SET (unsignedAttrs)
    detached: bool | None = None            # no encapsulated content (None: not read that far)


def _explicit_inner(der: bytes) -> bytes:
    """The content octets of one [n] EXPLICIT TLV (ValueError when it is not one)."""
    try:
        tag, start, end = read_tlv(der, 0)
    except IndexError as exc:
        raise ValueError(f"bad explicit tag: {exc}") from exc
    if tag & 0xE0 != 0xA0 or end != len(der):
        raise ValueError("not one [n] EXPLICIT value")
    return der[start:end]


def _find_signer_cert(sid: cms.SignerIdentifier, certs: list[x509.Certificate]) -> x509.Certificate | None:
    if sid.name == "issuer_and_serial_number":
        issuer, serial = sid.chosen["issuer"], sid.chosen["serial_number"].native
        issuer_der = issuer.dump()
        for c in certs:      # the same DER first: RFC 4518 name comparison costs milliseconds
            if c.serial_number == serial and (c.issuer.dump() == issuer_der or c.issuer == issuer):
                return c
    else:
        ski = sid.chosen.native
        for c in certs:
            if c.key_identifier == ski:
                return c
    return None


def resolve_algorithm(sig_oid: str, digest: str) -> Algorithm | None:
    """The algorithm row for a SignerInfo: a full signature OID, or a bare key OID plus the digest."""
    kind = _KEY_ONLY_SIG_OIDS.get(sig_oid)
    for row in ALGORITHMS.values():
        if kind is None and row.oid == sig_oid and row.digest == digest:
            return row
        if kind is not None and row.key_type == kind and row.digest == digest and row.asn1_name != "rsassa_pss":
            return row
    return None


def _attr_values(oid: str, values_der: bytes):
    """The parsed values SET of one attribute, given its OID and the DER of the SET."""
    return cms.CMSAttribute.load(tlv(0x30, der_oid(oid) + values_der))["values"]


def check_ess_certificate(attr_values_der: bytes, oid: str, cert_der: bytes) -> str | None:
    """None if the first ESSCertID(v2) names ``cert_der``, else the reason."""
    try:
        first = _attr_values(oid, attr_values_der)[0]
        cert_id = first["certs"][0]
        if oid == ID_SIGNING_CERTIFICATE_V2:
            digest = cert_id["hash_algorithm"]["algorithm"].native
        else:
            digest = "sha1"
        want = cert_id["cert_hash"].native
        if hashlib.new(digest, cert_der).digest() != want:
            return "ESS signing-certificate hash does not match the signer certificate"
        issuer_serial = cert_id["issuer_serial"]
        if not isinstance(issuer_serial, core.Void):     # (.native would decode every GeneralName)
            cert = x509.Certificate.load(cert_der)
            if issuer_serial["serial_number"].native != cert.serial_number:
                return "ESS signing-certificate issuerSerial does not match the signer certificate"
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        return f"malformed ESS signing-certificate attribute: {exc}"
    return None


# ------------------------------------------------------------------ verifying, DER by hand
# Measured hot (trust verification over HTTP spent ~1 ms of ~2.3 ms per request in asn1crypto's
# lazy parsing of the SignedData, the signer certificate and the ESS attribute): the ordinary shape —
# strict DER, certificates as plain Certificates, an issuerAndSerialNumber sid whose issuer is byte-equal to
# the first certificate of that serial, id-ecPublicKey (named curve) or RSA keys — is read by hand here.
# Anything else returns None and ``verify_signed_data`` reads it with asn1crypto, so both give one verdict
# (tests/unit/test_cms_fast.py holds them equal over signed, foreign and tampered inputs).

class _Odd(Exception):
    """The input is not of the ordinary shape the hand reader takes: asn1crypto reads it instead."""


def _tlv(buf: bytes, pos: int, tag: int, limit: int) -> tuple[int, int]:
    """(content start, end) of the TLV at ``pos`` with ``tag``, ending within ``limit``; _Odd otherwise."""
    try:
        got, start, end = read_tlv(buf, pos)
    except IndexError:
        raise _Odd from None
    if got != tag or end > limit:
        raise _Odd
    return start, end


def _children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, TLV start, content start, end) of each element from ``start`` to exactly ``end``."""
    out, pos = [], start
    while pos < end:
        try:
            tag, cstart, cend = read_tlv(buf, pos)
        except IndexError:
            raise _Odd from None
        if cend > end:
            raise _Odd
        out.append((tag, pos, cstart, cend))
        pos = cend
    return out


@functools.lru_cache(maxsize=512)
def _dotted(oid_content: bytes) -> str:
    if not oid_content or oid_content[-1] & 0x80:
        raise _Odd
    return core.ObjectIdentifier.load(tlv(0x06, oid_content), strict=True).dotted


@dataclass(frozen=True)
class _Cert:
    der: bytes
    serial: int
    issuer: bytes           # the issuer Name's DER
    spki: bytes             # SubjectPublicKeyInfo DER
    key_kind: str           # sm2 | ec | rsa


@functools.lru_cache(maxsize=256)
def _read_certificate(der: bytes) -> _Cert:
    """The fields of a Certificate the SignerInfo check needs (RFC 5280 §4.1), read by hand."""
    start, end = _tlv(der, 0, 0x30, len(der))
    if end != len(der):
        raise _Odd
    tbs_start, tbs_end = _tlv(der, start, 0x30, end)
    fields = _children(der, tbs_start, tbs_end)
    if fields and fields[0][0] == 0xA0:
        fields = fields[1:]
    if len(fields) < 6 or [f[0] for f in fields[:6]] != [0x02, 0x30, 0x30, 0x30, 0x30, 0x30]:
        raise _Odd
    serial_tag, _, s0, s1 = fields[0]
    serial = int.from_bytes(der[s0:s1], "big", signed=True)
    issuer = der[fields[2][1]:fields[2][3]]
    spki = der[fields[5][1]:fields[5][3]]
    alg_start, alg_end = _tlv(spki, 2 if spki[1] < 0x80 else 2 + (spki[1] & 0x7F), 0x30, len(spki))
    alg = _children(spki, alg_start, alg_end)
    if not alg or alg[0][0] != 0x06:
        raise _Odd
    alg_oid = _dotted(spki[alg[0][2]:alg[0][3]])
    if alg_oid == OID.EC_PUBLIC_KEY:
        if len(alg) != 2 or alg[1][0] != 0x06:
            raise _Odd                                    # named curves only
        kind = "sm2" if _dotted(spki[alg[1][2]:alg[1][3]]) == OID.SM2_CURVE else "ec"
    elif alg_oid == OID.RSA:
        kind = "rsa"
    else:
        raise _Odd
    return _Cert(der, serial, issuer, spki, kind)


_DIGESTS: dict[str, object] = {}


def _hash(name: str, data: bytes) -> bytes:
    """``hashlib.new(name, data).digest()`` from a copy of a hash object made once per name (the by-name
    lookup costs as much as hashing a certificate)."""
    proto = _DIGESTS.get(name)
    if proto is None:
        proto = _DIGESTS[name] = hashlib.new(name)
    h = proto.copy()
    h.update(data)
    return h.digest()


def _first_value(values_der: bytes, tag: int) -> bytes:
    """The content of the first value of an attribute's values SET, which must carry ``tag``."""
    start, end = _tlv(values_der, 0, 0x31, len(values_der))
    if end != len(values_der) or start == end:
        raise _Odd
    vstart, vend = _tlv(values_der, start, tag, end)
    return values_der[vstart:vend]


def _ess_reason(values_der: bytes, oid: str, cert: _Cert) -> str | None:
    """``check_ess_certificate`` by hand: None if the first ESSCertID(v2) names the certificate."""
    body = _first_value(values_der, 0x30)                       # SigningCertificate(V2)
    certs = _children(body, 0, len(body))
    if not certs or certs[0][0] != 0x30:
        raise _Odd
    ids = _children(body, certs[0][2], certs[0][3])
    if not ids or ids[0][0] != 0x30:
        raise _Odd
    parts = _children(body, ids[0][2], ids[0][3])
    digest = "sha1"
    if oid == ID_SIGNING_CERTIFICATE_V2:
        digest = "sha256"
        if parts and parts[0][0] == 0x30:                        # hashAlgorithm present
            alg = _children(body, parts[0][2], parts[0][3])
            if not alg or alg[0][0] != 0x06:
                raise _Odd
            digest = DIGEST_BY_OID.get(_dotted(body[alg[0][2]:alg[0][3]]))
            if digest is None:
                raise _Odd
            parts = parts[1:]
    if not parts or parts[0][0] != 0x04 or len(parts) > 2:
        raise _Odd
    if _hash(digest, cert.der) != body[parts[0][2]:parts[0][3]]:
        return "ESS signing-certificate hash does not match the signer certificate"
    if len(parts) == 2:                                          # issuerSerial
        if parts[1][0] != 0x30:
            raise _Odd
        issuer_serial = _children(body, parts[1][2], parts[1][3])
        if len(issuer_serial) != 2 or issuer_serial[0][0] != 0x30 or issuer_serial[1][0] != 0x02:
            raise _Odd
        serial = int.from_bytes(body[issuer_serial[1][2]:issuer_serial[1][3]], "big", signed=True)
        if serial != cert.serial:
            return "ESS signing-certificate issuerSerial does not match the signer certificate"
    return None


_SIGNED_DATA_TYPES = {ID_SIGNED_DATA, GM_SIGNED_DATA}


def _verify_signed_data_by_hand(data: bytes, content: bytes | None, extra_certificates: Sequence[bytes],
                                require_ess: bool, signer_index: int) -> CmsVerification | None:
    """``verify_signed_data`` for the ordinary shape (see above), or None for asn1crypto to read."""
    start, end = _tlv(data, 0, 0x30, len(data))
    if end != len(data):
        raise _Odd
    outer = _children(data, start, end)
    if len(outer) != 2 or outer[0][0] != 0x06 or outer[1][0] != 0xA0:
        raise _Odd
    if _dotted(data[outer[0][2]:outer[0][3]]) not in _SIGNED_DATA_TYPES:
        raise _Odd
    sd_start, sd_end = _tlv(data, outer[1][2], 0x30, outer[1][3])
    if sd_end != outer[1][3]:
        raise _Odd
    parts = _children(data, sd_start, sd_end)
    if len(parts) < 4 or parts[0][0] != 0x02 or parts[1][0] != 0x31 or parts[2][0] != 0x30 or parts[-1][0] != 0x31:
        raise _Odd
    middle = [p[0] for p in parts[3:-1]]
    if middle not in ([], [0xA0], [0xA1], [0xA0, 0xA1]):
        raise _Odd
    encap = _children(data, parts[2][2], parts[2][3])
    if not encap or encap[0][0] != 0x06 or len(encap) > 2:
        raise _Odd
    content_type = _dotted(data[encap[0][2]:encap[0][3]])
    embedded = None
    if len(encap) == 2:
        if encap[1][0] != 0xA0:
            raise _Odd
        o_start, o_end = _tlv(data, encap[1][2], 0x04, encap[1][3])     # a primitive OCTET STRING
        if o_end != encap[1][3]:
            raise _Odd
        embedded = data[o_start:o_end]
    certs: list[_Cert] = []
    if middle[:1] == [0xA0]:
        for tag, t0, _, t1 in _children(data, parts[3][2], parts[3][3]):
            if tag != 0x30:
                raise _Odd                                       # other CertificateChoices
            certs.append(_read_certificate(data[t0:t1]))
    certs += [_read_certificate(bytes(c)) for c in extra_certificates]
    signer_infos = _children(data, parts[-1][2], parts[-1][3])
    signer_count = len(signer_infos)
    if not 0 <= signer_index < signer_count:
        raise _Odd
    tag, _, si_start, si_end = signer_infos[signer_index]
    if tag != 0x30:
        raise _Odd
    fields = _children(data, si_start, si_end)
    tags = [f[0] for f in fields]
    if tags[:3] != [0x02, 0x30, 0x30]:
        raise _Odd
    pos = 3
    signed_attrs = None
    if pos < len(tags) and tags[pos] == 0xA0:
        signed_attrs = fields[pos]
        pos += 1
    if tags[pos:pos + 2] != [0x30, 0x04] or tags[pos + 2:] not in ([], [0xA1]):
        raise _Odd
    sid = _children(data, fields[1][2], fields[1][3])
    if len(sid) != 2 or sid[0][0] != 0x30 or sid[1][0] != 0x02:
        raise _Odd                                               # subjectKeyIdentifier sids: asn1crypto
    sid_issuer = data[sid[0][1]:sid[0][3]]
    sid_serial = int.from_bytes(data[sid[1][2]:sid[1][3]], "big", signed=True)
    cert = next((c for c in certs if c.serial == sid_serial), None)
    if cert is None or cert.issuer != sid_issuer:
        raise _Odd            # none, or a name equal only by RFC 4518 comparison: asn1crypto decides
    digest_alg = _children(data, fields[2][2], fields[2][3])
    sig_alg = _children(data, fields[pos][2], fields[pos][3])
    if not digest_alg or digest_alg[0][0] != 0x06 or not sig_alg or sig_alg[0][0] != 0x06:
        raise _Odd
    digest = DIGEST_BY_OID.get(_dotted(data[digest_alg[0][2]:digest_alg[0][3]]))
    sig_oid = _dotted(data[sig_alg[0][2]:sig_alg[0][3]])
    signature = data[fields[pos + 1][2]:fields[pos + 1][3]]
    reasons: list[str] = []
    attrs: dict[str, bytes] = {}
    to_sign = None
    if signed_attrs is not None:
        for tag, _, a0, a1 in _children(data, signed_attrs[2], signed_attrs[3]):
            attr = _children(data, a0, a1)
            if tag != 0x30 or len(attr) != 2 or attr[0][0] != 0x06 or attr[1][0] != 0x31:
                raise _Odd
            oid = _dotted(data[attr[0][2]:attr[0][3]])
            if oid in attrs:
                reasons.append(f"signed attribute {oid} appears twice")
            attrs[oid] = data[attr[1][1]:attr[1][3]]
        to_sign = b"\x31" + data[signed_attrs[1] + 1:signed_attrs[3]]
    unsigned: dict[str, bytes] = {}
    if tags[-1] == 0xA1:
        for tag, _, a0, a1 in _children(data, fields[-1][2], fields[-1][3]):
            attr = _children(data, a0, a1)
            if tag != 0x30 or len(attr) != 2 or attr[0][0] != 0x06 or attr[1][0] != 0x31:
                raise _Odd
            unsigned.setdefault(_dotted(data[attr[0][2]:attr[0][3]]), data[attr[1][1]:attr[1][3]])

    if content is not None and embedded is not None and content != embedded:
        reasons.append("detached content given differs from the embedded content")
    payload = embedded if embedded is not None else content
    alg = resolve_algorithm(sig_oid, digest) if digest is not None else None
    if payload is None or alg is None or alg.key_type != cert.key_kind:
        raise _Odd                                               # the refusals are asn1crypto's to word
    signing_time = None
    md = _hash(digest, payload)
    if to_sign is None:
        if content_type not in _DATA_TYPES:
            reasons.append("signed attributes are required for content types other than data")
        to_verify = payload
    else:
        to_verify = to_sign
        ct_attr = attrs.get(ID_CONTENT_TYPE)
        if ct_attr is None:
            reasons.append("contentType attribute missing")
        elif _dotted(_first_value(ct_attr, 0x06)) != content_type:
            reasons.append("contentType attribute differs from the encapsulated content type")
        md_attr = attrs.get(ID_MESSAGE_DIGEST)
        if md_attr is None:
            reasons.append("messageDigest attribute missing")
        elif _first_value(md_attr, 0x04) != md:
            reasons.append("messageDigest does not match the content")
        st_attr = attrs.get(ID_SIGNING_TIME)
        if st_attr is not None:
            signing_time = _attr_values(ID_SIGNING_TIME, st_attr)[0].native
        for ess_oid in (ID_SIGNING_CERTIFICATE_V2, ID_SIGNING_CERTIFICATE):
            if ess_oid in attrs:
                why = _ess_reason(attrs[ess_oid], ess_oid, cert)
                if why:
                    reasons.append(why)
                break
        else:
            if require_ess:
                reasons.append("no ESS signing-certificate attribute")
    if not verify_signature(cert.spki, alg, to_verify, signature):
        reasons.append("signature invalid")
    return CmsVerification(not reasons, tuple(reasons), content_type=content_type, content=payload,
                           signer_certificate=cert.der, certificates=tuple(c.der for c in certs),
                           algorithm=alg.name, signing_time=signing_time, digest_algorithm=digest,
                           attributes=attrs, signer_count=signer_count, signature=signature,
                           unsigned_attributes=unsigned, detached=embedded is None)


def verify_signed_data(data: bytes, *, content: bytes | None = None,
                       extra_certificates: Sequence[bytes] = (), require_ess: bool = False,
                       signer_index: int = 0) -> CmsVerification:
    """Check a SignedData's SignerInfo number ``signer_index`` (default the first): signer certificate found, contentType and messageDigest
    attributes, signature (SM2 with the default ID), ESS signing-certificate(-v2) when present.

    The certificate's trust (chain, revocation, key usage) is the caller's business. The ordinary shape is
    read by hand (``_verify_signed_data_by_hand``), anything else with asn1crypto: one verdict either way."""
    try:
        return _verify_signed_data_by_hand(bytes(data), content, extra_certificates, require_ess, signer_index)
    except (_Odd, ValueError, TypeError, KeyError, IndexError, OverflowError):
        return verify_signed_data_asn1(data, content=content, extra_certificates=extra_certificates,
                                       require_ess=require_ess, signer_index=signer_index)


def verify_signed_data_asn1(data: bytes, *, content: bytes | None = None,
                            extra_certificates: Sequence[bytes] = (), require_ess: bool = False,
                            signer_index: int = 0) -> CmsVerification:
    """``verify_signed_data`` read wholly with asn1crypto (every shape; the reference for the hand reader)."""
    reasons: list[str] = []
    try:
        info = cms.ContentInfo.load(data, strict=True)
        if info["content_type"].dotted == GM_SIGNED_DATA:       # GM/T 0010 form: same SignedData inside
            # (asn1crypto keeps the unknown type's content as Any *with* its [0] EXPLICIT tag: unwrap it)
            info = cms.ContentInfo({"content_type": "signed_data",
                                    "content": cms.SignedData.load(_explicit_inner(info["content"].dump()))})
        if info["content_type"].dotted != ID_SIGNED_DATA:
            return CmsVerification(False, ("not a SignedData",))
        sd = info["content"]
        encap = sd["encap_content_info"]
        content_type = encap["content_type"].dotted
        econtent = encap["content"]
        if isinstance(econtent, core.Void) or econtent.contents is None:
            embedded = None
        elif isinstance(econtent, core.Any):     # a content type asn1crypto does not know (GM/T 0010 data)
            embedded = core.OctetString.load(_explicit_inner(econtent.dump()), strict=True).native
        else:
            embedded = bytes(econtent)
        certs = [c.chosen for c in sd["certificates"] if c.name == "certificate"] \
            if not isinstance(sd["certificates"], core.Void) else []
        certs += [x509.Certificate.load(c) for c in extra_certificates]
        signer_infos = sd["signer_infos"]
        if len(signer_infos) == 0:
            return CmsVerification(False, ("no SignerInfo",), content_type=content_type)
        signer_count = len(signer_infos)
        if not 0 <= signer_index < signer_count:
            return CmsVerification(False, (f"no SignerInfo number {signer_index}",), content_type=content_type,
                                   signer_count=signer_count)
        si = signer_infos[signer_index]
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        return CmsVerification(False, (f"malformed SignedData: {exc}",))

    if content is not None and embedded is not None and content != embedded:
        reasons.append("detached content given differs from the embedded content")
    payload = embedded if embedded is not None else content
    cert_ders = tuple(c.dump() for c in certs)
    if payload is None:
        return CmsVerification(False, ("detached signature: the content is needed",), content_type=content_type,
                               certificates=cert_ders, signer_count=signer_count)
    try:
        cert = _find_signer_cert(si["sid"], certs)
        digest_oid = si["digest_algorithm"]["algorithm"].dotted
        digest = DIGEST_BY_OID.get(digest_oid)
        sig_oid = si["signature_algorithm"]["algorithm"].dotted
        signature = si["signature"].native
        signed_attrs = si["signed_attrs"]
        attrs: dict[str, bytes] = {}
        if not isinstance(signed_attrs, core.Void):
            for attr in signed_attrs:
                oid = attr["type"].dotted
                if oid in attrs:
                    reasons.append(f"signed attribute {oid} appears twice")
                attrs[oid] = attr["values"].dump()
            to_sign = b"\x31" + signed_attrs.dump()[1:]
        else:
            to_sign = None
        unsigned: dict[str, bytes] = {}
        if not isinstance(si["unsigned_attrs"], core.Void):     # (.native would parse a whole timestamp token)
            for attr in si["unsigned_attrs"]:
                unsigned.setdefault(attr["type"].dotted, attr["values"].dump())
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        return CmsVerification(False, (f"malformed SignerInfo: {exc}",), content_type=content_type,
                               signer_count=signer_count)
    more = dict(signer_count=signer_count, signature=signature, unsigned_attributes=unsigned,
                detached=embedded is None)

    if cert is None:
        return CmsVerification(False, ("signer certificate not found",), content_type=content_type,
                               content=payload, certificates=cert_ders, **more)
    cert_der = cert.dump()
    if digest is None:
        return CmsVerification(False, (f"unsupported digest algorithm {digest_oid}",), content_type=content_type,
                               content=payload, signer_certificate=cert_der, certificates=cert_ders, **more)
    key_alg = cert.public_key.algorithm
    key_kind = "sm2" if (key_alg == "ec" and cert.public_key["algorithm"]["parameters"].chosen.dotted
                         == OID.SM2_CURVE) else key_alg
    alg = resolve_algorithm(sig_oid, digest)
    if alg is None or alg.key_type != key_kind:
        return CmsVerification(False, (f"unsupported signature algorithm {sig_oid} with {digest}",),
                               content_type=content_type, content=payload, signer_certificate=cert_der,
                               certificates=cert_ders, **more)
    signing_time = None
    md = hashlib.new(digest, payload).digest()
    if to_sign is None:
        if content_type not in _DATA_TYPES:
            reasons.append("signed attributes are required for content types other than data")
        to_verify = payload
    else:
        to_verify = to_sign
        try:
            ct_attr = attrs.get(ID_CONTENT_TYPE)
            if ct_attr is None:
                reasons.append("contentType attribute missing")
            elif _attr_values(ID_CONTENT_TYPE, ct_attr)[0].dotted != content_type:
                reasons.append("contentType attribute differs from the encapsulated content type")
            md_attr = attrs.get(ID_MESSAGE_DIGEST)
            if md_attr is None:
                reasons.append("messageDigest attribute missing")
            elif _attr_values(ID_MESSAGE_DIGEST, md_attr)[0].native != md:
                reasons.append("messageDigest does not match the content")
            st_attr = attrs.get(ID_SIGNING_TIME)
            if st_attr is not None:
                signing_time = _attr_values(ID_SIGNING_TIME, st_attr)[0].native
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            reasons.append(f"malformed signed attribute: {exc}")
        for ess_oid in (ID_SIGNING_CERTIFICATE_V2, ID_SIGNING_CERTIFICATE):
            if ess_oid in attrs:
                why = check_ess_certificate(attrs[ess_oid], ess_oid, cert_der)
                if why:
                    reasons.append(why)
                break
        else:
            if require_ess:
                reasons.append("no ESS signing-certificate attribute")
    if not verify_signature(cert.public_key.dump(), alg, to_verify, signature):
        reasons.append("signature invalid")
    return CmsVerification(not reasons, tuple(reasons), content_type=content_type, content=payload,
                           signer_certificate=cert_der, certificates=cert_ders, algorithm=alg.name,
                           signing_time=signing_time, digest_algorithm=digest, attributes=attrs, **more)


def digest_algorithm_der(name: str) -> bytes:
    """AlgorithmIdentifier DER of a digest (parameters absent)."""
    return algorithm_identifier(DIGEST_OIDS[name])


__all__ = ["CmsSigner", "CmsVerification", "SignedDataTemplate", "sign_data", "verify_signed_data",
           "signature_timestamp_attribute", "default_ess_digest", "ID_SIGNATURE_TIME_STAMP_TOKEN",
           "ess_cert_id_v2", "der_integer", "der_length", "der_oid", "der_set_of", "tlv", "generalized_time",
           "algorithm_identifier", "signature_algorithm_identifier", "digest_algorithm_der",
           "ID_DATA", "ID_SIGNED_DATA", "DIGEST_OIDS", "DIGEST_BY_OID"]
