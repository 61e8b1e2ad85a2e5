"""Configuration sections as frozen dataclasses whose fields are the settings: one list of keys, types,
defaults and documentation per section (the model is pyHanko's ``ConfigurableMixin``,
pyhanko/config/api.py: keys checked against the dataclass fields, a ``process_entries`` hook per class).

A field made with ``setting(default, doc=...)`` is a key of its section; its annotation gives its kind:

=================  ==============================================================================
``str``, ``int``,  as TOML; from the environment, ``int("...")`` and yes/no/true/false/1/0/on/off
``bool``, ``float``
``Secret``         a secret: ``<key>_file = "path"`` in the file or ``RACENTRE_<S>_<KEY>_FILE`` reads it
``tuple[str, ...]``  a TOML array of strings, or one comma-separated string
``Mapping[...]``   a TOML table; from the environment, a TOML inline table (``{ server = 2 }``)
``timedelta``      seconds (an integer) or a string with a unit: ``"90s"``, ``"15m"``, ``"24h"``, ``"7d"``
=================  ==============================================================================

A field made with ``internal(...)`` (or plain ``field``/a default without ``setting``) is not settable
from configuration. ``racentre.config`` reads every section through ``Configurable.from_config`` and
renders the commented operator file (docs/racentre.example.toml) from the same fields.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from pkicore.errors import ErrorCode, PkiError
from pkicore.secret import Secret

KINDS = ("str", "int", "bool", "float", "secret", "list", "table", "duration")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


class ConfigError(PkiError):
    """A configuration file, environment variable or section value that cannot be used."""
    code = ErrorCode.CONFIGURATION


@dataclasses.dataclass(frozen=True)
class Setting:
    """One key of a section: its name, kind (``KINDS``), one-paragraph documentation, and an example
    value shown in the operator file instead of the default (e.g. a file name for a secret)."""

    name: str
    kind: str
    doc: str
    example: Any = None
    example_only: bool = False        # the default depends on the machine: show the example instead


def setting(default: Any = dataclasses.MISSING, *, doc: str, example: Any = None, example_only: bool = False,
            default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field that is a configuration key (see the module docstring). ``example``: a valid
    value other than the default, shown in the operator file when the default is empty (or always, with
    ``example_only``, when the default depends on the machine)."""
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={"setting": True, "doc": doc, "example": example, "example_only": example_only})


def internal(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
             compare: bool = True) -> Any:
    """A dataclass field that code sets and configuration cannot."""
    return dataclasses.field(default=default, default_factory=default_factory, compare=compare,
                             metadata={"setting": False})


def _kind(annotation) -> str:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"a setting's type must be one type or Optional of one, not {annotation}")
        return _kind(args[0])
    if annotation is Secret:
        return "secret"
    if annotation is bool:
        return "bool"
    if annotation in (int, str, float):
        return annotation.__name__
    if annotation is dt.timedelta:
        return "duration"
    if origin is tuple and typing.get_args(annotation)[1:] == (Ellipsis,):
        return "list"
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        return "table"
    raise TypeError(f"no configuration kind for {annotation}")


class Configurable:
    """Mixin for a frozen dataclass that is one ``[section]`` of racentre.toml."""

    SECTION: ClassVar[str] = ""
    DOC: ClassVar[str] = ""            # the section's comment in the operator file

    @classmethod
    def settings(cls) -> dict[str, Setting]:
        """The section's keys, in field order, with their kinds from the field annotations."""
        cached = cls.__dict__.get("_settings_cache")
        if cached is None:
            hints = typing.get_type_hints(cls)
            cached = {f.name: Setting(f.name, _kind(hints[f.name]), f.metadata["doc"], f.metadata.get("example"),
                                      f.metadata.get("example_only", False))
                      for f in dataclasses.fields(cls) if f.metadata.get("setting")}
            cls._settings_cache = cached
        return cached

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(cls):
            if f.metadata.get("setting"):
                out[f.name] = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        return out

    @classmethod
    def process_entries(cls, values: dict[str, Any], base: Path) -> dict[str, Any]:
        """Hook: turn the typed values of the section into constructor arguments (resolve file names
        against ``base``, the configuration file's directory; check what one value cannot say)."""
        return values

    @classmethod
    def from_config(cls, values: Mapping[str, Any], base: Path = Path("."), **extra):
        """An instance from the typed values of the section (``convert`` made them), plus ``extra``
        constructor arguments that are not settings; ConfigError for anything the class refuses."""
        unknown = set(values) - set(cls.settings())
        if unknown:
            raise ConfigError(f"unknown setting {cls.SECTION}.{sorted(unknown)[0]}")
        try:
            return cls(**cls.process_entries(dict(values), base), **extra)
        except ConfigError:
            raise
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"[{cls.SECTION}]: {exc}") from exc


def convert(section: str, item: Setting, value: Any, origin: str) -> Any:
    """A value from the file (TOML-typed) or the environment (a string) as ``item``'s kind; the error
    never echoes the value (it may be a secret)."""
    kind = item.kind
    try:
        if kind == "int":
            if isinstance(value, bool) or isinstance(value, float):
                raise ValueError("not an integer")
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError("not a number")
            return float(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in _TRUE:
                return True
            if isinstance(value, str) and value.lower() in _FALSE:
                return False
            raise ValueError("not a boolean")
        if kind == "secret":
            if not isinstance(value, str):
                raise ValueError("not a string")
            return Secret(value)
        if kind == "list":
            if isinstance(value, str):
                value = value.split(",")
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError("not a list of strings")
            return tuple(v.strip() for v in value if v.strip())
        if kind == "table":
            if isinstance(value, str):
                value = tomllib.loads(f"value = {value}")["value"]
            if not isinstance(value, dict):
                raise ValueError("not a table")
            return value
        if kind == "duration":
            return parse_duration(value)
        if isinstance(value, (dict, list, bool)):
            raise ValueError("not a string")
        return str(value)
    except (ValueError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"setting {section}.{item.name} from {origin} is not a valid {kind}") from exc


def parse_duration(value: Any) -> dt.timedelta:
    """Seconds (an integer) or ``"<n>s|m|h|d"``."""
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("not a duration")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a negative duration")
        return dt.timedelta(seconds=value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError("not a duration")
    return dt.timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


def format_duration(value: dt.timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def toml_value(value: Any) -> str:
    """``value`` written as TOML (for the operator file)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dt.timedelta):
        return json.dumps(format_duration(value))
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = [f"{k if _BARE_KEY.match(k) else json.dumps(k)} = {toml_value(v)}" for k, v in value.items()]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    return json.dumps(str(value), ensure_ascii=False)


class TrustListSection:
    """Mixin (before ``Configurable``) for a verifying section with a trust list (``[seal]``, ``[trust]``):
    its ``trust_anchor_files`` are resolved against the configuration file's folder and read on demand;
    ``CONFIG_ERROR`` is the section's error class."""

    CONFIG_ERROR: type[ConfigError] = ConfigError

    @classmethod
    def process_entries(cls, values: dict[str, Any], base: Path) -> dict[str, Any]:
        """File names resolved against ``base``."""
        if "trust_anchor_files" in values:
            values["trust_anchor_files"] = tuple(str(base / f) for f in values["trust_anchor_files"])
        return values

    def trust_list(self) -> tuple[bytes, ...]:
        """The configured trust anchors (DER), read now (a file that cannot be read is a configuration error)."""
        from pkicore.certificate import read_certificates
        out: list[bytes] = []
        for path in self.trust_anchor_files:
            try:
                out += read_certificates(path)
            except (OSError, ValueError) as exc:
                raise self.CONFIG_ERROR(f"{self.SECTION}.trust_anchor_files: cannot read a certificate from {path}") \
                    from exc
        return tuple(out)
