"""HSM settings ([hsm] and [softtoken] in racentre.toml, RACENTRE_HSM_* / RACENTRE_SOFTTOKEN_*)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pkicore.secret import Secret

SOFTTOKEN_LIBRARY = Path(__file__).with_name("softtoken") / "build" / "libracentre-softtoken.so"


@dataclass(frozen=True)
class SoftTokenConfig:
    dir: str | None = None            # token directory (RACENTRE_SOFTTOKEN_DIR)
    auto_init: bool = False           # initialise the token on first use (development and demo)
    so_pin: Secret | None = None      # only used by auto_init / `racentre hsm init-token`


@dataclass(frozen=True)
class HsmConfig:
    module: str = str(SOFTTOKEN_LIBRARY)
    token: str = "racentre"
    pin: Secret | None = None
    vendor: str = "auto"              # a profile in hsm/vendors/, a path to one, or "auto"
    pool_size: int = 4
    softtoken: SoftTokenConfig = SoftTokenConfig()

    @property
    def is_softtoken(self) -> bool:
        return Path(self.module).name == SOFTTOKEN_LIBRARY.name
