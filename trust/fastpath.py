"""The verification hot path (``racentre.fastpath``; measured hot): POST /api/v1/trust/verify with a
bearer token and an ordinary JSON body — a CMS SignedData (``signature``, attached, or detached with
``data``), no evidence — answered without Flask, the ORM or a query per token.

Per batch of requests that arrived together: one statement (``state``) reads the ``api_token`` generation
and every CA's revocation counter; the token comes from ``access.tokens.TokenTable`` at that generation,
and the certificate result from the validation cache keyed on that revocation state
(``trust.verify.ValidationCache``) — so a token disabled or a certificate revoked on any node is seen by
the next request, never after a delay or by a local clock. The signature itself is verified for every
request (pkicore.cms reads the ordinary SignedData by hand).

The answer is the Flask view's (``trust.views.verify``; tests hold the bytes equal). Its two large parts per
signer — the certificate verdict and the signer certificate's information — are rendered once per certificate
result (``_Rendered``) and put into the rest, rendered per request; each first rendering of a result is
checked against the whole answer rendered as the view does, and a difference turns the splicing off. Anything else — another
path or method, a query, another content type, no or an unknown, disabled, expired or unfit token, other
fields (raw signatures, evidence, user IDs), invalid JSON or base64, a body over ``MAX_BODY``, a schema
the node does not serve, an error while verifying — is declined and goes to the Flask app, whose
authentication, checks and error answers apply.
"""
from __future__ import annotations

import base64
import binascii
import json
import secrets
from typing import Callable, Hashable

from access.auth import Principal
from trust.services import TrustService
from trust.verdict import certificate_verdict
from trust.verify import SignerReport, VerifyReport
from trust.views import VERIFIERS

PATH = "/api/v1/trust/verify"
MAX_BODY = 1 << 20           # larger bodies (big signed documents) take the ordinary path, off the main thread
MAX_NESTING = 32             # racentre.web.MAX_JSON_DEPTH: deeper JSON is Flask's to refuse
FIELDS = frozenset({"signature", "data", "form"})
REPLY_TYPE = "application/json"


class _Rendered:
    """The JSON of a report whose signers' certificate verdicts and certificate information are rendered
    once per certificate result (the validation cache hands the same result object back while it holds):
    the rest of the answer is rendered with unguessable placeholders in their places, which are then
    replaced — each exactly once, or the whole answer is rendered as usual."""

    def __init__(self, dumps: Callable[[object], str], size: int = 4096):
        self.dumps = dumps
        self.size = size
        self.on = True
        self._parts: dict = {}            # (id(result), certificate DER) -> (result, verdict JSON, info JSON)
        nonce = secrets.token_hex(8)
        self._marks = [f"\ue000{nonce}:{i}\ue000" for i in range(64)]
        self._tokens: dict[str, str] = {}                   # mark -> its JSON rendering (dumps's settings)

    def __call__(self, report: VerifyReport) -> str:
        if not self.on or not report.signers or len(report.signers) * 2 > len(self._marks):
            return self.dumps(report.as_dict())
        pieces, signers, fresh = [], [], False
        for s in report.signers:
            parts = self._signer_parts(s)
            if parts is None:
                signers.append(s.as_dict())
                continue
            fresh |= parts[1]
            a, b = self._marks[len(pieces)], self._marks[len(pieces) + 1]
            pieces += [(a, parts[0][0]), (b, parts[0][1])]
            signers.append(s.as_dict_with(a, b))
        text = self.dumps(report.as_dict(signers))
        for mark, value in pieces:
            token = self._tokens.get(mark)
            if token is None:
                token = self._tokens[mark] = self.dumps(mark)
            at = text.find(token)
            if at < 0 or text.find(token, at + 1) >= 0:
                return self.dumps(report.as_dict())
            text = text[:at] + value + text[at + len(token):]
        if fresh:                         # a newly rendered part: the whole answer as the view renders it
            whole = self.dumps(report.as_dict())
            if whole != text:
                self.on = False
                return whole
        return text

    def _signer_parts(self, s: SignerReport) -> tuple[tuple[str, str], bool] | None:
        result = s.certificate
        if result is None or s.certificate_der is None:
            return None
        key = (id(result), s.certificate_der)
        kept = self._parts.get(key)
        if kept is not None and kept[0] is result:
            return kept[1], False
        parts = (self.dumps(certificate_verdict(result)), self.dumps(s.signer))
        if len(self._parts) >= self.size:
            self._parts.clear()
        self._parts[key] = (result, parts)
        return parts, True


class TrustVerifyFastPath:
    """A buffered ``racentre.fastpath`` handler for the segment "api" that takes only ``PATH``."""

    # its answers read the database (the state statement; a token table reload or a certificate not in the
    # validation cache): the serving worker answers its batches off the main thread (racentre.arbiter)
    blocking = True

    def __init__(self, service: Callable[[], TrustService], state: Callable[[], tuple[int, Hashable]],
                 principal: Callable[[str, int], Principal | None], dumps: Callable[[dict], str],
                 refused: Callable[[], bool] = lambda: False):
        self.service = service            # the app's TrustService (built on first use), or an exception
        self.state = state                # () -> (api_token generation, revocation state), one statement
        self.principal = principal        # (token, generation) -> active Principal or None
        self.dumps = dumps                # the app's JSON, as jsonify writes it (without the newline)
        self.refused = refused            # True while the node refuses requests (racentre.serve.watch_schema)
        self.render = _Rendered(dumps)

    def wants(self, method: str, path: str, content_type: str, length: str) -> bool:
        return (method == "POST" and path == PATH and length.isdigit() and int(length) <= MAX_BODY
                and content_type.split(";", 1)[0].strip().lower() == "application/json")

    @staticmethod
    def _request(query: str, authorization: str | None, body: bytes) -> tuple[str, bytes, bytes | None] | None:
        """(token, signature, data) of a request this path takes, else None."""
        if query or not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        if body.count(b"[") + body.count(b"{") > MAX_NESTING:
            return None
        try:
            payload = json.loads(body)
        except ValueError:
            return None
        if not isinstance(payload, dict) or not payload.keys() <= FIELDS or payload.get("form", "cms") != "cms":
            return None
        signature, data = payload.get("signature"), payload.get("data")
        if not isinstance(signature, str) or not isinstance(data, (str, type(None))):
            return None
        try:
            return (token, base64.b64decode(signature, validate=True),
                    base64.b64decode(data, validate=True) if data is not None else None)
        except (binascii.Error, ValueError):
            return None

    def answer_buffered(self, requests) -> list[tuple[str, bytes] | None]:
        out: list[tuple[str, bytes] | None] = [None] * len(requests)
        taken = []
        for i, (method, path, query, content_type, authorization, body) in enumerate(requests):
            if self.wants(method, path, content_type, str(len(body))):
                request = self._request(query, authorization, body)
                if request is not None:
                    taken.append((i, request))
        if not taken or self.refused():
            return out
        try:
            service = self.service()
            generation, revocation = self.state()
        except Exception:  # noqa: BLE001 - not built, or the database away: Flask answers (and reports) it
            return out
        policy = None
        for i, (token, signature, data) in taken:
            principal = self.principal(token, generation)
            if principal is None or not principal.roles & set(VERIFIERS):
                continue
            if policy is None:
                try:
                    policy = service.policy()
                except Exception:  # noqa: BLE001 - the view gives the error answer
                    return out
            try:
                # TrustService.verify without evidence, with its default policy: its report, rendered here
                report = service.verify_report(signature, data=data, policy=policy, state=revocation,
                                               tsa_policy=policy)
                text = self.render(report)
            except Exception:  # noqa: BLE001 - bad input or a failure: the view gives the error answer
                continue
            out[i] = (REPLY_TYPE, (text + "\n").encode("utf-8"))
        return out
