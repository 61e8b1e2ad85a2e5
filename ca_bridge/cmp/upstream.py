"""``CmpCA``: an upstream CA reached over CMP (RFC 4210, RFC 9483 §5 "RA" role, HTTP per RFC 6712),
behind ``ca_bridge.api.CABackend`` and ``DeferredIssuanceCA``.

An approved request goes out as a ``p10cr`` carrying the subscriber's CSR when that CSR asks for exactly
the certificate the RA vetted (the subscriber's proof of possession passes through unchanged and the
upstream checks it, RFC 9483 §5.2.3.1), else as a ``cr`` whose template carries the vetted subject, the
subscriber's key and names, with POP ``raVerified`` (RFC 4211 §4: this RA checked the proof of
possession, and the RA's signature protects the message, RFC 9483 §5.2.3.2). Every answer must carry our
transactionID and our senderNonce as its recipNonce (RFC 4210 §5.1.1, ``client.check_answer``). The
certificate is confirmed with certConf; a "waiting" answer is polled (pollReq) while ``poll_timeout``
lasts. Revocations go out as ``rr``.

Failure semantics (as the KMC outbox's): each request's transactionID is written to ``cmp_outbox`` before
anything is sent -- by the RA in its own approving transaction (``enqueue``: the request moves to
``awaiting_ca`` in the same commit), or committed here (``issue``). ``collect`` carries a row on and never
asks twice: the first send is recorded ("sent") before it leaves; afterwards the transaction is polled
(our CMP server answers a pollReq for an issued but unconfirmed transaction with the certificate again),
or, when the upstream CA never got it, re-sent under the same transactionID. A worker holds a row for
``lease`` seconds while it carries it on (``claimed_until``), so two workers or nodes never send one
request at once. The upstream down, slow or answering garbage -> ``UpstreamUnavailable`` (still waiting:
``UpstreamWaiting``) and the row stays to be collected again; a refusal -> the row is marked failed with
the CA's reason and ``UpstreamRefused`` carries it. Nothing is lost across a kill -9 of either side: the
row is durable, and the upstream CA holds the transaction (``tests/unit/ca_bridge/test_cmp_kill.py``).

A revocation the RA decides while recording a CA answer (the other certificate of a refused pair, a
re-key's old ones) is queued the same way: a row of kind ``rr`` written in the RA's transaction
(``queue_revocation``) and sent after its commit (``send_revocations``, and every sweep until it goes).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, Sequence

from asn1crypto import core, crl as asn1_crl, csr as asn1_csr, x509
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ca_bridge.api import REVOCATION_PREFIX, CertificateStatus, IssuedCertificate, IssueRequest, RevocationReason
from ca_bridge.certbuilder import encode_general_names, encode_name
from ca_bridge.cmp import asn1
from ca_bridge.cmp.keypkg import from_encrypted_key
from ca_bridge.cmp.client import (CmpClientError, MacCredentials, SignatureCredentials, build_message,
                                  check_answer, status_text)
from ca_bridge.cmp.models import CmpOutbox
from ca_bridge.cmp.protection import signature_algorithm
from ca_bridge.cmp.server import REG_CTRL_PROTOCOL_ENCR_KEY, cert_hash
from ca_bridge.errors import CaError, CertificateNotFound, IssuanceError
from pkicore.algorithms import algorithm
from store.db import as_utc, transaction, upsert_insert, utcnow
from pkicore.errors import ErrorCode
from pkicore.keys import verify_signature

log = logging.getLogger(__name__)

_OUTBOX = CmpOutbox.__table__

CMP_TYPE = "application/pkixcmp"
PRINTABLE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")
MAX_ANSWER = 1024 * 1024


class UpstreamUnavailable(CaError):
    """The upstream CA is down, slow or answered garbage (``waiting`` False), or it is still processing
    the request, or another worker is collecting it (``waiting`` True): collect again later."""
    code = ErrorCode.UPSTREAM_UNAVAILABLE
    waiting = False


class UpstreamWaiting(UpstreamUnavailable):
    waiting = True


class UpstreamRefused(IssuanceError):
    """The upstream CA refused the request; the message is its reason."""


class HttpTransport:
    """POST one PKIMessage, read one back (RFC 6712 §3)."""

    def __init__(self, url: str, timeout: float = 30.0, *, profile_in_path: bool = False):
        self.url = url
        self.timeout = timeout
        self.profile_in_path = profile_in_path

    def __call__(self, der: bytes, profile: str | None = None) -> bytes:
        url = f"{self.url.rstrip('/')}/p/{profile}" if profile and self.profile_in_path else self.url
        request = urllib.request.Request(url, data=der, headers={"Content-Type": CMP_TYPE})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read(MAX_ANSWER + 1)
        except urllib.error.HTTPError as exc:
            body = exc.read(MAX_ANSWER + 1)            # a CMP error answer may come with a 4xx
            if not body:
                raise UpstreamUnavailable(f"the upstream CA answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise UpstreamUnavailable(f"the upstream CA cannot be reached ({exc.__class__.__name__})") from None
        if len(body) > MAX_ANSWER:
            raise UpstreamUnavailable("the upstream CA's answer is too large")
        return body


@dataclass(frozen=True)
class _Result:
    """One answer, classified."""
    kind: str                      # issued | waiting | refused | unknown-transaction
    certificate: bytes | None = None
    chain: tuple[bytes, ...] = ()
    reason: str = ""
    check_after: int = 1
    answer: asn1.PKIMessage | None = None
    cert_req_id: int = 0
    private_key: bytes | None = None    # CertifiedKeyPair.privateKey (an EncryptedKey, DER), central key generation


def _cert_der(value) -> bytes:
    return value.untag().dump() if hasattr(value, "untag") else value.dump()


class CmpCA:
    """A ``CABackend`` over an upstream CMP server. ``credentials``: our RA's ``SignatureCredentials``
    (its key in the HSM) or ``MacCredentials``; ``trust_anchors``: DER certificates that the upstream
    CA's protection certificates and the certificates it issues must chain to."""

    def __init__(self, db: sessionmaker[Session], transport: Callable[[bytes], bytes], credentials,
                 trust_anchors: Sequence[bytes] = (), *, name: str = "upstream", poll_timeout: float = 10.0,
                 recipient: x509.Name | None = None, lease: float | None = None, central_keygen: bool = True):
        self.db = db
        self.transport = transport
        self.credentials = credentials
        self.anchors = tuple(x509.Certificate.load(c) for c in trust_anchors)
        self.name = name
        self.poll_timeout = poll_timeout
        self.recipient = recipient
        # a dual pair's encryption key is generated by the upstream CA's KMC (RFC 9483 §4.1.6): the RA asks
        # for it with a cr without publicKey and the subscriber's signing key as protocolEncrKey
        self.central_keygen = central_keygen
        # how long one collection may hold a row: polling, plus a few exchanges that each may time out
        self.lease = lease if lease is not None else poll_timeout + 4 * getattr(transport, "timeout", 30.0) + 30

    # ----------------------------------------------------------------------------- CABackend
    def issue(self, request: IssueRequest, session: Session | None = None) -> IssuedCertificate:
        """Queue (committed at once) and collect: for callers that wait. The RA does not come here: it
        ``enqueue``s in its own transaction and ``collect``s after its commit (``DeferredIssuanceCA``)."""
        row = self._queue(request)
        if row.state == "issued":
            return self._issued(row, request)
        if row.state == "failed":
            raise UpstreamRefused(f"the upstream CA refused request {request.request_id}: {row.reason}")
        return self._run(row.request_id, request)

    # ----------------------------------------------------------------------------- DeferredIssuanceCA
    def enqueue(self, requests: Sequence[IssueRequest], session: Session) -> None:
        """Queue ``requests`` in the caller's transaction (``session``, on this queue's database): each
        gets its transactionID now, so it is durable with the caller's state change before anything is
        sent. A request id queued before with the same contents is left as it is (never a second ID)."""
        for request in requests:
            self._queue_in(session, request)
        session.flush()

    def collect(self, request_id: str) -> IssuedCertificate:
        """Carry a queued request on (send, poll, re-send under its transactionID, confirm), outside any
        transaction: the certificate; ``UpstreamRefused`` with the CA's reason; ``UpstreamUnavailable``
        while the CA is down, slow or still processing (the row stays; collect again later)."""
        with self.db() as s:
            row = s.get(CmpOutbox, request_id)
            if row is None:
                raise CertificateNotFound(f"request {request_id} was never queued for {self.name}")
            s.expunge(row)
        if row.state == "issued":
            return self._issued(row, None)
        if row.state == "failed":
            raise UpstreamRefused(f"the upstream CA refused request {request_id}: {row.reason}")
        return self._run(request_id, None)

    def revoke(self, ca: str, serial: int, reason: RevocationReason,
               session: Session | None = None) -> CertificateStatus:
        """rr (RFC 4210 §5.3.9). ``session``: the caller's transaction on this queue's database (the RA's
        revocation), in which the row is marked revoked; without it, a transaction of its own."""
        with contextlib.nullcontext(session) if session is not None else self.db() as s:
            row = s.scalar(select(CmpOutbox).where(CmpOutbox.serial == format(serial, "x"),
                                                   CmpOutbox.state == "issued"))
            if row is None:
                raise CertificateNotFound(f"no certificate {serial:x} was issued through {self.name}")
            cert = x509.Certificate.load(row.certificate)
            request_id = row.request_id
        if row.status == "revoked":
            return CertificateStatus(serial, ca, "revoked", as_utc(row.revoked_at),
                                     RevocationReason(row.revocation_reason))
        reason_code = asn1_crl.CRLReason(RevocationReason(reason).value)
        details = {"cert_details": {"issuer": cert.issuer, "serial_number": serial},
                   "crl_entry_details": [{"extn_id": "2.5.29.21", "critical": False,
                                          "extn_value": core.ParsableOctetString(reason_code.dump())}]}
        message = build_message("rr", asn1.RevReqContent([details]), self.credentials, recipient=self.recipient)
        answer = self._exchange(message)
        body = answer["body"]
        already = False
        if body.name == "rp":
            info = body.chosen["status"][0]
            if info["status"].native not in (0, 1):
                if "cert_revoked" in (info["fail_info"].native or ()):
                    already = True
                else:
                    raise UpstreamRefused(f"the upstream CA refused the revocation: {status_text(info)}")
        elif body.name == "error":
            info = body.chosen["pki_status_info"]
            if "cert_revoked" not in (info["fail_info"].native or ()):
                raise UpstreamRefused(f"the upstream CA refused the revocation: {status_text(info)}")
            already = True
        else:
            raise UpstreamUnavailable(f"the upstream CA answered an rr with {body.name}")
        now = utcnow()
        with contextlib.nullcontext(session) if session is not None else transaction(self.db) as s:
            row = s.get(CmpOutbox, request_id, with_for_update=True)
            row.status, row.revoked_at, row.revocation_reason = "revoked", now, RevocationReason(reason).value
            row.updated_at = now
        log.info("upstream revocation of %x %s", serial, "(already revoked there)" if already else "")
        return CertificateStatus(serial, ca, "revoked", now, RevocationReason(reason))

    def queue_revocation(self, ca: str, serial: int, reason: RevocationReason, session: Session) -> str:
        """Queue the rr of a certificate issued through this queue in the caller's transaction (``session``,
        on this queue's database): a row of kind ``rr`` (id ``rr-<the certificate's request id>``), durable
        with the caller's state change and sent after its commit (``send_revocations``; the sweeps retry
        it), never over the network inside the caller's transaction. Queued twice (two nodes at once too):
        the one row. Its id."""
        cert_row = session.scalar(select(CmpOutbox).where(CmpOutbox.serial == format(serial, "x"),
                                                          CmpOutbox.state == "issued"))
        if cert_row is None:
            raise CertificateNotFound(f"no certificate {serial:x} was issued through {self.name}")
        request_id = f"{REVOCATION_PREFIX}{cert_row.request_id}"
        # one statement, so two nodes queueing the same rr at once get the one row: the second waits on the
        # primary key for the first's commit, then inserts nothing (a check-then-insert let both see no row)
        insert = upsert_insert(session.get_bind().dialect.name)
        session.execute(insert(_OUTBOX).values(
            request_id=request_id, transaction_id=secrets.token_hex(16), state="new", kind="rr",
            request={"ca": ca, "serial": format(serial, "x"), "reason": RevocationReason(reason).value},
            attempts=0, chain=[], status="good").on_conflict_do_nothing(index_elements=[_OUTBOX.c.request_id]))
        return request_id

    def send_revocations(self, *, prefix: str = REVOCATION_PREFIX) -> dict[str, str]:
        """Send the queued revocations (rows of kind ``rr`` whose id starts with ``prefix``), each under its
        lease: request id -> ``revoked`` (the upstream CA revoked it, or had already), ``failed`` (it
        refused: the row keeps its reason), or ``pending`` (down or slow: the next sweep sends it)."""
        with self.db() as s:
            ids = list(s.scalars(select(CmpOutbox.request_id).where(
                CmpOutbox.kind == "rr", CmpOutbox.state.in_(PENDING), CmpOutbox.request_id.startswith(prefix))
                .order_by(CmpOutbox.created_at)))
        out = {}
        for request_id in ids:
            out[request_id] = self._send_revocation(request_id)
            if out[request_id] == "pending":
                break                               # the upstream is down: the rest wait for the next sweep
        return out

    def _send_revocation(self, request_id: str) -> str:
        try:
            row = self._claim(request_id)
        except UpstreamWaiting:
            return "pending"
        if row.state not in PENDING:                # another worker sent it meanwhile
            return "revoked" if row.state == "done" else row.state
        try:
            self._mark(request_id, state="sent", attempts=row.attempts + 1)
            fields = row.request
            try:
                self.revoke(fields["ca"], int(fields["serial"], 16), RevocationReason(fields["reason"]))
            except UpstreamRefused as exc:
                log.error("the upstream CA refused the queued revocation of %s (revoke it by hand): %s",
                          fields["serial"], exc.public_message)
                self._mark(request_id, state="failed", reason=exc.public_message[:2000])
                return "failed"
            except UpstreamUnavailable as exc:
                log.info("queued revocation of %s not sent yet: %s", fields["serial"], exc.public_message)
                return "pending"
            self._mark(request_id, state="done")
            return "revoked"
        finally:
            self._mark(request_id, claimed_until=None)

    def status(self, ca: str, serial: int, session: Session | None = None) -> CertificateStatus:
        with contextlib.nullcontext(session) if session is not None else self.db() as s:
            row = s.scalar(select(CmpOutbox).where(CmpOutbox.serial == format(serial, "x")))
        if row is None:
            return CertificateStatus(serial, ca, "unknown")
        if row.status == "revoked":
            return CertificateStatus(serial, ca, "revoked", as_utc(row.revoked_at),
                                     RevocationReason(row.revocation_reason))
        return CertificateStatus(serial, ca, "good")

    def retry_pending(self, *, skip_prefix: str | None = None) -> dict[str, str]:
        """Carry on every queued, sent or waiting request (a sweeper's call, e.g. from cron), but those whose
        id starts with ``skip_prefix`` (the RA's, which its own sweep collects): request id -> state."""
        with self.db() as s:
            query = select(CmpOutbox.request_id, CmpOutbox.kind).where(CmpOutbox.state.in_(PENDING))
            if skip_prefix:
                query = query.where(~CmpOutbox.request_id.startswith(skip_prefix))
            rows = list(s.execute(query))
        out = {}
        for request_id, kind in rows:
            if kind == "rr":
                out[request_id] = self._send_revocation(request_id)
                continue
            try:
                self.collect(request_id)
                out[request_id] = "issued"
            except UpstreamRefused:
                out[request_id] = "failed"
            except UpstreamUnavailable:
                out[request_id] = "pending"
            except Exception:  # noqa: BLE001 - one unreadable queue row must not stop the sweep of the others
                log.exception("CMP queue row %s could not be carried on; it stays queued", request_id)
                out[request_id] = "error"
        return out

    # ----------------------------------------------------------------------------- the queue
    @staticmethod
    def _fields(request: IssueRequest) -> dict:
        fields = {"profile": request.profile, "subject": [list(p) for p in request.subject],
                  "public_key_info": request.public_key_info.hex(), "dns_names": list(request.dns_names),
                  "ip_addresses": list(request.ip_addresses), "identity": [list(p) for p in request.identity]}
        if request.csr is not None:
            fields["csr"] = request.csr.hex()
        if request.central_keygen_for is not None:
            fields["central_keygen_for"] = request.central_keygen_for.hex()
        return fields

    def _queue_in(self, s: Session, request: IssueRequest) -> CmpOutbox:
        fields = self._fields(request)
        row = s.get(CmpOutbox, request.request_id, with_for_update=True)
        if row is None:
            row = CmpOutbox(request_id=request.request_id, transaction_id=secrets.token_hex(16), state="new",
                            request=fields, attempts=0, chain=[], status="good")
            s.add(row)
        elif row.request != fields:
            raise IssuanceError(f"request {request.request_id} was already sent upstream with other contents")
        return row

    def _queue(self, request: IssueRequest) -> CmpOutbox:
        with transaction(self.db) as s:
            row = self._queue_in(s, request)
            s.flush()
            s.expunge(row)
        return row

    def _claim(self, request_id: str) -> CmpOutbox:
        """Hold a pending row for ``lease`` seconds (under its row lock): two workers or nodes never
        carry the same request on at once (two first sends would be one transactionID twice)."""
        now = utcnow()
        with transaction(self.db) as s:
            row = s.get(CmpOutbox, request_id, with_for_update=True)
            if row is None:
                raise CertificateNotFound(f"request {request_id} was never queued for {self.name}")
            if row.state in PENDING:
                if row.claimed_until is not None and as_utc(row.claimed_until) > now:
                    raise UpstreamWaiting(f"request {request_id} is being collected by another worker")
                row.claimed_until = now + dt.timedelta(seconds=self.lease)
            s.flush()
            s.expunge(row)
        return row

    def _mark(self, request_id: str, **values) -> None:
        with transaction(self.db) as s:
            row = s.get(CmpOutbox, request_id, with_for_update=True)
            for key, value in values.items():
                setattr(row, key, value)
            row.updated_at = utcnow()

    def _issued(self, row: CmpOutbox, request: IssueRequest | None) -> IssuedCertificate:
        cert = x509.Certificate.load(row.certificate)
        return IssuedCertificate(row.request_id, cert.serial_number, self.name, row.request["profile"],
                                 row.certificate, cert.not_valid_before, cert.not_valid_after,
                                 tuple(bytes.fromhex(c) for c in row.chain), key_envelope=row.key_envelope)

    # ----------------------------------------------------------------------------- the protocol
    def _run(self, request_id: str, request: IssueRequest | None) -> IssuedCertificate:
        row = self._claim(request_id)
        if row.state == "issued":                           # another worker finished it meanwhile
            return self._issued(row, request)
        if row.state == "failed":
            raise UpstreamRefused(f"the upstream CA refused request {request_id}: {row.reason}")
        try:
            return self._carry_on(row, request)
        finally:
            self._mark(request_id, claimed_until=None)

    def _carry_on(self, row: CmpOutbox, request: IssueRequest | None) -> IssuedCertificate:
        request_id = row.request_id
        tid = bytes.fromhex(row.transaction_id)
        deadline = time.monotonic() + self.poll_timeout
        if row.state == "new":
            kind = self._kind(row.request)
            # committed before the first byte is sent: after a crash the transaction is polled, not re-asked
            self._mark(request_id, state="sent", kind=kind, attempts=row.attempts + 1)
            row.kind = kind
            result = self._send_request(row, tid)
        else:
            result = self._poll(tid, cert_req_id=self._req_id(row))
            # it never arrived (or the CA cannot poll a transaction it never answered): ask again, same ID
            if result.kind == "unknown-transaction" or (row.state == "sent" and result.kind == "refused"):
                self._mark(request_id, attempts=row.attempts + 1)
                result = self._send_request(row, tid)
                if result.kind == "refused" and "transaction_id_in_use" in result.reason:
                    # it did arrive meanwhile (another worker's send): poll it next time
                    raise UpstreamWaiting(f"the upstream CA has request {request_id} already; "
                                          "it will be collected on retry")
        while result.kind == "waiting":
            self._mark(request_id, state="waiting")
            if time.monotonic() + result.check_after > deadline:
                raise UpstreamWaiting(f"the upstream CA is still processing request {request_id}; "
                                      "it will be collected on retry")
            time.sleep(max(0, min(result.check_after, 30)))
            result = self._poll(tid, result.answer["header"]["sender_nonce"].native, cert_req_id=self._req_id(row))
        if result.kind == "refused":
            self._mark(request_id, state="failed", reason=result.reason[:2000])
            raise UpstreamRefused(f"the upstream CA refused request {request_id}: {result.reason}")
        if result.kind != "issued":
            raise UpstreamUnavailable("the upstream CA lost the transaction")
        cert = x509.Certificate.load(result.certificate)
        envelope = None
        if row.request.get("central_keygen_for"):
            # the CA generated the key: its envelope must come with the certificate, for the certified key
            envelope = self._key_envelope(result, cert)
        elif cert.public_key.dump() != bytes.fromhex(row.request["public_key_info"]):
            self._mark(request_id, state="failed", reason="the upstream CA certified another key")
            raise UpstreamRefused("the upstream CA certified another key than the one requested")
        self._check_issued_chain(cert, result.chain)
        self._confirm(tid, result)
        self._mark(request_id, state="issued", certificate=result.certificate, serial=format(cert.serial_number, "x"),
                   chain=[c.hex() for c in result.chain], claimed_until=None, key_envelope=envelope)
        with self.db() as s:
            row = s.get(CmpOutbox, request_id)
            s.expunge(row)
        return self._issued(row, request)

    @staticmethod
    def _key_envelope(result: _Result, cert: x509.Certificate) -> bytes:
        """What the subscriber fetches for a centrally generated key (``keypkg.from_encrypted_key``). An
        answer without it, or with one that is not for the certified SM2 key, is not taken (the request
        stays; the CA is polled again): the certificate would be of no use without its key."""
        if result.private_key is None:
            raise UpstreamUnavailable("the upstream CA generated the key but sent no privateKey")
        if cert.public_key.algorithm != "ec" or cert.public_key["algorithm"]["parameters"].chosen.native != "sm2p256v1":
            raise UpstreamUnavailable("the upstream CA generated a key that is not SM2")
        try:
            return from_encrypted_key(result.private_key, cert.public_key.dump())
        except (ValueError, TypeError, KeyError) as exc:
            raise UpstreamUnavailable(f"the upstream CA's privateKey cannot be used: {exc}") from None

    def _template(self, fields: dict) -> asn1.CertReqMsg:
        """The vetted subject, names and identity; the subscriber's key with POP raVerified, or, for central
        key generation (RFC 9483 §4.1.6), no publicKey and no POP, and the key to encrypt the new private
        key to -- the subscriber's signing key -- in the protocolEncrKey control (RFC 4211 §6.6)."""
        central = fields.get("central_keygen_for")
        template = {"subject": x509.Name.load(encode_name([tuple(p) for p in fields["subject"]]))}
        if not central:
            template["public_key"] = asn1.keys.PublicKeyInfo.load(bytes.fromhex(fields["public_key_info"]))
        extensions = []
        if fields["dns_names"] or fields["ip_addresses"]:
            san = encode_general_names(fields["dns_names"], fields["ip_addresses"])
            extensions.append({"extn_id": "subject_alt_name", "critical": False,
                               "extn_value": x509.GeneralNames.load(san)})
        for oid, value in fields["identity"]:      # GM/T 0015 identity, encoded as the certificate carries it
            string = core.PrintableString(value) if set(value) <= PRINTABLE else core.UTF8String(value)
            extensions.append({"extn_id": oid, "critical": False, "extn_value": core.ParsableOctetString(string.dump())})
        if extensions:
            template["extensions"] = extensions
        if central:
            return asn1.CertReqMsg({"cert_req": asn1.CertRequest({"cert_req_id": 0, "cert_template": template, "controls": [
                {"type": REG_CTRL_PROTOCOL_ENCR_KEY, "value": asn1.keys.PublicKeyInfo.load(bytes.fromhex(central))}]})})
        request = asn1.CertRequest({"cert_req_id": 0, "cert_template": template})
        return asn1.CertReqMsg({"cert_req": request, "popo": asn1.ProofOfPossession(name="ra_verified",
                                                                                     value=core.Null())})

    @staticmethod
    def _kind(fields: dict) -> str:
        """p10cr when the subscriber's CSR asks for exactly what the RA certifies, so its own proof of
        possession goes through unchanged (RFC 9483 §5.2.3.1; the upstream checks it); else cr with
        raVerified and the vetted template (§5.2.3.2: this RA checked the POP)."""
        return "p10cr" if fields.get("csr") and csr_asks_for(bytes.fromhex(fields["csr"]), fields) else "cr"

    @staticmethod
    def _req_id(row: CmpOutbox) -> int:
        return -1 if row.kind == "p10cr" else 0          # RFC 9483 §4.1.4: certReqId -1 for a p10cr

    def _send_request(self, row: CmpOutbox, tid: bytes) -> _Result:
        if row.kind == "p10cr":
            message = build_message("p10cr", asn1_csr.CertificationRequest.load(bytes.fromhex(row.request["csr"])),
                                    self.credentials, transaction_id=tid, recipient=self.recipient)
        else:
            message = build_message("cr", asn1.CertReqMessages([self._template(row.request)]), self.credentials,
                                    transaction_id=tid, recipient=self.recipient)
        return self._classify(self._exchange(message, row.request["profile"]))

    def _poll(self, tid: bytes, recip_nonce: bytes | None = None, *, cert_req_id: int = 0) -> _Result:
        """pollReq (RFC 4210 §5.3.22); ``recip_nonce``: the last answer's senderNonce (none after a restart)."""
        message = build_message("poll_req", asn1.PollReqContent([{"cert_req_id": cert_req_id}]), self.credentials,
                                transaction_id=tid, recipient=self.recipient, recip_nonce=recip_nonce)
        return self._classify(self._exchange(message), polling=True)

    def _confirm(self, tid: bytes, result: _Result) -> None:
        status = {"cert_hash": cert_hash(result.certificate), "cert_req_id": result.cert_req_id}
        message = build_message("cert_conf", asn1.CertConfirmContent([status]), self.credentials,
                                transaction_id=tid, recipient=self.recipient,
                                recip_nonce=result.answer["header"]["sender_nonce"].native)
        answer = self._exchange(message)
        if answer["body"].name != "pkiconf":
            text = status_text(answer["body"].chosen["pki_status_info"]) if answer["body"].name == "error" else ""
            raise UpstreamUnavailable(f"the upstream CA did not confirm: {answer['body'].name} {text}")

    def _classify(self, answer: asn1.PKIMessage, polling: bool = False) -> _Result:
        body = answer["body"]
        if body.name == "error":
            info = body.chosen["pki_status_info"]
            bits = set(info["fail_info"].native or ())
            text = status_text(info)
            if polling and "no transaction" in text:
                return _Result("unknown-transaction", answer=answer)
            if bits & {"system_unavail", "system_failure"}:
                raise UpstreamUnavailable(f"the upstream CA is unavailable: {text}")
            return _Result("refused", reason=text, answer=answer)
        if body.name == "poll_rep":
            return _Result("waiting", check_after=int(body.chosen[0]["check_after"].native or 1), answer=answer)
        if body.name in ("cp", "ip", "kup"):
            responses = body.chosen["response"]
            if len(responses) != 1:
                raise UpstreamUnavailable("the upstream CA answered with other than one certificate response")
            response = responses[0]
            status = response["status"]["status"].native
            if status == 3:
                return _Result("waiting", answer=answer)
            if status not in (0, 1):
                return _Result("refused", reason=status_text(response["status"]), answer=answer)
            pair = response["certified_key_pair"]
            if pair.native is None or pair["cert_or_enc_cert"].name != "certificate":
                raise UpstreamUnavailable("the upstream CA's answer carries no certificate")
            cert = _cert_der(pair["cert_or_enc_cert"].chosen)
            extra = [c.dump() for c in answer["extra_certs"]] if answer["extra_certs"].native else []
            chain = tuple(c for c in extra if c != cert and x509.Certificate.load(c).ca)
            private_key = pair["private_key"]
            return _Result("issued", certificate=cert, chain=chain, answer=answer,
                           cert_req_id=int(response["cert_req_id"].native),
                           private_key=None if isinstance(private_key, core.Void) else private_key.contents)
        raise UpstreamUnavailable(f"the upstream CA answered with an unexpected {body.name}")

    def _exchange(self, message: asn1.PKIMessage, profile: str | None = None) -> asn1.PKIMessage:
        der = self.transport(message.dump(), profile)
        secret = self.credentials.secret if isinstance(self.credentials, MacCredentials) else None
        try:
            return check_answer(der, message, secret=secret, trusted_signer=self._trusted)
        except CmpClientError as exc:
            raise UpstreamUnavailable(f"the upstream CA's answer was refused: {exc}") from None

    # ----------------------------------------------------------------------------- trust
    def _chains_to_anchor(self, cert: x509.Certificate, pool: Sequence[x509.Certificate], depth: int = 0) -> bool:
        if depth > 6:
            return False
        for anchor in self.anchors:
            if anchor.dump() == cert.dump():
                return True
        for issuer in (*self.anchors, *pool):
            if issuer.subject.dump() != cert.issuer.dump() or issuer.dump() == cert.dump():
                continue
            alg = signature_algorithm(cert["signature_algorithm"])
            if alg is None or not verify_signature(issuer.public_key.dump(), alg, cert["tbs_certificate"].dump(),
                                                   cert.signature):
                continue
            if issuer in self.anchors or any(issuer.dump() == a.dump() for a in self.anchors):
                return True
            if self._chains_to_anchor(issuer, pool, depth + 1):
                return True
        return False

    def _trusted(self, signer: x509.Certificate, pool: Sequence[x509.Certificate] = ()) -> bool:
        now = utcnow()
        if not signer.not_valid_before <= now <= signer.not_valid_after:
            return False
        return self._chains_to_anchor(signer, pool)

    def _check_issued_chain(self, cert: x509.Certificate, chain: Sequence[bytes]) -> None:
        pool = [x509.Certificate.load(c) for c in chain]
        if self.anchors and not self._chains_to_anchor(cert, pool):
            raise UpstreamUnavailable("the certificate the upstream CA issued does not chain to its trust anchors")


PENDING = ("new", "sent", "waiting")


def _san(extensions) -> tuple[set, set, dict]:
    dns, ips, other = set(), set(), {}
    for ext in extensions or []:
        if ext["extn_id"].native == "subject_alt_name":
            for gn in ext["extn_value"].parsed:
                if gn.name == "dns_name":
                    dns.add(gn.native)
                elif gn.name == "ip_address":
                    ips.add(gn.native)
        else:
            try:
                other[ext["extn_id"].dotted] = core.Asn1Value.load(ext["extn_value"].native).native
            except ValueError:
                continue
    return dns, ips, other


def csr_asks_for(csr_der: bytes, fields: dict) -> bool:
    """True when a PKCS#10 CSR requests exactly the queued certificate: the same key and subject (RDN by
    RDN), the same DNS names and IP addresses, and every GM/T 0015 identity extension with its value."""
    try:
        req = asn1_csr.CertificationRequest.load(csr_der)
        info = req["certification_request_info"]
        if info["subject_pk_info"].dump() != bytes.fromhex(fields["public_key_info"]):
            return False
        subject = [[atv["type"].native, atv["value"].native] for rdn in info["subject"].chosen for atv in rdn]
        extensions = None
        for attr in info["attributes"]:
            if attr["type"].native == "extension_request":
                extensions = attr["values"][0]
        dns, ips, other = _san(extensions)
    except (ValueError, TypeError, KeyError, IndexError):
        return False
    return (subject == [list(p) for p in fields["subject"]] and dns == set(fields["dns_names"])
            and ips == set(fields["ip_addresses"])
            and all(other.get(oid) == value for oid, value in fields["identity"]))


def signature_credentials(km, key_label: str, certificate: bytes, chain: Sequence[bytes] = ()) -> SignatureCredentials:
    """Our RA's CMP protection: its key in the HSM (``key_label``) and its certificate."""
    spki = x509.Certificate.load(certificate).public_key
    family = spki["algorithm"]["algorithm"].native
    if family == "ec" and spki["algorithm"]["parameters"].chosen.native == "sm2p256v1":
        name = "sm2-sm3"
    elif family == "ec":
        name = "ecdsa-sha384" if spki.bit_size > 256 else "ecdsa-sha256"
    else:
        name = "rsa-sha256"
    own = algorithm(name)
    return SignatureCredentials(certificate, own, lambda data: km.sign(key_label, data, own.mechanism), tuple(chain))


def adopt_outbox(source: sessionmaker[Session], target: sessionmaker[Session]) -> int:
    """Copy the rows of an older, separate queue database into ``target`` (those it lacks): a request
    already sent keeps its transactionID. The number of rows copied."""
    columns = [c.name for c in CmpOutbox.__table__.columns]
    copied = 0
    try:
        with source() as s:
            rows = [{c: getattr(r, c) for c in columns} for r in s.scalars(select(CmpOutbox))]
    except Exception:  # noqa: BLE001 - an old file at another schema revision: its rows lack no column we need
        log.exception("could not read the old CMP queue database")
        return 0
    with transaction(target) as s:
        have = set(s.scalars(select(CmpOutbox.request_id)))
        for row in rows:
            if row["request_id"] not in have:
                s.add(CmpOutbox(**row))
                copied += 1
    if copied:
        log.warning("adopted %d CMP queue rows from the old queue database", copied)
    return copied
