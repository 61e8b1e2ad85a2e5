"""HTTP face of the CA: CA certificates, CRLs (RFC 5280 §5, served as application/pkix-crl per RFC 2585),
the OCSP responder (RFC 6960 Appendix A: GET with the base64 request in the path, POST with
application/ocsp-request) and a read-only certificate look-up for API clients.

URL layout (``ca_bridge.ca.ca_urls`` writes the same URLs into certificates):
    GET  /ca                                 JSON list of CAs
    GET  /ca/<name>/cert[.pem]               CA certificate, DER (application/pkix-cert) or PEM
    GET  /ca/<name>/chain.pem                CA certificate up to the root, PEM
    GET  /ca/<name>/crl                      current full CRL, DER (application/pkix-crl)
    GET  /ca/<name>/delta-crl                current delta CRL
    POST /ocsp/<name>  and  /ocsp            OCSPRequest body -> application/ocsp-response
    GET  /ocsp/<name>/<base64 request>       same, for caching proxies (RFC 5019 §5)
    GET  /api/v1/certificates/<ca>/<serial>  JSON (roles api_client, ra_officer, auditor); serial in hex

The service object comes from ``current_app.extensions["racentre.ca"]`` (an ``EmbeddedCA``); this
module never touches PKCS#11. OCSP protocol errors are OCSPResponses with HTTP 200 (see
``ca_bridge.ocsp``); wrong content type -> 415, body over 64 KiB -> 413, bad serial -> 400.
"""
from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import re
import time

from asn1crypto import pem
from flask import Blueprint, Response, abort, current_app, jsonify, request

from asn1crypto import ocsp as asn1_ocsp

from access.auth import require_roles
from ca_bridge.embedded import EmbeddedCA
from ca_bridge.errors import CaError
from ca_bridge.ocsp import AnswerMemo, OcspRefusal, parse_request
from store.db import as_utc, utcnow
from pkicore import inputs
from pkicore.errors import ErrorCode

bp = Blueprint("ca", __name__)

EXTENSION_KEY = "racentre.ca"
MAX_OCSP_REQUEST = 64 * 1024
OCSP_REQUEST_TYPE = "application/ocsp-request"
OCSP_RESPONSE_TYPE = "application/ocsp-response"


def _ca() -> EmbeddedCA:
    service = current_app.extensions.get(EXTENSION_KEY)
    if service is None:
        raise CaError("the CA is not configured in this service", code=ErrorCode.CONFIGURATION)
    return service


def _der(data: bytes, mimetype: str, max_age: int | None = None) -> Response:
    response = Response(data, status=200, mimetype=mimetype)
    if max_age is not None:
        response.headers["Cache-Control"] = f"public, max-age={max_age}"
    return response


@bp.get("/ca")
def list_cas():
    return jsonify(authorities=[{"name": info.name, "algorithm": info.algorithm.name, "parent": info.parent,
                                 "ocsp": bool(info.ocsp_key_label)} for info in _ca().authorities().values()])


@bp.get("/ca/<name>/cert")
@bp.get("/ca/<name>/cert.pem")
def ca_certificate(name: str):
    info = _ca().directory.get(name)
    if request.path.endswith(".pem") or request.args.get("format") == "pem":
        return Response(pem.armor("CERTIFICATE", info.certificate), mimetype="application/x-pem-file")
    return _der(info.certificate, "application/pkix-cert", 3600)


@bp.get("/ca/<name>/chain.pem")
def ca_chain(name: str):
    svc = _ca()
    info = svc.directory.get(name)
    chain, cur = [info.certificate], info
    while cur.parent is not None:
        cur = svc.directory.get(cur.parent)
        chain.append(cur.certificate)
    return Response(b"".join(pem.armor("CERTIFICATE", c) for c in chain), mimetype="application/x-pem-file")


def _crl(name: str, delta: bool):
    published = _ca().crls.current(name, delta=delta)
    response = _der(published.der, "application/pkix-crl")
    response.headers["Last-Modified"] = published.this_update.strftime("%a, %d %b %Y %H:%M:%S GMT")
    response.headers["Expires"] = published.next_update.strftime("%a, %d %b %Y %H:%M:%S GMT")
    return response


@bp.get("/ca/<name>/crl")
def crl(name: str):
    return _crl(name, False)


@bp.get("/ca/<name>/delta-crl")
def delta_crl(name: str):
    return _crl(name, True)


def _ocsp_reply(body: bytes, name: str | None, *, get: bool = False) -> Response:
    der = _ca().ocsp.respond(body, name)
    if not get:
        return _der(der, OCSP_RESPONSE_TYPE)
    headers = ocsp_get_headers(_ca(), body, der)
    if ocsp_not_modified(der, headers, request.headers.get("If-None-Match"),
                         request.headers.get("If-Modified-Since")):
        response = Response(status=304)
        response.headers.remove("Content-Type")
    else:
        response = _der(der, OCSP_RESPONSE_TYPE)
    response.headers.extend(headers)
    return response


_HTTP_DATE = "%a, %d %b %Y %H:%M:%S GMT"
_CACHE_INFO: dict[bytes, tuple | None] = {}      # response DER -> (Last-Modified, Expires, ETag, this/nextUpdate,
#                                                  producedAt, whether it says "good")
_ENTITY_TAG = re.compile(r'\s*(?:W/)?("[\x21\x23-\x7e\x80-\xff]*")\s*(?:,|\Z)')
_NO_STORE = (("Cache-Control", "no-store"),)


def _cache_info(der: bytes) -> tuple | None:
    """What the HTTP headers of a successful response without nonce say about it (producedAt,
    nextUpdate, its SHA-1), parsed once per response (pre-produced ones are served many times)."""
    info = _CACHE_INFO.get(der, False)
    if info is not False:
        return info
    try:
        basic = asn1_ocsp.OCSPResponse.load(der).basic_ocsp_response["tbs_response_data"]
        single = basic["responses"][0]
        this_update, next_update = single["this_update"].native, single["next_update"].native
        produced_at = basic["produced_at"].native
        info = None if next_update is None else (
            produced_at.strftime(_HTTP_DATE), next_update.strftime(_HTTP_DATE),
            f'"{hashlib.sha1(der).hexdigest()}"', this_update.timestamp(), next_update.timestamp(),
            produced_at.timestamp(), len(basic["responses"]) == 1 and single["cert_status"].name == "good")
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        info = None
    if len(_CACHE_INFO) >= 4096:
        _CACHE_INFO.clear()
    _CACHE_INFO[der] = info
    return info


def ocsp_get_headers(ca: EmbeddedCA, request_der: bytes, der: bytes, now: float | None = None) -> tuple:
    """HTTP caching of a GET answer (RFC 5019 §6.2, RFC 9111): a successful response to a request without
    a nonce carries Last-Modified (producedAt), Expires (nextUpdate), ETag (the SHA-1 of the response, in
    quotes) and Cache-Control ``max-age=N, public, no-transform, must-revalidate`` with N up to the time
    the responder replaces it (half its validity; never past nextUpdate), so a cache asks again about
    when a new one exists. Error responses and nonce answers: ``no-store`` (tryLater must not be kept,
    a nonce answer is of use to its requester only)."""
    return get_headers(_validators(ca, request_der, der), now)


def _validators(ca: EmbeddedCA, request_der: bytes, der: bytes, nonce: bool | None = None) -> tuple | None:
    """(Last-Modified, Expires, ETag, until when it may be cached) of a GET answer, or None: ``no-store``
    (``ocsp_get_headers``). ``nonce``: whether the request carries one, when the caller parsed it already."""
    if len(der) < 16:                                   # an error status, no response bytes (RFC 6960 §4.2.1)
        return None
    if nonce is None:
        try:
            nonce = parse_request(request_der).nonce is not None
        except OcspRefusal:
            return None
    if nonce:
        return None
    info = _cache_info(der)
    if info is None:
        return None
    last_modified, expires, etag, this_update, next_update = info[:5]
    return last_modified, expires, etag, min(next_update, this_update + ca.ocsp.refresh.total_seconds())


def get_headers(validators: tuple | None, now: float | None = None) -> tuple:
    """The headers of a GET answer from its ``_validators`` at ``now`` (max-age counts down)."""
    if validators is None:
        return _NO_STORE
    last_modified, expires, etag, until = validators
    max_age = max(0, int(until - (time.time() if now is None else now)))
    return (("Last-Modified", last_modified), ("Expires", expires), ("ETag", etag),
            ("Cache-Control", f"max-age={max_age}, public, no-transform, must-revalidate"))


def _entity_tags(field: str) -> list[str] | None:
    """The entity-tags of an If-None-Match field value (RFC 9110 §13.1.2; RFC 7232 §3.2), W/ dropped (weak
    comparison), or None for "*" or a value that does not parse."""
    tags, pos = [], 0
    field = field.strip()
    if field == "*":
        return None
    while pos < len(field):
        m = _ENTITY_TAG.match(field, pos)
        if m is None:
            return None
        tags.append(m.group(1))
        pos = m.end()
    return tags


def ocsp_not_modified(der: bytes, headers: tuple, if_none_match: str | None, if_modified_since: str | None) -> bool:
    """Conditional GET of an OCSP answer (RFC 5019 §6.2, RFC 7232 §3.2-§3.3 and §6 precedence): whether the
    answer about to be sent (``der`` with its ``ocsp_get_headers``) may be a 304 instead. Only cacheable
    answers (those with an ETag: successful, no nonce) ever are; the validators are those of the response
    that would be sent now, so a status that changed since the client's copy never matches.

    * If-None-Match present: 304 when one of its entity-tags equals the ETag (weak comparison). "*" is
      answered 200 (RFC 7232 §3.2 gives 304 as a SHOULD): "any copy you hold" must never keep a client on
      an answer older than a revocation.
    * otherwise If-Modified-Since (a valid HTTP-date): 304 when producedAt is not later, and only for an
      answer saying "good". Last-Modified has one-second resolution and nodes' clocks differ (RFC 7232
      §2.2.2: a weak validator), so a "revoked" answer produced in the same second as (or, on a node whose
      clock is behind, earlier than) the client's "good" copy would match; a revoked answer is therefore
      always sent whole. (The converse — a certificate released from hold, a client holding "on hold"
      with the same date — may get 304 and keep the stricter answer until it revalidates.)"""
    info = _cache_info(der) if len(der) >= 16 else None
    etag = next((value for name, value in headers if name == "ETag"), None)
    if info is None or etag is None:
        return False
    if if_none_match is not None:
        tags = _entity_tags(if_none_match)
        return tags is not None and etag in tags
    if if_modified_since is None or not info[6]:
        return False
    try:
        since = email.utils.parsedate_to_datetime(if_modified_since)
    except (TypeError, ValueError, IndexError):
        return False
    if since is None or since.tzinfo is None:
        return False                         # RFC 7232 §3.3: only an HTTP-date (GMT) is a date
    return int(info[5]) <= since.timestamp()


@bp.post("/ocsp")
@bp.post("/ocsp/<name>")
def ocsp_post(name: str | None = None):
    if request.mimetype != OCSP_REQUEST_TYPE:
        abort(415, description=f"send the OCSPRequest as {OCSP_REQUEST_TYPE}")
    if request.content_length is not None and request.content_length > MAX_OCSP_REQUEST:
        abort(413, description=f"OCSP requests are limited to {MAX_OCSP_REQUEST} bytes")
    body = request.stream.read(MAX_OCSP_REQUEST + 1)
    if len(body) > MAX_OCSP_REQUEST:
        abort(413, description=f"OCSP requests are limited to {MAX_OCSP_REQUEST} bytes")
    if name is not None:
        _ca().directory.get(name)            # unknown CA name in the URL: 404
    return _ocsp_reply(body, name)


MAX_OCSP_GET_PATH = MAX_OCSP_REQUEST * 4 // 3 + 4


def decode_get_request(encoded: str) -> bytes:
    """RFC 6960 Appendix A.1 / RFC 5019 §5: the OCSPRequest from the path segment after the responder URL
    (base64, URL-decoded already; the URL-safe alphabet and a '+' turned to ' ' are accepted). Anything
    undecodable -> b"", answered as malformedRequest."""
    text = encoded.strip().replace("-", "+").replace("_", "/").replace(" ", "+")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return b""


@bp.get("/ocsp/<name>/<path:encoded>")
def ocsp_get(name: str, encoded: str):
    """RFC 6960 Appendix A.1: GET {url}/{url-encoding of base-64 encoding of the DER OCSPRequest}."""
    _ca().directory.get(name)
    if len(encoded) > MAX_OCSP_GET_PATH:
        abort(413, description="OCSP request too large")
    return _ocsp_reply(decode_get_request(encoded), name, get=True)


class OcspFastPath:
    """The OCSP responder's hot path (``racentre.fastpath``): POST /ocsp[/<name>] with an
    application/ocsp-request body within the limit, and GET /ocsp/<name>/<request>, for a CA this
    process knows, answered without Flask. Everything else (another type, an oversized or chunked body,
    an unknown CA) goes to the views above, which answer it with the 4xx they give; the answers the
    fast path gives are the views' own (a test holds them equal). OCSP is public (RFC 6960), so no
    before-request hook is skipped that matters here."""

    max_body = MAX_OCSP_REQUEST
    blocking = True              # every answer reads the status store: answered off the worker's main thread

    def __init__(self, ca: EmbeddedCA):
        self.ca = ca
        # pre-produced answers this worker gave, by request (ca_bridge.ocsp.AnswerMemo): served again after one
        # read of the revocation counters per batch, without parsing or a status read (_StagedOcsp)
        self.memo = AnswerMemo()

    def _route(self, method: str, path: str, content_type: str, length: str) -> tuple | None:
        """(CA name or None, POST body length or the GET path's encoded request) of a request this path
        takes, else None."""
        if method == "POST":
            name = None if path == "/ocsp" else path[6:] if path.startswith("/ocsp/") else ""
            if name == "" or (name is not None and ("/" in name or self.ca.directory.find(name) is None)) \
                    or not length.isdigit() or int(length) > MAX_OCSP_REQUEST \
                    or content_type.split(";", 1)[0].strip().lower() != OCSP_REQUEST_TYPE:
                return None
            return name, int(length)
        if method == "GET" and path.startswith("/ocsp/"):
            name, _, encoded = path[6:].partition("/")
            if not name or not encoded or len(encoded) > MAX_OCSP_GET_PATH or self.ca.directory.find(name) is None:
                return None
            return name, encoded
        return None

    @staticmethod
    def _body(route, read) -> bytes:
        """The DER request of a routed request: ``read(length)`` of a POST, the GET path's request decoded."""
        request = route[1]
        return read(request) if isinstance(request, int) else decode_get_request(request)

    def _reply(self, route, body: bytes, der: bytes) -> tuple:
        if isinstance(route[1], int):                    # POST
            return OCSP_RESPONSE_TYPE, der
        return OCSP_RESPONSE_TYPE, der, ocsp_get_headers(self.ca, body, der)

    def answer(self, method: str, path: str, content_type: str, length: str, read) -> tuple | None:
        route = self._route(method, path, content_type, length)
        if route is None:
            return None
        body = self._body(route, read)
        return self._reply(route, body, self.ca.ocsp.respond(body, route[0]))

    def answer_many(self, requests) -> list[tuple[str, bytes] | None]:
        """``answer`` for requests that arrived together, ``(method, path, content type, length, body)``
        each: one status read for all of them (``OcspResponder.respond_many``)."""
        staged = self.stage_many(requests)
        staged.read()
        out = staged.answers()
        staged.write()
        return out

    def stage_many(self, requests) -> "_StagedOcsp":
        """``answer_many`` in stages (``racentre.fastpath``): parsing now, then ``read()`` (the database),
        ``answers()`` (signatures), ``writes()``/``write()`` (new pre-produced responses to the database)."""
        return _StagedOcsp(self, requests)


def _request_der(route, body: bytes) -> bytes:
    """``OcspFastPath._body`` of a request whose body was read already: the POST body's first ``length``
    octets, or the GET path's request decoded."""
    request = route[1]
    return body[:request] if isinstance(request, int) else decode_get_request(request)


class _StagedOcsp:
    """One batch of the fast path in stages. Requests whose answer the worker remembers (``hits``: the same
    POST — path, content type, length, body — or the same GET path) are neither routed, parsed nor looked
    up; ``read`` (the batch thread) reads the revocation counters once — after every request of the batch
    arrived, before any status — and a hit whose CA's counter moved (a revocation committed anywhere) is
    answered from the database like the others (``ca_bridge.ocsp.AnswerMemo``). A batch of hits only may
    be read by ``read_nowait`` instead (the main thread; PostgreSQL)."""

    __slots__ = ("path", "taken", "hits", "batch", "size", "cas", "_pending")

    def __init__(self, path: OcspFastPath, requests):
        self.path, self.size = path, len(requests)
        ocsp, memo = path.ca.ocsp, path.memo
        now = utcnow()
        self.cas = cas = path.ca.directory.all()
        self.taken, self.hits = [], []
        for i, asked in enumerate(requests):
            # the whole request is the key: the route it took depends on it and on the directory alone (``cas``)
            key = asked if asked[0] == "POST" else asked[1]
            entry = memo.get(key, now, cas) if len(memo) else None
            if entry is not None:
                self.hits.append((i, entry.reply[0], key, entry, asked[4]))
                continue
            method, p, ctype, length, body = asked
            route = path._route(method, p, ctype, length)
            if route is not None:
                self.taken.append((i, route, key, _request_der(route, body)))
        self.batch = ocsp.begin([(body, route[0]) for _, route, _, body in self.taken], now=now)
        self._pending = None

    def read_nowait(self):
        """``read`` on the calling thread without waiting on the database, for a batch of remembered answers
        only (nothing to parse or look up: the revocation counters are all it reads, started now — after
        every request of the batch arrived — through ``OcspResponder.generations_nowait``). -> True: read,
        ``answers`` may follow; a pending read: wait until its ``fileno()`` is readable and its ``ready()``
        says True, then call ``read_nowait`` again; False: call ``read`` on a thread that may wait (statuses
        to read, a counter moved, the counters unreadable, or no read without waiting now)."""
        if self.taken or not self.hits:
            return False
        pending, self._pending = self._pending, None
        if pending is None:
            self._pending = self.path.ca.ocsp.generations_nowait()
            return self._pending if self._pending is not None else False
        generations = pending.result()
        if not all(AnswerMemo.holds(hit[3], generations) for hit in self.hits):
            return False
        self.batch.generations, self.batch.current = generations, {}
        return True

    def read(self) -> None:
        ocsp = self.path.ca.ocsp
        if self.hits or self.batch.plain:
            self.batch.generations = generations = ocsp.generations()
            stale = [hit for hit in self.hits if not AnswerMemo.holds(hit[3], generations)]
            if stale:                    # a status changed (or the counters are unreadable): ask the database
                self.hits = [hit for hit in self.hits if AnswerMemo.holds(hit[3], generations)]
                self.taken += [(i, route, key, _request_der(route, body)) for i, route, key, _, body in stale]
                self.batch = ocsp.begin([(body, route[0]) for _, route, _, body in self.taken], now=self.batch.now)
                self.batch.generations = generations
        ocsp.read(self.batch)
        if self.hits:                    # answers are remembered: let the next batches read without waiting
            ocsp.prepare_nowait()

    def answers(self) -> list[tuple | None]:
        out: list[tuple | None] = [None] * self.size
        path, memo = self.path, self.path.memo
        if self.hits:
            now = time.time()
            for i, _, _, entry, _ in self.hits:
                reply = entry.reply[1]
                out[i] = reply if len(reply) == 2 else (OCSP_RESPONSE_TYPE, reply[1], get_headers(reply[2], now))
        batch = self.batch
        generations, cacheable = batch.generations, batch.cacheable
        nonces = {j: parsed.nonce is not None for j, _, parsed in batch.work}     # parsed once, in ``begin``
        for j, ((i, route, key, body), der) in enumerate(zip(self.taken, path.ca.ocsp.finish(batch))):
            post = isinstance(route[1], int)
            validators = None if post else _validators(path.ca, body, der, nonces.get(j))
            out[i] = (OCSP_RESPONSE_TYPE, der) if post else (OCSP_RESPONSE_TYPE, der, get_headers(validators))
            remember = cacheable.get(j)
            if remember is not None and generations is not None:
                memo.put(key, (route, out[i] if post else (OCSP_RESPONSE_TYPE, der, validators)), remember[0],
                         remember[1], generations, self.cas)
            else:
                memo.drop(key)
        return out

    def writes(self) -> bool:
        return bool(self.batch.to_keep)

    def write(self) -> None:
        self.path.ca.ocsp.keep(self.batch)


@bp.get("/api/v1/certificates/<ca>/<serial>")
@require_roles("api_client", "ra_officer", "auditor")
def certificate(ca: str, serial: str):
    row = _ca().certificate(ca, inputs.hex_serial(serial))
    return jsonify(ca=ca, serial=row.serial, request_id=row.request_id, profile=row.profile, subject=row.subject,
                   not_before=as_utc(row.not_before).isoformat(), not_after=as_utc(row.not_after).isoformat(),
                   status=row.status if row.status == "revoked" else "good",
                   revoked_at=as_utc(row.revoked_at).isoformat() if row.revoked_at else None,
                   reason=row.reason if row.status == "revoked" else None,
                   certificate=pem.armor("CERTIFICATE", row.certificate).decode("ascii"))
