"""What a CA calls to get encryption keys: ``KmcClient`` builds signed GM/T 0014 CARequests and checks the
KMC's signed KMRespond. Plain data in, plain data out; the transport is in-process (embedded KMC, the
default) or HTTP (``POST {url}/kmc/v1/request``, application/octet-stream) to a stand-alone KMC.
"""
from __future__ import annotations

import datetime as dt
import http.client
import logging
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable, Protocol

from asn1crypto import x509

from gmt0014 import messages as m
from gmt0014.errors import KmcRefused, KmcUnreachable, ProtocolError
from pkicore.algorithms import algorithm
from store.db import utcnow
from pkicore.errors import ErrorCode
from pkicore.keys import verify_signature
from pkicore.oids import OID

log = logging.getLogger(__name__)


class Transport(Protocol):
    def send(self, der: bytes) -> bytes: ...


class InProcessTransport:
    """The embedded KMC: hand the DER to a Gmt0014Endpoint in this process."""

    def __init__(self, service):
        self.service = service

    def send(self, der: bytes) -> bytes:
        return self.service.handle(der)


class HttpTransport:
    """A stand-alone KMC over HTTP(S). Failures are ``ProtocolError`` with code UPSTREAM_UNAVAILABLE
    (HTTP 503 to our callers), ``KmcUnreachable`` when the request never reached the KMC; the URL and
    the cause go to the log, not into the public message."""

    MAX_RESPONSE = 4 * 1024 * 1024

    def __init__(self, base_url: str, timeout: float = 30.0):
        self.url = base_url.rstrip("/") + "/kmc/v1/request"
        self.timeout = timeout

    def send(self, der: bytes) -> bytes:
        req = urllib.request.Request(self.url, data=der, method="POST",
                                     headers={"Content-Type": m.CONTENT_TYPE, "Accept": m.CONTENT_TYPE})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                body = resp.read(self.MAX_RESPONSE + 1)
        except urllib.error.HTTPError as exc:
            log.warning("KMC %s answered HTTP %s", self.url, exc.code)
            raise ProtocolError(f"the key-management centre answered HTTP {exc.code}; try again later",
                                int(m.ErrNo.INTERNAL), code=ErrorCode.UPSTREAM_UNAVAILABLE) from exc
        except urllib.error.URLError as exc:
            # urllib raises URLError only while connecting and sending (AbstractHTTPHandler.do_open): the
            # request never arrived whole, so the KMC did nothing
            log.warning("KMC %s unreachable: %s", self.url, exc.reason)
            raise KmcUnreachable("the key-management centre is unreachable; try again later", int(m.ErrNo.INTERNAL),
                                 code=ErrorCode.UPSTREAM_UNAVAILABLE) from exc
        except (OSError, http.client.HTTPException) as exc:
            # sent, but the answer was lost (timeout, reset): the KMC may have acted on it
            log.warning("KMC %s sent no answer: %s", self.url, exc)
            raise ProtocolError("the key-management centre did not answer; try again later", int(m.ErrNo.INTERNAL),
                                code=ErrorCode.UPSTREAM_UNAVAILABLE) from exc
        if len(body) > self.MAX_RESPONSE:
            raise ProtocolError("the key-management centre's answer is too large", int(m.ErrNo.BAD_REQUEST),
                                code=ErrorCode.UPSTREAM_UNTRUSTED)
        return body


@dataclass(frozen=True)
class EncryptionKey:
    """The KMC's answer for one encryption certificate."""

    user_cert_no: int
    public_key_info: bytes         # put this SPKI in the encryption certificate
    signed_and_enveloped: bytes    # GM/T 0010 SignedAndEnvelopedData for the subscriber


class KmcClient:
    """CA side of GM/T 0014. ``sign(data) -> DER (r, s)`` signs with the CA key (e.g.
    ``lambda d: key_manager.sign(ca_label, d)``); ``kmc_certificate`` verifies the answers."""

    def __init__(self, transport: Transport, *, ca_certificate: bytes, sign: Callable[[bytes], bytes],
                 kmc_certificate: bytes):
        self.transport = transport
        self.ca_certificate = ca_certificate
        self.sign = sign
        self.kmc_certificate = kmc_certificate
        self._kmc_spki = x509.Certificate.load(kmc_certificate).public_key.dump()

    # ------------------------------------------------------------------ one-item helpers
    def apply_key(self, user_cert_no: int, subscriber_public_key_info: bytes, not_before: dt.datetime,
                  not_after: dt.datetime, user_name: str | None = None) -> EncryptionKey:
        """New encryption key pair for encryption certificate ``user_cert_no``, enveloped to the
        subscriber's signing key."""
        return self._one(m.ApplyKey(user_cert_no, subscriber_public_key_info, not_before, not_after, user_name))

    def restore_key(self, user_cert_no: int, subscriber_public_key_info: bytes) -> EncryptionKey:
        """Re-deliver an archived key to the subscriber's current signing key (after RA vetting)."""
        return self._one(m.RestoreKey(user_cert_no, subscriber_public_key_info))

    def revoke_key(self, user_cert_no: int) -> None:
        """The encryption certificate was revoked: the KMC marks the archived key."""
        self._one(m.RevokeKey(user_cert_no))

    def _one(self, item):
        result = self.send([item])[0]
        if isinstance(result, m.Failure):
            raise KmcRefused(f"KMC refused the request: {result.description} (errNo {result.err_no})",
                             result.err_no, code=_ERR_CODES.get(result.err_no, ErrorCode.BAD_REQUEST))
        if isinstance(result, m.RetKey):
            return EncryptionKey(result.user_cert_no, result.public_key_info, result.signed_and_enveloped)
        return result

    # ------------------------------------------------------------------ batch
    def build_request(self, items, task_no: int | None = None, request_time: dt.datetime | None = None) -> bytes:
        ks = m.build_ks_request(self.ca_certificate, items, task_no or secrets.randbits(63) or 1,
                                request_time or utcnow())
        return m.sign_message(m.CARequest, ks, self.sign)

    def send(self, items) -> list:
        """Send several items in one signed request; one RetKey / Revoked / Failure per item (or a single
        Failure when the whole request was refused)."""
        der = self.build_request(items)
        task_no = m.CARequest.load(der)["ks_request"]["task_no"].native
        return self.parse_response(self.transport.send(der), task_no)

    def parse_response(self, der: bytes, task_no: int) -> list:
        try:
            resp = m.load_strict(m.KMRespond, der)
        except (ValueError, TypeError) as exc:
            raise ProtocolError("the key-management centre's answer is not a well-formed KMRespond",
                                int(m.ErrNo.BAD_REQUEST), code=ErrorCode.UPSTREAM_UNTRUSTED) from exc
        ks = resp["ks_respond"]
        if resp["signature_algorithm"]["algorithm"].dotted != OID.SM2_WITH_SM3 or not verify_signature(
                self._kmc_spki, algorithm("sm2-sm3"), ks.dump(), resp["signature_value"].native):
            raise ProtocolError("KMRespond signature does not verify with the configured KMC certificate "
                                "(another KMC, or a tampered answer)", int(m.ErrNo.BAD_SIGNATURE),
                                code=ErrorCode.UPSTREAM_UNTRUSTED)
        if ks["task_no"].native != task_no:
            raise ProtocolError("KMRespond answers another task", int(m.ErrNo.BAD_REQUEST),
                                code=ErrorCode.UPSTREAM_UNTRUSTED)
        return [m.decode_respond(r) for r in ks["respond_list"]]


_ERR_CODES = {int(m.ErrNo.BAD_SIGNATURE): ErrorCode.BAD_SIGNATURE, int(m.ErrNo.NOT_FOUND): ErrorCode.NOT_FOUND,
              int(m.ErrNo.CONFLICT): ErrorCode.CONFLICT, int(m.ErrNo.UNKNOWN_CA): ErrorCode.FORBIDDEN,
              int(m.ErrNo.REPLAY): ErrorCode.CONFLICT,
              int(m.ErrNo.UNSUPPORTED_ALGORITHM): ErrorCode.UNSUPPORTED_ALGORITHM,
              int(m.ErrNo.INTERNAL): ErrorCode.UPSTREAM_UNAVAILABLE}
