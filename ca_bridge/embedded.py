"""``EmbeddedCA``: the HSM-backed CA behind ``ca_bridge.api.CABackend`` (issue, revoke, status), plus the
CRL publisher and OCSP responder that serve what it issues.

Issuance is idempotent on ``request_id`` and joins the caller's SQLAlchemy session when one is given,
so the RA's state change, the certificate row and the audit rows commit or roll back together. The hot
path holds everything constant in memory (profiles, CA certificates and key labels, per-(CA, profile)
DER templates) and costs one SELECT (idempotency), one HSM signature and two INSERTs (certificate,
audit row).
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from typing import Mapping, Sequence

from asn1crypto import x509
from sqlalchemy import bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ca_bridge import ca as hierarchy
from ca_bridge.api import (CertificateStatus, EscrowedKey, EscrowedKeyRequest, IssuedCertificate, IssueRequest,
                           RevocationReason)
from ca_bridge.certbuilder import (CertificateTemplate, IssuerInfo, SubjectKey, encode_name, inspect_public_key,
                                   name_text, random_serial)
from ca_bridge.crl import CrlPublisher, bump_revocation_seq
from ca_bridge.directory import CaDirectory, CaInfo
from ca_bridge.config import CaConfig
from ca_bridge.errors import CertificateNotFound, IssuanceError, NoPublicUrl, RequestConflict, RevocationConflict
from ca_bridge.kmc_link import KmcLink
from ca_bridge.models import EscrowReservation, IssuedCert
from ca_bridge.ocsp import OcspResponder
from ca_bridge.profiles import Profile, get_profile, load_profiles
from ca_bridge.store import DbStatusStore, to_status
from hsm import KeyManager
from audit.trail import record, record_many
from store.db import IDS, as_utc, reading, select_in, transaction, utcnow
from pkicore.errors import PkiError

log = logging.getLogger(__name__)

BACKDATE = dt.timedelta(seconds=60)     # notBefore slack for relying parties whose clocks run behind
KEY_FAMILY = {"sm2": "sm2", "ec-p256": "ec", "ec-p384": "ec", "rsa-2048": "rsa", "rsa-3072": "rsa", "rsa-4096": "rsa"}
ACTOR_ROLE = hierarchy.ACTOR_ROLE
# prebuilt Core statements: the hot path pays no statement construction or ORM unit-of-work
_SELECT_BY_REQUEST = (select(IssuedCert.ca_id, IssuedCert.serial, IssuedCert.profile, IssuedCert.certificate,
                             IssuedCert.not_before, IssuedCert.not_after)
                      .where(IssuedCert.request_id == bindparam("request_id")))
_SELECT_BY_REQUESTS = (select(IssuedCert.request_id, IssuedCert.ca_id, IssuedCert.serial, IssuedCert.profile,
                              IssuedCert.certificate, IssuedCert.not_before, IssuedCert.not_after)
                       .where(IssuedCert.request_id.in_(IDS)))
_SELECT_RESERVATIONS = select(*EscrowReservation.__table__.c).where(EscrowReservation.request_id.in_(IDS))
_INSERT_CERT = insert(IssuedCert.__table__)


@dataclass(frozen=True)
class _Plan:
    """One checked issuance request (``EmbeddedCA._plan``)."""

    request: IssueRequest
    profile: Profile
    key: SubjectKey
    ca: CaInfo
    days: int
    subject_der: bytes


class EmbeddedCA:
    """The embedded CA. Thread-safe; build one per process and share it (``racentre.services.Services.ca``)."""

    def __init__(self, key_manager: KeyManager, db: sessionmaker[Session], public_url: str = "http://127.0.0.1:8600",
                 *, profiles: Mapping[str, Profile] | None = None, name_prefix: str = "",
                 default_cas: Mapping[str, str] | None = None, config: CaConfig | None = None,
                 crl_validity: dt.timedelta | None = None, crl_refresh: dt.timedelta | None = None,
                 ocsp_validity: dt.timedelta | None = None):
        """``config``: the ``[ca]`` section (names, CRL and OCSP validity); the explicit durations
        override it."""
        self.config = config = config or CaConfig()
        self.km = key_manager
        self.db = db
        self.public_url = public_url.rstrip("/")
        self.profiles = profiles or load_profiles()
        self.name_prefix = name_prefix
        # issuing CA per subject key family when the request names none (falls back to the SM2 one)
        self.default_cas = dict(default_cas or {f: f"{name_prefix}issuing-{k}"
                                                for f, k in (("sm2", "sm2"), ("ec", "ecdsa"), ("rsa", "rsa"))})
        self.directory = CaDirectory(db)
        self.store = DbStatusStore(db, self.directory)
        self.crls = CrlPublisher(key_manager, db, self.directory, validity=crl_validity or config.crl_validity,
                                 refresh=crl_refresh or config.crl_refresh)
        self.ocsp = OcspResponder(key_manager, self.store, self.directory,
                                  validity=ocsp_validity or config.ocsp_validity)
        self._templates: dict[tuple[int, str], tuple[CaInfo, CertificateTemplate]] = {}
        self._lock = threading.Lock()
        self.kmc: KmcLink | None = None

    def attach_kmc(self, transport, kmc_certificate) -> None:
        """Put a KMC behind the key-escrow profiles (GM/T 0034): ``transport`` reaches its GM/T 0014
        endpoint (``gmt0014.client.InProcessTransport`` / ``HttpTransport``), ``kmc_certificate`` (DER, or a
        callable returning the current DER) verifies it."""
        self.kmc = KmcLink(self.km, self.db, self.directory, transport, kmc_certificate)

    def _require_public_url(self) -> None:
        """Refuse to issue without the site's public URL: it goes into every certificate's CRL DP and
        AIA (RFC 5280 §4.2.1.13, §4.2.2.1), and a node's own address would strand relying parties when
        that node goes away. Never derived from the listening address."""
        if not self.public_url:
            raise NoPublicUrl("no [service] public_url is set: certificates would carry no reachable CRL "
                              "and OCSP address; set it to the address relying parties use (the load "
                              "balancer's URL, e.g. https://pki.example.gov.cn) on every node")

    # ------------------------------------------------------------------ hierarchy
    def init_hierarchy(self, *, kinds=("sm2",), label_prefix: str = "", organization: str | None = None,
                       actor: str = "ca-init") -> list[str]:
        """Create the CA hierarchy (see ``ca_bridge.ca.init_hierarchy``); refused when it exists."""
        self._require_public_url()
        created = hierarchy.init_hierarchy(self.km, self.db, self.public_url, kinds=kinds, prefix=self.name_prefix,
                                           label_prefix=label_prefix, organization=organization,
                                           profiles=self.profiles, actor=actor, config=self.config)
        self.directory.reload()
        return created

    def authorities(self) -> Mapping[str, CaInfo]:
        return self.directory.all()

    # ------------------------------------------------------------------ issuance
    def issuing_ca_for(self, public_key_info: bytes) -> CaInfo:
        """The CA that issues for this key when the request names none: the issuing CA of the key's
        family (SM2, ECDSA, RSA) when that hierarchy exists, else the SM2 one."""
        return self._ca_for(None, inspect_public_key(public_key_info))

    def _ca_for(self, name: str | None, key: SubjectKey) -> CaInfo:
        if name is not None:
            return self.directory.get(name)
        default = self.default_cas.get(KEY_FAMILY[key.algorithm])
        info = self.directory.find(default) if default else None
        return info or self.directory.get(self.default_cas["sm2"])

    def _template(self, ca: CaInfo, profile: Profile) -> CertificateTemplate:
        key = (ca.id, profile.name)
        cached = self._templates.get(key)
        if cached is not None and cached[0] is ca:
            return cached[1]
        # first use, or the directory reloaded this CA (another node changed it): build it from ``ca``
        label, mechanism = ca.key_label, ca.algorithm.mechanism
        issuer = IssuerInfo(ca.subject_der, ca.key_id, ca.algorithm,
                            lambda tbs: self.km.sign(label, tbs, mechanism), ca.not_after)
        template = CertificateTemplate(issuer, profile,
                                       hierarchy.ca_urls(self.public_url, ca.name, ocsp=bool(ca.ocsp_key_label)))
        with self._lock:
            self._templates[key] = (ca, template)
        return template

    def can_escrow(self, profile: str) -> bool:
        """Whether a KMC is attached and ``profile`` takes KMC-generated keys."""
        known = self.profiles.get(profile)
        return self.kmc is not None and known is not None and known.key_escrow

    def prepare_escrowed_key(self, request: EscrowedKeyRequest) -> EscrowedKey:
        """Reserve a KMC-generated encryption key for the certificate ``request.request_id`` will issue
        (``ca_bridge.kmc_link``); call it outside any transaction. Idempotent on the request id."""
        self._require_public_url()
        if not isinstance(request.request_id, str) or not 0 < len(request.request_id) <= 128:
            raise IssuanceError("request_id must be a string of 1..128 characters")
        profile = get_profile(self.profiles, request.profile)
        if not profile.key_escrow:
            raise IssuanceError(f"profile {profile.name} does not take KMC-generated keys")
        if self.kmc is None:
            raise IssuanceError("no key-management centre is attached to this CA")
        subscriber = inspect_public_key(request.subscriber_public_key_info)
        if subscriber.algorithm != "sm2" or "sm2" not in profile.key_algorithms:
            raise IssuanceError("KMC-generated keys are SM2 and are enveloped to an SM2 signing key")
        days = profile.validity_days if request.validity_days is None else request.validity_days
        if not isinstance(days, int) or not 1 <= days <= profile.max_validity_days:
            raise IssuanceError(f"validity must be 1..{profile.max_validity_days} days for profile {profile.name}")
        ca = self._ca_for(request.ca, subscriber)
        if ca.is_root:
            raise IssuanceError(f"CA {ca.name} is a root CA; end-entity certificates come from an issuing CA")
        return self.kmc.prepare(request, ca, days)

    def release_escrowed_key(self, request_id: str, session: Session) -> bool:
        """Give back a key ``prepare_escrowed_key`` reserved for a request that will not be issued (in
        ``session``'s transaction; the KMC is told after it commits). A request id that was already
        issued keeps its key: its certificate names it."""
        if self.kmc is None:
            return False
        if self._existing(session, request_id) is not None:
            raise RequestConflict(f"request {request_id} was issued; revoke its certificate instead")
        return self.kmc.release(session, request_id)

    def _plan(self, request: IssueRequest) -> "_Plan":
        """Every check of one request that needs no database: public URL, profile, key, names, validity, CA."""
        self._require_public_url()
        if not isinstance(request.request_id, str) or not 0 < len(request.request_id) <= 128:
            raise IssuanceError("request_id must be a string of 1..128 characters")
        profile = get_profile(self.profiles, request.profile)
        if profile.internal:
            raise IssuanceError(f"profile {profile.name} is issued only when the CA hierarchy is set up")
        key = inspect_public_key(request.public_key_info)
        days = profile.validate(key_algorithm=key.algorithm, subject=tuple(request.subject),
                                dns_names=tuple(request.dns_names), ip_addresses=tuple(request.ip_addresses),
                                identity=tuple(request.identity), validity_days=request.validity_days)
        ca = self._ca_for(request.ca, key)
        if ca.is_root:
            raise IssuanceError(f"CA {ca.name} is a root CA; end-entity certificates come from an issuing CA")
        return _Plan(request, profile, key, ca, days, encode_name(request.subject))

    def issue(self, request: IssueRequest, session: Session | None = None) -> IssuedCertificate:
        """Issue (or return the certificate already issued for ``request.request_id``). For a key-escrow
        profile, a reservation made by ``prepare_escrowed_key`` fixes the serial, validity and key."""
        plan = self._plan(request)
        if session is not None:
            return self._issue(session, plan)
        try:
            with transaction(self.db) as own:
                return self._issue(own, plan)
        except IntegrityError:
            # another worker issued the same request_id between our SELECT and INSERT: return its certificate
            with self.db() as own:
                existing = self._existing(own, request.request_id)
                if existing is None:
                    raise
                return self._replay(existing, request, plan.key)

    def issue_groups(self, groups: Sequence[Sequence[IssueRequest]], session: Session) -> list:
        """Issue many certificates in ``session``'s transaction with one statement per table (the RA's
        bulk approval). Each group (the certificates of one RA request, e.g. a GM/T 0034 dual pair) is
        all or nothing: its entry in the result is the list of its ``IssuedCertificate`` (replayed ones
        included, as ``issue`` would), or the ``PkiError`` that refused it, in which case nothing of
        that group is written. Errors that are not refusals (HSM, database) propagate and the caller's
        transaction rolls back whole."""
        results: list = [None] * len(groups)
        plans: list = [None] * len(groups)
        seen: set[str] = set()
        for g, group in enumerate(groups):
            try:
                plans[g] = [self._plan(r) for r in group]
                ids = [r.request_id for r in group]
                if len(set(ids)) != len(ids) or seen.intersection(ids):
                    raise RequestConflict("a request id appears twice in one issuance batch")
                seen.update(ids)
            except PkiError as exc:
                results[g] = exc
        connection = session.connection()
        existing = {row.request_id: row for row in select_in(connection, _SELECT_BY_REQUESTS, seen)}
        escrowed = [p.request.request_id for group in plans if group for p in group
                    if p.profile.key_escrow and self.kmc is not None and p.request.request_id not in existing]
        reservations = {row.request_id: row for row in select_in(connection, _SELECT_RESERVATIONS, escrowed)}
        now = utcnow().replace(microsecond=0)
        cert_rows, audit_rows = [], []
        for g, group in enumerate(plans):
            if group is None:
                continue
            try:
                issued, rows, events = [], [], []
                for plan in group:
                    row = existing.get(plan.request.request_id)
                    if row is not None:
                        issued.append(self._replay(row, plan.request, plan.key))
                        continue
                    reserved = reservations.get(plan.request.request_id) if plan.profile.key_escrow else None
                    cert, cert_row, event_ = self._sign(plan, reserved, now)
                    issued.append(cert)
                    rows.append(cert_row)
                    events.append(event_)
            except PkiError as exc:
                results[g] = exc
                continue
            results[g] = issued
            cert_rows += rows
            audit_rows += events
        if cert_rows:
            connection.execute(_INSERT_CERT, cert_rows)
            record_many(session, audit_rows)
        return results

    def find_issued(self, request_id: str) -> IssuedCertificate | None:
        """The certificate issued for ``request_id``, or None (read only: nothing is issued)."""
        with reading(self.db) as session:
            row = self._existing(session, request_id)
        if row is None:
            return None
        ca = self.directory.by_id(row.ca_id)
        return IssuedCertificate(request_id, int(row.serial, 16), ca.name, row.profile, row.certificate,
                                 as_utc(row.not_before), as_utc(row.not_after), ca.chain)

    @staticmethod
    def _existing(session: Session, request_id: str):
        return session.connection().execute(_SELECT_BY_REQUEST, {"request_id": request_id}).first()

    def _replay(self, row, request: IssueRequest, key: SubjectKey) -> IssuedCertificate:
        ca = self.directory.by_id(row.ca_id)
        spki = x509.Certificate.load(row.certificate)["tbs_certificate"]["subject_public_key_info"].dump()
        if row.profile != request.profile or spki != key.spki or (request.ca is not None and request.ca != ca.name):
            raise RequestConflict(f"request {request.request_id} was already used for another certificate")
        return IssuedCertificate(request.request_id, int(row.serial, 16), ca.name, row.profile, row.certificate,
                                 as_utc(row.not_before), as_utc(row.not_after), ca.chain,
                                 self._envelope(request.request_id, row.profile))

    def _reserved(self, session: Session, request_id: str, profile_name: str):
        profile = self.profiles.get(profile_name)
        if self.kmc is None or profile is None or not profile.key_escrow:
            return None
        return self.kmc.reservation(session, request_id)

    def _envelope(self, request_id: str, profile_name: str) -> bytes | None:
        # read-only, and called inside the caller's transaction when a request is replayed
        with reading(self.db) as session:
            reserved = self._reserved(session, request_id, profile_name)
            return reserved.key_envelope if reserved is not None else None

    def _issue(self, session: Session, plan: "_Plan") -> IssuedCertificate:
        request = plan.request
        existing = self._existing(session, request.request_id)
        if existing is not None:
            return self._replay(existing, request, plan.key)
        reserved = self._reserved(session, request.request_id, plan.profile.name)
        cert, cert_row, event_ = self._sign(plan, reserved, utcnow().replace(microsecond=0))
        session.connection().execute(_INSERT_CERT, cert_row)
        record_many(session, [event_])
        return cert

    def _sign(self, plan: "_Plan", reserved, now: dt.datetime) -> tuple[IssuedCertificate, dict, dict]:
        """The signed certificate of one planned request, its ``ca_issued_cert`` row and its audit event."""
        request, profile, key, ca = plan.request, plan.profile, plan.key, plan.ca
        if reserved is None:
            not_before = now - BACKDATE
            not_after = min(now + dt.timedelta(days=plan.days), ca.not_after)
            serial, envelope = random_serial(), None
        else:                       # the KMC archived this key for exactly this serial and validity
            if reserved.public_key_info != key.spki or reserved.ca_id != ca.id:
                raise RequestConflict(f"request {request.request_id} reserved another KMC key or CA")
            not_before, not_after = as_utc(reserved.not_before), as_utc(reserved.not_after)
            serial, envelope = int(reserved.serial, 16), reserved.key_envelope
        der = self._template(ca, profile).build(
            serial=serial, subject_der=plan.subject_der, key=key, not_before=not_before, not_after=not_after,
            dns_names=request.dns_names, ip_addresses=request.ip_addresses, identity=request.identity)
        serial_hex = format(serial, "x")
        row = {"ca_id": ca.id, "serial": serial_hex, "request_id": request.request_id, "profile": profile.name,
               "subject": name_text(request.subject), "not_before": not_before, "not_after": not_after,
               "certificate": der, "status": "good", "created_at": now}
        event_ = {"actor": f"ca:{ca.name}", "role": ACTOR_ROLE, "action": "ca.certificate.issue",
                  "target_type": "certificate", "target_id": f"{ca.name}/{serial_hex}",
                  "detail": {"request_id": request.request_id, "profile": profile.name}}
        return (IssuedCertificate(request.request_id, serial, ca.name, profile.name, der, not_before, not_after,
                                  ca.chain, envelope), row, event_)

    # ------------------------------------------------------------------ revocation and status
    def revoke(self, ca: str, serial: int, reason: RevocationReason,
               session: Session | None = None) -> CertificateStatus:
        """Revoke (RFC 5280 §5.3.1 reasons). certificateHold may later be made permanent with another
        reason, or released with removeFromCRL; revoking a revoked certificate again is a conflict."""
        info = self.directory.get(ca)
        try:
            reason = RevocationReason(reason)
        except ValueError:
            raise IssuanceError(f"unknown revocation reason {reason!r}") from None
        if session is not None:
            return self._revoke(session, info, serial, reason)
        with transaction(self.db) as own:
            return self._revoke(own, info, serial, reason)

    def _revoke(self, session: Session, info: CaInfo, serial: int, reason: RevocationReason) -> CertificateStatus:
        row = session.scalar(select(IssuedCert).where(IssuedCert.ca_id == info.id,
                                                      IssuedCert.serial == format(serial, "x")).with_for_update())
        if row is None:
            raise CertificateNotFound(f"CA {info.name} has issued no certificate with serial {serial:x}")
        now = utcnow()
        hold = RevocationReason.certificate_hold.value
        if reason == RevocationReason.remove_from_crl:
            if row.status != "revoked" or row.reason != hold:
                raise RevocationConflict("only a certificate on hold (certificateHold) can be released")
            row.status, row.reason, row.revoked_at, action = "good", reason.value, None, "ca.certificate.release"
        elif row.status == "revoked":
            if row.reason != hold or reason == RevocationReason.certificate_hold:
                raise RevocationConflict(f"certificate {serial:x} is already revoked ({row.reason})")
            row.reason, action = reason.value, "ca.certificate.revoke"      # hold made permanent; date kept
        else:
            row.status, row.reason, row.revoked_at, action = "revoked", reason.value, now, "ca.certificate.revoke"
        if reason not in (RevocationReason.certificate_hold, RevocationReason.remove_from_crl) \
                and self._reserved(session, row.request_id, row.profile) is not None:
            self.kmc.revoke_after_commit(session, info, serial)      # GM/T 0014 RevokeKeyReq
        row.changed_at = now
        # the pre-produced OCSP responses (RFC 5019) go with the change, in this transaction: no node serves
        # them once it commits (one kept later from an older read states the old status, and is never served)
        self.store.purge(info.name, [serial], session=session)
        record(session, actor=f"ca:{info.name}", role=ACTOR_ROLE, action=action, target_type="certificate",
               target_id=f"{info.name}/{serial:x}", reason=reason.value)
        # last, so the CA row (CRL freshness, ca_bridge.crl) stays locked for the shortest time
        row.change_seq = bump_revocation_seq(session, info.id)
        session.flush()
        return to_status(info.name, serial, row.status, row.revoked_at, row.reason)

    def escrowed(self, ca: str, serial: int) -> bool:
        """Whether the KMC generated this certificate's key (GM/T 0034): revoking it owes the KMC a
        RevokeKeyReq, so the caller attaches the KMC link first (``racentre ca revoke``)."""
        info = self.directory.get(ca)
        with reading(self.db) as session:
            return session.scalar(select(EscrowReservation.id).join(
                IssuedCert, IssuedCert.request_id == EscrowReservation.request_id).where(
                IssuedCert.ca_id == info.id, IssuedCert.serial == format(serial, "x"))) is not None

    def status(self, ca: str, serial: int, session: Session | None = None) -> CertificateStatus:
        return self.store.status(ca, serial, session)

    def certificate(self, ca: str, serial: int) -> IssuedCert:
        """The stored row of one certificate (REST look-up)."""
        info = self.directory.get(ca)
        with self.db() as session:
            row = session.scalar(select(IssuedCert).where(IssuedCert.ca_id == info.id,
                                                          IssuedCert.serial == format(serial, "x")))
        if row is None:
            raise CertificateNotFound(f"CA {ca} has issued no certificate with serial {serial:x}")
        return row
