"""racentre: the application shell of the RA centre - configuration, CLI, web app factory, demo.

``Config``, ``ConfigError`` and ``load_config`` (``racentre.config``) are loaded on first use: importing a
submodule (``racentre.arbiter``, which runs gunicorn's arbiter and needs none of the service) never loads
the configuration's dependencies (SQLAlchemy, the packages' settings)."""
from __future__ import annotations

__all__ = ["Config", "ConfigError", "load_config"]


def __getattr__(name: str):
    if name in __all__:
        from racentre import config
        return getattr(config, name)
    raise AttributeError(f"module 'racentre' has no attribute {name!r}")
