"""Certificate profiles as data (``ca_bridge/profiles/*.toml``), loaded once into frozen dataclasses.

A profile says what a certificate of its kind may and must contain (step-ca sign-options shape): key
usage and extended key usage (RFC 5280 §4.2.1.3, §4.2.1.12), basic constraints and path length
(§4.2.1.9), validity, allowed subject key algorithms, whether subjectAltName is required, and which
GM/T 0015 identity extensions are allowed or required. ``Profile.validate`` checks a request against
it; ``ca_bridge.certbuilder`` applies it.

Rules every profile must follow at load time, so that what we issue is what the common verifiers accept:

* key usage per key family (``[key_usage_by_key]``): RFC 8813 §3 forbids keyEncipherment and
  dataEncipherment with an id-ecPublicKey key (ECDSA/ECDH, P-256/P-384); SM2 keys are exempt, because
  GM/T 0015 requires both on an SM2 encryption certificate (SM2 encryption is public-key encryption);
* GmSSL 3 (``x509_cert_check`` / ``x509_key_usage_check`` / ``x509_ext_key_usage_check``;
  docs/REFERENCES.md §10): a CA has keyCertSign + cRLSign and no extended key usage;
  serverAuth/clientAuth/OCSPSigning need digitalSignature (keyEncipherment/keyAgreement on an encryption
  certificate); no anyExtendedKeyUsage alone; validity at most ``GMSSL_MAX_VALIDITY_DAYS`` (3,653 days,
  notAfter minus notBefore, a day of it kept for backdating) unless the profile sets
  ``allow_long_validity = true``, which is logged as a warning at load time and at issuance.
"""
from __future__ import annotations

import ipaddress
import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from asn1crypto import x509

from ca_bridge.errors import IssuanceError, ProfileError, UnknownProfile, UnsupportedKey

log = logging.getLogger(__name__)

PROFILE_DIR = Path(__file__).with_name("profiles")
# GmSSL 3 X509_VALIDITY_MAX_DAYS (gmssl/x509_cer.h): a longer notAfter - notBefore is refused
GMSSL_MAX_VALIDITY_DAYS = 3653
# a day of the 3,653 is kept for the backdating of notBefore (ca_bridge.embedded.BACKDATE)
BACKDATE_MARGIN_DAYS = 1

KEY_USAGES = frozenset({"digital_signature", "non_repudiation", "key_encipherment", "data_encipherment",
                        "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"})
KEY_ALGORITHMS = frozenset({"sm2", "ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"})
# [key_usage_by_key] may name one key algorithm or a family of them
KEY_FAMILIES = {"ec": frozenset({"ec-p256", "ec-p384"}), "rsa": frozenset({"rsa-2048", "rsa-3072", "rsa-4096"})}
# RFC 8813 §3: never with an id-ecPublicKey ECDSA/ECDH key (SM2 keys are exempt, see the module docstring)
EC_FORBIDDEN_USAGES = frozenset({"key_encipherment", "data_encipherment"})
# GmSSL 3 x509_key_usage_check: these extended key usages need digitalSignature (TLS/OCSP signing) or, on
# an encryption certificate (TLCP key exchange), keyEncipherment
SIGNING_PURPOSES = frozenset({"server_auth", "client_auth", "ocsp_signing"})
SAN_RULES = frozenset({"forbidden", "optional", "required"})
# Subject attributes a request may carry (asn1crypto names); anything else is refused.
SUBJECT_ATTRIBUTES = frozenset({"country_name", "state_or_province_name", "locality_name", "organization_name",
                                "organizational_unit_name", "common_name", "serial_number", "title",
                                "surname", "given_name", "email_address", "domain_component",
                                "organization_identifier"})

_FIELDS = {"description", "internal", "ca", "path_length", "validity_days", "max_validity_days", "key_algorithms",
           "key_usage", "key_usage_critical", "extended_key_usage", "extended_key_usage_critical", "ocsp_nocheck",
           "san", "identity_allowed", "identity_required_any", "subject_required", "key_escrow",
           "key_usage_by_key", "allow_long_validity"}


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    ca: bool
    path_length: int | None
    validity_days: int
    max_validity_days: int
    key_algorithms: frozenset[str]
    key_usage: frozenset[str]                    # the default; key_usage_for(key algorithm) is what is issued
    key_usage_critical: bool
    extended_key_usage: tuple[str, ...]          # asn1crypto KeyPurposeId names or dotted OIDs
    extended_key_usage_critical: bool
    san: str                                     # forbidden | optional | required
    identity_allowed: frozenset[str]             # GM/T 0015 identity extension OIDs
    identity_required_any: frozenset[str]        # at least one of these must be present (if non-empty)
    subject_required: tuple[str, ...]
    ocsp_nocheck: bool = False
    internal: bool = False                       # only the hierarchy set-up issues it
    key_escrow: bool = False                     # GM/T 0034: the KMC generates and archives the key
    key_usage_by_key: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))
    allow_long_validity: bool = False            # validity beyond GMSSL_MAX_VALIDITY_DAYS (warned)

    def key_usage_for(self, key_algorithm: str) -> frozenset[str]:
        """The keyUsage bits for a subject key of ``key_algorithm`` (sm2, ec-p256, rsa-2048, ...)."""
        return self.key_usage_by_key.get(key_algorithm, self.key_usage)

    def validate(self, *, key_algorithm: str, subject: tuple[tuple[str, str], ...], dns_names: tuple[str, ...],
                 ip_addresses: tuple[str, ...], identity: tuple[tuple[str, str], ...],
                 validity_days: int | None) -> int:
        """Check a request against the profile; returns the validity in days to use."""
        if key_algorithm not in self.key_algorithms:
            raise UnsupportedKey(f"profile {self.name} does not accept {key_algorithm} keys "
                                 f"(allowed: {', '.join(sorted(self.key_algorithms))})")
        names = [n for n, _ in subject]
        for name, value in subject:
            if name not in SUBJECT_ATTRIBUTES:
                raise IssuanceError(f"subject attribute {name!r} is not allowed")
            if not isinstance(value, str) or not value.strip() or len(value) > 256 or "\x00" in value:
                raise IssuanceError(f"subject attribute {name} has an empty, oversized or invalid value")
            if name == "country_name" and (len(value) != 2 or not value.isascii() or not value.isalpha()):
                raise IssuanceError("country_name must be a two-letter ISO 3166 code")
        missing = [n for n in self.subject_required if n not in names]
        if missing:
            raise IssuanceError(f"profile {self.name} needs subject attributes: {', '.join(missing)}")
        has_san = bool(dns_names or ip_addresses)
        if self.san == "required" and not has_san:
            raise IssuanceError(f"profile {self.name} needs at least one DNS name or IP address")
        if self.san == "forbidden" and has_san:
            raise IssuanceError(f"profile {self.name} takes no DNS names or IP addresses")
        for dns in dns_names:
            if not _valid_dns(dns):
                raise IssuanceError(f"{dns!r} is not a valid DNS name")
        for ip in ip_addresses:
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                raise IssuanceError(f"{ip!r} is not a valid IP address") from None
        seen = set()
        for oid, value in identity:
            if oid not in self.identity_allowed:
                raise IssuanceError(f"profile {self.name} does not allow identity extension {oid}")
            if oid in seen:
                raise IssuanceError(f"identity extension {oid} given twice")
            seen.add(oid)
            if not isinstance(value, str) or not value or len(value) > 64 or not value.isprintable():
                raise IssuanceError(f"identity extension {oid} has an empty, oversized or invalid value")
        if self.identity_required_any and not (seen & self.identity_required_any):
            raise IssuanceError(f"profile {self.name} needs one of the identity extensions "
                                f"{', '.join(sorted(self.identity_required_any))}")
        days = self.validity_days if validity_days is None else validity_days
        if not isinstance(days, int) or days < 1 or days > self.max_validity_days:
            raise IssuanceError(f"validity must be 1..{self.max_validity_days} days for profile {self.name}")
        return days


def _valid_dns(name: str) -> bool:
    if not isinstance(name, str) or not name.isascii() or len(name) > 253:
        return False
    labels = name[2:].split(".") if name.startswith("*.") else name.split(".")
    return len(labels) >= 1 and all(
        0 < len(label) <= 63 and label[0] != "-" and label[-1] != "-"
        and all(c.isalnum() or c == "-" for c in label) for label in labels)


def _eku_known(value: str) -> bool:
    return value in set(x509.KeyPurposeId._map.values()) or all(p.isdigit() for p in value.split("."))


def _profile(name: str, data: dict) -> Profile:
    unknown = set(data) - _FIELDS
    if unknown:
        raise ProfileError(f"profile {name}: unknown fields {', '.join(sorted(unknown))}")
    try:
        profile = Profile(
            name=name, description=str(data.get("description", "")), ca=bool(data["ca"]),
            path_length=data.get("path_length"), validity_days=int(data["validity_days"]),
            max_validity_days=int(data.get("max_validity_days", data["validity_days"])),
            key_algorithms=frozenset(data["key_algorithms"]), key_usage=frozenset(data["key_usage"]),
            key_usage_critical=bool(data.get("key_usage_critical", True)),
            extended_key_usage=tuple(data.get("extended_key_usage", ())),
            extended_key_usage_critical=bool(data.get("extended_key_usage_critical", False)),
            san=str(data.get("san", "forbidden")), identity_allowed=frozenset(data.get("identity_allowed", ())),
            identity_required_any=frozenset(data.get("identity_required_any", ())),
            subject_required=tuple(data.get("subject_required", ("common_name",))),
            ocsp_nocheck=bool(data.get("ocsp_nocheck", False)), internal=bool(data.get("internal", False)),
            key_escrow=bool(data.get("key_escrow", False)),
            key_usage_by_key=_key_usage_by_key(data.get("key_usage_by_key", {})),
            allow_long_validity=bool(data.get("allow_long_validity", False)))
    except KeyError as exc:
        raise ProfileError(f"profile {name}: missing field {exc.args[0]}") from None
    except (TypeError, ValueError) as exc:
        raise ProfileError(f"profile {name}: {exc}") from None
    problems = _key_usage_problems(profile) + _validity_problems(profile)
    if profile.key_algorithms - KEY_ALGORITHMS:
        problems.append(f"unknown key algorithms {sorted(profile.key_algorithms - KEY_ALGORITHMS)}")
    if not profile.ca and profile.path_length is not None:
        problems.append("path_length is only for CA profiles")
    if profile.san not in SAN_RULES:
        problems.append(f"san must be one of {sorted(SAN_RULES)}")
    if profile.identity_required_any - profile.identity_allowed:
        problems.append("identity_required_any must be a subset of identity_allowed")
    for eku in profile.extended_key_usage:
        if not _eku_known(eku):
            problems.append(f"unknown extended key usage {eku!r}")
    if profile.ca and profile.extended_key_usage:
        problems.append("a CA profile takes no extended key usage (GmSSL 3 refuses it in a CA certificate)")
    if tuple(profile.extended_key_usage) == ("any_extended_key_usage",):
        problems.append("anyExtendedKeyUsage alone is not accepted (GmSSL 3)")
    for oid in profile.identity_allowed:
        if not all(p.isdigit() for p in oid.split(".")):
            problems.append(f"identity extension {oid!r} is not a dotted OID")
    if problems:
        raise ProfileError(f"profile {name}: " + "; ".join(problems))
    if profile.allow_long_validity and profile.max_validity_days > GMSSL_MAX_VALIDITY_DAYS - BACKDATE_MARGIN_DAYS:
        log.warning("profile %s allows a validity of up to %d days (allow_long_validity): GmSSL 3 refuses any "
                    "certificate valid for more than %d days, and every chain through it", name,
                    profile.max_validity_days, GMSSL_MAX_VALIDITY_DAYS)
    return profile


def _key_usage_by_key(table: dict) -> Mapping[str, frozenset[str]]:
    """``[key_usage_by_key]``: a key algorithm (``ec-p384``) or family (``ec``, ``rsa``) -> key usages;
    an algorithm named on its own wins over its family."""
    if not isinstance(table, dict):
        raise TypeError("key_usage_by_key must be a table")
    out: dict[str, frozenset[str]] = {}
    for key in sorted(table, key=lambda k: k in KEY_ALGORITHMS):       # families first, then algorithms
        if key not in KEY_ALGORITHMS and key not in KEY_FAMILIES:
            raise ValueError(f"key_usage_by_key names an unknown key algorithm or family {key!r}")
        for algorithm in KEY_FAMILIES.get(key, {key}):
            out[algorithm] = frozenset(table[key])
    return MappingProxyType(out)


def _key_usage_problems(profile: Profile) -> list[str]:
    problems = []
    if set(profile.key_usage_by_key) - profile.key_algorithms:
        problems.append(f"key_usage_by_key names key algorithms the profile does not accept: "
                        f"{sorted(set(profile.key_usage_by_key) - profile.key_algorithms)}")
    signing = SIGNING_PURPOSES.intersection(profile.extended_key_usage)
    for algorithm in sorted(profile.key_algorithms | {"default"}):
        usage = profile.key_usage if algorithm == "default" else profile.key_usage_for(algorithm)
        where = "key_usage" if algorithm == "default" else f"key usage for {algorithm} keys"
        if usage - KEY_USAGES:
            problems.append(f"unknown key usages {sorted(usage - KEY_USAGES)} in {where}")
        if not usage:
            problems.append(f"no {where}")
        if not profile.ca and usage & {"key_cert_sign", "crl_sign"}:
            problems.append(f"an end-entity profile must not have keyCertSign or cRLSign ({where})")
        if profile.ca and not {"key_cert_sign", "crl_sign"} <= usage:
            problems.append(f"a CA profile needs keyCertSign and cRLSign ({where})")
        if signing and not usage & {"digital_signature", "key_encipherment", "key_agreement"}:
            problems.append(f"{', '.join(sorted(signing))} needs digitalSignature, or keyEncipherment/"
                            f"keyAgreement on an encryption certificate ({where})")
        if algorithm.startswith("ec-") and usage & EC_FORBIDDEN_USAGES:
            problems.append(f"RFC 8813 forbids {', '.join(sorted(usage & EC_FORBIDDEN_USAGES))} "
                            f"for {algorithm} keys: set [key_usage_by_key] for them")
    return problems


def _validity_problems(profile: Profile) -> list[str]:
    if not 0 < profile.validity_days <= profile.max_validity_days:
        return ["validity_days must be positive and at most max_validity_days"]
    limit = GMSSL_MAX_VALIDITY_DAYS - BACKDATE_MARGIN_DAYS
    if profile.max_validity_days > limit and not profile.allow_long_validity:
        return [f"max_validity_days {profile.max_validity_days} is more than {limit} (GmSSL 3 refuses a "
                f"certificate valid for more than {GMSSL_MAX_VALIDITY_DAYS} days); set allow_long_validity = true "
                "to issue it all the same"]
    return []


def load_profiles(directory: Path | str | None = None) -> Mapping[str, Profile]:
    """Every ``*.toml`` in ``directory`` (default: the profiles shipped here), keyed by file stem."""
    directory = Path(directory) if directory is not None else PROFILE_DIR
    profiles = {}
    for path in sorted(directory.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ProfileError(f"profile {path.name} is not valid TOML: {exc}") from exc
        profiles[path.stem] = _profile(path.stem, data)
    if not profiles:
        raise ProfileError(f"no certificate profiles in {directory}")
    return MappingProxyType(profiles)


def get_profile(profiles: Mapping[str, Profile], name: str) -> Profile:
    try:
        return profiles[name]
    except KeyError:
        raise UnknownProfile(f"unknown certificate profile {name!r} "
                             f"(known: {', '.join(sorted(p for p in profiles if not profiles[p].internal))})") from None
