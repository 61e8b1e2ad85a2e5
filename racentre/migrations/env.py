"""Alembic environment: runs against the connection handed in by racentre.migrate (never a URL here)."""
from __future__ import annotations

from alembic import context

from store.db import Base
from racentre.migrate import import_models

import_models()
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = context.config.attributes["connection"]
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=connection.dialect.name == "sqlite", compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run `racentre db upgrade`")
run_migrations_online()
