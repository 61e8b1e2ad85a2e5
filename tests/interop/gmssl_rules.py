"""What GmSSL 3 accepts in a certificate (docs/REFERENCES.md §10), checked two ways:

* ``GmSSL``: the real GmSSL 3.1.1 library that the PyPI package ``easy-gmssl`` builds from the GmSSL
  source it ships (``~/.gmssl_3.1.1_install/lib/libgmssl.so.3.1``, loaded by ``easy_gmssl.gmssl``), called
  through ctypes: ``x509_cert_check`` (GmSSL's own version, serial, validity, name and extension rules,
  ``x509_exts_check``), ``x509_certs_verify`` (a whole chain: every certificate checked as entity or CA,
  SM2 signatures with the default ID, path length) and ``x509_cert_verify_by_ca_cert``. GmSSL 3 parses
  SM2 keys only and has certificate types for TLS/TLCP entities and CAs only.
* ``rule_violations``: an independent reading of the same rules (asn1crypto), written from the rule list
  of REFERENCES §10 and GmSSL's ``x509_key_usage_check`` / ``x509_ext_key_usage_check`` /
  ``x509_basic_constraints_check``, for every key algorithm and for the kinds GmSSL 3.1.1 has no type for
  (OCSP responders, time-stamping units, the KMC and the seal maker).
"""
from __future__ import annotations

import ctypes
import datetime as dt
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from asn1crypto import pem, x509

try:
    from easy_gmssl.gmssl import gmssl as _LIBGMSSL      # importing loads libgmssl.so.3.1 or raises
    ABSENT = ""
except (ImportError, ValueError, OSError) as exc:        # not installed, or its build left no library
    _LIBGMSSL, ABSENT = None, f"GmSSL 3 (PyPI easy-gmssl, built with cmake) is not available: {exc}"

MAX_VALIDITY = dt.timedelta(days=3653)          # X509_VALIDITY_MAX_DAYS (gmssl/x509_cer.h)
SM2_DEFAULT_ID = b"1234567812345678"

# GmSSL X509_CERT_TYPE (x509_cer.h) and X509_CERT_CHAIN_TYPE
CERT_TYPES = {"server": 0, "client": 1, "server_enc": 2, "client_enc": 3, "ca": 4}
CHAIN_TYPES = {"server": 0, "client": 1}

# Extensions GmSSL's x509_exts_check knows; any other extension marked critical is refused
_KNOWN = {"authority_key_identifier", "key_identifier", "key_usage", "certificate_policies", "policy_mappings",
          "subject_alt_name", "issuer_alt_name", "subject_directory_attributes", "basic_constraints",
          "name_constraints", "policy_constraints", "extended_key_usage", "crl_distribution_points",
          "inhibit_any_policy", "freshest_crl"}
_NEVER_CRITICAL = {"authority_key_identifier", "key_identifier", "certificate_policies", "issuer_alt_name",
                   "subject_directory_attributes", "crl_distribution_points", "freshest_crl"}
_FORBIDDEN = {"policy_mappings", "policy_constraints", "inhibit_any_policy"}
# the kind (rule_violations) a certificate of each profile is checked as
GMSSL_KIND = {"root-ca": "ca", "issuing-ca": "ca", "ocsp-signer": "ocsp", "civil-servant-sign": "client",
              "civil-servant-enc": "encipher", "unit": "client", "server": "server", "tsa": "other",
              "kmc": "other", "seal-maker": "other", "app-encryption": "encipher", "trust-evidence": "other"}
# the GmSSL certificate types an SM2 certificate of each profile is checked as (x509_cert_check)
GMSSL_TYPES = {"root-ca": ["ca"], "issuing-ca": ["ca"], "civil-servant-sign": ["client"],
               "civil-servant-enc": ["client_enc"], "unit": ["client"], "server": ["server", "client"]}


def as_gmssl_sees(profile: str, der: bytes) -> bytes:
    """The encryption certificate's emailProtection is no TLS purpose, which GmSSL 3.1.1 has no type for
    (x509_ext_key_usage_check refuses any EKU for a type outside TLS): GmSSL checks it as a TLCP client
    key-encipherment certificate without its EKU, i.e. every other rule. We give it no clientAuth on
    purpose (an escrowed key never authenticates its holder; civil-servant-enc.toml)."""
    if profile == "civil-servant-enc":
        return with_extension(der, "extended_key_usage", None, False)
    return der


_EKU_NEEDED = {"server": "server_auth", "server_enc": "server_auth", "client": "client_auth",
               "client_enc": "client_auth", "ocsp": "ocsp_signing"}


def rule_violations(der: bytes, kind: str, now: dt.datetime | None = None) -> list[str]:
    """Every REFERENCES §10 rule ``der`` breaks when checked as ``kind``: ``ca`` (root or issuing CA, which
    signs certificates and CRLs), ``server``/``client`` (TLS entity), ``server_enc``/``client_enc`` (TLCP
    key-encipherment certificate), ``encipher`` (a key-encipherment certificate whose extended key usage
    is not a TLS purpose: GmSSL's key-encipherment rules without the EKU purpose), ``ocsp`` (responder)
    or ``other`` (an end entity with no GmSSL type)."""
    cert = x509.Certificate.load(der)
    tbs = cert["tbs_certificate"]
    found = []
    if tbs["version"].native != "v3":
        found.append("not v3")
    if len(tbs["serial_number"].contents) < 4:
        found.append("serial shorter than 4 bytes")
    span = cert.not_valid_after - cert.not_valid_before
    if span > MAX_VALIDITY:
        found.append(f"validity {span} exceeds 3,653 days")
    now = now or dt.datetime.now(dt.timezone.utc)
    if not cert.not_valid_before <= now <= cert.not_valid_after:
        found.append("not valid now")
    if cert["signature_algorithm"].dump() != tbs["signature"].dump():
        found.append("signatureAlgorithm differs from tbsCertificate.signature")
    if not len(tbs["issuer"].chosen):
        found.append("empty issuer")
    if not len(tbs["subject"].chosen):
        found.append("empty subject")
    seen = {}
    for ext in tbs["extensions"]:
        name, critical, raw = ext["extn_id"].native, ext["critical"].native, ext["extn_value"].contents
        seen[name] = (critical, raw, ext)
        if name in _NEVER_CRITICAL and critical:
            found.append(f"{name} is critical")
        if name in _FORBIDDEN:
            found.append(f"{name} is present")
        if name == "name_constraints" and not critical:
            found.append("name_constraints is not critical")
        if name not in _KNOWN and critical:
            found.append(f"unknown critical extension {name}")
        if name == "key_identifier" and not ext["extn_value"].parsed.contents:
            found.append("subjectKeyIdentifier is empty")
    if "basic_constraints" in seen:
        critical, raw, ext = seen["basic_constraints"]
        if raw == b"\x30\x00":
            found.append("basicConstraints is an empty SEQUENCE")
        else:
            bc = ext["extn_value"].parsed.native
            if kind == "ca" and not (bc["ca"] and critical):
                found.append("CA certificate without critical basicConstraints cA TRUE")
            if kind != "ca" and (bc["ca"] or bc["path_len_constraint"] is not None):
                found.append("end entity with cA TRUE or a pathLenConstraint")
    elif kind == "ca":
        found.append("CA certificate without basicConstraints")
    if "key_usage" in seen:
        bits = seen["key_usage"][2]["extn_value"].parsed.native
        if not bits:
            found.append("keyUsage with no bit set")
        if kind in ("server", "client", "ocsp"):
            if "digital_signature" not in bits:
                found.append("no digitalSignature")
        # GmSSL (SM2 keys only) wants keyEncipherment; for an ECDH P-256/P-384 key RFC 8813 §3 forbids it,
        # and keyAgreement is that key's usage (GmSSL's own "un-comment for compatibility" alternative)
        ecdh = cert.public_key.algorithm == "ec" and cert.public_key.curve[1] != "sm2p256v1"
        if kind in ("server_enc", "client_enc", "encipher") and "key_encipherment" not in bits \
                and not (ecdh and "key_agreement" in bits):
            found.append("no keyEncipherment")
        if kind != "ca" and bits & {"key_cert_sign", "crl_sign"}:
            found.append("keyCertSign/cRLSign in an end entity")
        if kind == "ca" and not {"key_cert_sign", "crl_sign"} <= bits:
            found.append("CA without keyCertSign and cRLSign")
    if "extended_key_usage" in seen:
        purposes = seen["extended_key_usage"][2]["extn_value"].parsed.native
        if purposes == ["any_extended_key_usage"]:
            found.append("anyExtendedKeyUsage alone")
        if kind == "ca":
            found.append("extKeyUsage in a CA certificate (GmSSL checks no purpose for CAs)")
        needed = _EKU_NEEDED.get(kind)
        if needed and needed not in purposes:
            found.append(f"extKeyUsage without {needed}")
    return found


@dataclass
class GmSSL:
    """libgmssl 3.1.1 through ctypes (``easy_gmssl.gmssl`` loads it)."""

    lib: ctypes.CDLL

    @classmethod
    def load(cls) -> "GmSSL | None":
        """The library easy-gmssl built at install time, or None (``ABSENT`` says why)."""
        return cls(_LIBGMSSL) if _LIBGMSSL is not None else None

    def version(self) -> int:
        return self.lib.gmssl_version_num()

    def cert_check(self, der: bytes, kind: str) -> bool:
        """GmSSL's ``x509_cert_check`` with the certificate type of ``kind`` (``CERT_TYPES``)."""
        path_len = ctypes.c_int()
        return self.lib.x509_cert_check(der, ctypes.c_size_t(len(der)), CERT_TYPES[kind], ctypes.byref(path_len)) == 1

    def certs_verify(self, chain: list[bytes], root: bytes, kind: str) -> bool:
        """GmSSL's ``x509_certs_verify``: entity first, then its CAs up to (not including) ``root``."""
        certs, result = b"".join(chain), ctypes.c_int()
        return self.lib.x509_certs_verify(certs, ctypes.c_size_t(len(certs)), CHAIN_TYPES[kind], root,
                                          ctypes.c_size_t(len(root)), 6, ctypes.byref(result)) == 1

    def certverify(self, chain: list[bytes], root: bytes, workdir: Path, *, double_certs: bool = False):
        """``gmssl certverify -in chain.pem -cacert root.pem [-double_certs]``, the command-line tool the same
        build installs beside the library (``bin/gmssl``); returns the CompletedProcess."""
        lib_dir = Path(self.lib._name).parent
        (workdir / "chain.pem").write_bytes(b"".join(pem.armor("CERTIFICATE", c) for c in chain))
        (workdir / "root.pem").write_bytes(pem.armor("CERTIFICATE", root))
        argv = [str(lib_dir.parent / "bin" / "gmssl"), "certverify", "-in", str(workdir / "chain.pem"),
                "-cacert", str(workdir / "root.pem")] + (["-double_certs"] if double_certs else [])
        return subprocess.run(argv, capture_output=True, text=True, timeout=30,
                              env={**os.environ, "LD_LIBRARY_PATH": str(lib_dir)})

    def verify_by_ca(self, der: bytes, ca: bytes) -> bool:
        """GmSSL's ``x509_cert_verify_by_ca_cert`` (SM2 signature with the default ID)."""
        return self.lib.x509_cert_verify_by_ca_cert(der, ctypes.c_size_t(len(der)), ca, ctypes.c_size_t(len(ca)),
                                                    SM2_DEFAULT_ID, ctypes.c_size_t(len(SM2_DEFAULT_ID))) == 1


def with_extension(der: bytes, oid_name: str, value, critical: bool) -> bytes:
    """``der`` with extension ``oid_name`` replaced, added or (``value`` None) removed. The old signature is
    kept, so only for checks that read no signature: GmSSL's x509_cert_check, pkilint."""
    cert = x509.Certificate.load(der)
    tbs = cert["tbs_certificate"].copy()
    exts = [e for e in tbs["extensions"] if e["extn_id"].native != oid_name]
    if isinstance(value, bytes):          # the extnValue's DER as it is
        value = x509.ParsableOctetString(value)
    if value is not None:                 # None: removed
        exts.append(x509.Extension({"extn_id": oid_name, "critical": critical, "extn_value": value}))
    tbs["extensions"] = x509.Extensions(exts)
    return x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": cert["signature_algorithm"],
                             "signature_value": cert["signature_value"]}).dump()


def with_validity(der: bytes, days: int) -> bytes:
    """``der`` valid for ``days`` from its notBefore (the old signature is kept, as in ``with_extension``)."""
    cert = x509.Certificate.load(der)
    tbs = cert["tbs_certificate"].copy()
    start = cert.not_valid_before
    tbs["validity"] = x509.Validity({"not_before": x509.Time(name="utc_time", value=start),
                                     "not_after": x509.Time(name="utc_time", value=start + dt.timedelta(days=days))})
    return x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": cert["signature_algorithm"],
                             "signature_value": cert["signature_value"]}).dump()
