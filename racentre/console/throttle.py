"""Per-address login throttling, beside the per-account lock-out (racentre.accounts): at most
``throttle_failures`` failed password logins from one client address within ``throttle_window`` seconds,
whichever accounts they named; further attempts are answered 429 with Retry-After (RFC 6585 §4,
RFC 9110 §10.2.3) without running the password KDF.

A sliding window over ``console_login_failure`` rows (one per failure, insert-only, so every process and
worker counts the same failures without a shared lock); rows older than the window are deleted as new
failures arrive. Behind the trusted TLS proxy the client address is the last X-Forwarded-For entry (the
address the proxy saw); anyone else's X-Forwarded-For is ignored.
"""
from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from audit.trail import record
from store.db import as_utc, transaction, utcnow
from racentre.certauth import _from_trusted_proxy
from racentre.console.config import ConsoleConfig
from racentre.console.models import ConsoleLoginFailure


@dataclass(frozen=True)
class ThrottlePolicy:
    failures: int = 30
    window: dt.timedelta = dt.timedelta(minutes=5)

    @classmethod
    def from_config(cls, config: ConsoleConfig) -> "ThrottlePolicy":
        return cls(config.throttle_failures, dt.timedelta(seconds=config.throttle_window))


def client_address(remote_addr: str | None, headers, config: ConsoleConfig) -> str:
    """The address failures are counted against (at most 64 characters)."""
    remote = remote_addr or ""
    forwarded = headers.get("X-Forwarded-For", "")
    if forwarded and _from_trusted_proxy(remote, config):
        remote = forwarded.split(",")[-1].strip() or remote
    return remote[:64]


def retry_after(db: sessionmaker[Session], remote: str, policy: ThrottlePolicy,
                now: dt.datetime | None = None) -> int | None:
    """Seconds until ``remote`` may try again, or None when it is under the limit."""
    now = now or utcnow()
    with db() as session:
        recent = session.scalars(select(ConsoleLoginFailure.at).where(
            ConsoleLoginFailure.remote == remote, ConsoleLoginFailure.at > now - policy.window)
            .order_by(ConsoleLoginFailure.at.desc()).limit(policy.failures)).all()
    if len(recent) < policy.failures:
        return None
    # the oldest of the last ``failures`` failures must leave the window before one more is allowed
    return max(1, math.ceil((as_utc(recent[-1]) + policy.window - now).total_seconds()))


def note_failure(db: sessionmaker[Session], remote: str, policy: ThrottlePolicy,
                 now: dt.datetime | None = None) -> None:
    """Count one failed login from ``remote``; audit the failure that reaches the limit."""
    now = now or utcnow()
    with transaction(db) as session:
        session.execute(delete(ConsoleLoginFailure).where(ConsoleLoginFailure.at <= now - policy.window))
        session.add(ConsoleLoginFailure(remote=remote, at=now))
        session.flush()
        count = session.scalar(select(func.count()).select_from(ConsoleLoginFailure)
                               .where(ConsoleLoginFailure.remote == remote))
        if count == policy.failures:
            record(session, actor="-", role="officer", action="console.login_throttled", target_type="client_address",
                   target_id=remote or "-", failures=count, window=int(policy.window.total_seconds()))
