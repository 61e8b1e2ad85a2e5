"""The one configuration loader: racentre.toml plus RACENTRE_* environment overrides.

Every setting lives in a ``[section]`` of the TOML file and can be overridden by the environment
variable ``RACENTRE_<SECTION>_<KEY>`` (e.g. ``RACENTRE_HSM_PIN``, ``RACENTRE_DATABASE_URL``). A key
ending in ``_file`` in the file (``pin_file = "..."``) reads a secret from a file. Only this module
reads ``os.environ``. The CLI and the service call ``load_config`` and get the same frozen objects.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from hsm.config import HsmConfig, SoftTokenConfig
from kms.config import SCHEMA as KMC_SCHEMA, KmsConfig
from pkicore.errors import ErrorCode, PkiError
from pkicore.secret import Secret
from racentre.console.config import SCHEMA as CONSOLE_SCHEMA, ConsoleConfig
from seal.config import SCHEMA as SEAL_SCHEMA, SealConfig
from timestamp.config import SCHEMA as TSA_SCHEMA, TsaConfig
from trust.config import SCHEMA as TRUST_SCHEMA, TrustConfig

ENV_PREFIX = "RACENTRE_"
CONFIG_ENV = "RACENTRE_CONFIG"

# section -> key -> type; "secret" values become Secret and accept <key>_file.
SCHEMA: dict[str, dict[str, str]] = {
    "database": {"url": "str"},
    "hsm": {"module": "str", "token": "str", "pin": "secret", "vendor": "str", "pool_size": "int"},
    "softtoken": {"dir": "str", "auto_init": "bool", "so_pin": "secret"},
    "service": {"host": "str", "port": "int", "threads": "int", "workers": "int", "public_url": "str",
                "packages": "str", "kmc_retry_interval": "int", "schema_check_interval": "int"},
    "audit": {"node_id": "str", "key_label": "str", "checkpoint_interval": "int"},
    "tsa": TSA_SCHEMA,
    "console": CONSOLE_SCHEMA,
    "kmc": KMC_SCHEMA,
    "seal": SEAL_SCHEMA,
    "trust": TRUST_SCHEMA,
}


class ConfigError(PkiError):
    code = ErrorCode.CONFIGURATION


@dataclass(frozen=True)
class ServiceConfig:
    host: str = "127.0.0.1"
    port: int = 8600
    threads: int = 8
    workers: int = 1
    public_url: str = ""
    packages: str = ""        # comma-separated packages to serve ("" = all); a stand-alone KMC: "hsm,kms"
    kmc_retry_interval: int = 60   # seconds between sweeps of the CA's KMC outbox in racentre serve (0: cron only)
    schema_check_interval: int = 30   # seconds between checks that the schema is still this version's (0: off)


@dataclass(frozen=True)
class AuditConfig:
    """The audit trail (racentre.audit): this node's name in writer ids (default: the host name), the
    HSM label of the SM2 checkpoint key, and seconds between periodic checkpoints (0: cron only)."""
    node_id: str = ""
    key_label: str = "audit-signing"
    checkpoint_interval: int = 0


@dataclass(frozen=True)
class DatabaseConfig:
    url: str = "sqlite:///var/racentre.db"


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
    source: str | None = None


def _convert(section: str, key: str, kind: str, value, origin: str):
    try:
        if kind == "int":
            return int(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off", ""):
                return False
            raise ValueError("not a boolean")
        if kind == "secret":
            return Secret(str(value))
        return str(value)
    except ValueError as exc:
        # never echo the value: it may be a secret
        raise ConfigError(f"setting {section}.{key} from {origin} is not a valid {kind}") from exc


def _read_file(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file {path} not found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from exc


def load_config(path: str | os.PathLike | None = None, environ: dict[str, str] | None = None) -> Config:
    """Read the TOML file (``path``, else $RACENTRE_CONFIG, else ./racentre.toml if present) and
    apply ``RACENTRE_<SECTION>_<KEY>`` overrides."""
    env = os.environ if environ is None else environ
    if path is None:
        path = env.get(CONFIG_ENV) or ("racentre.toml" if Path("racentre.toml").is_file() else None)
    raw = _read_file(Path(path)) if path else {}
    base = Path(path).resolve().parent if path else Path.cwd()
    values: dict[str, dict] = {s: {} for s in SCHEMA}
    for section, content in raw.items():
        if section not in SCHEMA or not isinstance(content, dict):
            raise ConfigError(f"unknown configuration section [{section}]")
        for key, value in content.items():
            kind = SCHEMA[section].get(key)          # e.g. kmc.certificate_file: a plain path
            secret_file = kind is None and key.endswith("_file")
            if secret_file:
                kind = SCHEMA[section].get(key.removesuffix("_file"))
            if kind is None:
                raise ConfigError(f"unknown setting {section}.{key}")
            if secret_file:
                if kind != "secret":
                    raise ConfigError(f"{section}.{key}: only secrets can be read from a file")
                secret_path = base / value
                try:
                    value = secret_path.read_text(encoding="utf-8").strip()
                except OSError as exc:
                    raise ConfigError(f"cannot read {section}.{key} ({secret_path})") from exc
                key = key.removesuffix("_file")
            values[section][key] = _convert(section, key, kind, value, str(path))
    for section, keys in SCHEMA.items():
        for key, kind in keys.items():
            name = f"{ENV_PREFIX}{section.upper()}_{key.upper()}"
            if name in env:
                values[section][key] = _convert(section, key, kind, env[name], name)
            elif f"{name}_FILE" in env and kind == "secret":
                try:
                    text = Path(env[f"{name}_FILE"]).read_text(encoding="utf-8").strip()
                except OSError as exc:
                    raise ConfigError(f"cannot read the file named by {name}_FILE") from exc
                values[section][key] = Secret(text)
    softtoken = SoftTokenConfig(**values["softtoken"])
    if softtoken.dir and not Path(softtoken.dir).is_absolute():
        softtoken = SoftTokenConfig(**{**values["softtoken"], "dir": str(base / softtoken.dir)})
    hsm_values = dict(values["hsm"])
    if "module" in hsm_values and not Path(hsm_values["module"]).is_absolute() and "/" in hsm_values["module"]:
        hsm_values["module"] = str(base / hsm_values["module"])
    database = dict(values["database"])
    return Config(hsm=HsmConfig(**hsm_values, softtoken=softtoken),
                  database=DatabaseConfig(**database), service=ServiceConfig(**values["service"]),
                  tsa=TsaConfig.from_values(values["tsa"], base), audit=AuditConfig(**values["audit"]),
                  console=ConsoleConfig.from_values(values["console"]),
                  kmc=KmsConfig.from_values(values["kmc"], base),
                  seal=SealConfig.from_values(values["seal"], base),
                  trust=TrustConfig.from_values(values["trust"], base),
                  source=str(path) if path else None)
