"""Evidence records (责任认定): each sign, verify or login decision can be kept as a signed, timestamped
record for later dispute, stored in the database and retrievable by id; issuing one is audited.

Format (``racentre-trust-evidence/1``): a CMS SignedData (RFC 5652 §5, DER, ContentInfo id-signedData)
with the record *attached* as eContent of type id-data. The record is canonical JSON — UTF-8, keys
sorted, no whitespace (``audit.trail.canonical_json``), so the signed bytes are reproducible::

    {"format": "racentre-trust-evidence/1",
     "id": "<32 hex>",                      # the record's id (database key, URL)
     "kind": "sign" | "verify" | "login",
     "application": "<principal>",          # who asked
     "time": "2026-12-07T13:00:00.000000Z", # the service clock; the timestamp below proves it
     "decision": {...},                      # what was decided: result, indication, sub_indication,
                                             # certificate_code (GM/T 0020), reason
     "data": {"digest_algorithm": "sha256", "digest": "<hex>"},   # over which data (never the data)
     "certificate": {"subject", "issuer", "serial", "sha256"} | null,   # by which certificate
     "policy": {"name": "racentre-trust/1", "trust_anchors_sha256": [...], "require_revocation": true},
     "details": {...}}                       # kind-specific: key id, CMS form, challenge id, ...

The SignerInfo is SM2 with SM3 (default user ID) by the centre's evidence key in the HSM (label
``[trust] evidence_key_label``, certificate from our CA, profile ``trust-evidence``), with contentType,
messageDigest, signingTime and ESS signing-certificate-v2 signed attributes, and an RFC 3161
signatureTimeStampToken (id-aa 1.2.840.113549.1.9.16.2.14) from our SM2 TSA unit over the signature value
as unsigned attribute. The SignedData carries the evidence certificate and its issuing CA. Any CMS
verifier checks it (Bouncy Castle: ``CMSSignedData`` + ``SignerInformation.verify``).
"""
from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass
from typing import Callable

from sqlalchemy.orm import Session, sessionmaker

from hsm import KeyManager
from audit import trail as audit
from pkicore.algorithms import Algorithm, algorithm
from audit.trail import canonical_json, canonical_time
from pkicore.cms import CmsSigner, SignedDataTemplate, verify_signed_data
from store.db import reading, transaction, utcnow
from trust.errors import TrustNotFound
from trust.models import TrustEvidence
from trust.signing import Timestamper, timestamp_attribute

FORMAT = "racentre-trust-evidence/1"


@dataclass(frozen=True)
class EvidenceSigner:
    """The HSM key that signs evidence and its certificate (with the issuing CA, root last)."""

    label: str
    certificate: bytes
    chain: tuple[bytes, ...]
    algorithm: Algorithm


class EvidenceService:
    def __init__(self, db: sessionmaker[Session], km: KeyManager, signer: Callable[[], EvidenceSigner],
                 timestamper: Timestamper | None):
        self.db = db
        self.km = km
        self._signer = signer
        self.timestamper = timestamper
        self._template: SignedDataTemplate | None = None
        self._template_cert: bytes | None = None

    def _sign(self, content: bytes) -> bytes:
        signer = self._signer()
        if self._template is None or self._template_cert != signer.certificate:
            mechanism = "sm2-sign-sm3" if signer.algorithm.key_type == "sm2" else signer.algorithm.mechanism
            self._template = SignedDataTemplate(CmsSigner(
                sign=lambda tbs: self.km.sign(signer.label, tbs, mechanism), certificate=signer.certificate,
                algorithm=signer.algorithm, chain=tuple(signer.chain[:-1])))
            self._template_cert = signer.certificate
        stamp = None
        if self.timestamper is not None:
            family, digest = signer.algorithm.key_type, signer.algorithm.digest
            stamp = lambda signature: [timestamp_attribute(self.timestamper.token(signature, family, digest))]  # noqa: E731
        return self._template.build(content, signing_time=utcnow(), unsigned_attributes=stamp)

    def issue(self, *, kind: str, application: str, role: str, decision: dict, data_digest: tuple[str, str],
              certificate: dict | None, policy: dict, details: dict | None = None) -> tuple[str, bytes]:
        """Sign, timestamp and store an evidence record; returns (id, DER). Audited as trust.evidence.issue."""
        record_id = secrets.token_hex(16)
        record = {"format": FORMAT, "id": record_id, "kind": kind, "application": application,
                  "time": canonical_time(utcnow()), "decision": decision,
                  "data": {"digest_algorithm": data_digest[0], "digest": data_digest[1]},
                  "certificate": certificate, "policy": policy, "details": details or {}}
        der = self._sign(canonical_json(record).encode("utf-8"))
        result = str(decision.get("result") or decision.get("indication") or "")[:32]
        with transaction(self.db) as session:
            session.add(TrustEvidence(id=record_id, kind=kind, application=application, decision=result,
                                      data_digest=f"{data_digest[0]}:{data_digest[1]}"[:128], der=der))
            audit.record(session, actor=application, role=role, action="trust.evidence.issue",
                         target_type="trust_evidence", target_id=record_id, kind=kind, decision=result)
        return record_id, der

    def get(self, record_id: str, *, application: str | None = None) -> bytes:
        """The DER of record ``record_id``; with ``application``, only that application's own records."""
        with reading(self.db) as session:
            row = session.get(TrustEvidence, record_id) if isinstance(record_id, str) and len(record_id) <= 32 else None
            if row is None or (application is not None and row.application != application):
                raise TrustNotFound(f"no evidence record {record_id}")
            return row.der


def read_record(der: bytes) -> dict:
    """The JSON record inside an evidence SignedData, with whether its signature holds (no trust decision)."""
    result = verify_signed_data(der)
    record = json.loads(result.content.decode("utf-8")) if result.content else None
    return {"signature_valid": result.ok, "reasons": list(result.reasons), "record": record,
            "signing_time": result.signing_time.isoformat() if isinstance(result.signing_time, dt.datetime) else None}


def default_algorithm() -> Algorithm:
    return algorithm("sm2-sm3")
