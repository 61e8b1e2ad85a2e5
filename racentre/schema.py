"""Which schema revision this code needs and whether a database is at it, without Alembic: the revision
graph is read from racentre/migrations/versions/*.py (each file's ``revision`` and ``down_revision``) and
the database's revision from Alembic's ``alembic_version`` table. Serving processes check the schema
through this module only, so none of them loads Alembic (~11 MiB of resident memory per worker; the
service's RSS is bounded); ``racentre.migrate`` changes the schema, with Alembic, and a test
holds this module's head equal to Alembic's."""
from __future__ import annotations

import functools
import re
from pathlib import Path

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from store.db import READ_ONLY
from pkicore.errors import ErrorCode, PkiError

MIGRATIONS = Path(__file__).with_name("migrations")
_REVISION = re.compile(r"^revision(?:\s*:\s*str)?\s*=\s*['\"]([0-9A-Za-z_]+)['\"]", re.M)
_DOWN = re.compile(r"^down_revision(?:\s*:[^=]*)?\s*=\s*(None|['\"][0-9A-Za-z_]+['\"]|\([^)]*\))", re.M)


class SchemaError(PkiError):
    """The database schema is not the one this code was written for."""

    code = ErrorCode.CONFIGURATION


@functools.lru_cache(maxsize=1)
def revisions() -> dict[str, tuple[str, ...]]:
    """revision -> its down revisions, from every migration file."""
    graph = {}
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        source = path.read_text(encoding="utf-8")
        rev, down = _REVISION.search(source), _DOWN.search(source)
        if rev is None or down is None:
            raise SchemaError(f"migration {path.name} names no revision / down_revision")
        graph[rev.group(1)] = tuple(re.findall(r"['\"]([0-9A-Za-z_]+)['\"]", down.group(1)))
    return graph


def head() -> str:
    """This code's schema revision (the one head of racentre/migrations)."""
    graph = revisions()
    heads = set(graph) - {down for downs in graph.values() for down in downs}
    if len(heads) != 1:
        raise SchemaError(f"racentre/migrations has {len(heads)} heads ({', '.join(sorted(heads))}), not one")
    return heads.pop()


def known(rev: str) -> bool:
    return rev in revisions()


def current(engine: Engine) -> tuple[str, ...]:
    """The revision(s) the database is at (empty: never upgraded)."""
    with engine.connect() as connection:
        connection.execution_options(**{READ_ONLY: True})     # SQLite: a deferred BEGIN, no writer lock
        if not inspect(connection).has_table("alembic_version"):
            return ()
        return tuple(row[0] for row in connection.execute(text("SELECT version_num FROM alembic_version")))


def require_current(engine: Engine) -> None:
    """Refuse (SchemaError, saying what to do) a database whose schema is not this code's head."""
    want = head()
    have = current(engine)
    if have == (want,):
        return
    if not have:
        raise SchemaError("the database has no racentre schema yet: run `racentre db upgrade` "
                          "(or `racentre setup` for a new site) first")
    if all(known(rev) for rev in have):
        raise SchemaError(f"the database schema ({', '.join(have)}) is older than this code ({want}): "
                          "run `racentre db upgrade` (once, from one node), then start the nodes again")
    raise SchemaError(f"the database schema ({', '.join(have)}) is newer than this code ({want}): another "
                      "node upgraded it; install the same racentre version on this node")
