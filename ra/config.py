"""The ``[ra]`` configuration section: four-eyes thresholds and certificate profiles per request type,
and the CSR and identity checks (keys and types from the fields, pkicore.settings). The defaults are
``ra.workflow.Policy``'s; ``policy()`` is what the RA service runs on.

    [ra]
    approvals = { server = 2 }              # approvals a request type needs (the others keep theirs)
    profiles = { server = { sign = "server" } }
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping

from pkicore.settings import ConfigError, Configurable, setting
from ca_bridge.profiles import load_profiles
from ra.errors import ValidationError
from ra.workflow import Policy

_DEFAULT = Policy()


@lru_cache(maxsize=1)
def _profile_names() -> frozenset[str]:
    return frozenset(load_profiles())


@dataclass(frozen=True)
class RaConfig(Configurable):
    SECTION = "ra"
    DOC = ("The registration authority: four-eyes thresholds and certificate profiles per request type\n"
           "(civil-servant-dual, unit, server); a table names only the types it changes.")
    approvals: Mapping[str, int] = setting(
        default_factory=lambda: dict(_DEFAULT.approvals),
        doc="approvals a request needs before it is carried out, per request type (at least 1; approvers are\n"
            "never the submitter or the vetter)", example={"server": 2})
    profiles: Mapping[str, Mapping[str, str]] = setting(
        default_factory=lambda: {k: dict(v) for k, v in _DEFAULT.profiles.items()},
        doc="CA profile (ca_bridge/profiles/*.toml) per request type and certificate (sign, enc)",
        example={"server": {"sign": "unit"}})
    max_csr_size: int = setting(_DEFAULT.max_csr_size, doc="largest PKCS#10 request accepted (bytes)", example=8192)
    check_org_code: bool = setting(_DEFAULT.check_org_code,
                                   doc="check the GB 11714 digit inside unified social credit codes")
    renewal_supersedes: bool = setting(_DEFAULT.renewal_supersedes,
                                       doc="换发 (renewal): revoke the renewed certificates (superseded) when the new "
                                           "ones are issued\n(re-key and 补发 always do)", example=False)

    @classmethod
    def process_entries(cls, values: dict, base) -> dict:
        """A table names only the request types it changes: merged over the defaults."""
        if "approvals" in values:
            values["approvals"] = {**_DEFAULT.approvals, **values["approvals"]}
        if "profiles" in values:
            given = values["profiles"]
            if not all(isinstance(v, Mapping) for v in given.values()):
                raise ConfigError("ra.profiles: a table per request type, e.g. { server = { sign = \"server\" } }")
            values["profiles"] = {k: {**v, **dict(given.get(k, {}))} for k, v in _DEFAULT.profiles.items()} \
                | {k: dict(v) for k, v in given.items() if k not in _DEFAULT.profiles}
        return values

    def __post_init__(self):
        self.policy()        # refuse what the workflow would refuse, at load time
        known = _profile_names()
        for kind, certs in self.profiles.items():
            for use, name in certs.items():
                if use not in ("sign", "enc") or not isinstance(name, str):
                    raise ConfigError(f"ra.profiles.{kind}: keys sign and enc, each a profile name")
                if name not in known:
                    raise ConfigError(f"ra.profiles.{kind}.{use}: no CA profile {name!r} "
                                      f"(known: {', '.join(sorted(known))})")
        if self.max_csr_size < 256:
            raise ConfigError("ra.max_csr_size: at least 256 bytes")

    def policy(self) -> Policy:
        """The workflow policy these settings make (ra.workflow.Policy)."""
        try:
            return Policy.from_mapping({"approvals": dict(self.approvals),
                                        "profiles": {k: dict(v) for k, v in self.profiles.items()},
                                        "max_csr_size": self.max_csr_size, "check_org_code": self.check_org_code,
                                        "renewal_supersedes": self.renewal_supersedes})
        except (ValidationError, TypeError, ValueError) as exc:
            raise ConfigError(f"[ra]: {exc}") from exc

