"""Schema management: bring a database to the current schema.

Until the first Alembic revision lands (issue 3 integration), the schema is created from the models'
metadata; every package's models module is imported here so the metadata is complete.
"""
from __future__ import annotations

import importlib

from sqlalchemy.engine import Engine

from pkicore.db import Base

MODEL_MODULES = ("pkicore.audit", "racentre.auth", "ca_bridge.models", "ra.models", "kms.models")


def import_models() -> None:
    for name in MODEL_MODULES:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


def upgrade(engine: Engine) -> None:
    import_models()
    Base.metadata.create_all(engine)
