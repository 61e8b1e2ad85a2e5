"""Officer accounts: roles, password (scrypt, ``racentre.passwords``) + TOTP (RFC 6238, ``racentre.totp``),
an optional client certificate bound by its SHA-256 fingerprint, and lock-out after repeated failures
within a time window. Every login, failure, lock-out and account change is audited (audit.trail).

TOTP keys are stored sealed (``racentre.secretbox``: SM4-CBC + SM4-CMAC under two SM4 keys in the HSM,
``TOTP_ENC_KEY`` and ``TOTP_MAC_KEY``), bound to the account's name; a sealed key that fails its
integrity check fails the login (and says so in the audit row), it is never used.

Failure messages are the same whatever went wrong (unknown name, wrong password, wrong code, locked,
disabled), so the login form tells an attacker nothing; the audit row says which.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
from dataclasses import dataclass

from sqlalchemy import BigInteger, Boolean, DateTime, Integer, LargeBinary, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from access.auth import ROLES, AuthError, Principal
from audit.trail import record
from store.db import Base, as_utc, transaction, utcnow
from pkicore.errors import ErrorCode, PkiError
from racentre import passwords, totp
from racentre.secretbox import SecretBox, SecretBoxError

log = logging.getLogger(__name__)

TARGET = "officer_account"
LOGIN_FAILED = "login failed: check the name, the password and the one-time code"
TOTP_ENC_KEY = "racentre-console-totp-enc"      # HSM SM4 key labels (made on first use)
TOTP_MAC_KEY = "racentre-console-totp-mac"


class AccountError(PkiError):
    code = ErrorCode.BAD_REQUEST


class LoginFailed(AuthError):
    def __init__(self):
        super().__init__(LOGIN_FAILED)


class OfficerAccount(Base):
    __tablename__ = "officer_account"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    roles: Mapped[str] = mapped_column(String(256))                       # comma-separated access.auth.ROLES
    password_hash: Mapped[str | None] = mapped_column(String(256), nullable=True)
    totp_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)  # racentre.secretbox
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    cert_fingerprint: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)  # SHA-256 hex
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_count: Mapped[int] = mapped_column(Integer, default=0)
    failed_since: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))

    def principal(self, via: str) -> Principal:
        return Principal(self.name, frozenset(self.roles.split(",")), via=via, credential=self.name)

    def as_dict(self) -> dict:
        locked = self.locked_until is not None and as_utc(self.locked_until) > utcnow()
        return {"name": self.name, "display_name": self.display_name, "roles": self.roles.split(","),
                "password": self.password_hash is not None, "totp": self.totp_secret_sealed is not None,
                "certificate": self.cert_fingerprint, "disabled": self.disabled, "locked": locked,
                "last_login_at": as_utc(self.last_login_at).isoformat() if self.last_login_at else None}


@dataclass(frozen=True)
class LockoutPolicy:
    failures: int = 5
    window: dt.timedelta = dt.timedelta(minutes=15)
    duration: dt.timedelta = dt.timedelta(minutes=15)


def fingerprint(cert_der: bytes) -> str:
    return hashlib.sha256(cert_der).hexdigest()


def totp_box(key_manager) -> SecretBox:
    """The box the officers' TOTP keys are sealed in (the app's or the CLI's key manager)."""
    return SecretBox(key_manager, TOTP_ENC_KEY, TOTP_MAC_KEY)


def totp_context(name: str) -> bytes:
    """What a sealed TOTP key is bound to: its account (a box copied to another row does not open)."""
    return b"officer_account:" + name.encode("utf-8")


def _new_totp(box: SecretBox, name: str) -> tuple[str, bytes]:
    """A fresh TOTP key: (base32 to show once, sealed blob to store)."""
    secret = totp.new_secret()
    return secret, box.seal(totp.secret_bytes(secret), totp_context(name))


def _roles(roles) -> str:
    roles = sorted(set(roles))
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise AccountError(f"unknown roles: {', '.join(sorted(unknown)) or '(none given)'}; known: {', '.join(ROLES)}")
    return ",".join(roles)


def _get(session: Session, name: str, *, lock: bool = False) -> OfficerAccount:
    query = select(OfficerAccount).where(OfficerAccount.name == name)
    row = session.scalar(query.with_for_update() if lock else query)
    if row is None:
        raise AccountError(f"no officer account {name!r}", code=ErrorCode.NOT_FOUND)
    return row


def add_account(session: Session, *, name: str, roles, actor: str, box: SecretBox, display_name: str | None = None,
                password: str | None = None, cert_der: bytes | None = None) -> tuple[OfficerAccount, str | None]:
    """Create an account; returns (account, TOTP secret or None). A password always comes with TOTP."""
    if not name or len(name) > 128 or not name.isprintable() or name != name.strip():
        raise AccountError("an account name is 1..128 printable characters")
    if session.scalar(select(OfficerAccount).where(OfficerAccount.name == name)) is not None:
        raise AccountError(f"officer account {name!r} exists", code=ErrorCode.CONFLICT)
    if password is None and cert_der is None:
        raise AccountError("an account logs in by password + TOTP, by client certificate, or both")
    try:
        password_hash = passwords.hash_password(password, (name, display_name or "")) \
            if password is not None else None
    except passwords.WeakPassword as exc:
        raise AccountError(str(exc)) from exc
    secret, sealed = _new_totp(box, name) if password is not None else (None, None)
    row = OfficerAccount(name=name, display_name=display_name or name, roles=_roles(roles),
                         password_hash=password_hash, totp_secret_sealed=sealed,
                         cert_fingerprint=fingerprint(cert_der) if cert_der else None, created_by=actor,
                         failed_count=0, disabled=False)
    session.add(row)
    session.flush()
    record(session, actor=actor, role="ra_admin", action="console.account.add", target_type=TARGET, target_id=name,
           roles=row.roles.split(","), password=password is not None, certificate=row.cert_fingerprint)
    return row, secret


def list_accounts(session: Session) -> list[dict]:
    return [a.as_dict() for a in session.scalars(select(OfficerAccount).order_by(OfficerAccount.name))]


def set_disabled(session: Session, name: str, disabled: bool, *, actor: str) -> OfficerAccount:
    row = _get(session, name, lock=True)
    row.disabled = disabled
    record(session, actor=actor, role="ra_admin", action="console.account." + ("disable" if disabled else "enable"),
           target_type=TARGET, target_id=name)
    return row


def reset_totp(session: Session, name: str, *, actor: str, box: SecretBox) -> str:
    """A new TOTP secret (the old one stops working at once); returns it to be shown once."""
    row = _get(session, name, lock=True)
    secret, row.totp_secret_sealed = _new_totp(box, name)
    row.totp_last_step = None
    record(session, actor=actor, role="ra_admin", action="console.account.reset_totp", target_type=TARGET,
           target_id=name)
    return secret


def set_password(session: Session, name: str, password: str, *, actor: str, box: SecretBox) -> str | None:
    """Set the password (and clear a lock-out); an account without TOTP gets a key, returned to be shown once."""
    row = _get(session, name, lock=True)
    try:
        row.password_hash = passwords.hash_password(password, (name, row.display_name or ""))
    except passwords.WeakPassword as exc:
        raise AccountError(str(exc)) from exc
    secret = None
    if row.totp_secret_sealed is None:
        secret, row.totp_secret_sealed = _new_totp(box, name)
        row.totp_last_step = None
    row.failed_count, row.failed_since, row.locked_until = 0, None, None
    record(session, actor=actor, role="ra_admin", action="console.account.set_password", target_type=TARGET,
           target_id=name)
    return secret


def bind_certificate(session: Session, name: str, cert_der: bytes | None, *, actor: str) -> None:
    row = _get(session, name, lock=True)
    row.cert_fingerprint = fingerprint(cert_der) if cert_der else None
    record(session, actor=actor, role="ra_admin", action="console.account.bind_certificate", target_type=TARGET,
           target_id=name, certificate=row.cert_fingerprint)


# ------------------------------------------------------------------------------------------------ logins

def _locked(row: OfficerAccount, now: dt.datetime) -> bool:
    return row.locked_until is not None and as_utc(row.locked_until) > now


def _fail(session: Session, row: OfficerAccount, why: str, policy: LockoutPolicy, now: dt.datetime, remote: str) -> None:
    if row.failed_since is None or now - as_utc(row.failed_since) > policy.window:
        row.failed_count, row.failed_since = 0, now
    row.failed_count += 1
    record(session, actor=row.name, role="officer", action="console.login_failed", target_type=TARGET,
           target_id=row.name, why=why, failures=row.failed_count, remote=remote)
    if row.failed_count >= policy.failures:
        row.locked_until = now + policy.duration
        row.failed_count, row.failed_since = 0, None
        record(session, actor=row.name, role="officer", action="console.account_locked", target_type=TARGET,
               target_id=row.name, until=row.locked_until.isoformat(), remote=remote)


def password_login(db: sessionmaker[Session], name: str, password: str, code: str, *, box: SecretBox,
                   policy: LockoutPolicy = LockoutPolicy(), remote: str = "", now: dt.datetime | None = None) -> Principal:
    """Check password + TOTP; the failure count and audit rows are committed before LoginFailed is raised.

    The KDF runs outside the transaction (SQLite writers would otherwise wait for it); the outcome is
    then recorded under a row lock, re-checking the lock-out state."""
    now = now or utcnow()
    name = (name or "")[:128]
    with db() as session:
        stored = session.scalar(select(OfficerAccount.password_hash).where(OfficerAccount.name == name))
    password_ok = passwords.verify_password(password or "", stored)
    principal = None
    with transaction(db) as session:
        row = session.scalar(select(OfficerAccount).where(OfficerAccount.name == name).with_for_update())
        if row is None:
            record(session, actor=name or "-", role="officer", action="console.login_failed",
                   target_type=TARGET, target_id=name or "-", why="unknown account", remote=remote)
        elif _locked(row, now):
            record(session, actor=row.name, role="officer", action="console.login_failed", target_type=TARGET,
                   target_id=row.name, why="locked", remote=remote)
        elif row.disabled or row.totp_secret_sealed is None:
            _fail(session, row, "disabled" if row.disabled else "no password login", policy, now, remote)
        elif not password_ok or row.password_hash != stored:
            _fail(session, row, "password", policy, now, remote)
        elif (key := _open_totp(box, row)) is None:
            _fail(session, row, "sealed TOTP key failed its integrity check", policy, now, remote)
        else:
            step = totp.verify(key, code, now.timestamp())
            if step is None or (row.totp_last_step is not None and step <= row.totp_last_step):
                _fail(session, row, "totp" if step is None else "totp replayed", policy, now, remote)
            else:
                row.totp_last_step, row.last_login_at = step, now
                row.failed_count, row.failed_since, row.locked_until = 0, None, None
                record(session, actor=row.name, role="officer", action="console.login", target_type=TARGET,
                       target_id=row.name, method="password+totp", remote=remote)
                principal = row.principal("password")
    if principal is None:
        raise LoginFailed()
    return principal


def _open_totp(box: SecretBox, row: OfficerAccount) -> bytes | None:
    try:
        return box.open(row.totp_secret_sealed, totp_context(row.name))
    except SecretBoxError:
        log.error("the sealed TOTP key of officer account %r failed its integrity check", row.name)
        return None


def certificate_account(db: sessionmaker[Session], cert_der: bytes, *, audit_login: bool, remote: str = "") -> Principal:
    """The account bound to a (verified) client certificate; ``audit_login``: record a console login."""
    fp = fingerprint(cert_der)
    with transaction(db) as session:
        row = session.scalar(select(OfficerAccount).where(OfficerAccount.cert_fingerprint == fp))
        ok = row is not None and not row.disabled and not _locked(row, utcnow())
        if audit_login:
            record(session, actor=row.name if row else "-", role="officer",
                   action="console.login" if ok else "console.login_failed", target_type=TARGET,
                   target_id=row.name if row else fp, method="client-certificate", remote=remote,
                   **({} if ok else {"why": "no enabled account for this certificate"}))
            if ok:
                row.last_login_at = utcnow()
        principal = row.principal("certificate") if ok else None
    if principal is None:
        raise AuthError("no enabled account is bound to this client certificate")
    return principal


def enabled_principal(db: sessionmaker[Session], name: str, via: str) -> Principal | None:
    """The current roles of an enabled account (sessions re-read them on every request)."""
    with db() as session:
        row = session.scalar(select(OfficerAccount).where(OfficerAccount.name == name))
        if row is None or row.disabled:
            return None
        return row.principal(via)
