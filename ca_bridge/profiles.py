"""Certificate profiles as data (``ca_bridge/profiles/*.toml``), loaded once into frozen dataclasses.

A profile says what a certificate of its kind may and must contain (step-ca sign-options shape): key
usage and extended key usage (RFC 5280 §4.2.1.3, §4.2.1.12), basic constraints and path length
(§4.2.1.9), validity, allowed subject key algorithms, whether subjectAltName is required, and which
GM/T 0015 identity extensions are allowed or required. ``Profile.validate`` checks a request against
it; ``ca_bridge.certbuilder`` applies it.
"""
from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from asn1crypto import x509

from ca_bridge.errors import IssuanceError, ProfileError, UnknownProfile, UnsupportedKey

PROFILE_DIR = Path(__file__).with_name("profiles")

KEY_USAGES = frozenset({"digital_signature", "non_repudiation", "key_encipherment", "data_encipherment",
                        "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only"})
KEY_ALGORITHMS = frozenset({"sm2", "ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096"})
SAN_RULES = frozenset({"forbidden", "optional", "required"})
# Subject attributes a request may carry (asn1crypto names); anything else is refused.
SUBJECT_ATTRIBUTES = frozenset({"country_name", "state_or_province_name", "locality_name", "organization_name",
                                "organizational_unit_name", "common_name", "serial_number", "title",
                                "surname", "given_name", "email_address", "domain_component",
                                "organization_identifier"})

_FIELDS = {"description", "internal", "ca", "path_length", "validity_days", "max_validity_days", "key_algorithms",
           "key_usage", "key_usage_critical", "extended_key_usage", "extended_key_usage_critical", "ocsp_nocheck",
           "san", "identity_allowed", "identity_required_any", "subject_required", "key_escrow"}


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    ca: bool
    path_length: int | None
    validity_days: int
    max_validity_days: int
    key_algorithms: frozenset[str]
    key_usage: frozenset[str]
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
            key_escrow=bool(data.get("key_escrow", False)))
    except KeyError as exc:
        raise ProfileError(f"profile {name}: missing field {exc.args[0]}") from None
    problems = []
    if profile.key_usage - KEY_USAGES:
        problems.append(f"unknown key usages {sorted(profile.key_usage - KEY_USAGES)}")
    if not profile.key_usage:
        problems.append("no key usage")
    if profile.key_algorithms - KEY_ALGORITHMS:
        problems.append(f"unknown key algorithms {sorted(profile.key_algorithms - KEY_ALGORITHMS)}")
    if not profile.ca and profile.key_usage & {"key_cert_sign", "crl_sign"}:
        problems.append("an end-entity profile must not have keyCertSign or cRLSign")
    if profile.ca and "key_cert_sign" not in profile.key_usage:
        problems.append("a CA profile needs keyCertSign")
    if not profile.ca and profile.path_length is not None:
        problems.append("path_length is only for CA profiles")
    if profile.san not in SAN_RULES:
        problems.append(f"san must be one of {sorted(SAN_RULES)}")
    if profile.identity_required_any - profile.identity_allowed:
        problems.append("identity_required_any must be a subset of identity_allowed")
    if not 0 < profile.validity_days <= profile.max_validity_days:
        problems.append("validity_days must be positive and at most max_validity_days")
    for eku in profile.extended_key_usage:
        if not _eku_known(eku):
            problems.append(f"unknown extended key usage {eku!r}")
    for oid in profile.identity_allowed:
        if not all(p.isdigit() for p in oid.split(".")):
            problems.append(f"identity extension {oid!r} is not a dotted OID")
    if problems:
        raise ProfileError(f"profile {name}: " + "; ".join(problems))
    return profile


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
