"""RA tables (SQLAlchemy 2.x, SQLite and PostgreSQL): vetted subjects (units, civil servants, servers),
certificate requests with their approvals, and the certificates the CA issued for them.

``CertRequest.version`` is an optimistic-locking column (SQLAlchemy ``version_id_col``); the workflow
also locks the request row (SELECT ... FOR UPDATE on PostgreSQL, BEGIN IMMEDIATE on SQLite), so two
concurrent approvals can never both issue.
"""
from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (JSON, BigInteger, DateTime, ForeignKey, Integer, LargeBinary, String, Text,
                        UniqueConstraint)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from store.db import Base, as_utc, utcnow

# Relationships name their targets module-qualified: the declarative registry is shared by every package
# (kms.models also has an ``Approval``).


class RequestType(str, enum.Enum):
    CIVIL_SERVANT_DUAL = "civil-servant-dual"
    UNIT = "unit"
    SERVER = "server"


class RequestKind(str, enum.Enum):
    NEW = "new"
    RENEWAL = "renewal"
    REKEY = "rekey"
    REISSUE = "reissue"        # 补发: a new key after the old one was lost; the old certificates are superseded
    REVOCATION = "revocation"
    SUSPEND = "suspend"        # 冻结: RFC 5280 certificateHold of the target's certificates
    RESUME = "resume"          # 解冻: their release (removeFromCRL, RFC 5280 §5.3.1)


class RequestState(str, enum.Enum):
    SUBMITTED = "submitted"
    VETTED = "vetted"
    APPROVED = "approved"      # threshold reached; passes to issued/revoked in the same transaction
    AWAITING_CA = "awaiting_ca"   # 等待上级CA: approved, queued for an upstream CA (CMP); swept until issued/failed
    ISSUED = "issued"
    REVOKED = "revoked"        # a revocation request that was carried out
    SUSPENDED = "suspended"    # a suspension (冻结) request that was carried out
    RESUMED = "resumed"        # a release (解冻) request that was carried out
    REJECTED = "rejected"
    RETURNED = "returned"      # 退回补正: sent back for correction (reason in reject_reason); resubmitted -> submitted
    FAILED = "failed"          # the upstream CA refused an approved request (its reason in reject_reason); final


MAX_STATUS_REASON = 500      # ``CertRequest.status_reason``: one or two sentences, as on a paper form


def _id_type():
    return BigInteger().with_variant(Integer, "sqlite")


def _iso(value: dt.datetime | None) -> str | None:
    value = as_utc(value)
    return value.isoformat() if value is not None else None


class Unit(Base):
    """单位: an organisation identified by its unified social credit code."""

    __tablename__ = "ra_unit"

    id: Mapped[int] = mapped_column(_id_type(), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    legal_representative: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))

    def as_dict(self) -> dict:
        return {"id": self.id, "kind": "unit", "name": self.name, "uscc": self.uscc,
                "legal_representative": self.legal_representative, "created_at": _iso(self.created_at)}


class CivilServant(Base):
    """公务员: a person identified by a GB 11643 identity number, working in one unit."""

    __tablename__ = "ra_civil_servant"

    id: Mapped[int] = mapped_column(_id_type(), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    id_number: Mapped[str] = mapped_column(String(18), unique=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("ra_unit.id"), index=True)
    department: Mapped[str | None] = mapped_column(String(64), nullable=True)   # OU of the certificate
    position: Mapped[str | None] = mapped_column(String(64), nullable=True)
    contact: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))

    unit: Mapped[Unit] = relationship("ra.models.Unit", lazy="joined")

    def as_dict(self) -> dict:
        return {"id": self.id, "kind": "civil-servant", "name": self.name, "id_number": self.id_number,
                "unit_id": self.unit_id, "department": self.department, "position": self.position,
                "contact": self.contact, "created_at": _iso(self.created_at)}


class Server(Base):
    """应用服务器: host names and IP addresses owned by one unit (each name belongs to one server)."""

    __tablename__ = "ra_server"

    id: Mapped[int] = mapped_column(_id_type(), primary_key=True)
    host_name: Mapped[str] = mapped_column(String(253), unique=True)     # primary name, the CN
    unit_id: Mapped[int] = mapped_column(ForeignKey("ra_unit.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(128))

    unit: Mapped[Unit] = relationship("ra.models.Unit", lazy="joined")
    names: Mapped[list["ServerName"]] = relationship("ra.models.ServerName", back_populates="server",
                                                     lazy="selectin", order_by=lambda: ServerName.id,
                                                     cascade="all, delete-orphan")

    @property
    def dns_names(self) -> tuple[str, ...]:
        return tuple(n.value for n in self.names if n.kind == "dns")

    @property
    def ip_addresses(self) -> tuple[str, ...]:
        return tuple(n.value for n in self.names if n.kind == "ip")

    def as_dict(self) -> dict:
        return {"id": self.id, "kind": "server", "host_name": self.host_name, "unit_id": self.unit_id,
                "dns_names": list(self.dns_names), "ip_addresses": list(self.ip_addresses),
                "created_at": _iso(self.created_at)}


class ServerName(Base):
    __tablename__ = "ra_server_name"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(_id_type(), primary_key=True)
    server_id: Mapped[int] = mapped_column(ForeignKey("ra_server.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))          # "dns" | "ip"
    value: Mapped[str] = mapped_column(String(253))

    server: Mapped[Server] = relationship("ra.models.Server", back_populates="names")


class CertRequest(Base):
    """One certificate request through the gate: submitted -> vetted -> approved -> issued (or
    rejected). Renewal, re-key and revocation requests point at the request whose certificates they
    replace or revoke (``target_request_id``)."""

    __tablename__ = "ra_request"

    id: Mapped[int] = mapped_column(_id_type(), primary_key=True)
    type: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16), index=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("ra_unit.id"), index=True)
    civil_servant_id: Mapped[int | None] = mapped_column(ForeignKey("ra_civil_servant.id"), nullable=True)
    server_id: Mapped[int | None] = mapped_column(ForeignKey("ra_server.id"), nullable=True)
    target_request_id: Mapped[int | None] = mapped_column(ForeignKey("ra_request.id"), nullable=True)
    sign_csr: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    sign_spki: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    enc_csr: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    enc_spki: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # the officer's own words for a suspension (冻结), release (解冻) or revocation: shown on the request, audited
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    submitted_by: Mapped[str] = mapped_column(String(128))
    submitted_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    vetted_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    vetted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    checks: Mapped[dict] = mapped_column(JSON, default=dict)        # check name -> {"ok": bool, "detail": str}
    rejected_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reject_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version}

    approvals: Mapped[list["Approval"]] = relationship("ra.models.Approval", back_populates="request",
                                                       lazy="selectin", order_by=lambda: Approval.id)
    certificates: Mapped[list["RaCertificate"]] = relationship("ra.models.RaCertificate", back_populates="request",
                                                               lazy="selectin", order_by=lambda: RaCertificate.id)

    def as_dict(self) -> dict:
        return request_fields(self, self.approvals, self.certificates)


class Approval(Base):
    """One officer's approval of one request (four-eyes: one row per officer per request)."""

    __tablename__ = "ra_approval"
    __table_args__ = (UniqueConstraint("request_id", "officer"),)

    id: Mapped[int] = mapped_column(_id_type(), primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("ra_request.id"), index=True)
    officer: Mapped[str] = mapped_column(String(128))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    request: Mapped[CertRequest] = relationship("ra.models.CertRequest", back_populates="approvals")

    def as_dict(self) -> dict:
        return approval_fields(self)


class RaCertificate(Base):
    """A certificate the CA issued for a request; ``ca_request_id`` is the CABackend idempotency key."""

    __tablename__ = "ra_certificate"
    __table_args__ = (UniqueConstraint("ca", "serial"),)

    id: Mapped[int] = mapped_column(_id_type(), primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("ra_request.id"), index=True)
    ca_request_id: Mapped[str] = mapped_column(String(64), unique=True)
    usage: Mapped[str] = mapped_column(String(8))             # "sign" | "enc"
    profile: Mapped[str] = mapped_column(String(64))
    ca: Mapped[str] = mapped_column(String(128))
    serial: Mapped[str] = mapped_column(String(64))           # lower-case hex, no leading zeros
    public_key_info: Mapped[bytes] = mapped_column(LargeBinary)
    certificate: Mapped[bytes] = mapped_column(LargeBinary)
    # KMC-generated encryption key (GM/T 0034): the GM/T 0010 SignedAndEnvelopedData for the subscriber,
    # encrypted to its signing key (useless to anyone else)
    key_envelope: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    not_before: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    not_after: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), default="good")     # good | hold (冻结) | revoked
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)

    request: Mapped[CertRequest] = relationship("ra.models.CertRequest", back_populates="certificates")

    @property
    def serial_int(self) -> int:
        return int(self.serial, 16)

    @property
    def key_escrowed(self) -> bool:
        return self.key_envelope is not None

    def as_dict(self) -> dict:
        return certificate_fields(self)


# The API's view of a request, its approvals and certificates, from ORM objects or from Core rows with the
# same column names (``ra.records`` reads many requests with one statement per table).

def request_fields(r, approvals, certificates) -> dict:
    return {
        "id": r.id, "type": r.type, "kind": r.kind, "state": r.state, "unit_id": r.unit_id,
        "civil_servant_id": r.civil_servant_id, "server_id": r.server_id,
        "target_request_id": r.target_request_id, "revocation_reason": r.revocation_reason,
        "status_reason": r.status_reason,
        "submitted_by": r.submitted_by, "submitted_at": _iso(r.submitted_at),
        "vetted_by": r.vetted_by, "vetted_at": _iso(r.vetted_at), "checks": r.checks or {},
        "rejected_by": r.rejected_by, "reject_reason": r.reject_reason,
        "completed_at": _iso(r.completed_at),
        "approvals": [approval_fields(a) for a in approvals],
        "certificates": [certificate_fields(c) for c in certificates],
    }


def approval_fields(a) -> dict:
    return {"officer": a.officer, "at": _iso(a.at)}


def certificate_fields(c) -> dict:
    return {"usage": c.usage, "profile": c.profile, "ca": c.ca, "serial": c.serial,
            "ca_request_id": c.ca_request_id, "not_before": _iso(c.not_before),
            "not_after": _iso(c.not_after), "status": c.status, "revoked_at": _iso(c.revoked_at),
            "revocation_reason": c.revocation_reason, "key_escrowed": bool(c.key_escrowed)}
