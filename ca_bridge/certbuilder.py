"""X.509 v3 certificates (RFC 5280 §4.1) in the GM/T 0015 profile, signed in the HSM.

cryptography cannot sign with SM2, so the TBSCertificate is assembled here from DER pieces that
asn1crypto encodes, and signed by the key manager (keys never leave the HSM):

* signature AlgorithmIdentifier: sm2-with-sm3 (1.2.156.10197.1.501) and ecdsa-with-SHAx with ABSENT
  parameters, shaXWithRSAEncryption with NULL (RFC 4055); taken from ``pkicore.algorithms``.
* serial: 127-bit positive random integer from ``secrets`` (126 random bits, top bit fixed so every
  serial is 16 octets; RFC 5280 §4.1.2.2, CA/B BR §7.1 ask >= 64 random bits).
* subjectKeyIdentifier: RFC 5280 §4.2.1.2 method 1, SHA-1 of the subjectPublicKey BIT STRING value
  (what OpenSSL, BC and most CAs compute, so identifiers match across tools).
  authorityKeyIdentifier: keyIdentifier only, copied from the issuer certificate's SKI.
* subject DN: UTF8String for every attribute except countryName/serialNumber (PrintableString) and
  emailAddress/domainComponent (IA5String), RDNs in the order given.
* GM/T 0015-2023 identity extensions (1.2.156.10260.4.1.1.1 resident ID number, ...): non-critical,
  extnValue = PrintableString of the number when it fits PrintableString (ID numbers and unified social
  credit codes always do), UTF8String otherwise. The value type is our reading (unconfirmed in the
  public text of the standard); parsers should accept any DirectoryString.

* basicConstraints only in CA certificates (critical, cA TRUE); keyUsage by the subject key's family
  (``Profile.key_usage_for``); notAfter - notBefore at most 3,653 days unless the profile allows more
  (GmSSL 3 ``x509_cert_check``; docs/REFERENCES.md §10).

``CertificateTemplate`` precomputes every DER piece that is constant for one (issuer, profile, URLs)
combination, so issuing costs the per-certificate pieces, one concatenation and one HSM signature.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import secrets
from dataclasses import dataclass
from typing import Callable, Sequence

from asn1crypto import x509

from ca_bridge.errors import BadEncoding, IssuanceError, UnsupportedKey
from ca_bridge.profiles import GMSSL_MAX_VALIDITY_DAYS, Profile
from pkicore.algorithms import Algorithm
from pkicore.cms import algorithm_identifier, der_integer, der_oid, tlv
from pkicore.keys import KeyProblem, inspect_key

log = logging.getLogger(__name__)

ID_PKIX_OCSP_NOCHECK = "1.3.6.1.5.5.7.48.1.5"
_OID_BY_NAME = {"subject_key_identifier": "2.5.29.14", "key_usage": "2.5.29.15", "subject_alt_name": "2.5.29.17",
                "basic_constraints": "2.5.29.19", "crl_distribution_points": "2.5.29.31",
                "authority_key_identifier": "2.5.29.35", "extended_key_usage": "2.5.29.37",
                "authority_information_access": "1.3.6.1.5.5.7.1.1"}
_VERSION_V3 = b"\xa0\x03\x02\x01\x02"
_PRINTABLE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")
SignFunction = Callable[[bytes], bytes]


# ------------------------------------------------------------------ small DER helpers

def extension(oid: str, value_der: bytes, critical: bool = False) -> bytes:
    """Extension ::= SEQUENCE { extnID, critical BOOLEAN DEFAULT FALSE, extnValue OCTET STRING }."""
    return tlv(0x30, der_oid(_OID_BY_NAME.get(oid, oid)) + (b"\x01\x01\xff" if critical else b"")
               + tlv(0x04, value_der))


def der_time(when: dt.datetime) -> bytes:
    """RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050, whole seconds, Z."""
    when = when.astimezone(dt.timezone.utc)
    if when.year < 2050:
        return tlv(0x17, when.strftime("%y%m%d%H%M%SZ").encode("ascii"))
    return tlv(0x18, when.strftime("%Y%m%d%H%M%SZ").encode("ascii"))


def random_serial() -> int:
    """A positive 127-bit serial: 126 bits from ``secrets`` and bit 126 set (always 16 octets in DER)."""
    return secrets.randbits(126) | (1 << 126)


def signature_algorithm(alg: Algorithm) -> bytes:
    """AlgorithmIdentifier DER: parameters absent for SM2/ECDSA (GM/T 0015, RFC 5758), NULL for RSA."""
    if alg.asn1_name == "rsassa_pss":
        raise UnsupportedKey("RSASSA-PSS CA keys are not supported")
    return algorithm_identifier(alg.oid, alg.params_null)


# ------------------------------------------------------------------ subject public keys and names

@dataclass(frozen=True)
class SubjectKey:
    algorithm: str          # profile key algorithm name: sm2, ec-p256, rsa-2048, ...
    spki: bytes             # SubjectPublicKeyInfo DER (as received; checked to be DER)
    key_id: bytes           # SHA-1 of the subjectPublicKey bits (RFC 5280 §4.2.1.2 method 1)


def inspect_public_key(spki_der: bytes) -> SubjectKey:
    """Parse and check a SubjectPublicKeyInfo (``pkicore.keys.inspect_key``); name its algorithm the way
    profiles do."""
    try:
        key = inspect_key(spki_der)
    except KeyProblem as exc:
        raise (BadEncoding if exc.kind == "encoding" else UnsupportedKey)(str(exc)) from exc
    return SubjectKey(key.profile_name, key.spki, key.key_id)


_ATTRIBUTE_OIDS = {"country_name": "2.5.4.6", "organization_name": "2.5.4.10", "organizational_unit_name": "2.5.4.11",
                   "common_name": "2.5.4.3", "state_or_province_name": "2.5.4.8", "locality_name": "2.5.4.7",
                   "serial_number": "2.5.4.5", "title": "2.5.4.12", "surname": "2.5.4.4", "given_name": "2.5.4.42",
                   "email_address": "1.2.840.113549.1.9.1", "domain_component": "0.9.2342.19200300.100.1.25",
                   "organization_identifier": "2.5.4.97", "dn_qualifier": "2.5.4.46"}
_PRINTABLE_ONLY = frozenset({"country_name", "serial_number", "dn_qualifier"})    # X.520 / RFC 5280 App. A
_IA5 = frozenset({"email_address", "domain_component"})


def _attribute_value(attr: str, value: str) -> bytes:
    if attr in _PRINTABLE_ONLY:
        if not set(value) <= _PRINTABLE:
            raise BadEncoding(f"{attr} must be a PrintableString")
        return tlv(0x13, value.encode("ascii"))
    if attr in _IA5:
        if not value.isascii():
            raise BadEncoding(f"{attr} must be ASCII (IA5String)")
        return tlv(0x16, value.encode("ascii"))
    return tlv(0x0C, value.encode("utf-8"))


def encode_name(rdns: Sequence[tuple[str, str]]) -> bytes:
    """Name DER from ordered (attribute, value) pairs, one AttributeTypeAndValue per RDN (hand-encoded:
    asn1crypto's Name builder costs more than the HSM signature; tests parse the result back)."""
    out = []
    for attr, value in rdns:
        oid = _ATTRIBUTE_OIDS.get(attr)
        if oid is None:
            raise BadEncoding(f"unknown subject attribute {attr!r}")
        out.append(tlv(0x31, tlv(0x30, der_oid(oid) + _attribute_value(attr, value))))
    return tlv(0x30, b"".join(out))


def encode_general_names(dns_names: Sequence[str] = (), ip_addresses: Sequence[str] = ()) -> bytes:
    """GeneralNames DER: dNSName [2] IA5String, iPAddress [7] OCTET STRING (4 or 16 octets)."""
    body = b"".join(tlv(0x82, d.encode("ascii")) for d in dns_names)
    body += b"".join(tlv(0x87, ipaddress.ip_address(ip).packed) for ip in ip_addresses)
    return tlv(0x30, body)


def name_text(rdns: Sequence[tuple[str, str]]) -> str:
    """A readable one-line form (RFC 4514 order: most specific first) for logs and the database."""
    short = {"country_name": "C", "organization_name": "O", "organizational_unit_name": "OU", "common_name": "CN",
             "state_or_province_name": "ST", "locality_name": "L", "serial_number": "serialNumber",
             "email_address": "emailAddress"}
    return ",".join(f"{short.get(a, a)}={v.replace(',', chr(92) + ',')}" for a, v in reversed(list(rdns)))


# ------------------------------------------------------------------ the template

@dataclass(frozen=True)
class IssuerInfo:
    """What a template needs about the signing CA."""

    name_der: bytes            # the issuer's subject Name DER (becomes the issuer field)
    key_id: bytes              # the issuer's subjectKeyIdentifier (becomes the AKI)
    algorithm: Algorithm
    sign: SignFunction         # HSM signature over the TBS (DER r,s or PKCS#1 block)
    not_after: dt.datetime | None = None   # issued certificates never outlive the issuer


@dataclass(frozen=True)
class Urls:
    """Where relying parties find the issuer's CRL, OCSP responder and certificate (built from the
    public base URL; empty = omitted)."""

    crl: str = ""
    ocsp: str = ""
    ca_issuers: str = ""


def _uri(url: str) -> x509.GeneralName:
    return x509.GeneralName(name="uniform_resource_identifier", value=url)


class CertificateTemplate:
    """Constant DER pieces of one (issuer, profile, URLs) combination, computed once."""

    def __init__(self, issuer: IssuerInfo, profile: Profile, urls: Urls | None = None):
        self.issuer = issuer
        self.profile = profile
        self._sig_alg = signature_algorithm(issuer.algorithm)
        self._after_serial = self._sig_alg + issuer.name_der
        # basicConstraints: CA certificates only, critical, cA TRUE (RFC 5280 §4.2.1.9). An end entity has
        # none at all: the DEFAULT-only encoding of cA FALSE is an empty SEQUENCE (30 00), which GmSSL 3's
        # parser refuses (x509_basic_constraints_from_der)
        bc = b""
        if profile.ca:
            value = {"ca": True}
            if profile.path_length is not None:
                value["path_len_constraint"] = profile.path_length
            bc = extension("basic_constraints", x509.BasicConstraints(value).dump(), critical=True)
        eku = b""
        if profile.extended_key_usage:
            eku = extension("extended_key_usage", x509.ExtKeyUsageSyntax(list(profile.extended_key_usage)).dump(),
                            profile.extended_key_usage_critical)
        # keyUsage depends on the subject key's family (RFC 8813 §3 for EC keys; profile key_usage_by_key)
        self._head_extensions = {
            algorithm: bc + extension("key_usage", x509.KeyUsage(set(profile.key_usage_for(algorithm))).dump(),
                                      profile.key_usage_critical) + eku
            for algorithm in profile.key_algorithms}
        self._max_span = None if profile.allow_long_validity else dt.timedelta(days=GMSSL_MAX_VALIDITY_DAYS)
        tail = [extension("authority_key_identifier",
                          x509.AuthorityKeyIdentifier({"key_identifier": issuer.key_id}).dump())]
        urls = urls or Urls()
        if urls.crl:
            tail.append(extension("crl_distribution_points", x509.CRLDistributionPoints([
                {"distribution_point": x509.DistributionPointName(name="full_name", value=[_uri(urls.crl)])}]).dump()))
        access = []
        if urls.ocsp and not profile.ocsp_nocheck:
            access.append({"access_method": "ocsp", "access_location": _uri(urls.ocsp)})
        if urls.ca_issuers:
            access.append({"access_method": "ca_issuers", "access_location": _uri(urls.ca_issuers)})
        if access:
            tail.append(extension("authority_information_access", x509.AuthorityInfoAccessSyntax(access).dump()))
        if profile.ocsp_nocheck:
            tail.append(extension(ID_PKIX_OCSP_NOCHECK, b"\x05\x00"))
        self._tail_extensions = b"".join(tail)

    def build(self, *, serial: int, subject_der: bytes, key: SubjectKey, not_before: dt.datetime,
              not_after: dt.datetime, dns_names: Sequence[str] = (), ip_addresses: Sequence[str] = (),
              identity: Sequence[tuple[str, str]] = ()) -> bytes:
        """The signed certificate DER."""
        if self.issuer.not_after is not None and not_after > self.issuer.not_after:
            not_after = self.issuer.not_after
        span = not_after - not_before
        if self._max_span is not None and span > self._max_span:
            raise IssuanceError(f"a {self.profile.name} certificate valid for {span} is longer than the "
                                f"{GMSSL_MAX_VALIDITY_DAYS} days GmSSL 3 accepts (profile allow_long_validity)")
        if span > dt.timedelta(days=GMSSL_MAX_VALIDITY_DAYS):
            log.warning("issuing a %s certificate valid for %s (allow_long_validity): GmSSL 3 refuses more than "
                        "%d days", self.profile.name, span, GMSSL_MAX_VALIDITY_DAYS)
        head = self._head_extensions.get(key.algorithm)
        if head is None:
            raise UnsupportedKey(f"profile {self.profile.name} does not accept {key.algorithm} keys")
        exts = [head, extension("subject_key_identifier", tlv(0x04, key.key_id)), self._tail_extensions]
        if dns_names or ip_addresses:
            # RFC 5280 §4.2.1.6: critical only when the subject DN is empty
            exts.append(extension("subject_alt_name", encode_general_names(dns_names, ip_addresses),
                                  critical=subject_der == b"\x30\x00"))
        for oid, value in identity:
            string = tlv(0x13, value.encode("ascii")) if set(value) <= _PRINTABLE else tlv(0x0C, value.encode("utf-8"))
            exts.append(extension(oid, string))
        tbs = tlv(0x30, _VERSION_V3 + der_integer(serial) + self._after_serial
                  + tlv(0x30, der_time(not_before) + der_time(not_after)) + subject_der + key.spki
                  + tlv(0xA3, tlv(0x30, b"".join(exts))))
        signature = self.issuer.sign(tbs)
        return tlv(0x30, tbs + self._sig_alg + tlv(0x03, b"\x00" + signature))


def issuer_info_from_certificate(cert_der: bytes, algorithm: Algorithm, sign: SignFunction) -> IssuerInfo:
    """IssuerInfo of an existing CA certificate (its SKI, or RFC 5280 method 1 when it has none)."""
    cert = x509.Certificate.load(cert_der)
    key_id = cert.key_identifier or hashlib.sha1(cert.public_key["public_key"].contents[1:]).digest()
    return IssuerInfo(cert.subject.dump(), key_id, algorithm, sign, cert.not_valid_after)
