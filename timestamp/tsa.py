"""The time-stamp authority (RFC 3161 §2.4, RFC 5816; GM/T 0033 with SM2/SM3): TimeStampReq in,
TimeStampResp out.

``TimeStampAuthority.respond(query_der, unit)`` never raises for a client's mistake: a query it will
not stamp gets a rejection TimeStampResp with the PKIFailureInfo bit (badAlg, badDataFormat,
unacceptedPolicy, unacceptedExtension, timeNotAvailable, systemFailure) and a statusString. Tokens are
CMS SignedData over TSTInfo with the ESSCertIDv2 signing-certificate attribute; every constant DER
piece is computed when the unit is built, so a token costs parsing, one digest and one HSM signature.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from asn1crypto import cms, core, tsp, x509

from pkicore.algorithms import Algorithm, algorithm
from pkicore.cms import (DIGEST_BY_OID, CmsSigner, SignedDataTemplate, der_integer, der_oid,
                         generalized_time, read_tlv, tlv)
from pkicore.errors import PkiError
from timestamp.clock import ClockMonitor
from timestamp.config import DIGEST_LENGTHS
from timestamp.errors import FailureInfo, TsaError, TsaRejection

log = logging.getLogger(__name__)

ID_CT_TSTINFO = "1.2.840.113549.1.9.16.1.4"
EKU_TIME_STAMPING = "1.3.6.1.5.5.7.3.8"
_GRANTED_STATUS = bytes.fromhex("3003020100")


class TimeStampResp(core.Sequence):
    """RFC 3161 §2.4.2 TimeStampResp; asn1crypto's makes the token mandatory, a rejection has none."""

    _fields = [("status", tsp.PKIStatusInfo), ("time_stamp_token", cms.ContentInfo, {"optional": True})]


@dataclass(frozen=True)
class IssuedToken:
    """What the archive keeps for each token."""

    unit: str
    serial: int
    gen_time: dt.datetime
    policy: str
    imprint_algorithm: str
    imprint: bytes
    token: bytes


class SerialNumbers:
    """Serial numbers unique across processes and nodes with no shared state (RFC 3161 §2.4.2 needs
    uniqueness, not order): 48-bit milliseconds || 16-bit node id || 64 random bits — a positive
    128-bit integer that sorts roughly by issue time."""

    def __init__(self, node_id: int = -1, clock: Callable[[], float] = time.time):
        if node_id < 0:
            seed = f"{socket.gethostname()}:{os.getpid()}".encode()
            node_id = int.from_bytes(hashlib.sha256(seed).digest()[:2], "big")
        if node_id > 0xFFFF:
            raise TsaError("tsa.node_id must be in 0..65535")
        self.node_id = node_id
        self._clock = clock

    def next(self) -> int:
        ms = int(self._clock() * 1000) & ((1 << 48) - 1)
        return (ms << 80) | (self.node_id << 64) | secrets.randbits(64)


class TsaUnit:
    """One signing identity: HSM key, certificate (+ issuing CAs), algorithm and policy."""

    def __init__(self, name: str, *, key_manager, key_label: str, algorithm_name: str, certificate: bytes,
                 chain: Sequence[bytes] = (), policy: str, accuracy_ms: int = 1000, include_chain: bool = True):
        self.name = name
        self.key_label = key_label
        self.algorithm: Algorithm = algorithm(algorithm_name)
        self.certificate = certificate
        self.chain = tuple(chain)
        self.policy = policy
        self.include_chain = include_chain
        cert = x509.Certificate.load(certificate)
        check_tsa_certificate(cert)
        self.not_before = cert.not_valid_before
        self.not_after = cert.not_valid_after
        self.subject = cert.subject.human_friendly
        km, mech = key_manager, self.algorithm.mechanism
        self._signer = CmsSigner(lambda data: km.sign(key_label, data, mech), certificate, self.algorithm,
                                 self.chain)
        self.template = SignedDataTemplate(self._signer)
        # TSTInfo pieces: version + policy, accuracy
        self.policy_der = der_oid(policy)
        self._prefix = der_integer(1) + self.policy_der
        self._accuracy = b""
        if accuracy_ms > 0:
            seconds, millis = divmod(accuracy_ms, 1000)
            self._accuracy = tlv(0x30, (der_integer(seconds) if seconds else b"")
                                 + (tlv(0x80, der_integer(millis)[2:]) if millis else b""))

    def tst_info(self, imprint: bytes, serial: int, gen_time: dt.datetime, nonce: bytes) -> bytes:
        """TSTInfo DER (RFC 3161 §2.4.2); ``imprint`` and ``nonce`` are DER already."""
        return tlv(0x30, self._prefix + imprint + der_integer(serial) + generalized_time(gen_time, 3)
                   + self._accuracy + nonce)

    def token(self, tst_info: bytes, cert_req: bool) -> bytes:
        return self.template.build(tst_info, ID_CT_TSTINFO, include_certificates=cert_req,
                                   chain=self.include_chain)


def check_tsa_certificate(cert: x509.Certificate) -> None:
    """RFC 3161 §2.3: exactly one extended key usage, id-kp-timeStamping, and it must be critical."""
    eku = None
    for ext in cert["tbs_certificate"]["extensions"]:
        if ext["extn_id"].native == "extended_key_usage":
            eku = ext
    if eku is None or not eku["critical"].native or \
            [p.dotted for p in eku["extn_value"].parsed] != [EKU_TIME_STAMPING]:
        raise TsaError("the TSA certificate must carry a critical extended key usage of id-kp-timeStamping only")


def rejection(failure: FailureInfo, text: str) -> bytes:
    """TimeStampResp with status rejection, a statusString and the PKIFailureInfo bit."""
    return TimeStampResp({"status": {"status": "rejection", "status_string": [text],
                                     "fail_info": {failure.value}}}).dump()


@dataclass(frozen=True)
class ParsedQuery:
    imprint_der: bytes           # canonical MessageImprint DER for the TSTInfo
    imprint_algorithm: str
    imprint: bytes
    policy: str | None
    nonce_der: bytes             # the nonce INTEGER as sent (echoed verbatim), or b""
    cert_req: bool


class TimeStampAuthority:
    """All TSA units of this process, the accepted digests and policies, the clock and the serials."""

    def __init__(self, units: dict[str, TsaUnit], *, digests: Sequence[str], accept_policies: Sequence[str] = (),
                 clock: ClockMonitor | None = None, serials: SerialNumbers | None = None,
                 archive: Callable[[IssuedToken], None] | None = None, default_unit: str = "default"):
        if default_unit not in units:
            raise TsaError(f"no TSA unit {default_unit!r}")
        self.units = units
        self.default_unit = default_unit
        self.digests = {name: DIGEST_LENGTHS[name] for name in digests}
        self.accept_policies = frozenset(accept_policies)
        self.clock = clock or ClockMonitor()
        self.serials = serials or SerialNumbers()
        self.archive = archive
        self._digest_oids = {oid: name for oid, name in DIGEST_BY_OID.items() if name in self.digests}
        self._digest_ders = {der_oid(oid): name for oid, name in self._digest_oids.items()}
        self._policy_ders = {der_oid(p): p for p in self.accept_policies}

    def unit(self, name: str | None) -> TsaUnit | None:
        return self.units.get(name or self.default_unit)

    # ------------------------------------------------------------- query
    def parse_query(self, query: bytes, unit: TsaUnit) -> ParsedQuery:
        """The query's fields, or TsaRejection. Plain DER queries take a hand-written reader; anything
        unusual (extensions, BER, odd parameters, errors) goes through asn1crypto for the diagnosis."""
        fast = self._fast_parse(query, unit)
        if fast is not None:
            return fast
        return self._parse_query(query, unit)

    def _fast_parse(self, query: bytes, unit: TsaUnit) -> ParsedQuery | None:
        """TimeStampReq in DER with nothing unusual -> ParsedQuery; anything else -> None."""
        try:
            tag, start, end = read_tlv(query, 0)
            if tag != 0x30 or end != len(query) or query[start:start + 3] != b"\x02\x01\x01":
                return None
            mi_pos = start + 3
            tag, mi_start, mi_end = read_tlv(query, mi_pos)                     # MessageImprint
            if tag != 0x30:
                return None
            tag, alg_start, alg_end = read_tlv(query, mi_start)                 # AlgorithmIdentifier
            tag2, _, oid_end = read_tlv(query, alg_start)
            if tag != 0x30 or tag2 != 0x06 or query[oid_end:alg_end] not in (b"", b"\x05\x00"):
                return None
            name = self._digest_ders.get(query[alg_start:oid_end])
            tag, h_start, h_end = read_tlv(query, alg_end)
            if name is None or tag != 0x04 or h_end != mi_end or h_end - h_start != self.digests[name]:
                return None
            pos, policy, nonce_der, cert_req = mi_end, None, b"", False
            if pos < end and query[pos] == 0x06:                            # reqPolicy
                _, _, p_end = read_tlv(query, pos)
                policy = self._policy_ders.get(query[pos:p_end]) if query[pos:p_end] != unit.policy_der \
                    else unit.policy
                if policy is None:
                    return None
                pos = p_end
            if pos < end and query[pos] == 0x02:                            # nonce
                _, _, n_end = read_tlv(query, pos)
                if n_end - pos > 66:
                    return None
                nonce_der, pos = query[pos:n_end], n_end
            if pos < end and query[pos] == 0x01:                            # certReq (DER: TRUE only)
                if query[pos:pos + 3] != b"\x01\x01\xff":
                    return None
                cert_req, pos = True, pos + 3
            if pos != end:                                                  # extensions or junk
                return None
        except IndexError:
            return None
        return ParsedQuery(query[mi_pos:mi_end], name, query[h_start:h_end], policy, nonce_der, cert_req)

    def _parse_query(self, query: bytes, unit: TsaUnit) -> ParsedQuery:
        try:
            req = tsp.TimeStampReq.load(query, strict=True)
            version = req["version"].native
            mi = req["message_imprint"]
            hash_alg = mi["hash_algorithm"]
            oid = hash_alg["algorithm"].dotted
            params = hash_alg["parameters"]
            absent = isinstance(params, core.Void)
            null_params = not absent and params.dump() == b"\x05\x00"
            digest = mi["hashed_message"].native
            policy = req["req_policy"].dotted if req["req_policy"].native is not None else None
            nonce = req["nonce"]
            nonce_der = nonce.dump() if nonce.native is not None else b""
            cert_req = bool(req["cert_req"].native)
            extensions = req["extensions"].native
        except (ValueError, TypeError, KeyError, OverflowError, AttributeError) as exc:
            raise TsaRejection(FailureInfo.BAD_DATA_FORMAT, "the request is not a DER TimeStampReq") from exc
        if version != "v1":
            raise TsaRejection(FailureInfo.BAD_DATA_FORMAT, "unsupported TimeStampReq version")
        name = self._digest_oids.get(oid)
        if name is None:
            raise TsaRejection(FailureInfo.BAD_ALG, f"hash algorithm {oid} is not accepted")
        if not absent and not null_params:
            raise TsaRejection(FailureInfo.BAD_ALG, "hash algorithm parameters must be absent or NULL")
        if not isinstance(digest, bytes) or len(digest) != self.digests[name]:
            raise TsaRejection(FailureInfo.BAD_DATA_FORMAT,
                               f"message imprint length does not match {name} ({self.digests[name]} bytes)")
        if policy is not None and policy != unit.policy and policy not in self.accept_policies:
            raise TsaRejection(FailureInfo.UNACCEPTED_POLICY, f"policy {policy} is not accepted")
        if extensions:
            raise TsaRejection(FailureInfo.UNACCEPTED_EXTENSION, "request extensions are not supported")
        if len(nonce_der) > 66:
            raise TsaRejection(FailureInfo.BAD_DATA_FORMAT, "nonce longer than 64 bytes")
        imprint_der = tlv(0x30, tlv(0x30, der_oid(oid) + (b"\x05\x00" if null_params else b""))
                          + tlv(0x04, digest))
        return ParsedQuery(imprint_der, name, digest, policy, nonce_der, cert_req)

    # ------------------------------------------------------------- reply
    def respond(self, query: bytes, unit_name: str | None = None) -> bytes:
        """TimeStampResp DER for a query; rejections are replies too."""
        unit = self.unit(unit_name)
        if unit is None:
            return rejection(FailureInfo.BAD_REQUEST, f"no TSA unit {unit_name!r}")
        try:
            q = self.parse_query(query, unit)
            return tlv(0x30, _GRANTED_STATUS + self.stamp(q, unit).token)
        except TsaRejection as exc:
            return rejection(exc.failure, exc.public_message)
        except PkiError as exc:
            log.error("TSA unit %s failed: %s", unit.name, exc, exc_info=exc)
            return rejection(FailureInfo.SYSTEM_FAILURE, "the TSA could not sign the token")

    def stamp(self, q: ParsedQuery, unit: TsaUnit) -> IssuedToken:
        gen_time = self.clock.now(unit.name)
        if not unit.not_before <= gen_time <= unit.not_after:
            raise TsaRejection(FailureInfo.SYSTEM_FAILURE, "the TSA certificate is not valid now")
        serial = self.serials.next()
        tst = unit.tst_info(q.imprint_der, serial, gen_time, q.nonce_der)
        issued = IssuedToken(unit.name, serial, gen_time, unit.policy, q.imprint_algorithm, q.imprint,
                             unit.token(tst, q.cert_req))
        if self.archive is not None:
            try:
                self.archive(issued)
            except Exception as exc:  # noqa: BLE001 - no token leaves unarchived when archiving is on
                raise TsaError("the token could not be archived") from exc
        return issued

    def stamp_digest(self, digest_name: str, digest: bytes, *, unit: str | None = None, nonce: int | None = None,
                     cert_req: bool = True) -> bytes:
        """In-process stamping (seals, escrow receipts): the TimeStampToken DER (ContentInfo)."""
        query = tsp.TimeStampReq({"version": "v1", "message_imprint": {
            "hash_algorithm": {"algorithm": digest_name}, "hashed_message": digest},
            "nonce": nonce, "cert_req": cert_req}).dump()
        u = self.unit(unit)
        if u is None:
            raise TsaError(f"no TSA unit {unit!r}")
        return self.stamp(self.parse_query(query, u), u).token
