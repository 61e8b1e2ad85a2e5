"""Schema management with Alembic (racentre/migrations/): bring a database to the current schema.

``upgrade(engine)`` runs every pending revision in one transaction; ``check(engine)`` reports any
difference between the models and the migrated schema (a test keeps them in step).
"""
from __future__ import annotations

import importlib
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.autogenerate import compare_metadata
from sqlalchemy.engine import Engine

from pkicore.db import Base

MIGRATIONS = Path(__file__).with_name("migrations")
MODEL_MODULES = ("pkicore.audit", "pkicore.generation", "racentre.auth", "ca_bridge.models", "ra.models", "kms.models",
                 "timestamp.models", "seal.models", "racentre.accounts", "racentre.console.models")


def import_models() -> None:
    for name in MODEL_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


def _config(connection, key_manager=None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    cfg.attributes["key_manager"] = key_manager
    return cfg


def upgrade(engine: Engine, revision: str = "head", *, key_manager=None) -> None:
    """``key_manager``: a callable returning the HSM key manager, for revisions that re-encrypt data
    (called only when one needs it, so an up-to-date schema never opens the HSM)."""
    with engine.begin() as connection:
        command.upgrade(_config(connection, key_manager), revision)


def downgrade(engine: Engine, revision: str, *, key_manager=None) -> None:
    with engine.begin() as connection:
        command.downgrade(_config(connection, key_manager), revision)


def revision(engine: Engine, message: str) -> None:
    """Developer tool: autogenerate a new revision from the models (``racentre db revision``)."""
    with engine.begin() as connection:
        command.revision(_config(connection), message=message, autogenerate=True)


def differences(engine: Engine) -> list:
    import_models()
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), Base.metadata)
