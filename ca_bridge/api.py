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

from pkicore.errors import PkiError


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
    # the subscriber's PKCS#10 CSR (DER) as received, its proof of possession: a CA reached over CMP gets
    # it as a p10cr when it asks for exactly what is certified (RFC 9483 §5.2.3.1); the embedded CA ignores it
    csr: bytes | None = field(default=None, compare=False, repr=False)
    # central key generation (RFC 9483 §4.1.6) by a CA reached over CMP: the subscriber's signing key, to which
    # the CA's KMC envelopes the key it generates; ``public_key_info`` is then empty (b"")
    central_keygen_for: bytes | None = field(default=None, repr=False)


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
    key_envelope: bytes | None = None      # KMC-generated key: GM/T 0010 SignedAndEnvelopedData for the subscriber


@dataclass(frozen=True)
class CertificateStatus:
    serial: int
    ca: str
    status: str                            # "good" | "revoked" | "unknown"
    revoked_at: dt.datetime | None = None
    reason: RevocationReason | None = None


@dataclass(frozen=True)
class EscrowedKeyRequest:
    """Ask for a KMC-generated encryption key pair (GM/T 0034 §6, GM/T 0014 ApplyKeyReq) for the
    certificate that ``IssueRequest(request_id=...)`` will issue later."""
    request_id: str                        # the IssueRequest.request_id the key is for
    profile: str                           # a profile with key_escrow = true
    subscriber_public_key_info: bytes      # the subscriber's *signing* key: the envelope is encrypted to it
    user_name: str | None = None
    validity_days: int | None = None
    ca: str | None = None


@dataclass(frozen=True)
class EscrowedKey:
    """A key the KMC generated and archived, reserved for one certificate (serial and validity fixed)."""
    request_id: str
    ca: str
    serial: int                            # the encryption certificate's serial = GM/T 0014 userCertNo
    public_key_info: bytes                 # put this key in the IssueRequest
    key_envelope: bytes                    # GM/T 0010 SignedAndEnvelopedData carrying the private key
    not_before: dt.datetime
    not_after: dt.datetime


@runtime_checkable
class KeyEscrowCA(Protocol):
    """Optional capability of a CA with a KMC behind it. Called *before* the caller's transaction (the
    KMC may be remote; no database lock is held across the call); idempotent on ``request_id``."""

    def can_escrow(self, profile: str) -> bool: ...

    def prepare_escrowed_key(self, request: EscrowedKeyRequest) -> EscrowedKey: ...

    def release_escrowed_key(self, request_id: str, session: Session) -> bool: ...


@runtime_checkable
class CABackend(Protocol):
    """What the RA needs from a CA. ``session``: an embedded CA joins the caller's transaction so the
    RA's state change, the certificate row and the audit rows commit (or roll back) together; an
    upstream CA ignores it and relies on ``request_id`` idempotency instead."""

    def issue(self, request: IssueRequest, session: Session | None = None) -> IssuedCertificate: ...

    def revoke(self, ca: str, serial: int, reason: RevocationReason,
               session: Session | None = None) -> CertificateStatus: ...

    def status(self, ca: str, serial: int, session: Session | None = None) -> CertificateStatus: ...


# The id of a queued revocation (``DeferredIssuanceCA.queue_revocation``): this prefix and the request id the
# certificate was issued under, so ``send_revocations(prefix=...)`` can send those of one RA request.
REVOCATION_PREFIX = "rr-"


@runtime_checkable
class DeferredIssuanceCA(Protocol):
    """Optional capability of a CA reached over a network (``CmpCA``): the RA does not call it inside its
    transaction. ``enqueue`` writes the requests to the CA's durable queue in the caller's session (so the
    RA's "awaiting the CA" state and the queued requests commit together, before anything is sent);
    ``collect`` then carries a queued request on, outside any transaction, and is idempotent on
    ``request_id``: the certificate, or ``PkiError`` -- code ``UPSTREAM_UNAVAILABLE`` while the CA is
    down or still processing (collect again later), any other code when the CA refused it.
    ``queue_revocation`` likewise queues a revocation in the caller's transaction, and
    ``send_revocations`` sends the queued ones after its commit (and on every sweep until they go)."""

    def enqueue(self, requests, session: Session) -> None: ...

    def collect(self, request_id: str) -> IssuedCertificate: ...

    def queue_revocation(self, ca: str, serial: int, reason: RevocationReason, session: Session) -> str: ...

    def send_revocations(self, *, prefix: str = ...) -> dict[str, str]: ...


def issue_groups(ca: CABackend, groups, session: Session | None = None) -> list:
    """Issue groups of requests, each group all or nothing (one RA request's certificates, e.g. a dual
    pair); the result holds per group its list of ``IssuedCertificate`` or the ``PkiError`` that refused
    it. A backend with its own ``issue_groups`` (the embedded CA: one statement per table) does it in
    ``session``'s transaction; for any other backend each request goes through ``issue``, a group in a
    savepoint of ``session`` when there is one, so a refused group leaves nothing behind."""
    native = getattr(ca, "issue_groups", None)
    if native is not None and session is not None:
        return native(groups, session)
    results: list = []
    for group in groups:
        try:
            if session is None:
                results.append([ca.issue(r) for r in group])
            else:
                with session.begin_nested():
                    results.append([ca.issue(r, session=session) for r in group])
        except PkiError as exc:
            results.append(exc)
    return results
