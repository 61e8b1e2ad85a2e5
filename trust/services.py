"""The trust service used by the web layer, the CLI and the demo: application keys, signing, verification,
certificate information and validation, envelopes, certificate login and evidence (module docstrings of
trust.keys, trust.signing, trust.verify, trust.certinfo, trust.envelope, trust.login, trust.evidence).

Built by the composition root (racentre.services) with what it needs passed in: the CA (``ca_bridge.api``),
the site's roots and issuing CAs, revocation information, the TSA and the evidence signer.
"""
from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
from typing import Callable, Hashable, Iterable

from sqlalchemy.orm import Session, sessionmaker

from ca_bridge.api import CABackend
from hsm import KeyManager
from audit import trail as audit
from store.db import transaction, utcnow
from pkicore.validation import RevocationSource, TrustPolicy, validate_certificate
from timestamp.services import TsaService
from trust import envelope
from trust.certinfo import cert_info, load_certificate
from trust.config import TrustConfig
from trust.errors import TrustError
from trust.evidence import EvidenceService, EvidenceSigner
from trust.keys import AppKey, AppKeyStore
from trust.login import LoginResult, LoginService
from trust.signing import Timestamper, sign_cms, sign_raw
from trust.verdict import certificate_verdict
from trust.verify import ValidationCache, VerifyReport, verify_cms, verify_raw

POLICY_NAME = "racentre-trust/1"
MAX_DATA = 16 * 1024 * 1024


class TrustService:
    def __init__(self, db: sessionmaker[Session], km: KeyManager, *, ca: Callable[[], CABackend],
                 roots: Callable[[], Iterable[bytes]], intermediates: Callable[[], Iterable[bytes]] = tuple,
                 revocation_info: RevocationSource | None = None, tsa: TsaService | None = None,
                 evidence_signer: Callable[[], EvidenceSigner] | None = None,
                 revocation_state: Callable[[], Hashable] | None = None,
                 config: TrustConfig = TrustConfig(), organization: str = "RA Centre"):
        self.db = db
        self.km = km
        self.config = config
        self.keys = AppKeyStore(db, km, ca, organization)
        self._roots = roots
        self._intermediates = intermediates
        self.revocation_info = revocation_info
        self.timestamper = Timestamper(tsa) if tsa is not None else None
        self.login = LoginService(db, ttl=config.challenge_ttl, mask=(config.id_mask_head, config.id_mask_tail))
        self.evidence = EvidenceService(db, km, evidence_signer, self.timestamper) if evidence_signer else None
        self._trust_list = config.trust_list()
        # certificate results reused until any status changes at the CA (trust.verify.ValidationCache)
        self.cache = ValidationCache(revocation_state)

    # ------------------------------------------------------------------ policy
    def policy(self, trust: tuple[bytes, ...] | None = None) -> TrustPolicy:
        """Our roots plus the trust list (or exactly ``trust``), our issuing CAs as known intermediates, our
        CRLs, hard-fail revocation unless configured otherwise."""
        anchors = tuple(dict.fromkeys(trust if trust is not None else (*self._roots(), *self._trust_list)))
        return TrustPolicy(anchors, tuple(self._intermediates()), self.revocation_info,
                           self.config.require_revocation)

    def tsa_policy(self) -> TrustPolicy:
        """The TSA anchors: the default policy (``verify`` hands its default policy over as this one)."""
        return self.policy()

    def policy_summary(self, policy: TrustPolicy) -> dict:
        return {"name": POLICY_NAME, "require_revocation": policy.require_revocation,
                "trust_anchors_sha256": [hashlib.sha256(a).hexdigest() for a in policy.trust_anchors]}

    # ------------------------------------------------------------------ signing
    def sign(self, application: str, data: bytes, *, role: str, form: str = "cms", key_id: int | None = None,
             detached: bool = False, gm: bool = False, user_id: bytes | None = None, signing_time: bool = False,
             timestamp: bool = False, evidence: bool = False) -> dict:
        """SOF_SignData (``form`` raw) or SOF_SignMessage (cms) with the application's own key."""
        if len(data) > MAX_DATA:
            raise TrustError(f"data larger than {MAX_DATA} bytes")
        key = self.keys.for_application(application, "sign", key_id)
        if form == "raw":
            if detached or gm or signing_time or timestamp:
                raise TrustError("detached, gm, signing_time and timestamp apply to CMS signatures only")
            signature = sign_raw(self.km, key, data, user_id=user_id)
        elif form == "cms":
            if user_id is not None:
                raise TrustError("CMS signatures use the default SM2 user ID (GM/T 0010)")
            stamp = None
            if timestamp:
                if self.timestamper is None:
                    raise TrustError("this service has no TSA")
                family, digest = key.algorithm.key_type, key.algorithm.digest
                self.timestamper.unit_for(family)      # refuse before signing when no unit fits
                stamp = lambda sig: self.timestamper.token(sig, family, digest)  # noqa: E731
            signature = sign_cms(self.km, key, data, detached=detached, gm=gm,
                                 signing_time=utcnow() if signing_time else None, timestamp=stamp)
        else:
            raise TrustError("form must be raw or cms")
        with transaction(self.db) as session:
            audit.record(session, actor=application, role=role, action="trust.sign", target_type="trust_key",
                         target_id=key.id, form=form, detached=detached, gm=gm, timestamp=timestamp,
                         data_sha256=hashlib.sha256(data).hexdigest())
        out = {"form": form, "key_id": key.id, "algorithm": key.algorithm.name, "serial": key.serial,
               "signature": base64.b64encode(signature).decode("ascii"),
               "certificate": base64.b64encode(key.certificate).decode("ascii")}
        if evidence:
            out["evidence_id"] = self._evidence(
                "sign", application, role, {"result": "signed", "form": form, "detached": detached,
                                             "gm": gm, "timestamp": timestamp, "algorithm": key.algorithm.name},
                data, key.certificate, {"key_id": key.id, "signature_sha256": hashlib.sha256(signature).hexdigest()})
        return out

    # ------------------------------------------------------------------ verification
    def verify(self, application: str, *, role: str, signature: bytes, data: bytes | None = None,
               certificate: bytes | None = None, form: str = "cms", user_id: bytes | None = None,
               algorithm: str | None = None, trust: tuple[bytes, ...] | None = None,
               evidence: bool = False, state: Hashable = None) -> dict:
        """SOF_VerifySignedData (raw: ``certificate`` and ``data`` needed) or SOF_VerifySignedMessage (cms).
        ``state``: the revocation state read for this request (``ValidationCache.check``), else read here."""
        policy = self.policy(trust)
        report = self.verify_report(signature, data=data, certificate=certificate, form=form, user_id=user_id,
                                    algorithm=algorithm, policy=policy, state=state,
                                    tsa_policy=policy if trust is None else None)
        out = report.as_dict()
        if evidence:
            signers = [_summary(s.signer) for s in report.signers if s.signer is not None]
            out["evidence_id"] = self._evidence(
                "verify", application, role, _decision(out), data if data is not None else signature, None,
                {"form": form, "signature_sha256": hashlib.sha256(signature).hexdigest(), "signers": signers},
                certificate_summary=signers[0] if signers else None, policy=policy)
        return out

    def verify_report(self, signature: bytes, *, data: bytes | None = None, certificate: bytes | None = None,
                      form: str = "cms", user_id: bytes | None = None, algorithm: str | None = None,
                      policy: TrustPolicy | None = None, at: dt.datetime | None = None,
                      state: Hashable = None, tsa_policy: TrustPolicy | None = None) -> VerifyReport:
        """The report behind ``verify``; ``at``: the validation time when no timestamp proves one (now);
        ``tsa_policy``: ``tsa_policy()`` when the caller has it already."""
        policy = policy or self.policy()
        tsa = tsa_policy or self.tsa_policy()
        check, time_check = self.cache.check, self.cache.time_proof
        if state is not None:
            check, time_check = (functools.partial(check, state=state), functools.partial(time_check, state=state))
        if form == "raw":
            if certificate is None or data is None:
                raise TrustError("a raw signature needs the data and the certificate")
            return verify_raw(data, signature, certificate, policy, tsa, user_id=user_id,
                              algorithm_name=algorithm, at=at, check=check, time_check=time_check)
        if form == "cms":
            return verify_cms(signature, policy, tsa, content=data, at=at, check=check, time_check=time_check)
        raise TrustError("form must be raw or cms")

    def validate_certificate(self, certificate: bytes, *, at: dt.datetime | None = None) -> dict:
        """SOF_ValidateCert: the GM/T 0020 code beside the ETSI indication (now, or at ``at``)."""
        certificate = load_certificate(certificate).dump()
        return certificate_verdict(validate_certificate(certificate, self.policy(), at=at, key_usage=None,
                                                        who="certificate"))

    def certificate_info(self, certificate: bytes) -> dict:
        return cert_info(certificate)

    # ------------------------------------------------------------------ envelopes
    def encrypt(self, application: str, data: bytes, recipients: list[bytes], *, role: str) -> bytes:
        """SOF_EncryptData: a GM/T 0010 EnvelopedData to civil servants' encryption certificates, each valid
        now (path, revocation) with keyEncipherment."""
        if len(data) > MAX_DATA:
            raise TrustError(f"data larger than {MAX_DATA} bytes")
        policy = self.policy()
        recipients = [load_certificate(r).dump() for r in recipients]
        for der in recipients:
            result = validate_certificate(der, policy, key_usage=frozenset({"key_encipherment"}), who="recipient")
            if result.findings:
                verdict = certificate_verdict(result)
                raise TrustError(f"recipient certificate refused ({verdict['code']}): {verdict['reason']}")
        der = envelope.encrypt(self.km, data, recipients)
        with transaction(self.db) as session:
            audit.record(session, actor=application, role=role, action="trust.envelope.encrypt",
                         target_type="trust_envelope", target_id=hashlib.sha256(der).hexdigest()[:32],
                         recipients=[cert_info(r)["serial"] for r in recipients])
        return der

    def decrypt(self, application: str, der: bytes, *, role: str, key_id: int | None = None) -> bytes:
        """SOF_DecryptData with the application's own encryption key in the HSM."""
        key: AppKey = self.keys.for_application(application, "encrypt", key_id)
        data = envelope.decrypt(self.km, der, label=key.label, certificate=key.certificate)
        with transaction(self.db) as session:
            audit.record(session, actor=application, role=role, action="trust.envelope.decrypt",
                         target_type="trust_key", target_id=key.id)
        return data

    # ------------------------------------------------------------------ login
    def login_challenge(self, application: str, *, role: str) -> dict:
        return self.login.challenge(application, role=role)

    def login_answer(self, application: str, challenge_id: str, *, role: str, signature: bytes,
                     certificate: bytes | None, form: str = "raw", evidence: bool = False) -> dict:
        policy = self.policy()

        def check(challenge: bytes) -> VerifyReport:
            if form == "raw":
                if certificate is None:
                    raise TrustError("a raw signature needs the certificate")
                return verify_raw(challenge, signature, certificate, policy, self.tsa_policy(),
                                  check=self.cache.check)
            if form == "cms":
                return verify_cms(signature, policy, self.tsa_policy(), content=challenge, check=self.cache.check)
            raise TrustError("form must be raw or cms")

        if form not in ("raw", "cms"):
            raise TrustError("form must be raw or cms")
        if form == "raw" and certificate is None:
            raise TrustError("a raw signature needs the certificate")
        result: LoginResult = self.login.answer(application, challenge_id, role=role, verify=check)
        out = result.as_dict()
        if evidence:
            decision = {"result": "accepted" if result.authenticated else "refused", "refusal": result.refusal,
                        "reason": result.reason}
            if result.verification:
                decision.update(_decision(result.verification))
                decision["result"] = "accepted" if result.authenticated else "refused"
            signers = (result.verification or {}).get("signers") or [{}]
            signer = signers[0].get("signer")
            out["evidence_id"] = self._evidence(
                "login", application, role, decision, signature, None, {"challenge_id": str(challenge_id)[:64],
                                                                        "identity": result.identity},
                certificate_summary=_summary(signer) if signer else None, policy=policy)
        return out

    # ------------------------------------------------------------------ evidence
    def _evidence(self, kind: str, application: str, role: str, decision: dict, data: bytes,
                  certificate: bytes | None, details: dict, *, certificate_summary: dict | None = None,
                  policy: TrustPolicy | None = None) -> str:
        if self.evidence is None:
            raise TrustError("this service keeps no evidence (no evidence signer)")
        summary = certificate_summary
        if certificate is not None:
            summary = _summary(cert_info(certificate))
        record_id, _ = self.evidence.issue(kind=kind, application=application, role=role, decision=decision,
                                           data_digest=("sha256", hashlib.sha256(data).hexdigest()),
                                           certificate=summary, policy=self.policy_summary(policy or self.policy()),
                                           details=details)
        return record_id

    def evidence_der(self, record_id: str, *, application: str | None = None) -> bytes:
        if self.evidence is None:
            raise TrustError("this service keeps no evidence (no evidence signer)")
        return self.evidence.get(record_id, application=application)


def _summary(info: dict) -> dict:
    return {"subject": info["subject"], "issuer": info["issuer"], "serial": info["serial"], "sha256": info["sha256"]}


def _decision(report: dict) -> dict:
    return {"result": report["indication"], "valid": report["valid"], "indication": report["indication"],
            "sub_indication": report["sub_indication"], "certificate_code": report["certificate_code"],
            "reason": report["reason"]}
