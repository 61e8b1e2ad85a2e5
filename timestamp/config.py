"""The ``[tsa]`` configuration section: TSA units, accepted imprints, policy, accuracy, clock requirement.

    [tsa]
    key = "tsa-sm2"                  # HSM key label of the default unit (served at /tsa)
    algorithm = "sm2-sm3"            # pkicore.algorithms name: sm2-sm3 | ecdsa-sha256 | ecdsa-sha384 | rsa-sha256 ...
    units = "ecdsa=tsa-ecdsa:ecdsa-sha256, rsa=tsa-rsa:rsa-sha256:1.2.3.4.2"   # named units: /tsa/<name>
                                     # name=key:algorithm[:policy], comma-separated
    policy = "1.2.3.4.1"             # TSAPolicyId put in tokens (set your own OID)
    accept_policies = ""             # further reqPolicy OIDs accepted (comma-separated)
    digests = "sm3,sha256,sha384,sha512"   # messageImprint hash allow-list
    accuracy_ms = 1000               # 0: no accuracy field
    require_sync = true              # refuse (timeNotAvailable; REST 503) when the kernel says the clock is
                                     # unsynchronised or its maximum error exceeds the accuracy tokens claim
    max_error_ms = 0                 # the error bound required with require_sync; 0: accuracy_ms (1000 if 0)
    archive = false                  # keep every issued token in the database (timestamp.models)
    node_id = -1                     # 0..65535 in serial numbers; -1: derived from host name and pid
    include_chain = true             # certReq: add the issuing CAs after the TSA certificate
    max_request_bytes = 16384        # larger queries get HTTP 413

The units' certificates are not a setting: `racentre setup` (or `racentre tsa provision`) has the site's
CA certify each unit key and keeps the certificate in the database, where every node reads it.
``TsaConfig.certs_dir`` (``<unit>.pem`` files) serves only a TSA built outside a site (tests,
``timestamp.demo``) and cannot be set in racentre.toml.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pkicore.algorithms import ALGORITHMS
from pkicore.errors import ErrorCode, PkiError

DEFAULT_UNIT = "default"
DIGEST_LENGTHS = {"sm3": 32, "sha256": 32, "sha384": 48, "sha512": 64, "sha224": 28, "sha1": 20}
_RESERVED_NAMES = {"verify", "certificate", "health"}


class TsaConfigError(PkiError):
    code = ErrorCode.CONFIGURATION


@dataclass(frozen=True)
class TsaUnitConfig:
    name: str
    key: str
    algorithm: str = "sm2-sm3"
    policy: str | None = None      # None: [tsa] policy


@dataclass(frozen=True)
class TsaConfig:
    key: str = "tsa-sm2"
    algorithm: str = "sm2-sm3"
    units: str = ""
    certs_dir: str = "tsa-certs"
    policy: str = "1.2.3.4.1"
    accept_policies: str = ""
    digests: str = "sm3,sha256,sha384,sha512"
    accuracy_ms: int = 1000
    require_sync: bool = True
    max_error_ms: int = 0
    archive: bool = False
    node_id: int = -1
    include_chain: bool = True
    max_request_bytes: int = 16384
    base_dir: str = field(default=".", compare=False)

    @classmethod
    def from_values(cls, values: dict, base: Path) -> "TsaConfig":
        """The loader's hook: ``values`` already typed by racentre.config.SCHEMA["tsa"]."""
        config = cls(**values, base_dir=str(base))
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
            units[name] = TsaUnitConfig(name, parts[0].strip(), parts[1].strip(),
                                        parts[2].strip() if len(parts) == 3 else None)
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


# racentre.config.SCHEMA["tsa"]: key -> type
SCHEMA = {"key": "str", "algorithm": "str", "units": "str", "policy": "str",
          "accept_policies": "str", "digests": "str", "accuracy_ms": "int", "require_sync": "bool",
          "max_error_ms": "int", "archive": "bool", "node_id": "int", "include_chain": "bool",
          "max_request_bytes": "int"}
