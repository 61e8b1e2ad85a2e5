"""Persistent state of the CMP server, shared by every node through the database: one-time MAC secrets
an officer issued for a vetted subject (RFC 9483 §4.1.5, sealed by the HSM), every transaction
(RFC 4210 §5.1.1 transactionID, unique) and every sender nonce seen (replays refused, §5.1.1)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, DateTime, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.db import Base, utcnow


class CmpSecret(Base):
    """A one-time shared secret (senderKID ``reference``) for one enrolment of a vetted subject."""
    __tablename__ = "cmp_secret"

    reference: Mapped[str] = mapped_column(String(64), primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)           # the secret, sealed by the HSM (never in clear)
    profile: Mapped[str] = mapped_column(String(64))
    subject: Mapped[list] = mapped_column(JSON)                  # RDNs [[attr, value], ...], as vetted
    dns_names: Mapped[list] = mapped_column(JSON, default=list)
    ip_addresses: Mapped[list] = mapped_column(JSON, default=list)
    identity: Mapped[list] = mapped_column(JSON, default=list)   # GM/T 0015 identity extensions [[oid, value]]
    issued_by: Mapped[str] = mapped_column(String(128))
    approvals_required: Mapped[int] = mapped_column(Integer, default=0)   # officers still to approve (four-eyes)
    # the vetted, approved RA request the secret is bound to (its subject and profile are the request's;
    # the certificate is recorded on it), or None for a secret an officer issued for a subject directly
    ra_request_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    transaction_id: Mapped[str | None] = mapped_column(String(128), nullable=True)  # set when used: one-time


class CmpTransaction(Base):
    """One CMP transaction from its first request to pkiConf (or rejection)."""
    __tablename__ = "cmp_transaction"

    transaction_id: Mapped[str] = mapped_column(String(128), primary_key=True)   # hex
    kind: Mapped[str] = mapped_column(String(16))                # ir | cr | kur | p10cr | rr | genm
    sender: Mapped[str] = mapped_column(Text)                    # senderKID reference or certificate subject
    mode: Mapped[str] = mapped_column(String(16))                # mac | ra | end-entity
    state: Mapped[str] = mapped_column(String(16))               # waiting | issued | confirmed | rejected | done
    secret_reference: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cert_req_id: Mapped[int] = mapped_column(Integer, default=0)
    request: Mapped[dict | None] = mapped_column(JSON, nullable=True)    # the IssueRequest fields while waiting
    approvals: Mapped[list] = mapped_column(JSON, default=list)  # officers who approved a waiting request
    approvals_required: Mapped[int] = mapped_column(Integer, default=0)
    ca: Mapped[str | None] = mapped_column(String(64), nullable=True)
    serial: Mapped[str | None] = mapped_column(String(42), nullable=True)
    certificate: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)      # why it was rejected
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CmpNonce(Base):
    """A senderNonce seen once (hex); a second message with it is a replay."""
    __tablename__ = "cmp_nonce"

    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class CmpOutbox(Base):
    """``CmpCA``'s durable queue: one row per IssueRequest sent to the upstream CA, written (with its
    transactionID) before anything is sent, so a retry after a crash polls or re-asks that same
    transaction and a certificate is never asked for twice."""
    __tablename__ = "cmp_outbox"

    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    transaction_id: Mapped[str] = mapped_column(String(128), unique=True)          # hex
    state: Mapped[str] = mapped_column(String(16))      # new | sent | waiting | issued | failed (| done: an rr)
    # cr | p10cr, once sent; rr: a queued revocation (``CmpCA.queue_revocation``), request = ca, serial, reason
    kind: Mapped[str | None] = mapped_column(String(8), nullable=True)
    request: Mapped[dict] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    certificate: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    chain: Mapped[list] = mapped_column(JSON, default=list)                        # hex DER, issuer first
    # a key the upstream CA generated (central key generation): what the subscriber fetches (GM/T 0010
    # SignedAndEnvelopedData, or GB/T 35276 SM2EnvelopedKey; ``keypkg.from_encrypted_key``)
    key_envelope: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    serial: Mapped[str | None] = mapped_column(String(42), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="good")                 # good | revoked
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # a worker collecting the row holds it until then (another worker or node leaves it alone meanwhile)
    claimed_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
