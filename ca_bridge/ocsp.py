"""RFC 6960 OCSP responder: BasicOCSPResponse signed in the HSM by the issuing CA's delegated responder
(id-kp-OCSPSigning + id-pkix-ocsp-nocheck certificate, included in ``certs``), ResponderID byKey.

* CertIDs hashed with SHA-1, SHA-256/384/512 or SM3 are recognised (issuer name and key hashes are
  precomputed per CA); several CertIDs per request, all for the same issuer. Each SingleResponse
  repeats its request's CertID byte for byte.
* nonce (RFC 8954): echoed; longer than 32 octets -> malformedRequest. A request with a nonce is
  answered fresh: read the status, sign.
* pre-produced responses (RFC 5019 §2.2.1, §6): a request for one certificate without a nonce is
  answered with the response kept in the status store (``ca_bridge.store``, shared by every node) while
  it states the certificate's current status and its refresh time is ahead; otherwise a fresh one is
  signed and kept. Status and kept response are read in one statement, so a revocation committed on
  any node makes the kept response unusable at once. Requests that arrive together (``respond_many``)
  share one status read.
* answers remembered by a process (``AnswerMemo``, used by the serving workers' hot path): a pre-produced
  answer is served again for the same request bytes without parsing or a status read while it is due for
  no refresh, the directory is the one it was made under, and its CA's revocation counter (read once per
  batch, after the requests arrived, before any status: ``OcspStore.generations``; on PostgreSQL a batch
  of remembered answers sends that one statement without waiting, ``generations_nowait``) has not moved —
  a revocation committed on any node moves it, so the next batch answers from the database again.
* the status store unreadable (database down) -> tryLater.
* status from an ``OcspStore`` (``ca_bridge.store``), never from CA internals.
* protocol errors are OCSPResponses without a body (§4.2.1): undecodable request -> malformedRequest,
  an issuer we do not serve (or no delegated responder, or CertIDs of several issuers) -> unauthorized,
  a failure here -> internalError. The HTTP layer sends them with status 200 (RFC 6960 Appendix A
  defines no HTTP error mapping; OpenSSL and BC clients parse the body), and only transport faults
  (wrong content type, oversized body) become HTTP 4xx.

The hot path is DER by hand (``pkicore.cms``): a plain request is read by a small reader (anything
unusual goes through asn1crypto for the verdict) and the response is concatenated from parts fixed per
CA, so an answer costs one status read, one HSM signature (fresh) or none (pre-produced).
"""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import threading
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Sequence

from asn1crypto import crl, ocsp, x509

from ca_bridge.api import CertificateStatus
from ca_bridge.certbuilder import signature_algorithm
from ca_bridge.directory import CERTID_DIGESTS, CaDirectory, CaInfo
from ca_bridge.errors import StatusUnavailable
from ca_bridge.store import KEPT, Current, OcspStore, StoredResponse, status_key
from hsm import KeyManager
from pkicore.cms import DIGEST_OIDS, der_oid, generalized_time, read_tlv, tlv
from store.db import utcnow
from pkicore.errors import PkiError

log = logging.getLogger(__name__)

MAX_CERT_IDS = 64
MAX_NONCE = 32
ID_PKIX_OCSP_BASIC = "1.3.6.1.5.5.7.48.1.1"
ID_PKIX_OCSP_NONCE = "1.3.6.1.5.5.7.48.1.2"
_ERRORS = {name: ocsp.OCSPResponse({"response_status": name}).dump()
           for name in ("malformed_request", "internal_error", "try_later", "unauthorized")}
_NONCE_OID = der_oid(ID_PKIX_OCSP_NONCE)
_CERTID_DIGESTS = {der_oid(DIGEST_OIDS[name]): name for name in CERTID_DIGESTS}
_RESPONSE_HEAD = b"\x0a\x01\x00"                                   # responseStatus successful
_BASIC_OID = der_oid(ID_PKIX_OCSP_BASIC)
_GOOD, _UNKNOWN = b"\x80\x00", b"\x82\x00"                        # [0] / [2] IMPLICIT NULL
_REASON_CODES = {name: code for code, name in crl.CRLReason._map.items()}


class OcspRefusal(Exception):
    """A request answered with an error status (malformed_request, unauthorized)."""

    def __init__(self, status: str, why: str):
        super().__init__(why)
        self.status = status


def error_response(status: str) -> bytes:
    return _ERRORS[status]


@dataclass(frozen=True)
class _Signer:
    """Everything of one CA's delegated responder that is the same in every response."""

    label: str
    mechanism: str
    key_hash: str                # hex SHA-1 of the responder's public key: part of a kept response's key
    responder_id: bytes          # [2] EXPLICIT KeyHash (byKey)
    sig_alg: bytes               # AlgorithmIdentifier DER
    certs: bytes                 # [0] EXPLICIT SEQUENCE OF Certificate (the responder's)


@dataclass(frozen=True)
class ParsedRequest:
    cert_ids: tuple[bytes, ...]                    # each CertID's DER, as sent
    digests: tuple[str, ...]
    issuer_hashes: tuple[tuple[bytes, bytes], ...]  # (issuerNameHash, issuerKeyHash)
    serials: tuple[int, ...]
    nonce: bytes | None


def _read_plain(body: bytes) -> ParsedRequest | None:
    """A plain DER OCSPRequest (no version, requestor name, signature, per-request extensions; at most a
    non-critical nonce) -> ParsedRequest; anything else -> None (``parse_request`` then asks asn1crypto)."""
    try:
        tag, start, end = read_tlv(body, 0)
        if tag != 0x30 or end != len(body):
            return None
        tag, t_start, t_end = read_tlv(body, start)                   # tbsRequest, no optionalSignature
        if tag != 0x30 or t_end != end:
            return None
        tag, l_start, l_end = read_tlv(body, t_start)                 # requestList (version absent)
        if tag != 0x30:
            return None
        cert_ids, digests, hashes, serials = [], [], [], []
        pos = l_start
        while pos < l_end:
            tag, r_start, r_end = read_tlv(body, pos)                  # Request
            tag2, c_start, c_end = read_tlv(body, r_start)             # CertID
            if tag != 0x30 or tag2 != 0x30 or c_end != r_end:
                return None
            tag, a_start, a_end = read_tlv(body, c_start)              # hashAlgorithm
            tag2, _, o_end = read_tlv(body, a_start)
            digest = _CERTID_DIGESTS.get(body[a_start:o_end])
            if tag != 0x30 or tag2 != 0x06 or digest is None or body[o_end:a_end] not in (b"", b"\x05\x00"):
                return None
            tag, n_start, n_end = read_tlv(body, a_end)
            tag2, k_start, k_end = read_tlv(body, n_end)
            tag3, s_start, s_end = read_tlv(body, k_end)
            if (tag, tag2, tag3) != (0x04, 0x04, 0x02) or s_end != c_end or s_end == s_start \
                    or body[s_start] >= 0x80 or (body[s_start] == 0 and s_end - s_start > 1
                                                 and body[s_start + 1] < 0x80):
                return None                                            # not a minimal, positive INTEGER
            cert_ids.append(body[r_start:c_end])
            digests.append(digest)
            hashes.append((body[n_start:n_end], body[k_start:k_end]))
            serials.append(int.from_bytes(body[s_start:s_end], "big"))
            pos = r_end
        nonce = None
        if l_end < t_end:
            tag, x_start, x_end = read_tlv(body, l_end)                # [2] EXPLICIT Extensions
            tag2, e_start, e_end = read_tlv(body, x_start)
            if tag != 0xA2 or x_end != t_end or tag2 != 0x30 or e_end != x_end:
                return None
            tag, i_start, i_end = read_tlv(body, e_start)              # the one Extension: nonce
            tag2, _, o_end = read_tlv(body, i_start)
            tag3, v_start, v_end = read_tlv(body, o_end)               # extnValue (critical absent)
            tag4, n_start, n_end = read_tlv(body, v_start)             # Nonce ::= OCTET STRING
            if tag != 0x30 or i_end != e_end or body[i_start:o_end] != _NONCE_OID or tag3 != 0x04 \
                    or v_end != i_end or tag4 != 0x04 or n_end != v_end:
                return None
            nonce = body[n_start:n_end]
    except IndexError:
        return None
    return ParsedRequest(tuple(cert_ids), tuple(digests), tuple(hashes), tuple(serials), nonce)


def _read_asn1(body: bytes) -> ParsedRequest:
    try:
        req = ocsp.OCSPRequest.load(body, strict=True)
        tbs = req["tbs_request"]
        cert_ids, digests, hashes, serials = [], [], [], []
        for item in tbs["request_list"]:
            cid = item["req_cert"]
            digests.append(cid["hash_algorithm"]["algorithm"].native)
            hashes.append((cid["issuer_name_hash"].native, cid["issuer_key_hash"].native))
            serials.append(cid["serial_number"].native)
            cert_ids.append(cid.dump())
        nonce = None
        for ext in tbs["request_extensions"] or ():
            if ext["extn_id"].native == "nonce":
                nonce = ext["extn_value"].parsed.native
            elif ext["critical"].native:
                raise ValueError(f"unsupported critical extension {ext['extn_id'].dotted}")
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise OcspRefusal("malformed_request", f"undecodable OCSP request: {exc}") from exc
    return ParsedRequest(tuple(cert_ids), tuple(digests), tuple(hashes), tuple(serials), nonce)


def parse_request(body: bytes) -> ParsedRequest:
    """Decode an OCSPRequest strictly; raises OcspRefusal(malformed_request)."""
    parsed = _read_plain(body) or _read_asn1(body)
    if not parsed.cert_ids or len(parsed.cert_ids) > MAX_CERT_IDS:
        raise OcspRefusal("malformed_request", f"an OCSP request carries 1..{MAX_CERT_IDS} CertIDs")
    if parsed.nonce is not None and not 0 < len(parsed.nonce) <= MAX_NONCE:
        raise OcspRefusal("malformed_request", f"nonce must be 1..{MAX_NONCE} octets (RFC 8954)")
    if any(s is None or s < 0 for s in parsed.serials):
        raise OcspRefusal("malformed_request", "negative serial number")
    if any(len(n) > 64 or len(k) > 64 for n, k in parsed.issuer_hashes):
        raise OcspRefusal("malformed_request", "oversized CertID hash")
    return parsed


@functools.lru_cache(maxsize=4096)
def cert_status_der(status: CertificateStatus) -> bytes:
    """CertStatus (RFC 6960 §4.2.1): good [0] / unknown [2] IMPLICIT NULL, revoked [1] IMPLICIT
    RevokedInfo {revocationTime, revocationReason [0] EXPLICIT CRLReason OPTIONAL (left out when
    unspecified)}."""
    if status.status == "good":
        return _GOOD
    if status.status != "revoked":
        return _UNKNOWN
    info = generalized_time(status.revoked_at)
    if status.reason is not None and status.reason.value != "unspecified":
        info += tlv(0xA0, b"\x0a\x01" + bytes((_REASON_CODES[status.reason.value],)))
    return tlv(0xA1, info)


@dataclass
class OcspBatch:
    """Requests answered together (``OcspResponder.begin`` / ``read`` / ``finish`` / ``keep``)."""

    now: dt.datetime
    out: list                                                   # answer per request, refusals filled in
    work: list = field(default_factory=list)                    # (index, CA, ParsedRequest) to answer
    serials: dict = field(default_factory=dict)                 # CA name -> serials to read
    current: dict | None = None                                 # CA name -> serial -> Current (None: unreadable)
    to_keep: dict = field(default_factory=dict)                 # CA name -> new pre-produced responses
    plain: bool = False                                         # some request may get a pre-produced answer
    generations: dict | None = None                             # OcspStore.generations, when read (AnswerMemo)
    cacheable: dict = field(default_factory=dict)               # index -> (CA id, refresh time): pre-produced


class OcspResponder:
    def __init__(self, km: KeyManager, store: OcspStore, directory: CaDirectory, *,
                 validity: dt.timedelta = dt.timedelta(hours=1)):
        self.km = km
        self.store = store
        self.directory = directory
        self.validity = validity
        self.refresh = validity / 2          # a pre-produced response is replaced half-way to nextUpdate
        self._signers: dict[tuple[int, bytes], _Signer] = {}
        self._issuers: tuple[Mapping, Mapping] = (MappingProxyType({}), MappingProxyType({}))
        self._lock = threading.Lock()

    def _signer(self, ca: CaInfo) -> _Signer:
        key = (ca.id, ca.ocsp_certificate)
        signer = self._signers.get(key)
        if signer is None:
            cert = ca.ocsp_certificate
            # KeyHash: SHA-1 of the responder's subjectPublicKey BIT STRING value (RFC 6960 §4.2.1)
            key_hash = hashlib.sha1(x509.Certificate.load(cert).public_key["public_key"].contents[1:]).digest()
            signer = _Signer(ca.ocsp_key_label, ca.algorithm.mechanism, key_hash.hex(), tlv(0xA2, tlv(0x04, key_hash)),
                             signature_algorithm(ca.algorithm), tlv(0xA0, tlv(0x30, cert)))
            with self._lock:
                self._signers[key] = signer
        return signer

    def _issuer_index(self) -> Mapping:
        """(digest, issuerNameHash, issuerKeyHash) -> CaInfo of every CA with a delegated responder,
        rebuilt when the directory reloads."""
        cas = self.directory.all()
        source, index = self._issuers
        if source is not cas:
            index = MappingProxyType({(d, *hashes): c for c in cas.values() if c.ocsp_key_label and c.ocsp_certificate
                                      for d, hashes in c.certid_hashes.items()})
            self._issuers = (cas, index)
        return index

    def _issuer(self, parsed: ParsedRequest, ca_name: str | None) -> CaInfo:
        index = self._issuer_index()
        found = None
        for digest, hashes in zip(parsed.digests, parsed.issuer_hashes):
            if digest not in CERTID_DIGESTS:
                raise OcspRefusal("unauthorized", f"CertID hash algorithm {digest} not supported")
            match = index.get((digest, *hashes))
            if match is None or (ca_name is not None and match.name != ca_name):
                raise OcspRefusal("unauthorized", "CertID names an issuer this responder does not serve")
            if found is not None and match.id != found.id:
                raise OcspRefusal("unauthorized", "CertIDs of several issuers in one request")
            found = match
        return found

    def respond(self, body: bytes, ca_name: str | None = None, *, now: dt.datetime | None = None) -> bytes:
        """The DER OCSPResponse for a DER OCSPRequest (never raises for bad input)."""
        return self.respond_many([(body, ca_name)], now=now)[0]

    def respond_many(self, requests: Sequence[tuple[bytes, str | None]], *,
                     now: dt.datetime | None = None) -> list[bytes]:
        """The OCSPResponses for several requests (``(DER, CA name from the URL or None)`` each) that
        arrived together: the status of every certificate they name is read in one statement per CA,
        after all of them arrived, so batching never makes an answer older; new pre-produced responses
        are kept in one statement. The stages ``begin`` (parse), ``read`` (the database), ``finish`` (sign)
        and ``keep`` (the database) one after the other; a server may run the database stages on another
        thread than the others (``racentre.arbiter``)."""
        batch = self.begin(requests, now=now)
        self.read(batch)
        answers = self.finish(batch)
        self.keep(batch)
        return answers

    def begin(self, requests: Sequence[tuple[bytes, str | None]], *, now: dt.datetime | None = None) -> "OcspBatch":
        """Parse the requests and find their issuers (no I/O): refusals are answered already."""
        batch = OcspBatch(now or utcnow(), [None] * len(requests))
        for i, (body, ca_name) in enumerate(requests):
            try:
                parsed = parse_request(body)
                ca = self._issuer(parsed, ca_name)
            except OcspRefusal as refusal:
                log.info("OCSP %s: %s", refusal.status, refusal)
                batch.out[i] = error_response(refusal.status)
                continue
            batch.work.append((i, ca, parsed))
            batch.serials.setdefault(ca.name, set()).update(parsed.serials)
            batch.plain = batch.plain or (parsed.nonce is None and len(parsed.serials) == 1)
        return batch

    def generations(self) -> dict[int, int] | None:
        """``OcspStore.generations`` (CA id -> revocation counter, ``KEPT`` -> purges), None when unreadable.
        Blocks on the database: read it before the statuses it vouches for (``AnswerMemo``)."""
        try:
            return self.store.generations()
        except StatusUnavailable as exc:
            log.error("OCSP: %s", exc, exc_info=exc)
            return None

    def generations_nowait(self):
        """``generations`` without waiting on the database (``DbStatusStore.generations_nowait``): a pending
        read (``fileno()``, ``ready()``, then ``result()`` is the mapping), or None — then ``generations``
        where waiting is allowed. None too when the store has no such read or it failed (logged)."""
        nowait = getattr(self.store, "generations_nowait", None)
        if nowait is None:
            return None
        try:
            return nowait()
        except StatusUnavailable as exc:
            log.warning("OCSP: %s", exc)
            return None

    def prepare_nowait(self) -> None:
        """Let ``generations_nowait`` answer from now on (blocks: a thread that may wait)."""
        prepare = getattr(self.store, "prepare_nowait", None)
        if prepare is not None:
            prepare()

    def read(self, batch: "OcspBatch") -> None:
        """The status (and kept responses) of every certificate of the batch: one statement per CA. Blocks on
        the database; an unreadable store makes every pending answer tryLater."""
        try:
            batch.current = {name: self.store.current(name, wanted) for name, wanted in batch.serials.items()}
        except StatusUnavailable as exc:
            log.error("OCSP: %s", exc, exc_info=exc)
            batch.current = None

    def finish(self, batch: "OcspBatch") -> list[bytes]:
        """The answers, once ``read`` ran: kept responses where they still hold, signatures (HSM) for the rest;
        the new pre-produced responses wait in ``batch.to_keep`` for ``keep``."""
        out = batch.out
        if batch.current is None:
            return [der if der is not None else error_response("try_later") for der in out]
        if not batch.work:
            return out
        now, current, keep = batch.now, batch.current, batch.to_keep
        produced: dict[tuple, bytes] = {}          # pre-produced in this batch: asked twice, signed once
        times = self._times(now)
        for i, ca, parsed in batch.work:
            now_ca = current[ca.name]
            try:
                if parsed.nonce is None and len(parsed.serials) == 1:
                    memo = (ca.id, parsed.serials[0], parsed.digests[0], parsed.cert_ids[0])
                    if memo not in produced:
                        produced[memo] = self._pre_produced(ca, parsed, now_ca[parsed.serials[0]], now, times, keep)
                    out[i], refresh_after = produced[memo]
                    if refresh_after is not None:
                        batch.cacheable[i] = (ca.id, refresh_after)
                else:
                    out[i] = self._sign(ca, parsed.cert_ids, [now_ca[s].status for s in parsed.serials],
                                        parsed.nonce, times)
            except PkiError as exc:
                log.error("OCSP response for %s failed: %s", ca.name, exc, exc_info=exc)
                out[i] = error_response("internal_error")
        return out

    def keep(self, batch: "OcspBatch") -> None:
        """Keep the batch's new pre-produced responses for every node (one statement per CA; blocks on the
        database)."""
        keep, batch.to_keep = batch.to_keep, {}
        for name, responses in keep.items():
            self.store.keep_responses(name, responses)

    def _pre_produced(self, ca: CaInfo, parsed: ParsedRequest, current: Current, now: dt.datetime,
                      times: tuple[bytes, bytes], keep: dict[str, list]) -> tuple[bytes, dt.datetime | None]:
        """RFC 5019: the kept response while it states the current status and is not due for refresh,
        else a fresh one, to be kept for every node (unknown serials are signed each time, never kept).
        -> (response, when it is due for refresh; None for an unknown serial's)."""
        serial, digest, cert_id = parsed.serials[0], parsed.digests[0], parsed.cert_ids[0]
        key = self.kept_key(ca, current.status)
        kept = current.responses.get(digest)
        if kept is not None and kept.status_key == key and kept.cert_id == cert_id and kept.refresh_after > now:
            return kept.der, kept.refresh_after
        der = self._sign(ca, parsed.cert_ids, [current.status], None, times)
        if current.status.status == "unknown":
            return der, None
        refresh_after = (now + self.refresh).replace(microsecond=0)
        keep.setdefault(ca.name, []).append((serial, digest, StoredResponse(cert_id, key, refresh_after, der)))
        return der, refresh_after

    def regenerate(self, ca_name: str, *, now: dt.datetime | None = None) -> tuple[int, int]:
        """Sign afresh every pre-produced response kept for one CA (``racentre ca ocsp-regenerate``), each
        for its certificate's status now; responses for serials the CA no longer knows are dropped.
        -> (responses signed and kept, responses dropped)."""
        ca = self.directory.get(ca_name)
        kept = self.store.kept(ca_name)
        if not kept:
            return 0, 0
        now = now or utcnow()
        times = self._times(now)
        current = self.store.current(ca_name, {serial for serial, _, _ in kept})
        fresh, gone = [], []
        for serial, digest, cert_id in kept:
            status = current[serial].status
            if status.status == "unknown":
                gone.append(serial)
                continue
            der = self._sign(ca, [cert_id], [status], None, times)
            fresh.append((serial, digest, StoredResponse(cert_id, self.kept_key(ca, status),
                                                         (now + self.refresh).replace(microsecond=0), der)))
        for i in range(0, len(fresh), 500):
            self.store.keep_responses(ca_name, fresh[i:i + 500], strict=True)
        if gone:
            self.store.purge(ca_name, gone)
        return len(fresh), len(gone)

    def kept_key(self, ca: CaInfo, status: CertificateStatus) -> str:
        """What a pre-produced response must match to be served: the status it states and the responder
        that signed it (a new delegated responder certificate makes the old one's responses unusable)."""
        return f"{status_key(status)}|{self._signer(ca).key_hash}"

    def _times(self, now: dt.datetime) -> tuple[bytes, bytes]:
        """(producedAt = thisUpdate, thisUpdate + [0] nextUpdate) DER, the same for every answer of a batch."""
        this_update = generalized_time(now)
        return this_update, this_update + tlv(0xA0, generalized_time(now + self.validity))

    def _sign(self, ca: CaInfo, cert_ids, statuses: list[CertificateStatus], nonce: bytes | None,
              times: tuple[bytes, bytes]) -> bytes:
        """OCSPResponse { successful, BasicOCSPResponse { ResponseData, signatureAlgorithm, signature,
        certs [responder] } } (RFC 6960 §4.2.1), ResponseData v1 (version left out, DER DEFAULT)."""
        signer = self._signer(ca)
        this_update, updates = times
        singles = b"".join(tlv(0x30, cid + cert_status_der(st) + updates) for cid, st in zip(cert_ids, statuses))
        extensions = b"" if nonce is None else \
            tlv(0xA1, tlv(0x30, tlv(0x30, _NONCE_OID + tlv(0x04, tlv(0x04, nonce)))))
        tbs = tlv(0x30, signer.responder_id + this_update + tlv(0x30, singles) + extensions)
        signature = self.km.sign(signer.label, tbs, signer.mechanism)
        basic = tlv(0x30, tbs + signer.sig_alg + tlv(0x03, b"\x00" + signature) + signer.certs)
        return tlv(0x30, _RESPONSE_HEAD + tlv(0xA0, tlv(0x30, _BASIC_OID + tlv(0x04, basic))))


@dataclass(frozen=True, slots=True)
class Remembered:
    """One answer an ``AnswerMemo`` holds."""

    reply: object                 # what the caller sends (e.g. an HTTP reply with its validators)
    ca_id: int
    seq: int                      # the CA's revocation counter read before the status the answer states
    kept: int                     # the ``KEPT`` generation then
    refresh_after: dt.datetime    # the response's own refresh time (half-way to nextUpdate)
    cas: Mapping                  # the directory's CAs it was made under (a new responder certificate: not)


class AnswerMemo:
    """Pre-produced answers (RFC 5019 §2.2.1) one process gave, by request bytes (the POST body, the GET
    path), served again without parsing the request or reading its status. One per serving worker; used
    on its main thread (``get``, ``put``, ``drop``), checked on the batch thread or, for a batch of
    remembered answers only on PostgreSQL, the main thread (``holds``). An answer is served again only

    * before its refresh time (``get``: the time the database path stops serving it; nextUpdate is later),
    * under the same CA directory (``get``: a reload, e.g. a new delegated responder, drops it), and
    * while its CA's revocation counter and the purge generation are what they were when the status it
      states was read (``holds``, against ``OcspStore.generations`` read once per batch after the batch's
      requests arrived): every status change counts in the CA's counter in its own transaction
      (``ca_bridge.crl.bump_revocation_seq``), so once a revocation commits — on any node — the next batch
      answers from the database.

    Unknown serials, nonce requests and refusals are never remembered. At most ``limit`` answers (the
    oldest go first)."""

    def __init__(self, limit: int = 2048):
        self.limit = limit
        self._entries: dict = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key, now: dt.datetime, cas: Mapping) -> Remembered | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.refresh_after <= now or entry.cas is not cas:
            self._entries.pop(key, None)
            return None
        return entry

    @staticmethod
    def holds(entry: Remembered, generations: Mapping[int, int] | None) -> bool:
        """Whether no status change of the entry's CA (and no purge) was counted since it was made."""
        return generations is not None and generations.get(entry.ca_id) == entry.seq \
            and generations.get(KEPT, 0) == entry.kept

    def put(self, key, reply, ca_id: int, refresh_after: dt.datetime, generations: Mapping[int, int],
            cas: Mapping) -> None:
        """Remember ``reply``, whose status was read after ``generations`` were."""
        seq = generations.get(ca_id)
        if seq is None:
            return
        entries = self._entries
        if key not in entries and len(entries) >= self.limit:
            try:
                entries.pop(next(iter(entries)), None)
            except (RuntimeError, StopIteration):   # changed meanwhile by another thread: make room at once
                entries.clear()
        entries[key] = Remembered(reply, ca_id, seq, generations.get(KEPT, 0), refresh_after, cas)

    def drop(self, key) -> None:
        self._entries.pop(key, None)
