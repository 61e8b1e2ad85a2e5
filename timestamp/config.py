"""The ``[tsa]`` configuration section: TSA units, accepted imprints, policy, accuracy, clock requirement
(keys and types from the fields, pkicore.settings).

The units' certificates are not a setting: `racentre setup` (or `racentre tsa provision`) has the site's
CA certify each unit key and keeps the certificate in the database, where every node reads it.
``TsaConfig.certs_dir`` (``<unit>.pem`` files) serves only a TSA built outside a site (tests) and
cannot be set in racentre.toml.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from pkicore.algorithms import ALGORITHMS
from pkicore.errors import ErrorCode
from pkicore.settings import ConfigError, Configurable, internal, setting

DEFAULT_UNIT = "default"
DIGEST_LENGTHS = {"sm3": 32, "sha256": 32, "sha384": 48, "sha512": 64, "sha224": 28, "sha1": 20}
_RESERVED_NAMES = {"verify", "certificate", "health"}
_OID = re.compile(r"^[0-2](\.(0|[1-9][0-9]*))+$")


def is_oid(text: str) -> bool:
    """Dotted decimal with a first arc of 0, 1 or 2 (ITU-T X.660)."""
    return bool(_OID.match(text))


class TsaConfigError(ConfigError):
    code = ErrorCode.CONFIGURATION


@dataclass(frozen=True)
class TsaUnitConfig:
    name: str
    key: str
    algorithm: str = "sm2-sm3"
    policy: str | None = None      # None: [tsa] policy


@dataclass(frozen=True)
class TsaConfig(Configurable):
    SECTION = "tsa"
    DOC = "The time-stamp authority (RFC 3161): units, policy, accepted imprints, accuracy, clock requirement."
    key: str = setting("tsa-sm2", doc="HSM key label of the default unit (served at /tsa)")
    algorithm: str = setting("sm2-sm3", doc="pkicore.algorithms name: sm2-sm3 | ecdsa-sha256 | ecdsa-sha384 | "
                                            "rsa-sha256 ...", example="ecdsa-sha256")
    units: str = setting("", doc="named units served at /tsa/<name>: name=key:algorithm[:policy], comma-separated",
                         example="ecdsa=tsa-ecdsa:ecdsa-sha256, rsa=tsa-rsa:rsa-sha256:2.999.1.2")
    certs_dir: str = internal("tsa-certs")
    policy: str = setting("", doc="TSAPolicyId put in every token (RFC 3161 §2.4.2): an OID under your organisation's\n"
                                  "arc, naming the policy you publish; the TSA issues nothing until it is set",
                          example="2.999.1.1")
    accept_policies: str = setting("", doc="further reqPolicy OIDs accepted (comma-separated)",
                                   example="2.999.1.9")
    digests: str = setting("sm3,sha256,sha384,sha512", doc="messageImprint hash allow-list", example="sm3,sha256")
    accuracy_ms: int = setting(1000, doc="accuracy in milliseconds (0: no accuracy field)")
    require_sync: bool = setting(True, doc="refuse (timeNotAvailable; REST 503) while the kernel says the clock is\n"
                                           "unsynchronised or bounds its error above the accuracy tokens claim")
    max_error_ms: int = setting(0, doc="the clock error bound required with require_sync; 0: accuracy_ms "
                                       "(1000 when that is 0)")
    archive: bool = setting(False, doc="keep every issued token in the database (timestamp.models)")
    node_id: int = setting(-1, doc="0..65535, put in serial numbers; -1: derived from the host name and pid",
                           example=3)
    include_chain: bool = setting(True, doc="certReq: add the issuing CAs after the TSA certificate")
    max_request_bytes: int = setting(16384, doc="larger queries get HTTP 413")
    base_dir: str = internal(".", compare=False)

    def __post_init__(self):
        for what, oids in (("policy", (self.policy,) if self.policy else ()),
                           ("accept_policies", self.accepted_policies())):
            bad = [oid for oid in oids if not is_oid(oid)]
            if bad:
                raise TsaConfigError(f"tsa.{what}: {bad[0]!r} is not an OID (dotted decimal, e.g. 1.2.156.x.y)")

    @classmethod
    def from_config(cls, values, base=Path("."), **extra) -> "TsaConfig":
        config = super().from_config(values, base, base_dir=str(base), **extra)
        config.unit_configs()  # validate early
        config.digest_list()
        return config

    # ------------------------------------------------------------- derived views
    def unit_configs(self) -> dict[str, TsaUnitConfig]:
        units = {DEFAULT_UNIT: TsaUnitConfig(DEFAULT_UNIT, self.key, self.algorithm)}
        for item in filter(None, (s.strip() for s in self.units.split(","))):
            name, sep, rest = item.partition("=")
            parts = rest.split(":")
            name = name.strip()
            if not sep or not name or len(parts) not in (2, 3) or not all(p.strip() for p in parts):
                raise TsaConfigError(f"tsa.units: expected name=key:algorithm[:policy], got {item!r}")
            if not name.replace("-", "").replace("_", "").isalnum() or name in _RESERVED_NAMES or name in units:
                raise TsaConfigError(f"tsa.units: invalid or duplicate unit name {name!r}")
            policy = parts[2].strip() if len(parts) == 3 else None
            if policy is not None and not is_oid(policy):
                raise TsaConfigError(f"tsa.units: the policy of unit {name!r} is not an OID")
            units[name] = TsaUnitConfig(name, parts[0].strip(), parts[1].strip(), policy)
        for unit in units.values():
            if unit.algorithm not in ALGORITHMS or ALGORITHMS[unit.algorithm].asn1_name == "rsassa_pss":
                raise TsaConfigError(f"tsa: unsupported signature algorithm {unit.algorithm!r} for unit "
                                     f"{unit.name!r}")
        return units

    def digest_list(self) -> tuple[str, ...]:
        names = tuple(d.strip().lower() for d in self.digests.split(",") if d.strip())
        unknown = [d for d in names if d not in DIGEST_LENGTHS]
        if unknown or not names:
            raise TsaConfigError(f"tsa.digests: unknown digest(s) {unknown}")
        return names

    def accepted_policies(self) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.accept_policies.split(",") if p.strip())

    def error_bound_ms(self) -> int:
        """The largest kernel-reported clock error (adjtimex maxerror) at which tokens are granted: the
        accuracy they claim (RFC 3161 §2.4.2 accuracy), unless ``max_error_ms`` sets another bound."""
        if self.max_error_ms > 0:
            return self.max_error_ms
        return self.accuracy_ms if self.accuracy_ms > 0 else 1000

    def certs_path(self) -> Path:
        path = Path(self.certs_dir)
        return path if path.is_absolute() else Path(self.base_dir) / path

    def cert_file(self, unit: str) -> Path:
        return self.certs_path() / f"{unit}.pem"
