"""API-token authentication for the hot paths that answer before Flask (``racentre.fastpath``):
the same decision as ``access.auth.authenticate`` without the ORM or a query per request.

``TokenTable`` holds every API token's row (SHA-256 of the token, principal, officer, roles, expiry,
disabled) in memory. Every change of the ``api_token`` table bumps the ``api_token`` generation row in
the same transaction (``access.auth``: create, disable/enable, expiry; store.generation), and the caller
hands ``principal`` the generation it read for this request — the trust fast path reads it in the one
statement that also reads the CAs' revocation counters — so a token disabled, expired or re-issued on
any node is seen by the very next request, never after a delay. The generation is read *before* the rows
are, so a change committing during a reload is seen at the next request. A token the table does not know
is None: the caller then hands the request to Flask, whose ``authenticate`` gives the answer (so a row
written without a bump can only be slower, never let a token in). Expiry is compared with the time now on
every call (an expiry is a point in time, not a change of the table).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import threading
from typing import Callable

from access.auth import TOKEN_GENERATION, Principal
from store.db import db_datetime

__all__ = ["TOKEN_GENERATION", "TOKEN_ROWS", "TokenTable"]
TOKEN_ROWS = "SELECT token_hash, name, officer, roles, expires_at, disabled FROM api_token"


class TokenTable:
    """The API tokens in memory, reloaded when the ``api_token`` generation moved. Thread-safe."""

    def __init__(self, rows: Callable[[], list[tuple]]):
        self._rows = rows                  # () -> rows of TOKEN_ROWS (a HotReader statement)
        self._loaded: int | None = None
        self._table: dict[str, tuple[str, frozenset[str], str, dt.datetime | None, bool]] = {}
        self._lock = threading.Lock()

    def _reload(self, generation: int) -> None:
        table = {}
        for token_hash, name, officer, roles, expires_at, disabled in self._rows():
            table[token_hash] = (officer or name, frozenset(roles.split(",")), name, db_datetime(expires_at),
                                 bool(disabled))
        self._table, self._loaded = table, generation

    def principal(self, token: str, generation: int) -> Principal | None:
        """The active principal of bearer ``token`` at table generation ``generation`` (read by the caller
        for this request, before this call), or None when the token is unknown, disabled or expired — the
        caller then lets ``access.auth`` answer (401)."""
        if generation != self._loaded:
            with self._lock:
                if generation != self._loaded:
                    self._reload(generation)
        row = self._table.get(hashlib.sha256(token.encode()).hexdigest())
        if row is None:
            return None
        person, roles, credential, expires_at, disabled = row
        if disabled or (expires_at is not None and expires_at <= dt.datetime.now(dt.timezone.utc)):
            return None
        return Principal(person, roles, credential=credential)
