"""The one configuration loader: racentre.toml plus RACENTRE_* environment overrides.

Every section is a frozen dataclass whose fields are its keys (``pkicore.settings``: kinds from the
annotations, documentation in the fields); ``SECTIONS`` lists them. A key can be overridden by the
environment variable ``RACENTRE_<SECTION>_<KEY>`` (e.g. ``RACENTRE_HSM_PIN``, ``RACENTRE_DATABASE_URL``,
``RACENTRE_RA_APPROVALS='{ server = 2 }'``). A secret key reads a file with ``<key>_file = "..."`` in the
file or ``RACENTRE_<SECTION>_<KEY>_FILE``. Only this module reads ``os.environ``. The CLI and the service
call ``load_config`` and get the same frozen objects. ``example_file()`` renders the commented operator
file (docs/racentre.example.toml) from the same fields.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ca_bridge.config import CaConfig
from hsm.config import HsmConfig, SoftTokenConfig
from kms.config import KmsConfig
from pkicore.secret import Secret
from pkicore.settings import ConfigError, Configurable, convert, setting, toml_value
from ra.config import RaConfig
from racentre.console.config import ConsoleConfig
from seal.config import SealConfig
from timestamp.config import TsaConfig
from trust.config import TrustConfig

ENV_PREFIX = "RACENTRE_"
CONFIG_ENV = "RACENTRE_CONFIG"

__all__ = ["Config", "ConfigError", "load_config", "SECTIONS", "SCHEMA", "example_file", "env_name",
           "ServiceConfig", "AuditConfig", "DatabaseConfig"]


@dataclass(frozen=True)
class ServiceConfig(Configurable):
    SECTION = "service"
    DOC = "racentre serve: where it listens, how many workers, the address relying parties use."
    host: str = setting("127.0.0.1", doc="listening address")
    port: int = setting(8600, doc="listening port")
    threads: int = setting(8, doc="threads per worker process")
    workers: int = setting(1, doc="worker processes")
    public_url: str = setting("", doc="the address relying parties reach the site at, put in every certificate's "
                                      "CRL DP and AIA;\nrequired to issue (the load balancer's URL on every node)",
                              example="https://pki.example.gov.cn")
    packages: str = setting("", doc='comma-separated packages to serve ("" = all); a stand-alone KMC: "hsm,kms"',
                            example="hsm,kms")
    kmc_retry_interval: int = setting(60, doc="seconds between sweeps of the CA's KMC outbox in racentre serve "
                                              "(0: cron only)")
    cmp_sweep_interval: int = setting(60, doc='seconds between sweeps of RA requests awaiting the upstream CA '
                                              '([ca] backend = "cmp") in racentre serve (0: cron only, '
                                              'racentre ca cmp-sweep)')
    schema_check_interval: int = setting(30, doc="seconds between checks that the schema is still this "
                                                 "version's (0: off)")
    header_timeout: int = setting(10, doc="--workers N: seconds a request's header block may take to arrive "
                                          "(racentre.httpgate; else 408)")
    request_timeout: int = setting(60, doc="--workers N: seconds a whole request may take to arrive (else 408)")
    io_timeout: int = setting(30, doc="--workers N: seconds a worker thread's socket read or write may block")


@dataclass(frozen=True)
class AuditConfig(Configurable):
    """The audit trail (racentre.audit): writer names, and checkpoints signed by the HSM audit key, anchored
    outside the database (README "Audit trail and insiders")."""
    SECTION = "audit"
    DOC = ("The audit trail: writer names and signed checkpoints (racentre.audit), anchored outside the database:\n"
           "each checkpoint's number and hash in the HSM, a token of our TSA, a copy in an append-only sink.")
    node_id: str = setting("", doc="this node's name in writer ids (default: the host name)", example="node-a")
    key_label: str = setting("audit-signing", doc="HSM label of the SM2 checkpoint key")
    checkpoint_interval: int = setting(60, doc="racentre serve signs a checkpoint when the chains moved and this many "
                                               "seconds passed ...")
    checkpoint_rows: int = setting(10_000, doc="... or this many rows were written (both 0: cron only, "
                                               "`racentre audit checkpoint`)")
    anchor: bool = setting(True, doc="keep each checkpoint's number and hash in the HSM (a token data object named "
                                     "by the site identity),\nso deleting checkpoints or the tail of the trail is "
                                     "seen; off only for a token that cannot keep data objects")
    timestamp: bool = setting(True, doc="an RFC 3161 token of the site's own TSA with each checkpoint")
    sink_file: str = setting("", doc="each checkpoint also appended as a JSON line to this file: put it on another "
                                     "host (a remote-logging mount)", example="/mnt/loghost/racentre-audit.jsonl")
    sink_syslog: bool = setting(False, doc="each checkpoint also to syslog (facility authpriv, tag racentre-audit)")
    site_id: str = setting("", doc="the site identity `racentre setup` printed: `racentre audit verify` then "
                                   "refuses a database that names another one", example="e275cddb1120de46dff6064c811f2bca")

    @classmethod
    def process_entries(cls, values: dict, base: Path) -> dict:
        sink = values.get("sink_file")
        if sink and not Path(sink).is_absolute():
            values["sink_file"] = str(base / sink)
        return values


@dataclass(frozen=True)
class DatabaseConfig(Configurable):
    SECTION = "database"
    DOC = "The database (SQLAlchemy URL): SQLite for one node, PostgreSQL for several."
    url: str = setting("sqlite:///var/racentre.db", doc="SQLAlchemy URL",
                       example="postgresql+psycopg://racentre@db.example/racentre")


# section name -> dataclass, in the order of the operator file; [softtoken] goes into HsmConfig.softtoken
SECTIONS: dict[str, type[Configurable]] = {
    "database": DatabaseConfig, "hsm": HsmConfig, "softtoken": SoftTokenConfig, "service": ServiceConfig,
    "audit": AuditConfig, "ca": CaConfig, "ra": RaConfig, "tsa": TsaConfig, "kmc": KmsConfig,
    "seal": SealConfig, "trust": TrustConfig, "console": ConsoleConfig,
}
assert all(cls.SECTION == name for name, cls in SECTIONS.items())

# section -> key -> kind (pkicore.settings.KINDS), derived from the dataclasses
SCHEMA: dict[str, dict[str, str]] = {name: {k: s.kind for k, s in cls.settings().items()}
                                     for name, cls in SECTIONS.items()}


@dataclass(frozen=True)
class Config:
    hsm: HsmConfig = field(default_factory=HsmConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    service: ServiceConfig = field(default_factory=ServiceConfig)
    tsa: TsaConfig = field(default_factory=TsaConfig)
    audit: AuditConfig = field(default_factory=AuditConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    kmc: KmsConfig = field(default_factory=KmsConfig)
    seal: SealConfig = field(default_factory=SealConfig)
    trust: TrustConfig = field(default_factory=TrustConfig)
    ca: CaConfig = field(default_factory=CaConfig)
    ra: RaConfig = field(default_factory=RaConfig)
    source: str | None = None


def _read_file(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file {path} not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from exc


def _read_secret(path: Path, what: str) -> Secret:
    try:
        return Secret(path.read_text(encoding="utf-8").strip())
    except OSError as exc:
        raise ConfigError(f"cannot read {what}") from exc


def env_name(section: str, key: str) -> str:
    """The environment variable overriding ``[section] key``."""
    return f"{ENV_PREFIX}{section.upper()}_{key.upper()}"


DEMO_CONFIG = Path("var") / "demo" / "racentre.toml"     # what scripts/demo.sh writes, from the repository root


def locate_config(path: str | os.PathLike | None = None, environ: dict[str, str] | None = None, *,
                  demo: bool = False) -> tuple[str | None, str]:
    """Which configuration file applies, and how it was found: ``path`` ("--config"), else
    $RACENTRE_CONFIG, else ./racentre.toml, else (``demo``: the operator CLI run from the repository root)
    the demo's ``var/demo/racentre.toml``; (None, "defaults") when there is none."""
    env = os.environ if environ is None else environ
    if path is not None:
        return str(path), "--config"
    if env.get(CONFIG_ENV):
        return env[CONFIG_ENV], f"${CONFIG_ENV}"
    if Path("racentre.toml").is_file():
        return "racentre.toml", "./racentre.toml"
    if env.get(f"{ENV_PREFIX}DATABASE_URL"):
        return None, "environment"
    if demo and DEMO_CONFIG.is_file():
        return str(DEMO_CONFIG.resolve()), "the demo's configuration (scripts/demo.sh)"
    return None, "defaults"


def load_config(path: str | os.PathLike | None = None, environ: dict[str, str] | None = None) -> Config:
    """Read the TOML file (``path``, else $RACENTRE_CONFIG, else ./racentre.toml if present) and
    apply ``RACENTRE_<SECTION>_<KEY>`` overrides."""
    env = os.environ if environ is None else environ
    if path is None:
        path, _ = locate_config(None, env)
    raw = _read_file(Path(path)) if path else {}
    base = Path(path).resolve().parent if path else Path.cwd()
    values: dict[str, dict] = {s: {} for s in SECTIONS}
    for section, content in raw.items():
        if section not in SECTIONS or not isinstance(content, dict):
            raise ConfigError(f"unknown configuration section [{section}]")
        settings = SECTIONS[section].settings()
        for key, value in content.items():
            item = settings.get(key)          # e.g. kmc.certificate_file: a plain path
            if item is None and key.endswith("_file"):
                secret = settings.get(key.removesuffix("_file"))
                if secret is None:
                    raise ConfigError(f"unknown setting {section}.{key}")
                if secret.kind != "secret":
                    raise ConfigError(f"{section}.{key}: only secrets can be read from a file")
                values[section][secret.name] = _read_secret(base / str(value),
                                                            f"{section}.{key} ({base / str(value)})")
                continue
            if item is None:
                raise ConfigError(f"unknown setting {section}.{key}")
            values[section][key] = convert(section, item, value, str(path))
    for section, cls in SECTIONS.items():
        for key, item in cls.settings().items():
            name = env_name(section, key)
            if name in env:
                values[section][key] = convert(section, item, env[name], name)
            elif item.kind == "secret" and f"{name}_FILE" in env:
                values[section][key] = _read_secret(Path(env[f"{name}_FILE"]), f"the file named by {name}_FILE")
    sections = {name: cls.from_config(values[name], base) for name, cls in SECTIONS.items()
                if name not in ("hsm", "softtoken", "kmc")}
    ca = sections["ca"]
    kmc_subject = ca.subject(ca.name("service_name", service="KMC"))
    softtoken = SoftTokenConfig.from_config(values["softtoken"], base)
    return Config(hsm=HsmConfig.from_config(values["hsm"], base, softtoken=softtoken),
                  kmc=KmsConfig.from_config(values["kmc"], base, kmc_subject=kmc_subject),
                  source=str(path) if path else None, **sections)


# ------------------------------------------------------------------------------ the operator file

EXAMPLE_HEADER = """\
# racentre.toml: every setting of the RA centre, with its default (commented out) and what it does.
# Generated from the configuration dataclasses by `racentre config example` (racentre.config.example_file);
# tests/unit/test_config_schema.py fails when this file and the code disagree.
#
# Uncomment what you change. Every key can also be set by the environment: RACENTRE_<SECTION>_<KEY>
# (e.g. RACENTRE_HSM_PIN, RACENTRE_RA_APPROVALS='{ server = 2 }'). A secret (a PIN) is read from a file
# with <key>_file = "path" here, or RACENTRE_<SECTION>_<KEY>_FILE; never write it into this file.
# Relative paths are relative to this file. Durations: seconds, or "90s", "15m", "24h", "7d".
"""


def _example_lines(section: str, cls: type[Configurable]) -> list[str]:
    lines = [""] + [f"# {line}".rstrip() for line in cls.DOC.splitlines()] + [f"[{section}]"]
    defaults = cls.defaults()
    for key, item in cls.settings().items():
        doc = item.doc.splitlines()
        default = defaults[key]
        if item.kind == "secret":
            lines += [f"# {doc[0]}"] + [f"#   {d}" for d in doc[1:]]
            lines.append(f"# {key}_file = {toml_value(item.example or key + '.txt')}")
            lines.append("")
            continue
        unset = default in (None, "", ()) or item.example_only
        shown = item.example if unset else default
        if unset:
            doc = doc + ["(for example)" if item.example_only else "(default: unset; for example)"]
        lines += [f"# {doc[0]}"] + [f"#   {d}" for d in doc[1:]]
        lines.append(f"# {key} = {toml_value(shown)}" if shown is not None else f"# {key} =")
        lines.append("")
    return lines[:-1]


def example_file() -> str:
    """The commented operator file: every section and key with its documentation and default."""
    lines = EXAMPLE_HEADER.splitlines()
    for section, cls in SECTIONS.items():
        lines += _example_lines(section, cls)
    return "\n".join(lines) + "\n"

