"""Our CA as a CMP server (RFC 4210, CMP v3 RFC 9480, the Lightweight CMP Profile RFC 9483 §4-§5).

``CmpServer.handle(der, label)`` takes one PKIMessage and always answers with one (an ``error`` body with
a PKIStatusInfo/PKIFailureInfo that says why when the request is refused), plus the HTTP status the
transport should use (RFC 6712 §3.3: 200 for every CMP answer, 400 when the body is no PKIMessage).

Who may ask for what (RFC 9483 §4.1, §5; EJBCA's "RA mode"):
* MAC protection (PasswordBasedMac or PBMAC1) with a one-time secret an officer issued for a vetted
  subject (``issue_secret``): ir/cr/p10cr for *that* subject and profile only, once. A secret bound to an
  approved RA request (``ra_request_id``: the RA's vetting and four-eyes are done) enrols that request's
  subject under the CA request id ``ra-<id>-sign`` (never two certificates for one request), and the
  certificate is recorded on the request in the same transaction (``enrolled``, wired by the site). When the secret was
  issued with ``approvals_required`` > 0 the request waits (status waiting, polled with pollReq) until
  that many other officers approve it (``approve``; four-eyes).
* Signature protection by a certificate of ours whose extended key usage holds id-kp-cmcRA (RFC 6402
  §2.10): a registered RA, whose own approval stands; the template's subject and names are issued
  under the profile named in the URL (``/.well-known/cmp/p/<profile>``), and it may revoke.
* Signature protection by any other good certificate of ours: kur (new key, same subject and profile,
  RFC 4210 §5.3.5, signed with the old key), rr of that certificate itself, genm; a cr or p10cr from it
  waits for officers as above (it asks for another certificate).

Transaction IDs and sender nonces are stored in the database every node shares: a new transaction with
a used transactionID is refused (transactionIdInUse), a repeated senderNonce is refused
(badSenderNonce), so a replayed message never issues or revokes anything. Every decision is audited.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import json
import logging
import secrets
import threading
from dataclasses import dataclass, field
from typing import Protocol

from asn1crypto import algos, core, csr as asn1_csr, x509
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ca_bridge.api import EscrowedKey, EscrowedKeyRequest, IssueRequest, RevocationReason
from ca_bridge.cmp import asn1
from ca_bridge.cmp.keypkg import to_encrypted_key
from ca_bridge.cmp.models import CmpNonce, CmpSecret, CmpTransaction
from ca_bridge.cmp.protection import (ProtectionError, answer_mac_algorithm, is_mac, mac_value, protected_part,
                                      signature_algorithm, verify_mac, verify_signature_protection)
from ca_bridge.directory import CaInfo
from ca_bridge.embedded import EmbeddedCA
from ca_bridge.errors import CaError
from ca_bridge.models import IssuedCert
from audit.trail import record
from store.db import as_utc, transaction, utcnow
from pkicore.errors import ErrorCode, PkiError
from pkicore.keys import verify_signature
from pkicore.oids import OID
from pkicore.sm2 import sm3

log = logging.getLogger(__name__)

ID_KP_CMC_RA = "1.3.6.1.5.5.7.3.28"
IMPLICIT_CONFIRM = "1.3.6.1.5.5.7.4.13"
CONFIRM_WAIT_TIME = "1.3.6.1.5.5.7.4.14"
OLD_CERT_ID = "1.3.6.1.5.5.7.5.1.5"
IT_CA_PROT_ENC_CERT = "1.3.6.1.5.5.7.4.1"
IT_SIGN_KEY_PAIR_TYPES = "1.3.6.1.5.5.7.4.2"
IT_CA_CERTS = "1.3.6.1.5.5.7.4.17"
IT_ROOT_CA_KEY_UPDATE = "1.3.6.1.5.5.7.4.18"
IT_ROOT_CA_CERT = "1.3.6.1.5.5.7.4.20"
IT_CERT_REQ_TEMPLATE = "1.3.6.1.5.5.7.4.19"
IT_CRL_STATUS_LIST = "1.3.6.1.5.5.7.4.22"
IT_CRLS = "1.3.6.1.5.5.7.4.23"
REG_CTRL_ALG_ID = "1.3.6.1.5.5.7.5.1.11"
REG_CTRL_PROTOCOL_ENCR_KEY = "1.3.6.1.5.5.7.5.1.6"     # RFC 4211 §6.6 id-regCtrl-protocolEncrKey
ACTOR_ROLE = "cmp"
AUDIT_TARGET = "cmp_transaction"
MAX_MESSAGE = 256 * 1024
MESSAGE_TIME_SKEW = dt.timedelta(minutes=10)
CHECK_AFTER = 2                  # seconds a waiting client is told to wait before it polls again
SECRET_LIFETIME = dt.timedelta(days=7)

ACCEPTED, GRANTED_WITH_MODS, REJECTION, WAITING = 0, 1, 2, 3
REASONS = {0: RevocationReason.unspecified, 1: RevocationReason.key_compromise, 2: RevocationReason.ca_compromise,
           3: RevocationReason.affiliation_changed, 4: RevocationReason.superseded,
           5: RevocationReason.cessation_of_operation, 6: RevocationReason.certificate_hold,
           9: RevocationReason.privilege_withdrawn, 10: RevocationReason.aa_compromise}
KEY_ALG_IDS = {"sm2": ("1.2.840.10045.2.1", "1.2.156.10197.1.301"), "ec-p256": ("1.2.840.10045.2.1", "1.2.840.10045.3.1.7"),
               "ec-p384": ("1.2.840.10045.2.1", "1.3.132.0.34"), "rsa-2048": ("1.2.840.113549.1.1.1", None)}


class CmpFailure(Exception):
    """A request refused with a reason (PKIFailureInfo bit names, RFC 4210 §5.2.3)."""

    def __init__(self, text: str, *fail_info: str, http_status: int = 200):
        super().__init__(text)
        self.text = text
        self.fail_info = fail_info or ("bad_request",)
        self.http_status = http_status


class SecretSealer(Protocol):
    """Seals the one-time secrets at rest with HSM keys (``racentre.secretbox.SecretBox``)."""

    def seal(self, secret: bytes, context: bytes) -> bytes: ...

    def open(self, box: bytes, context: bytes) -> bytes: ...


@dataclass
class _Sender:
    mode: str                                 # mac | ra | end-entity
    name: str                                 # for audit and the transaction row
    secret: bytes | None = None
    secret_row: dict | None = None
    certificate: x509.Certificate | None = None
    issuer: CaInfo | None = None
    profile: str | None = None                # the profile of the sender's own certificate (end entity)


@dataclass(frozen=True)
class _Signer:
    """The CMP protection identity of one issuing CA (profile ``cmp-server``, key in the HSM)."""
    ca: CaInfo
    key_label: str
    certificate: bytes
    subject_der: bytes
    key_id: bytes


@dataclass
class _Answer:
    body_name: str
    body: object
    extra_general_info: list = field(default_factory=list)
    pvno: int = 2
    chain: tuple = ()                         # the issuing chain, for extraCerts (RFC 9483 §4.1.1)
    finish: object = None                     # completes the body after the transaction (reads that write)


def rdns(name: x509.Name) -> tuple[tuple[str, str], ...]:
    """RDN pairs as ``IssueRequest.subject`` takes them (asn1crypto attribute names)."""
    out = []
    for rdn in name.chosen:
        for atv in rdn:
            out.append((atv["type"].native, atv["value"].native))
    return tuple(out)


def _free_text(text: str) -> asn1.PKIFreeText:
    return asn1.PKIFreeText([text])


def status_info(status: int, text: str | None = None, fail_info=()) -> asn1.PKIStatusInfo:
    value = {"status": status}
    if text:
        value["status_string"] = _free_text(text)
    if fail_info:
        value["fail_info"] = asn1.PKIFailureInfo(set(fail_info))
    return asn1.PKIStatusInfo(value)


def cert_hash(cert_der: bytes, hash_alg: str | None = None) -> bytes:
    """RFC 4210 §5.3.18: the hash of the certificate with the digest of its signature algorithm (or the
    CMP v3 hashAlg); SM3 for SM2-with-SM3."""
    if hash_alg is None:
        sig = x509.Certificate.load(cert_der)["signature_algorithm"]
        hash_alg = "sm3" if sig["algorithm"].dotted == OID.SM2_WITH_SM3 else sig.hash_algo
    if hash_alg == "sm3":
        return sm3(cert_der)
    return hashlib.new(hash_alg, cert_der).digest()


@functools.lru_cache(maxsize=256)
def _signed_by(certificate: bytes, issuer_certificate: bytes) -> bool:
    """Whether ``issuer_certificate``'s key signed ``certificate`` (RFC 5280 §6.1.3 (a)(1)). A pure function
    of the two encodings, so remembered: a sender's protection certificate is checked once per process, not
    for every message (its validity period and status are checked for every message)."""
    cert = x509.Certificate.load(certificate)
    alg = signature_algorithm(cert["signature_algorithm"])
    issuer_spki = x509.Certificate.load(issuer_certificate).public_key.dump()
    return alg is not None and verify_signature(issuer_spki, alg, cert["tbs_certificate"].dump(), cert.signature)


@functools.lru_cache(maxsize=256)
def _sender_facts(certificate: bytes) -> tuple[bool, str]:
    """Whether a protection certificate is a registered RA's (id-kp-cmcRA, RFC 6402 §2.10) and its subject
    for the audit trail: parsed once per certificate (a pure function of its encoding)."""
    cert = x509.Certificate.load(certificate)
    eku = cert.extended_key_usage_value
    return eku is not None and ID_KP_CMC_RA in [p.dotted for p in eku], cert.subject.human_friendly


class CmpServer:
    """The CMP server of one node (thread-safe; state in the database)."""

    def __init__(self, ca: EmbeddedCA, sealer: SecretSealer, *, implicit_confirm_allowed: bool = True,
                 default_profile: str = "server", ee_approvals: int = 2, label_prefix: str = "",
                 enrolled=None):
        """``enrolled(session, ra_request_id, issue_request, issued)``: records a certificate enrolled with a
        secret bound to an RA request on that request, in the message's transaction (raises ``PkiError``
        to refuse: the request is no longer awaiting its enrolment)."""
        self.ca = ca
        self.enrolled = enrolled
        self.label_prefix = label_prefix
        self._signers: dict[str, _Signer] = {}
        self._signers_lock = threading.Lock()
        self._local = threading.local()
        self.db: sessionmaker[Session] = ca.db
        self.sealer = sealer
        self.implicit_confirm_allowed = implicit_confirm_allowed
        self.default_profile = default_profile
        self.ee_approvals = ee_approvals

    @contextlib.contextmanager
    def _txn(self):
        """The one transaction of the message being handled (``handle`` opens it; every step joins it, so a
        message costs one commit and a refusal leaves nothing behind), or a new one outside ``handle``."""
        current = getattr(self._local, "session", None)
        if current is not None:
            yield current
            return
        with transaction(self.db) as session:
            self._local.session = session
            try:
                yield session
            finally:
                self._local.session = None

    # ----------------------------------------------------------------------------------- officers' side
    def issue_secret(self, actor: str, *, profile: str, subject, dns_names=(), ip_addresses=(), identity=(),
                     approvals_required: int = 0, lifetime: dt.timedelta = SECRET_LIFETIME,
                     role: str = "ra_officer", ra_request_id: int | None = None) -> tuple[str, str]:
        """An officer issues a one-time secret for a vetted subject: (reference, secret). The secret is
        shown once, to be handed to the subscriber out of band (RFC 9483 §4.1.5); it is stored sealed.
        ``ra_request_id``: bound to that approved RA request (its fields given here by the RA); an
        unused secret issued for it before is void from now on."""
        if profile not in self.ca.profiles or self.ca.profiles[profile].internal:
            raise CaError(f"unknown profile {profile}", code=ErrorCode.BAD_REQUEST)
        if not isinstance(approvals_required, int) or not 0 <= approvals_required <= 5:
            raise CaError("approvals_required must be 0..5", code=ErrorCode.BAD_REQUEST)
        if ra_request_id is not None and (approvals_required or self.enrolled is None):
            raise CaError("a secret bound to an RA request takes the RA's approvals (and needs the RA wired)",
                          code=ErrorCode.BAD_REQUEST)
        reference = secrets.token_hex(8)
        secret = secrets.token_urlsafe(18)
        sealed = self.sealer.seal(secret.encode(), reference.encode())
        with transaction(self.db) as session:
            if ra_request_id is not None:
                for old in session.scalars(select(CmpSecret).where(CmpSecret.ra_request_id == ra_request_id,
                                                                   CmpSecret.transaction_id.is_(None))):
                    old.expires_at = utcnow()
            session.add(CmpSecret(reference=reference, sealed=sealed, profile=profile,
                                  subject=[list(p) for p in subject], dns_names=list(dns_names),
                                  ip_addresses=list(ip_addresses), identity=[list(p) for p in identity],
                                  issued_by=actor, approvals_required=approvals_required,
                                  expires_at=utcnow() + lifetime, ra_request_id=ra_request_id))
            record(session, actor=actor, role=role, action="cmp.secret.issue", target_type="cmp_secret",
                   target_id=reference, profile=profile, approvals_required=approvals_required,
                   ra_request_id=ra_request_id)
        return reference, secret

    def approve(self, actor: str, transaction_id: str, *, role: str = "ra_officer") -> dict:
        """An officer approves a waiting CMP request (four-eyes: not the officer who issued its secret,
        each officer once). At the threshold the next pollReq gets the certificate."""
        with transaction(self.db) as session:
            row = session.get(CmpTransaction, transaction_id, with_for_update=True)
            if row is None:
                raise CaError(f"no CMP transaction {transaction_id}", code=ErrorCode.NOT_FOUND)
            if row.state != "waiting":
                raise CaError(f"transaction {transaction_id} is {row.state}, not waiting", code=ErrorCode.CONFLICT)
            if row.secret_reference:
                issuer = session.get(CmpSecret, row.secret_reference).issued_by
                if issuer == actor:
                    raise CaError("the officer who issued the secret cannot approve its request",
                                  code=ErrorCode.FORBIDDEN)
            if actor not in row.approvals:
                row.approvals = [*row.approvals, actor]
            record(session, actor=actor, role=role, action="cmp.request.approve", target_type=AUDIT_TARGET,
                   target_id=transaction_id, approvals=len(row.approvals), required=row.approvals_required)
            return {"transaction_id": transaction_id, "approvals": list(row.approvals),
                    "required": row.approvals_required}

    def reject(self, actor: str, transaction_id: str, reason: str, *, role: str = "ra_officer") -> None:
        with transaction(self.db) as session:
            row = session.get(CmpTransaction, transaction_id, with_for_update=True)
            if row is None or row.state != "waiting":
                raise CaError(f"no waiting CMP transaction {transaction_id}", code=ErrorCode.CONFLICT)
            row.state, row.reason, row.updated_at = "rejected", reason, utcnow()
            record(session, actor=actor, role=role, action="cmp.request.reject", target_type=AUDIT_TARGET,
                   target_id=transaction_id, reason=reason)

    def waiting(self) -> list[dict]:
        with self.db() as session:
            rows = session.scalars(select(CmpTransaction).where(CmpTransaction.state == "waiting")).all()
            return [{"transaction_id": r.transaction_id, "kind": r.kind, "sender": r.sender,
                     "approvals": list(r.approvals), "required": r.approvals_required,
                     "subject": (r.request or {}).get("subject")} for r in rows]

    # ----------------------------------------------------------------------------------------- protocol
    def handle(self, der: bytes, label: str | None = None) -> tuple[int, bytes]:
        """(HTTP status, DER PKIMessage) for one request body."""
        try:
            message = self._parse(der)
        except CmpFailure as exc:
            return exc.http_status, self._error_without_request(exc)
        sender: _Sender | None = None
        central: EscrowedKey | None = None
        try:
            try:
                # central key generation: the KMC makes the key before the message's transaction opens
                sender, central = self._central_key(message, label)
                self._local.central = central
                with self._txn():
                    sender = self._authenticate(message)
                    answer = self._dispatch(message, sender, label)
            except IntegrityError:
                raise CmpFailure("a message with this senderNonce or transactionID was handled at the same time: "
                                 "replay refused", "bad_sender_nonce", "transaction_id_in_use") from None
            except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
                log.info("malformed CMP body: %s", exc)          # a part parsed on first use
                raise CmpFailure("the message body is malformed (RFC 4210 §5.1)", "bad_data_format") from None
            if answer.finish is not None:
                answer = answer.finish()
            return 200, self._answer(message, sender, answer)
        except CmpFailure as exc:
            self._audit_refusal(message, sender, exc)
            self._release_central(central, exc)
            return exc.http_status, self._answer(message, sender, self._error_body(exc))
        except PkiError as exc:
            failure = CmpFailure(exc.public_message, *self._fail_bits(exc))
            self._audit_refusal(message, sender, failure)
            self._release_central(central, failure)
            return 200, self._answer(message, sender, self._error_body(failure))
        finally:
            self._local.central = None

    # ------------------------------------------------------------------------- central key generation
    def _central_key(self, message: asn1.PKIMessage, label: str | None) -> tuple[_Sender | None, EscrowedKey | None]:
        """A cr/ir whose certTemplate has no publicKey and whose protocolEncrKey control names the key to
        encrypt the new private key to (central key generation, RFC 9483 §4.1.6; RFC 4211 §6.6): the KMC
        generates and archives an SM2 key for the certificate (GM/T 0014 ApplyKeyReq through
        ``prepare_escrowed_key``, as for the embedded CA's dual pairs), enveloped to that key. Done before
        the message's transaction opens (no database lock across the KMC call) and idempotent on the CA
        request id ``cmp-<transactionID>``, so a re-sent request gets the same key. Offered to a registered
        RA (its signature is checked here first, read-only) for a key-escrow profile. (None, None) for any
        other message."""
        body = message["body"]
        if body.name not in ("ir", "cr") or len(body.chosen) != 1:
            return None, None
        request = body.chosen[0]["cert_req"]
        if request["cert_template"]["public_key"].native is not None:
            return None, None
        encr_key = None
        for control in request["controls"] or []:
            if control["type"].dotted == REG_CTRL_PROTOCOL_ENCR_KEY:
                encr_key = asn1.keys.PublicKeyInfo.load(control["value"].dump())
        if encr_key is None or message["header"]["protection_alg"].native is None \
                or not message["protection"].contents:
            return None, None                   # refused as any unprotected message is, by _authenticate
        if is_mac(message["header"]["protection_alg"]):
            raise CmpFailure("central key generation is offered to a registered RA (signature protection)",
                             "not_authorized")
        sender = self._signature_sender(message)
        if sender.mode != "ra":
            raise CmpFailure("central key generation is offered to a registered RA only", "not_authorized")
        profile = label or self.default_profile
        can = getattr(self.ca, "can_escrow", None)
        if profile not in self.ca.profiles or not self.ca.profiles[profile].key_escrow or can is None \
                or not can(profile):
            raise CmpFailure(f"profile {profile} takes no centrally generated keys here (no key-management "
                             "centre for it)", "bad_cert_template", "not_authorized")
        self._not_replayed(message)
        subject = request["cert_template"]["subject"]
        common = [v for t, v in (rdns(subject) if subject.native is not None else ()) if t == "common_name"]
        escrow = EscrowedKeyRequest(request_id=f"cmp-{self._tid(message)}", profile=profile,
                                    subscriber_public_key_info=encr_key.dump(),
                                    user_name=common[0] if common else None)
        return sender, self.ca.prepare_escrowed_key(escrow)

    def _not_replayed(self, message: asn1.PKIMessage) -> None:
        """Before the KMC makes a key: a senderNonce seen before or a transactionID in use is refused here
        (read-only; RFC 4210 §5.1.1), so a replay never has a key made that nothing would give back (the
        refusal of a replay keeps the key, which is the original's). ``_authenticate`` and
        ``_new_transaction`` check again in the message's transaction."""
        nonce = message["header"]["sender_nonce"].native
        with self.db() as session:
            if nonce is not None and session.get(CmpNonce, nonce.hex()) is not None:
                raise CmpFailure("this senderNonce was seen before: replayed message refused", "bad_sender_nonce")
            if session.get(CmpTransaction, self._tid(message)) is not None:
                raise CmpFailure("this transactionID is in use: replayed or clashing request refused",
                                 "transaction_id_in_use")

    def _release_central(self, central: EscrowedKey | None, failure: CmpFailure) -> None:
        """A centrally generated key whose request was refused goes back to the KMC (RevokeKeyReq after
        the commit), unless the refusal was of a replayed or clashing message (the key is the original's)."""
        if central is None or {"bad_sender_nonce", "transaction_id_in_use"} & set(failure.fail_info):
            return
        try:
            with transaction(self.db) as session:
                self.ca.release_escrowed_key(central.request_id, session)
        except PkiError:
            pass                           # issued meanwhile (its certificate names the key): nothing to give back
        except Exception:  # noqa: BLE001 - the refusal is answered even when the key cannot be given back now
            log.exception("could not give back the KMC key of refused request %s", central.request_id)

    @staticmethod
    def _fail_bits(exc: PkiError) -> tuple[str, ...]:
        if exc.code in (ErrorCode.HSM_UNAVAILABLE, ErrorCode.UPSTREAM_UNAVAILABLE, ErrorCode.CONFIGURATION):
            return ("system_unavail",)
        if exc.code == ErrorCode.CONFLICT:
            return ("duplicate_cert_req",)
        if exc.code == ErrorCode.NOT_FOUND:
            return ("bad_cert_id",)
        return ("bad_cert_template",)

    def _parse(self, der: bytes) -> asn1.PKIMessage:
        if not der or len(der) > MAX_MESSAGE:
            raise CmpFailure("the body is empty or larger than 256 KiB", "bad_data_format", http_status=400)
        try:
            message = asn1.PKIMessage.load(der, strict=True)
            header = message["header"]
            header.native                           # noqa: B018 - the header whole now; the body as used
            message["body"].chosen                  # noqa: B018
            if message["body"].name in ("popdecc", "popdecr", "krr", "krp", "ccr", "ccp", "ckuann", "cann",
                                        "rann", "crlann", "nested"):
                raise CmpFailure(f"{message['body'].name} messages are not served here", "bad_request")
        except CmpFailure:
            raise
        except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
            log.info("undecodable CMP message: %s", exc)
            raise CmpFailure("the body is not a DER PKIMessage (RFC 4210 §5.1)", "bad_data_format",
                             http_status=400) from None
        if header["pvno"].native not in (2, 3):
            raise CmpFailure("pvno must be 2 (cmp2000) or 3 (cmp2021)", "unsupported_version", http_status=400)
        tid = header["transaction_id"].native
        nonce = header["sender_nonce"].native
        if not tid or not 16 <= len(tid) <= 64:
            raise CmpFailure("a transactionID of 16 to 64 octets is required (RFC 9483 §3.1)", "bad_request",
                             http_status=400)
        if not nonce or not 16 <= len(nonce) <= 64:
            raise CmpFailure("a senderNonce of 16 to 64 octets is required (RFC 9483 §3.1)", "bad_sender_nonce",
                             http_status=400)
        return message

    # ------------------------------------------------------------------------------- authentication
    def _authenticate(self, message: asn1.PKIMessage) -> _Sender:
        header = message["header"]
        alg = header["protection_alg"]
        if alg.native is None or not message["protection"].contents:
            raise CmpFailure("the message is not protected; use a MAC with your one-time secret or a signature",
                             "bad_message_check", "not_authorized")
        when = header["message_time"].native
        if when is not None and abs(when - utcnow()) > MESSAGE_TIME_SKEW:
            raise CmpFailure("messageTime is more than 10 minutes from the server's time", "bad_time")
        if is_mac(alg):
            sender = self._mac_sender(message)
        else:
            sender = self._signature_sender(message)
        self._fresh_nonce(header["sender_nonce"].native)
        return sender

    def _mac_sender(self, message: asn1.PKIMessage) -> _Sender:
        kid = message["header"]["sender_kid"].native
        reference = kid.decode("ascii", "replace") if kid else ""
        with self._txn() as session:
            row = session.get(CmpSecret, reference) if 0 < len(reference) <= 64 else None
            data = None if row is None else {c.name: getattr(row, c.name) for c in CmpSecret.__table__.columns}
        if data is None:
            raise CmpFailure("no one-time secret with this senderKID reference", "not_authorized", "bad_message_check")
        secret = self.sealer.open(data["sealed"], reference.encode())
        try:
            ok = verify_mac(message, secret)
        except ProtectionError as exc:
            raise CmpFailure(f"MAC protection cannot be checked: {exc}", "bad_alg") from None
        if not ok:
            raise CmpFailure("the MAC does not verify with the secret of this reference", "bad_message_check")
        tid = message["header"]["transaction_id"].native.hex()
        if data["transaction_id"] not in (None, tid):
            raise CmpFailure("this one-time secret was used already", "not_authorized")
        if data["transaction_id"] is None and as_utc(data["expires_at"]) < utcnow():
            raise CmpFailure("this one-time secret has expired", "not_authorized")
        return _Sender("mac", f"secret:{reference}", secret=secret, secret_row=data)

    def _signature_sender(self, message: asn1.PKIMessage) -> _Sender:
        extra = message["extra_certs"]
        # absent, or empty (not .native: that converted every certificate of the chain, for each message)
        if isinstance(extra, core.Void) or len(extra) == 0:
            raise CmpFailure("a signed message carries its protection certificate first in extraCerts "
                             "(RFC 9483 §3.3)", "signer_not_trusted")
        cert = extra[0]
        check = verify_signature_protection(message, cert)
        if check.algorithm is None:
            raise CmpFailure(check.why, "bad_alg")
        if not check.ok:
            raise CmpFailure(check.why, "bad_message_check")
        issuer = self._our_issuer(cert)
        with self._txn() as session:
            row = session.scalar(select(IssuedCert).where(IssuedCert.ca_id == issuer.id,
                                                          IssuedCert.serial == format(cert.serial_number, "x")))
        if row is None or row.status != "good":
            raise CmpFailure("the protection certificate is revoked or unknown to this CA", "cert_revoked",
                             "signer_not_trusted")
        if row.certificate != cert.dump():
            raise CmpFailure("the protection certificate is not the one this CA issued", "signer_not_trusted")
        is_ra, name = _sender_facts(row.certificate)
        return _Sender("ra" if is_ra else "end-entity", name, certificate=cert, issuer=issuer, profile=row.profile)

    def _our_issuer(self, cert: x509.Certificate) -> CaInfo:
        """The CA of ours that signed ``cert`` (by name, then by key: two CAs may share a name across a
        key rollover or in two hierarchies)."""
        issuer_der = cert.issuer.dump()
        alg = signature_algorithm(cert["signature_algorithm"])
        candidates = [i for i in self.ca.authorities().values() if i.subject_der == issuer_der]
        if not candidates:
            raise CmpFailure("the protection certificate was not issued by this CA", "signer_not_trusted")
        for info in candidates:
            if alg is not None and _signed_by(cert.dump(), info.certificate):
                break
        else:
            raise CmpFailure("the protection certificate's signature does not verify", "signer_not_trusted")
        now = utcnow()
        if not cert.not_valid_before <= now <= cert.not_valid_after:
            raise CmpFailure("the protection certificate is outside its validity period", "signer_not_trusted")
        return info

    def _fresh_nonce(self, nonce: bytes) -> None:
        """Record the nonce in the message's transaction; seen before -> refused. Two copies at once on two
        nodes: one commit fails on the primary key (``handle`` refuses it)."""
        with self._txn() as session:
            if session.get(CmpNonce, nonce.hex()) is not None:
                raise CmpFailure("this senderNonce was seen before: replayed message refused", "bad_sender_nonce")
            session.add(CmpNonce(nonce=nonce.hex()))

    # ------------------------------------------------------------------------------------ dispatch
    def _dispatch(self, message: asn1.PKIMessage, sender: _Sender, label: str | None) -> _Answer:
        kind = message["body"].name
        if kind in ("ir", "cr", "kur", "p10cr"):
            return self._enrol(message, sender, kind, label)
        if kind == "cert_conf":
            return self._cert_conf(message, sender)
        if kind == "poll_req":
            return self._poll(message, sender)
        if kind == "rr":
            return self._revoke(message, sender)
        if kind == "genm":
            return self._genm(message, sender)
        if kind == "error":
            return self._client_error(message, sender)
        raise CmpFailure(f"a server does not take {kind} messages", "bad_request")

    def _tid(self, message) -> str:
        return message["header"]["transaction_id"].native.hex()

    def _new_transaction(self, session: Session, message, sender: _Sender, kind: str, **fields) -> CmpTransaction:
        tid = self._tid(message)
        if session.get(CmpTransaction, tid) is not None:
            raise CmpFailure("this transactionID is in use: replayed or clashing request refused",
                             "transaction_id_in_use")
        row = CmpTransaction(transaction_id=tid, kind=kind, sender=sender.name[:2000], mode=sender.mode,
                             secret_reference=(sender.secret_row or {}).get("reference"), approvals=[], **fields)
        session.add(row)
        return row

    # ------------------------------------------------------------------------------------ enrolment
    def _enrol(self, message, sender: _Sender, kind: str, label: str | None) -> _Answer:
        body = message["body"].chosen
        if kind == "p10cr":
            cert_req_id, subject, spki, extensions = -1, *self._p10(body)
            old_cert = None
        else:
            if len(body) != 1:
                raise CmpFailure("exactly one CertReqMsg per request (RFC 9483 §4.1.1)", "bad_request")
            msg = body[0]
            cert_req_id = msg["cert_req"]["cert_req_id"].native
            if cert_req_id != 0:
                raise CmpFailure("certReqId must be 0 (RFC 9483 §4.1.1)", "bad_request")
            template = msg["cert_req"]["cert_template"]
            spki = template["public_key"]
            central = getattr(self._local, "central", None)
            if spki.native is None and central is None:
                raise CmpFailure("the certTemplate carries no publicKey and no protocolEncrKey control: central "
                                 "key generation needs the key to encrypt the new private key to (RFC 9483 "
                                 "§4.1.6)", "bad_cert_template")
            if spki.native is None:
                if not isinstance(msg["popo"], core.Void):
                    raise CmpFailure("no proof of possession for a centrally generated key (RFC 9483 §4.1.6)",
                                     "bad_pop")
                spki = asn1.keys.PublicKeyInfo.load(central.public_key_info)
            else:
                self._check_popo(msg, spki, sender)
            subject = rdns(template["subject"]) if template["subject"].native is not None else ()
            extensions = template["extensions"] if template["extensions"].native is not None else None
            old_cert = self._old_cert_id(msg) if kind == "kur" else None
        spki_der = spki.untag().dump()
        dns, ips = self._alt_names(extensions)
        request, approvals = self._authorise(sender, kind, label, subject, dns, ips, old_cert, extensions)
        body_name = {"ir": "ip", "cr": "cp", "p10cr": "cp", "kur": "kup"}[kind]
        tid = self._tid(message)
        ra_request_id = (sender.secret_row or {}).get("ra_request_id")
        request = {**request, "public_key_info": spki_der.hex(),
                   "request_id": f"ra-{ra_request_id}-sign" if ra_request_id is not None else f"cmp-{tid}"}
        if ra_request_id is not None:
            request["ra_request_id"] = ra_request_id
        implicit = self._wants_implicit_confirm(message)
        with self._txn() as session:
            self._new_transaction(session, message, sender, kind, cert_req_id=cert_req_id,
                                  request=request, approvals_required=approvals,
                                  state="waiting" if approvals else "approved")
            if sender.secret_row is not None:
                secret = session.get(CmpSecret, sender.secret_row["reference"], with_for_update=True)
                if secret.transaction_id not in (None, tid):
                    raise CmpFailure("this one-time secret was used already", "not_authorized")
                secret.transaction_id = tid
            record(session, actor=sender.name[:128], role=ACTOR_ROLE, action=f"cmp.{kind}", target_type=AUDIT_TARGET,
                   target_id=tid, mode=sender.mode, profile=request["profile"], waiting=bool(approvals))
            if approvals:
                return self._cert_rep(body_name, cert_req_id, status_info(
                    WAITING, f"waiting for {approvals} officer approval(s); poll with pollReq"))
        return self._issue_and_answer(tid, body_name, implicit)

    def _issue_and_answer(self, tid: str, body_name: str, implicit: bool) -> _Answer:
        with self._txn() as session:
            row = session.get(CmpTransaction, tid, with_for_update=True)
            req = dict(row.request)
            issue = IssueRequest(request_id=req["request_id"], profile=req["profile"],
                                 subject=tuple(tuple(p) for p in req["subject"]),
                                 public_key_info=bytes.fromhex(req["public_key_info"]),
                                 dns_names=tuple(req.get("dns_names", ())),
                                 ip_addresses=tuple(req.get("ip_addresses", ())),
                                 identity=tuple(tuple(p) for p in req.get("identity", ())))
            try:
                if req.get("ra_request_id") is not None:
                    # the CA's certificate and the RA request's record of it: both or neither
                    with session.begin_nested():
                        issued = self.ca.issue(issue, session=session)
                        self.enrolled(session, req["ra_request_id"], issue, issued)
                else:
                    issued = self.ca.issue(issue, session=session)
            except PkiError as exc:
                row.state, row.reason, row.updated_at = "rejected", exc.public_message, utcnow()
                if getattr(self._local, "central", None) is not None:
                    # the KMC key reserved for it will name no certificate: back to the KMC after the commit
                    self.ca.release_escrowed_key(req["request_id"], session)
                record(session, actor="cmp", role=ACTOR_ROLE, action="cmp.refuse", target_type=AUDIT_TARGET,
                       target_id=tid, reason=exc.public_message)
                failure = CmpFailure(exc.public_message, *self._fail_bits(exc))
                answer = self._cert_rep(body_name, row.cert_req_id,
                                        status_info(REJECTION, failure.text, failure.fail_info))
                return answer
            row.ca, row.serial, row.certificate = issued.ca, format(issued.serial, "x"), issued.certificate
            confirm = implicit and self.implicit_confirm_allowed
            row.state, row.updated_at = ("confirmed" if confirm else "issued"), utcnow()
            record(session, actor="cmp", role=ACTOR_ROLE, action="cmp.issue", target_type=AUDIT_TARGET,
                   target_id=tid, ca=issued.ca, serial=row.serial, implicit_confirm=confirm)
            ca_info = self.ca.directory.get(issued.ca)
            ca_pubs = self._root_of(ca_info) if row.kind == "ir" else None
            answer = self._cert_rep(body_name, row.cert_req_id, status_info(ACCEPTED), issued.certificate,
                                    ca_pubs=ca_pubs, chain=issued.chain, key_envelope=issued.key_envelope)
            if confirm:
                answer.extra_general_info.append({"info_type": IMPLICIT_CONFIRM, "info_value": core.Null()})
            return answer

    def _root_of(self, info: CaInfo) -> list[bytes]:
        while info.parent is not None:
            info = self.ca.directory.get(info.parent)
        return [info.certificate]

    def _cert_rep(self, body_name: str, cert_req_id: int, status: asn1.PKIStatusInfo, certificate: bytes | None = None,
                  *, ca_pubs=None, chain=(), key_envelope: bytes | None = None) -> _Answer:
        """``key_envelope``: the KMC's GM/T 0010 envelope of a centrally generated key, sent as
        CertifiedKeyPair.privateKey (RFC 9480 §2.7, ``keypkg.to_encrypted_key``)."""
        response = {"cert_req_id": cert_req_id, "status": status}
        if certificate is not None:
            response["certified_key_pair"] = {"cert_or_enc_cert": asn1.CertOrEncCert(
                name="certificate", value=x509.Certificate.load(certificate))}
            if key_envelope is not None:
                response["certified_key_pair"]["private_key"] = asn1.RawElement(to_encrypted_key(key_envelope))
        rep = {"response": [response]}
        if ca_pubs:
            rep["ca_pubs"] = [x509.Certificate.load(c) for c in ca_pubs]
        return _Answer(body_name, asn1.CertRepMessage(rep), chain=tuple(chain))

    def _p10(self, req: asn1_csr.CertificationRequest):
        info = req["certification_request_info"]
        spki = info["subject_pk_info"]
        alg = signature_algorithm(req["signature_algorithm"])
        if alg is None:
            raise CmpFailure("unsupported CSR signature algorithm", "bad_alg")
        if not verify_signature(spki.dump(), alg, info.dump(), req["signature"].native):
            raise CmpFailure("the CSR's signature (its proof of possession) does not verify", "bad_pop")
        extensions = None
        for attr in info["attributes"]:
            if attr["type"].native == "extension_request":
                extensions = attr["values"][0]
        return rdns(info["subject"]), spki, extensions

    def _check_popo(self, msg: asn1.CertReqMsg, spki, sender: _Sender) -> None:
        popo = msg["popo"]
        if isinstance(popo, core.Void):
            raise CmpFailure("proof of possession is missing (RFC 4211 §4)", "bad_pop")
        if popo.name == "ra_verified":
            if sender.mode != "ra":
                raise CmpFailure("raVerified proof of possession is accepted from a registered RA only", "bad_pop",
                                 "not_authorized")
            return
        if popo.name != "signature":
            raise CmpFailure("only signature proof of possession is accepted (RFC 9483 §4.1.1)", "bad_pop")
        sig = popo.chosen
        if sig["poposk_input"].native is not None:
            raise CmpFailure("poposkInput must be absent when the template names the key", "bad_pop")
        alg = signature_algorithm(sig["algorithm_identifier"])
        if alg is None:
            raise CmpFailure("unsupported proof-of-possession algorithm", "bad_alg")
        if not verify_signature(spki.untag().dump(), alg, msg["cert_req"].dump(), sig["signature"].native):
            raise CmpFailure("the proof-of-possession signature does not verify", "bad_pop")

    def _old_cert_id(self, msg) -> tuple[bytes, int] | None:
        for control in msg["cert_req"]["controls"] or []:
            if control["type"].dotted == OLD_CERT_ID:
                cid = asn1.CertId.load(control["value"].dump())
                if cid["issuer"].name != "directory_name":
                    raise CmpFailure("oldCertID names its issuer by directoryName", "bad_cert_id")
                return cid["issuer"].chosen.untag().dump(), cid["serial_number"].native
        return None

    @staticmethod
    def _alt_names(extensions) -> tuple[tuple[str, ...], tuple[str, ...]]:
        dns, ips = [], []
        for ext in extensions or []:
            if ext["extn_id"].native == "subject_alt_name":
                for gn in ext["extn_value"].parsed:
                    if gn.name == "dns_name":
                        dns.append(gn.native)
                    elif gn.name == "ip_address":
                        ips.append(gn.native)
        return tuple(dns), tuple(ips)

    def _authorise(self, sender: _Sender, kind: str, label: str | None, subject, dns, ips, old_cert,
                   extensions=None) -> tuple[dict, int]:
        """(the IssueRequest fields, officer approvals still needed) for this sender and request."""
        if sender.mode == "mac":
            if kind == "kur":
                raise CmpFailure("a key update is signed with the certificate it replaces (RFC 4210 §5.3.5)",
                                 "not_authorized", "wrong_integrity")
            row = sender.secret_row
            if label is not None and label != row["profile"]:
                raise CmpFailure(f"this secret is for profile {row['profile']}, not {label}", "not_authorized")
            vetted = tuple(tuple(p) for p in row["subject"])
            if subject and subject != vetted:
                raise CmpFailure("the requested subject differs from the vetted one this secret was issued for",
                                 "bad_cert_template")
            return ({"profile": row["profile"], "subject": row["subject"], "dns_names": row["dns_names"],
                     "ip_addresses": row["ip_addresses"], "identity": row["identity"]}, row["approvals_required"])
        if sender.mode == "ra":
            profile = label or self.default_profile
            if profile not in self.ca.profiles or self.ca.profiles[profile].internal:
                raise CmpFailure(f"unknown certificate profile {profile}", "bad_cert_template", "bad_request")
            if not subject:
                raise CmpFailure("the certTemplate names no subject", "bad_cert_template")
            return ({"profile": profile, "subject": [list(p) for p in subject], "dns_names": list(dns),
                     "ip_addresses": list(ips), "identity": self._identity_in(extensions)}, 0)
        # an end entity signing with its own certificate
        cert = sender.certificate
        own = rdns(cert.subject)
        if subject and subject != own:
            raise CmpFailure("an end entity asks only for its own subject", "bad_cert_template", "not_authorized")
        san = cert.subject_alt_name_value
        own_dns = [g.native for g in san or [] if g.name == "dns_name"]
        own_ips = [g.native for g in san or [] if g.name == "ip_address"]
        fields = {"profile": sender.profile, "subject": [list(p) for p in own], "dns_names": own_dns,
                  "ip_addresses": own_ips, "identity": self._identity_of(cert)}
        if kind == "kur":
            if old_cert is not None and (old_cert[0] != cert.issuer.dump() or old_cert[1] != cert.serial_number):
                raise CmpFailure("oldCertID must name the certificate that signs the kur", "bad_cert_id")
            return fields, 0
        return fields, self.ee_approvals

    @staticmethod
    def _identity_of(cert: x509.Certificate) -> list:
        return CmpServer._identity_in(cert["tbs_certificate"]["extensions"])

    @staticmethod
    def _identity_in(extensions) -> list:
        """GM/T 0015 identity extensions (1.2.156.10260.4.1.*) as [oid, text] pairs."""
        out = []
        for ext in extensions or []:
            oid = ext["extn_id"].dotted
            if oid.startswith("1.2.156.10260.4.1."):
                try:
                    value = core.Asn1Value.load(ext["extn_value"].native).native
                except ValueError:
                    continue
                out.append([oid, value if isinstance(value, str) else str(value)])
        return out

    @staticmethod
    def _wants_implicit_confirm(message) -> bool:
        info = message["header"]["general_info"]
        return any(i["info_type"].dotted == IMPLICIT_CONFIRM for i in info or [])

    # --------------------------------------------------------------------------- confirm, poll, error
    def _transaction(self, session: Session, message, sender: _Sender) -> CmpTransaction:
        row = session.get(CmpTransaction, self._tid(message), with_for_update=True)
        if row is None:
            raise CmpFailure("no transaction with this transactionID", "bad_request")
        if row.sender != sender.name[:2000]:
            raise CmpFailure("this transaction belongs to another sender", "not_authorized")
        return row

    def _cert_conf(self, message, sender: _Sender) -> _Answer:
        statuses = message["body"].chosen
        tid = self._tid(message)
        with self._txn() as session:
            row = self._transaction(session, message, sender)
            if row.state == "confirmed":
                return _Answer("pkiconf", core.Null())
            if row.state != "issued":
                raise CmpFailure(f"nothing to confirm: the transaction is {row.state}", "bad_request")
            if len(statuses) != 1 or statuses[0]["cert_req_id"].native != row.cert_req_id:
                raise CmpFailure("certConf must confirm the one certificate of this transaction", "bad_cert_id")
            status = statuses[0]
            hash_alg = status["hash_alg"]["algorithm"].native if status["hash_alg"].native else None
            try:
                expected = cert_hash(row.certificate, hash_alg)
            except ValueError:
                raise CmpFailure("unsupported hashAlg", "bad_alg") from None
            if status["cert_hash"].native != expected:
                raise CmpFailure("certHash does not match the certificate issued", "bad_cert_id")
            info = status["status_info"]
            accepted = info.native is None or info["status"].native in (ACCEPTED, GRANTED_WITH_MODS)
            if accepted:
                row.state = "confirmed"
            else:
                # RFC 4210 §5.3.18: the end entity refused the certificate: the CA revokes it
                row.state, row.reason = "rejected", "the requester rejected the certificate"
                self.ca.revoke(row.ca, int(row.serial, 16), RevocationReason.cessation_of_operation, session=session)
            row.updated_at = utcnow()
            record(session, actor=sender.name[:128], role=ACTOR_ROLE, action="cmp.certconf", target_type=AUDIT_TARGET,
                   target_id=tid, accepted=accepted, serial=row.serial)
        return _Answer("pkiconf", core.Null())

    def _poll(self, message, sender: _Sender) -> _Answer:
        tid = self._tid(message)
        with self._txn() as session:
            row = self._transaction(session, message, sender)
            kind, state, cert_req_id = row.kind, row.state, row.cert_req_id
            ready = state == "waiting" and len(row.approvals) >= row.approvals_required
            if ready:
                row.state = "approved"
            reason = row.reason
        body_name = {"ir": "ip", "cr": "cp", "p10cr": "cp", "kur": "kup"}.get(kind)
        if body_name is None:
            raise CmpFailure("this transaction has nothing to poll for", "bad_request")
        if state == "rejected":
            return self._cert_rep(body_name, cert_req_id, status_info(REJECTION, reason or "rejected",
                                                                     ("not_authorized",)))
        if state == "waiting" and not ready:
            return _Answer("poll_rep", asn1.PollRepContent([{"cert_req_id": cert_req_id, "check_after": CHECK_AFTER,
                                                            "reason": _free_text("waiting for officer approval")}]))
        if state in ("waiting", "approved"):
            return self._issue_and_answer(tid, body_name, self._wants_implicit_confirm(message))
        if state == "issued":
            # the answer with the certificate was lost (the requester crashed or the line dropped): the
            # same certificate again, never a second one; it still awaits certConf
            with self._txn() as session:
                row = session.get(CmpTransaction, tid)
                ca_info = self.ca.directory.get(row.ca)
                reserved = self.ca.kmc.reservation(session, row.request["request_id"]) \
                    if getattr(self.ca, "kmc", None) is not None and row.request else None
                return self._cert_rep(body_name, cert_req_id, status_info(ACCEPTED), row.certificate,
                                      chain=ca_info.chain, key_envelope=reserved.key_envelope if reserved else None)
        raise CmpFailure(f"nothing to poll for: the transaction is {state}", "bad_request")

    def _client_error(self, message, sender: _Sender) -> _Answer:
        with self._txn() as session:
            row = session.get(CmpTransaction, self._tid(message), with_for_update=True)
            if row is not None and row.sender == sender.name[:2000] and row.state in ("waiting", "issued"):
                if row.state == "issued":
                    self.ca.revoke(row.ca, int(row.serial, 16), RevocationReason.cessation_of_operation,
                                   session=session)
                row.state, row.reason = "rejected", "the requester ended the transaction with an error"
            record(session, actor=sender.name[:128], role=ACTOR_ROLE, action="cmp.client_error",
                   target_type=AUDIT_TARGET, target_id=self._tid(message))
        return _Answer("pkiconf", core.Null())

    # ---------------------------------------------------------------------------------- revocation
    def _revoke(self, message, sender: _Sender) -> _Answer:
        details = message["body"].chosen
        if len(details) != 1:
            raise CmpFailure("exactly one RevDetails per request (RFC 9483 §4.2)", "bad_request")
        template = details[0]["cert_details"]
        if template["issuer"].native is None or template["serial_number"].native is None:
            raise CmpFailure("certDetails must name issuer and serialNumber (RFC 9483 §4.2)", "bad_cert_id")
        issuer_der, serial = template["issuer"].untag().dump(), template["serial_number"].native
        named = [i for i in self.ca.authorities().values() if i.subject_der == issuer_der]
        if not named:
            raise CmpFailure("this CA is not the issuer named", "wrong_authority", "bad_cert_id")
        issuer = named[0]
        if len(named) > 1:        # one name, several CA keys: the one that issued this serial
            with self._txn() as session:
                ids = set(session.scalars(select(IssuedCert.ca_id).where(IssuedCert.serial == format(serial, "x"))))
            issuer = next((i for i in named if i.id in ids), issuer)
        if sender.mode == "mac":
            raise CmpFailure("revocation needs a signature by the certificate or a registered RA", "not_authorized")
        if sender.mode == "end-entity" and (sender.issuer.name != issuer.name or
                                            sender.certificate.serial_number != serial):
            raise CmpFailure("an end entity may revoke only the certificate that signs the request",
                             "not_authorized")
        reason = RevocationReason.unspecified
        for ext in details[0]["crl_entry_details"] or []:
            if ext["extn_id"].dotted == "2.5.29.21":               # RFC 5280 §5.3.1 reasonCode
                try:
                    code = asn1.crl.CRLReason.load(ext["extn_value"].native).native
                except ValueError:
                    raise CmpFailure("the reasonCode is not a CRLReason", "bad_data_format") from None
                reason = RevocationReason(code) if code in RevocationReason._value2member_map_ else reason
        tid = self._tid(message)
        with self._txn() as session:
            self._new_transaction(session, message, sender, "rr", state="done")
            try:
                self.ca.revoke(issuer.name, serial, reason, session=session)
            except PkiError as exc:
                bits = ("cert_revoked",) if exc.code == ErrorCode.CONFLICT else ("bad_cert_id",)
                raise CmpFailure(exc.public_message, *bits) from None
            record(session, actor=sender.name[:128], role=ACTOR_ROLE, action="cmp.rr", target_type=AUDIT_TARGET,
                   target_id=tid, ca=issuer.name, serial=format(serial, "x"), reason=reason.value)
        return _Answer("rp", asn1.RevRepContent({"status": [status_info(ACCEPTED)]}))

    # ---------------------------------------------------------------------------------- general messages
    def _genm(self, message, sender: _Sender) -> _Answer:
        out = []
        pvno, crls = 2, False
        for itav in message["body"].chosen:
            oid = itav["info_type"].dotted
            if oid == IT_CA_CERTS:
                out.append({"info_type": oid, "info_value": asn1.Certificates(
                    [x509.Certificate.load(i.certificate) for i in self.ca.authorities().values()])})
                pvno = 3
            elif oid == IT_ROOT_CA_KEY_UPDATE:
                out.append({"info_type": oid})          # no root CA key update published (RFC 9483 §4.3.2)
                pvno = 3
            elif oid == IT_CERT_REQ_TEMPLATE:
                out.append(self._template_info(sender))
                pvno = 3
            elif oid == IT_CRL_STATUS_LIST:
                crls = True                              # read after the transaction: a CRL may be re-signed
                pvno = 3
            elif oid == IT_SIGN_KEY_PAIR_TYPES:
                out.append({"info_type": oid, "info_value": asn1.AlgorithmIdentifiers(
                    [{"algorithm": o} for o in ("1.2.156.10197.1.501", "1.2.840.10045.4.3.2", "1.2.840.113549.1.1.11")])})
            # other info types are left out of the answer (RFC 4210 §5.3.19)
        with self._txn() as session:
            self._new_transaction(session, message, sender, "genm", state="done")
            record(session, actor=sender.name[:128], role=ACTOR_ROLE, action="cmp.genm", target_type=AUDIT_TARGET,
                   target_id=self._tid(message), info_types=[i["info_type"] for i in out])
        if crls:
            return _Answer("genp", None, pvno=pvno, finish=lambda: _Answer("genp", asn1.InfoTypeAndValues(
                [*out, {"info_type": IT_CRLS, "info_value": asn1.CertificateLists(self._crls())}]), pvno=pvno))
        return _Answer("genp", asn1.InfoTypeAndValues(out), pvno=pvno)

    def _template_info(self, sender: _Sender) -> dict:
        profile = self.ca.profiles.get((sender.secret_row or {}).get("profile") or sender.profile or
                                       self.default_profile)
        template: dict = {}
        if sender.secret_row:
            template["subject"] = x509.Name.build(dict(sender.secret_row["subject"]))
        key_spec = []
        for name in sorted(profile.key_algorithms) if profile else ():
            if name in KEY_ALG_IDS:
                oid, curve = KEY_ALG_IDS[name]
                alg = {"algorithm": oid, "parameters": core.ObjectIdentifier(curve) if curve else core.Null()}
                key_spec.append(asn1.AttributeTypeAndValue({"type": REG_CTRL_ALG_ID,
                                                            "value": algos.AlgorithmIdentifier(alg)}))
        content = asn1.CertReqTemplateContent({"cert_template": template,
                                               "key_spec": asn1.Controls(key_spec) if key_spec else None})
        return {"info_type": IT_CERT_REQ_TEMPLATE, "info_value": content}

    def _crls(self) -> list:
        out = []
        for info in self.ca.authorities().values():
            try:
                out.append(asn1.crl.CertificateList.load(self.ca.crls.current(info.name, delta=False).der))
            except PkiError:
                continue
        return out

    # ---------------------------------------------------------------------------------- answers
    def _error_body(self, exc: CmpFailure) -> _Answer:
        return _Answer("error", asn1.ErrorMsgContent({
            "pki_status_info": status_info(REJECTION, exc.text, exc.fail_info),
            "error_details": _free_text(exc.text)}))

    def _signer_ca(self, sender: _Sender | None) -> CaInfo:
        """The issuing CA whose CMP identity answers: the sender's certificate's issuer, else the
        ECDSA issuing CA when there is one (OpenSSL 3.0's client handles it best), else the SM2 one."""
        if sender is not None and sender.issuer is not None:
            return sender.issuer
        ec = self.ca.default_cas.get("ec", "")
        return self.ca.directory.get(ec if self.ca.directory.find(ec) else self.ca.default_cas["sm2"])

    def signer(self, ca: CaInfo) -> _Signer:
        """The CMP protection identity of ``ca``: an HSM key made once (under the key manager's creation
        lock, so nodes sharing the HSM make one) and certified once per key (the issuance is idempotent on
        ``cmp-server:<CA>:<key hash>``)."""
        cached = self._signers.get(ca.name)
        if cached is not None and cached.ca is ca:
            return cached
        with self._signers_lock:
            label = f"{self.label_prefix}cmp-server-{ca.name}"
            spki = self.ca.km.ensure_key_pair(label, ca.algorithm.key_algorithm)
            issued = self.ca.issue(IssueRequest(
                request_id=f"cmp-server:{ca.name}:{hashlib.sha256(spki).hexdigest()[:16]}", profile="cmp-server",
                subject=(("country_name", "CN"), ("organization_name", "RA Centre"),
                         ("common_name", f"CMP server ({ca.name})")), public_key_info=spki, ca=ca.name))
            cert = x509.Certificate.load(issued.certificate)
            signer = _Signer(ca, label, issued.certificate, cert.subject.dump(), cert.key_identifier)
            self._signers[ca.name] = signer
            return signer

    def _answer(self, request: asn1.PKIMessage, sender: _Sender | None, answer: _Answer) -> bytes:
        rh = request["header"]
        mac = sender is not None and sender.mode == "mac"
        ca = self._signer_ca(sender)
        signer = None if mac else self.signer(ca)
        pvno = max(answer.pvno, 2)
        if answer.body_name == "pkiconf" and request["body"].name == "cert_conf":
            statuses = request["body"].chosen
            if any(s["hash_alg"].native is not None for s in statuses):
                pvno = 3
        header = {
            "pvno": pvno,
            "sender": x509.GeneralName(name="directory_name", value=x509.Name.load(
                signer.subject_der if signer else ca.subject_der)),
            "recipient": rh["sender"],
            "message_time": core.GeneralizedTime(utcnow().replace(microsecond=0)),
            "transaction_id": rh["transaction_id"].native,
            "sender_nonce": secrets.token_bytes(16),
            "recip_nonce": rh["sender_nonce"].native,
        }
        general_info = list(answer.extra_general_info)
        if general_info:
            header["general_info"] = general_info
        if mac:
            header["protection_alg"] = answer_mac_algorithm(rh["protection_alg"])
            header["sender_kid"] = rh["sender_kid"].native
        else:
            header["protection_alg"] = {"algorithm": ca.algorithm.oid}
            if ca.algorithm.params_null:
                header["protection_alg"]["parameters"] = core.Null()
            header["sender_kid"] = signer.key_id
        h = asn1.PKIHeader(header)
        b = asn1.PKIBody(name=answer.body_name, value=answer.body)
        data = protected_part(h, b)
        if mac:
            protection = mac_value(sender.secret, h["protection_alg"], data)
        else:
            protection = self.ca.km.sign(signer.key_label, data, ca.algorithm.mechanism)
        out = {"header": h, "body": b, "protection": core.OctetBitString(bytes(protection))}
        extra = []
        if signer is not None:
            extra = [signer.certificate, *ca.chain]
        for c in getattr(answer, "chain", ()):
            if c not in extra:
                extra.append(c)
        if extra:
            out["extra_certs"] = [x509.Certificate.load(c) for c in extra]
        return asn1.PKIMessage(out).dump()

    def _error_without_request(self, exc: CmpFailure) -> bytes:
        """An error answer to a body that is not a PKIMessage: signed by the CA, no nonces to echo."""
        ca = self._signer_ca(None)
        signer = self.signer(ca)
        header = asn1.PKIHeader({
            "pvno": 2, "sender": x509.GeneralName(name="directory_name", value=x509.Name.load(signer.subject_der)),
            "recipient": x509.GeneralName(name="directory_name", value=x509.Name.build({})),
            "message_time": core.GeneralizedTime(utcnow().replace(microsecond=0)),
            "protection_alg": {"algorithm": ca.algorithm.oid, **({"parameters": core.Null()}
                                                                if ca.algorithm.params_null else {})},
            "sender_kid": signer.key_id, "transaction_id": secrets.token_bytes(16),
            "sender_nonce": secrets.token_bytes(16)})
        body = asn1.PKIBody(name="error", value=self._error_body(exc).body)
        protection = self.ca.km.sign(signer.key_label, protected_part(header, body), ca.algorithm.mechanism)
        return asn1.PKIMessage({"header": header, "body": body, "protection": core.OctetBitString(bytes(protection)),
                                "extra_certs": [x509.Certificate.load(c) for c in (signer.certificate, *ca.chain)]}).dump()

    def _audit_refusal(self, message, sender: _Sender | None, exc: CmpFailure) -> None:
        try:
            with transaction(self.db) as session:
                record(session, actor=(sender.name if sender else "unauthenticated")[:128], role=ACTOR_ROLE,
                       action="cmp.refuse", target_type=AUDIT_TARGET,
                       target_id=message["header"]["transaction_id"].native.hex(), reason=exc.text,
                       fail_info=list(exc.fail_info), body=message["body"].name)
        except Exception:  # noqa: BLE001 - a refusal is answered even when its audit row cannot be written
            log.exception("could not audit a CMP refusal")


def dumps_request(request: dict) -> str:
    return json.dumps(request, sort_keys=True)
