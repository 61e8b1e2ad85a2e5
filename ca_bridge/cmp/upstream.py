"""``CmpCA``: an upstream CA reached over CMP (RFC 4210, RFC 9483 §5 "RA" role, HTTP per RFC 6712),
behind ``ca_bridge.api.CABackend``.

An approved request goes out as a ``cr`` whose template carries the vetted subject, the subscriber's key
and names, with POP ``raVerified`` (RFC 4211 §4: this RA checked the subscriber's proof of possession, and
the RA's signature protects the message, RFC 9483 §5.2.3.2); the certificate is confirmed with certConf;
a "waiting" answer is polled (pollReq) while ``poll_timeout`` lasts. Revocations go out as ``rr``.

Failure semantics (as the KMC outbox's): each request's transactionID is written to ``cmp_outbox`` and
committed *before* anything is sent. A retry of the same request id (the RA approving again, or
``retry_pending``) never asks twice: it polls that transaction (our CMP server answers a pollReq for an
issued but unconfirmed transaction with the certificate again), or, when the upstream CA has never
heard of it, re-sends the request under the same transactionID. The upstream down, slow or answering
garbage -> ``UpstreamUnavailable`` (503) and the row stays to be retried; a refusal -> the row is marked
failed with the CA's reason and ``UpstreamRefused`` carries it. Nothing is lost across a kill -9: the
row is durable, and the upstream CA holds the transaction.
"""
from __future__ import annotations

import logging
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, Sequence

from asn1crypto import core, crl as asn1_crl, x509
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ca_bridge.api import CertificateStatus, IssuedCertificate, IssueRequest, RevocationReason
from ca_bridge.certbuilder import encode_general_names, encode_name
from ca_bridge.cmp import asn1
from ca_bridge.cmp.client import (CmpClientError, MacCredentials, SignatureCredentials, build_message,
                                  check_answer, status_text)
from ca_bridge.cmp.models import CmpOutbox
from ca_bridge.cmp.protection import signature_algorithm
from ca_bridge.cmp.server import cert_hash
from ca_bridge.errors import CaError, CertificateNotFound, IssuanceError
from pkicore.algorithms import algorithm
from pkicore.db import as_utc, transaction, utcnow
from pkicore.errors import ErrorCode
from pkicore.keys import verify_signature

log = logging.getLogger(__name__)

CMP_TYPE = "application/pkixcmp"
PRINTABLE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")
MAX_ANSWER = 1024 * 1024


class UpstreamUnavailable(CaError):
    code = ErrorCode.UPSTREAM_UNAVAILABLE


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


def _cert_der(value) -> bytes:
    return value.untag().dump() if hasattr(value, "untag") else value.dump()


class CmpCA:
    """A ``CABackend`` over an upstream CMP server. ``credentials``: our RA's ``SignatureCredentials``
    (its key in the HSM) or ``MacCredentials``; ``trust_anchors``: DER certificates that the upstream
    CA's protection certificates and the certificates it issues must chain to."""

    def __init__(self, db: sessionmaker[Session], transport: Callable[[bytes], bytes], credentials,
                 trust_anchors: Sequence[bytes] = (), *, name: str = "upstream", poll_timeout: float = 10.0,
                 recipient: x509.Name | None = None):
        self.db = db
        self.transport = transport
        self.credentials = credentials
        self.anchors = tuple(x509.Certificate.load(c) for c in trust_anchors)
        self.name = name
        self.poll_timeout = poll_timeout
        self.recipient = recipient

    # ----------------------------------------------------------------------------- CABackend
    def issue(self, request: IssueRequest, session: Session | None = None) -> IssuedCertificate:
        row = self._queue(request)
        if row.state == "issued":
            return self._issued(row, request)
        if row.state == "failed":
            raise UpstreamRefused(f"the upstream CA refused request {request.request_id}: {row.reason}")
        return self._run(row.request_id, request)

    def revoke(self, ca: str, serial: int, reason: RevocationReason,
               session: Session | None = None) -> CertificateStatus:
        with self.db() as s:
            row = s.scalar(select(CmpOutbox).where(CmpOutbox.serial == format(serial, "x"),
                                                   CmpOutbox.state == "issued"))
            if row is None:
                raise CertificateNotFound(f"no certificate {serial:x} was issued through {self.name}")
            cert = x509.Certificate.load(row.certificate)
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
        with transaction(self.db) as s:
            row = s.get(CmpOutbox, row.request_id, with_for_update=True)
            row.status, row.revoked_at, row.revocation_reason = "revoked", now, RevocationReason(reason).value
            row.updated_at = now
        log.info("upstream revocation of %x %s", serial, "(already revoked there)" if already else "")
        return CertificateStatus(serial, ca, "revoked", now, RevocationReason(reason))

    def status(self, ca: str, serial: int, session: Session | None = None) -> CertificateStatus:
        with self.db() as s:
            row = s.scalar(select(CmpOutbox).where(CmpOutbox.serial == format(serial, "x")))
        if row is None:
            return CertificateStatus(serial, ca, "unknown")
        if row.status == "revoked":
            return CertificateStatus(serial, ca, "revoked", as_utc(row.revoked_at),
                                     RevocationReason(row.revocation_reason))
        return CertificateStatus(serial, ca, "good")

    def retry_pending(self) -> dict[str, str]:
        """Carry on every sent or waiting request (a sweeper's call, e.g. from cron): request id -> state."""
        with self.db() as s:
            ids = list(s.scalars(select(CmpOutbox.request_id).where(CmpOutbox.state.in_(("new", "sent", "waiting")))))
        out = {}
        for request_id in ids:
            try:
                self._run(request_id, None)
                out[request_id] = "issued"
            except UpstreamRefused:
                out[request_id] = "failed"
            except UpstreamUnavailable:
                out[request_id] = "pending"
        return out

    # ----------------------------------------------------------------------------- the queue
    def _queue(self, request: IssueRequest) -> CmpOutbox:
        fields = {"profile": request.profile, "subject": [list(p) for p in request.subject],
                  "public_key_info": request.public_key_info.hex(), "dns_names": list(request.dns_names),
                  "ip_addresses": list(request.ip_addresses), "identity": [list(p) for p in request.identity]}
        with transaction(self.db) as s:
            row = s.get(CmpOutbox, request.request_id, with_for_update=True)
            if row is None:
                row = CmpOutbox(request_id=request.request_id, transaction_id=secrets.token_hex(16), state="new",
                                request=fields, attempts=0, chain=[], status="good")
                s.add(row)
            elif row.request != fields:
                raise IssuanceError(f"request {request.request_id} was already sent upstream with other contents")
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
                                 tuple(bytes.fromhex(c) for c in row.chain))

    # ----------------------------------------------------------------------------- the protocol
    def _run(self, request_id: str, request: IssueRequest | None) -> IssuedCertificate:
        with self.db() as s:
            row = s.get(CmpOutbox, request_id)
            s.expunge(row)
        tid = bytes.fromhex(row.transaction_id)
        deadline = time.monotonic() + self.poll_timeout
        if row.state == "new":
            self._mark(request_id, state="sent", attempts=row.attempts + 1)
            result = self._send_request(row, tid)
        else:
            result = self._poll(tid)
            if result.kind == "unknown-transaction":        # it never arrived: ask again, same transaction
                self._mark(request_id, attempts=row.attempts + 1)
                result = self._send_request(row, tid)
        while result.kind == "waiting":
            self._mark(request_id, state="waiting")
            if time.monotonic() + result.check_after > deadline:
                raise UpstreamUnavailable(f"the upstream CA is still processing request {request_id}; "
                                          "it will be collected on retry")
            time.sleep(max(0, min(result.check_after, 30)))
            result = self._poll(tid, result.answer["header"]["sender_nonce"].native)
        if result.kind == "refused":
            self._mark(request_id, state="failed", reason=result.reason[:2000])
            raise UpstreamRefused(f"the upstream CA refused request {request_id}: {result.reason}")
        if result.kind != "issued":
            raise UpstreamUnavailable("the upstream CA lost the transaction")
        spki = bytes.fromhex(row.request["public_key_info"])
        cert = x509.Certificate.load(result.certificate)
        if cert.public_key.dump() != spki:
            self._mark(request_id, state="failed", reason="the upstream CA certified another key")
            raise UpstreamRefused("the upstream CA certified another key than the one requested")
        self._check_issued_chain(cert, result.chain)
        self._confirm(tid, result)
        self._mark(request_id, state="issued", certificate=result.certificate, serial=format(cert.serial_number, "x"),
                   chain=[c.hex() for c in result.chain])
        with self.db() as s:
            row = s.get(CmpOutbox, request_id)
            s.expunge(row)
        return self._issued(row, request)

    def _template(self, fields: dict) -> asn1.CertReqMsg:
        template = {"subject": x509.Name.load(encode_name([tuple(p) for p in fields["subject"]])),
                    "public_key": asn1.keys.PublicKeyInfo.load(bytes.fromhex(fields["public_key_info"]))}
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
        request = asn1.CertRequest({"cert_req_id": 0, "cert_template": template})
        return asn1.CertReqMsg({"cert_req": request, "popo": asn1.ProofOfPossession(name="ra_verified",
                                                                                     value=core.Null())})

    def _send_request(self, row: CmpOutbox, tid: bytes) -> _Result:
        message = build_message("cr", asn1.CertReqMessages([self._template(row.request)]), self.credentials,
                                transaction_id=tid, recipient=self.recipient)
        return self._classify(self._exchange(message, row.request["profile"]))

    def _poll(self, tid: bytes, recip_nonce: bytes | None = None) -> _Result:
        """pollReq (RFC 4210 §5.3.22); ``recip_nonce``: the last answer's senderNonce (none after a restart)."""
        message = build_message("poll_req", asn1.PollReqContent([{"cert_req_id": 0}]), self.credentials,
                                transaction_id=tid, recipient=self.recipient, recip_nonce=recip_nonce)
        return self._classify(self._exchange(message), polling=True)

    def _confirm(self, tid: bytes, result: _Result) -> None:
        status = {"cert_hash": cert_hash(result.certificate), "cert_req_id": 0}
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
            return _Result("issued", certificate=cert, chain=chain, answer=answer)
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
