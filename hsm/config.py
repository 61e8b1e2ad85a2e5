"""HSM settings: the ``[hsm]`` and ``[softtoken]`` sections of racentre.toml (RACENTRE_HSM_* /
RACENTRE_SOFTTOKEN_*), keys and types from the fields (pkicore.settings)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pkicore.secret import Secret
from pkicore.settings import ConfigError, Configurable, internal, setting

SOFTTOKEN_LIBRARY = Path(__file__).with_name("softtoken") / "build" / "libracentre-softtoken.so"
SOFTTOKEN_CONF = "softtoken.conf"      # the C token's own file in its directory (src/config.c)
# the C token's bounds (src/config.c st_config_load); values outside are ignored there, refused here
SOFTTOKEN_LIMITS = {"slots": (1, 64), "pbkdf2_iterations": (1, 100_000_000), "max_pin_failures": (1, 1000)}


@dataclass(frozen=True)
class SoftTokenConfig(Configurable):
    SECTION = "softtoken"
    DOC = ("The SM2 software token (hsm/softtoken), used when [hsm] module is its library: for development,\n"
           "CI and small sites. Its settings are written to softtoken.conf in its directory before it starts.")
    dir: str | None = setting(None, doc="token directory (relative: to this file); default $HOME/.racentre/softtoken",
                              example="softtoken")
    auto_init: bool = setting(False, doc="initialise the token on first use (development and demo only)")
    so_pin: Secret | None = setting(None, doc="security officer PIN: used only by auto_init and "
                                              "`racentre hsm init-token`", example="so.pin")
    slots: int | None = setting(None, doc="number of slots (1..64); unset: the token's default, 2", example=2)
    pbkdf2_iterations: int | None = setting(
        None, doc="PBKDF2-HMAC-SHA256 iterations protecting the token master key under each PIN (new PINs);\n"
                  "unset: the token's default, 200000", example=200000)
    max_pin_failures: int | None = setting(None, doc="wrong PINs before the PIN locks; unset: the token's "
                                                     "default, 10", example=10)

    @classmethod
    def process_entries(cls, values: dict, base: Path) -> dict:
        """A relative token directory is relative to the configuration file."""
        if values.get("dir") and not Path(values["dir"]).is_absolute():
            values["dir"] = str(base / values["dir"])
        return values

    def __post_init__(self):
        for key, (low, high) in SOFTTOKEN_LIMITS.items():
            value = getattr(self, key)
            if value is not None and not low <= value <= high:
                raise ConfigError(f"softtoken.{key} must be from {low} to {high}")

    def token_conf(self) -> str | None:
        """The text of the C token's softtoken.conf for the keys set here (None: none is set)."""
        lines = [f"{key} = {getattr(self, key)}" for key in SOFTTOKEN_LIMITS if getattr(self, key) is not None]
        if not lines:
            return None
        return "# written by racentre from [softtoken] in racentre.toml; edit that instead\n" + "\n".join(lines) + "\n"


@dataclass(frozen=True)
class HsmConfig(Configurable):
    SECTION = "hsm"
    DOC = "The PKCS#11 module and token holding every private key of the centre."
    module: str = setting(str(SOFTTOKEN_LIBRARY),
                          doc="PKCS#11 library (a path; relative: to this file); default: the software token built\n"
                              "in hsm/softtoken/build/", example="/usr/lib/softhsm/libsofthsm2.so", example_only=True)
    token: str = setting("racentre", doc="token label")
    pin: Secret | None = setting(None, doc="user PIN (pin_file reads it from a file)", example="user.pin")
    vendor: str = setting("auto", doc='a profile in hsm/vendors/, a path to one, or "auto" (by manufacturer ID)')
    pool_size: int = setting(4, doc="PKCS#11 sessions kept open per process")
    softtoken: SoftTokenConfig = internal(SoftTokenConfig())    # the [softtoken] section

    @classmethod
    def process_entries(cls, values: dict, base: Path) -> dict:
        """A module named by a relative path (with a "/") is relative to the configuration file; a bare
        file name is left to the dynamic loader."""
        module = values.get("module")
        if module and not Path(module).is_absolute() and "/" in module:
            values["module"] = str(base / module)
        return values

    @property
    def is_softtoken(self) -> bool:
        return Path(self.module).name == SOFTTOKEN_LIBRARY.name
