"""The narrow interface between the RA and a CA (XiPKI's ca-sdk shape): plain data objects only, so the
CA can be the embedded HSM-backed one or an upstream CA reached over a protocol.

Issuance is idempotent on ``IssueRequest.request_id``: asking again returns the certificate issued the
first time, never a second one.
"""
from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from sqlalchemy.orm import Session


class RevocationReason(str, enum.Enum):
    """RFC 5280 §5.3.1 CRLReason (names as asn1crypto spells them)."""

    unspecified = "unspecified"
    key_compromise = "key_compromise"
    ca_compromise = "ca_compromise"
    affiliation_changed = "affiliation_changed"
    superseded = "superseded"
    cessation_of_operation = "cessation_of_operation"
    certificate_hold = "certificate_hold"
    remove_from_crl = "remove_from_crl"
    privilege_withdrawn = "privilege_withdrawn"
    aa_compromise = "aa_compromise"


@dataclass(frozen=True)
class IssueRequest:
    request_id: str                        # idempotency key, e.g. "ra-42-sign"
    profile: str                           # a profile name from ca_bridge/profiles/*.toml
    subject: tuple[tuple[str, str], ...]   # RDNs in order: (("country_name", "CN"), ("common_name", "张三"))
    public_key_info: bytes                 # SubjectPublicKeyInfo DER (already proof-of-possession checked)
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    identity: tuple[tuple[str, str], ...] = ()   # GM/T 0015 identity extensions: (OID, value)
    validity_days: int | None = None       # None: the profile's validity
    ca: str | None = None                  # None: the profile's issuing CA


@dataclass(frozen=True)
class IssuedCertificate:
    request_id: str
    serial: int
    ca: str
    profile: str
    certificate: bytes                     # DER
    not_before: dt.datetime
    not_after: dt.datetime
    chain: tuple[bytes, ...] = field(default=())   # issuing CA up to (not including) the root


@dataclass(frozen=True)
class CertificateStatus:
    serial: int
    ca: str
    status: str                            # "good" | "revoked" | "unknown"
    revoked_at: dt.datetime | None = None
    reason: RevocationReason | None = None


@runtime_checkable
class CABackend(Protocol):
    """What the RA needs from a CA. ``session``: an embedded CA joins the caller's transaction so the
    RA's state change, the certificate row and the audit rows commit (or roll back) together; an
    upstream CA ignores it and relies on ``request_id`` idempotency instead."""

    def issue(self, request: IssueRequest, session: Session | None = None) -> IssuedCertificate: ...

    def revoke(self, ca: str, serial: int, reason: RevocationReason,
               session: Session | None = None) -> CertificateStatus: ...

    def status(self, ca: str, serial: int, session: Session | None = None) -> CertificateStatus: ...
