"""A small in-memory CABackend standing in for an upstream CA (not for the HSM): it really builds
X.509 certificates (asn1crypto TBSCertificate, signed with a software ECDSA P-256 key, so any subject
key works, SM2 included), is idempotent on request_id like the protocol demands, records every call
and can be told to fail."""
from __future__ import annotations

import datetime as dt
import secrets
import threading

from asn1crypto import keys as asn1_keys, x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ca_bridge.api import CertificateStatus, IssuedCertificate, IssueRequest, RevocationReason


class FakeCAError(RuntimeError):
    pass


class FakeCA:
    def __init__(self, name: str = "fake-ca"):
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._lock = threading.Lock()
        self.issued: dict[str, IssuedCertificate] = {}
        self.revoked: dict[int, CertificateStatus] = {}
        self.calls: list[tuple[str, object]] = []
        self.fail_issue_after: int | None = None     # fail once this many more issue() calls succeeded
        self.fail_revoke = False
        self.sessions: list[object] = []

    # -- controls
    def fail_next_issue(self, after: int = 0) -> None:
        self.fail_issue_after = after

    @property
    def issuance_count(self) -> int:
        return len(self.issued)

    # -- CABackend
    def issue(self, request: IssueRequest, session=None) -> IssuedCertificate:
        with self._lock:
            self.calls.append(("issue", request))
            self.sessions.append(session)
            if self.fail_issue_after is not None:
                if self.fail_issue_after == 0:
                    self.fail_issue_after = None
                    raise FakeCAError("upstream CA unavailable")
                self.fail_issue_after -= 1
            if request.request_id in self.issued:
                return self.issued[request.request_id]
            result = self._build(request)
            self.issued[request.request_id] = result
            return result

    def revoke(self, ca: str, serial: int, reason: RevocationReason, session=None) -> CertificateStatus:
        with self._lock:
            self.calls.append(("revoke", (ca, serial, reason)))
            if self.fail_revoke:
                raise FakeCAError("upstream CA refused the revocation")
            if ca != self.name or not any(c.serial == serial for c in self.issued.values()):
                raise FakeCAError(f"unknown certificate {ca}/{serial:x}")
            if reason is RevocationReason.remove_from_crl:      # RFC 5280: only a hold is released
                held = self.revoked.get(serial)
                if held is None or held.reason is not RevocationReason.certificate_hold:
                    raise FakeCAError(f"certificate {serial:x} is not on hold")
                del self.revoked[serial]
                return CertificateStatus(serial, ca, "good")
            if serial in self.revoked and self.revoked[serial].reason is RevocationReason.certificate_hold:
                del self.revoked[serial]                          # a hold made permanent
            status = self.revoked.get(serial) or CertificateStatus(
                serial, ca, "revoked", dt.datetime.now(dt.timezone.utc).replace(microsecond=0), reason)
            self.revoked[serial] = status
            return status

    def status(self, ca: str, serial: int, session=None) -> CertificateStatus:
        if serial in self.revoked:
            return self.revoked[serial]
        known = any(c.serial == serial for c in self.issued.values()) and ca == self.name
        return CertificateStatus(serial, ca, "good" if known else "unknown")

    # -- certificate building
    def _build(self, request: IssueRequest) -> IssuedCertificate:
        now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        not_after = now + dt.timedelta(days=request.validity_days or 365)
        serial = secrets.randbits(127) | (1 << 126)
        extensions = [{"extn_id": "basic_constraints", "critical": True, "extn_value": {"ca": False}}]
        general_names = ([x509.GeneralName("dns_name", n) for n in request.dns_names]
                         + [x509.GeneralName("ip_address", ip) for ip in request.ip_addresses])
        if general_names:
            extensions.append({"extn_id": "subject_alt_name", "critical": False, "extn_value": general_names})
        tbs = x509.TbsCertificate({
            "version": "v3", "serial_number": serial, "signature": {"algorithm": "sha256_ecdsa"},
            "issuer": x509.Name.build({"common_name": self.name}),
            "validity": {"not_before": x509.Time({"utc_time": now}), "not_after": x509.Time({"utc_time": not_after})},
            "subject": x509.Name.build(dict(request.subject), use_printable=False),
            "subject_public_key_info": asn1_keys.PublicKeyInfo.load(request.public_key_info),
            "extensions": extensions,
        })
        signature = self._key.sign(tbs.dump(), ec.ECDSA(hashes.SHA256()))
        cert = x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": {"algorithm": "sha256_ecdsa"},
                                 "signature_value": signature})
        return IssuedCertificate(request_id=request.request_id, serial=serial, ca=self.name,
                                 profile=request.profile, certificate=cert.dump(), not_before=now,
                                 not_after=not_after)

    @property
    def public_key_pem(self) -> bytes:
        return self._key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
