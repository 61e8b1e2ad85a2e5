"""Schema management with Alembic (racentre/migrations/): bring a database to the current schema, and
refuse to run on any other.

``upgrade(engine)`` runs every pending revision in one transaction, one upgrader at a time (a
PostgreSQL advisory transaction lock; SQLite's BEGIN IMMEDIATE); it is the only code that changes the
schema, reached by ``racentre db upgrade`` (and ``racentre setup``, which creates a site). Every other
command and every serving process calls ``require_current(engine)`` first, which refuses a database
whose revision is not this code's head — older (run ``racentre db upgrade``), newer (this node's
software is older than the schema) or absent. ``differences(engine)`` reports any difference between
the models and the migrated schema (a test keeps them in step).
"""
from __future__ import annotations

import functools
import importlib

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.autogenerate import compare_metadata
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Engine

from store.db import Base, lock_key
from racentre.schema import MIGRATIONS, SchemaError, current, head, known, require_current  # noqa: F401 (API)

MODEL_MODULES = ("audit.trail", "store.generation", "access.auth", "ca_bridge.models", "ca_bridge.cmp.models",
                 "ra.models", "kms.models", "timestamp.models", "seal.models", "trust.models", "racentre.accounts", "racentre.console.models")


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


UPGRADE_LOCK = "schema-upgrade"



def _lock_for_upgrade(connection) -> None:
    """Serialise schema changes: on PostgreSQL an advisory lock held until this transaction ends (a second
    upgrader waits here, then finds the schema current and does nothing); SQLite's BEGIN IMMEDIATE
    (store.db) already admits one writer."""
    if connection.dialect.name == "postgresql":
        schema = connection.execute(text("select current_schema()")).scalar_one()
        connection.execute(text("select pg_advisory_xact_lock(:k)"), {"k": lock_key(schema, UPGRADE_LOCK)})


def upgrade(engine: Engine, revision: str = "head", *, key_manager=None) -> None:
    """``key_manager``: a callable returning the HSM key manager, for revisions that re-encrypt data
    (called only when one needs it, so an up-to-date schema never opens the HSM)."""
    with engine.begin() as connection:
        _lock_for_upgrade(connection)
        have = tuple(MigrationContext.configure(connection).get_current_heads())
        unknown = [rev for rev in have if not known(rev)]
        if unknown:
            raise SchemaError(f"the database schema ({', '.join(unknown)}) is newer than this code ({head()}): "
                              "another node upgraded it; install the same racentre version on this node")
        command.upgrade(_config(connection, key_manager), revision)


@functools.cache
def _scripts() -> ScriptDirectory:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg)


def alembic_head() -> str:
    """Alembic's own reading of the head (``racentre.schema.head`` must agree: a test holds them equal)."""
    return _scripts().get_current_head()


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
