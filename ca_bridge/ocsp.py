"""RFC 6960 OCSP responder: BasicOCSPResponse signed in the HSM by the issuing CA's delegated responder
(id-kp-OCSPSigning + id-pkix-ocsp-nocheck certificate, included in ``certs``), ResponderID byKey.

* CertIDs hashed with SHA-1, SHA-256/384/512 or SM3 are recognised (issuer name and key hashes are
  precomputed per CA); several CertIDs per request, all for the same issuer.
* nonce (RFC 8954): echoed; longer than 32 octets -> malformedRequest.
* status from an ``OcspStore`` (``ca_bridge.store``), never from CA internals.
* protocol errors are OCSPResponses without a body (§4.2.1): undecodable request -> malformedRequest,
  an issuer we do not serve (or no delegated responder, or CertIDs of several issuers) -> unauthorized,
  a failure here -> internalError. The HTTP layer sends them with status 200 (RFC 6960 Appendix A
  defines no HTTP error mapping; OpenSSL and BC clients parse the body), and only transport faults
  (wrong content type, oversized body) become HTTP 4xx.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from dataclasses import dataclass

from asn1crypto import algos, core, ocsp, x509

from ca_bridge.certbuilder import signature_algorithm
from ca_bridge.directory import CERTID_DIGESTS, CaDirectory, CaInfo
from ca_bridge.store import OcspStore
from hsm import KeyManager
from pkicore.db import utcnow
from pkicore.errors import PkiError

log = logging.getLogger(__name__)

MAX_CERT_IDS = 64
MAX_NONCE = 32
_ERRORS = {name: ocsp.OCSPResponse({"response_status": name}).dump()
           for name in ("malformed_request", "internal_error", "try_later", "unauthorized")}


class OcspRefusal(Exception):
    """A request answered with an error status (malformed_request, unauthorized)."""

    def __init__(self, status: str, why: str):
        super().__init__(why)
        self.status = status


def error_response(status: str) -> bytes:
    return _ERRORS[status]


@dataclass(frozen=True)
class _Signer:
    label: str
    mechanism: str
    sig_alg: algos.SignedDigestAlgorithm
    certificate: x509.Certificate
    key_hash: bytes


@dataclass(frozen=True)
class ParsedRequest:
    cert_ids: tuple[ocsp.CertId, ...]
    digests: tuple[str, ...]
    serials: tuple[int, ...]
    nonce: bytes | None


def parse_request(body: bytes) -> ParsedRequest:
    """Decode an OCSPRequest strictly; raises OcspRefusal(malformed_request)."""
    try:
        req = ocsp.OCSPRequest.load(body, strict=True)
        tbs = req["tbs_request"]
        cert_ids, digests, serials = [], [], []
        for item in tbs["request_list"]:
            cid = item["req_cert"]
            digests.append(cid["hash_algorithm"]["algorithm"].native)
            if len(cid["issuer_name_hash"].native) > 64 or len(cid["issuer_key_hash"].native) > 64:
                raise ValueError("oversized CertID hash")
            serials.append(cid["serial_number"].native)
            cert_ids.append(cid)
        nonce = None
        for ext in tbs["request_extensions"] or ():
            if ext["extn_id"].native == "nonce":
                nonce = ext["extn_value"].parsed.native
            elif ext["critical"].native:
                raise ValueError(f"unsupported critical extension {ext['extn_id'].dotted}")
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise OcspRefusal("malformed_request", f"undecodable OCSP request: {exc}") from exc
    if not cert_ids or len(cert_ids) > MAX_CERT_IDS:
        raise OcspRefusal("malformed_request", f"an OCSP request carries 1..{MAX_CERT_IDS} CertIDs")
    if nonce is not None and not 0 < len(nonce) <= MAX_NONCE:
        raise OcspRefusal("malformed_request", f"nonce must be 1..{MAX_NONCE} octets (RFC 8954)")
    if any(s is None or s < 0 for s in serials):
        raise OcspRefusal("malformed_request", "negative serial number")
    return ParsedRequest(tuple(cert_ids), tuple(digests), tuple(serials), nonce)


def _gtime(when: dt.datetime) -> core.GeneralizedTime:
    return core.GeneralizedTime(when.replace(microsecond=0))


class OcspResponder:
    def __init__(self, km: KeyManager, store: OcspStore, directory: CaDirectory, *,
                 validity: dt.timedelta = dt.timedelta(hours=1)):
        self.km = km
        self.store = store
        self.directory = directory
        self.validity = validity
        self._signers: dict[int, _Signer] = {}
        self._lock = threading.Lock()

    def _signer(self, ca: CaInfo) -> _Signer:
        signer = self._signers.get(ca.id)
        if signer is None:
            cert = x509.Certificate.load(ca.ocsp_certificate)
            signer = _Signer(ca.ocsp_key_label, ca.algorithm.mechanism,
                             algos.SignedDigestAlgorithm.load(signature_algorithm(ca.algorithm)), cert,
                             hashlib.sha1(cert.public_key["public_key"].contents[1:]).digest())
            with self._lock:
                self._signers[ca.id] = signer
        return signer

    def _issuer(self, parsed: ParsedRequest, ca_name: str | None) -> CaInfo:
        candidates = ([self.directory.find(ca_name)] if ca_name else list(self.directory.all().values()))
        candidates = [c for c in candidates if c is not None and c.ocsp_key_label and c.ocsp_certificate]
        found = None
        for cid, digest in zip(parsed.cert_ids, parsed.digests):
            if digest not in CERTID_DIGESTS:
                raise OcspRefusal("unauthorized", f"CertID hash algorithm {digest} not supported")
            hashes = (cid["issuer_name_hash"].native, cid["issuer_key_hash"].native)
            match = next((c for c in candidates if c.certid_hashes[digest] == hashes), None)
            if match is None:
                raise OcspRefusal("unauthorized", "CertID names an issuer this responder does not serve")
            if found is not None and match.id != found.id:
                raise OcspRefusal("unauthorized", "CertIDs of several issuers in one request")
            found = match
        return found

    def respond(self, body: bytes, ca_name: str | None = None, *, now: dt.datetime | None = None) -> bytes:
        """The DER OCSPResponse for a DER OCSPRequest (never raises for bad input)."""
        try:
            parsed = parse_request(body)
            ca = self._issuer(parsed, ca_name)
        except OcspRefusal as refusal:
            log.info("OCSP %s: %s", refusal.status, refusal)
            return error_response(refusal.status)
        try:
            return self._sign(ca, parsed, now or utcnow())
        except PkiError as exc:
            log.error("OCSP response for %s failed: %s", ca.name, exc, exc_info=exc)
            return error_response("internal_error")

    def _sign(self, ca: CaInfo, parsed: ParsedRequest, now: dt.datetime) -> bytes:
        signer = self._signer(ca)
        statuses = self.store.statuses(ca.name, list(parsed.serials))
        this_update, next_update = _gtime(now), _gtime(now + self.validity)
        responses = []
        for cid, serial in zip(parsed.cert_ids, parsed.serials):
            st = statuses[serial]
            if st.status == "revoked":
                info = {"revocation_time": _gtime(st.revoked_at)}
                if st.reason is not None and st.reason.value != "unspecified":
                    info["revocation_reason"] = st.reason.value
                cert_status = ocsp.CertStatus(name="revoked", value=info)
            else:
                cert_status = ocsp.CertStatus(name=st.status, value=core.Null())
            responses.append({"cert_id": cid, "cert_status": cert_status, "this_update": this_update,
                              "next_update": next_update})
        data = {"responder_id": ocsp.ResponderId(name="by_key", value=signer.key_hash),
                "produced_at": this_update, "responses": responses}
        if parsed.nonce is not None:
            data["response_extensions"] = [{"extn_id": "nonce", "critical": False, "extn_value": parsed.nonce}]
        tbs = ocsp.ResponseData(data)
        signature = self.km.sign(signer.label, tbs.dump(), signer.mechanism)
        basic = ocsp.BasicOCSPResponse({"tbs_response_data": tbs, "signature_algorithm": signer.sig_alg,
                                        "signature": signature, "certs": [signer.certificate]})
        return ocsp.OCSPResponse({"response_status": "successful", "response_bytes": {
            "response_type": "basic_ocsp_response", "response": basic}}).dump()
