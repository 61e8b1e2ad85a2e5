"""Certificate login (身份认证) for applications' login pages — a challenge–response in the manner of
GM/T 0020 SOF_GenRandom + SOF_VerifySignedData and ISO/IEC 9798-3 §5.1.1 (one-pass unilateral
authentication with a fresh random number):

1. the application asks for a challenge: 256 random bits (``secrets``), bound to that application, valid
   ``[trust] challenge_ttl`` seconds, stored in the database so any node can answer it;
2. the user's USB key signs the challenge text (its ASCII bytes: raw SM2 with the default ID, or a
   CMS SignedData, attached or detached) and the application sends signature and certificate;
3. the challenge is consumed by one conditional UPDATE (``used_at IS NULL AND expires_at > now AND
   application = caller``), so two nodes racing on one answer let exactly one through; then the signature
   and the certificate (path, revocation, validity, key usage) are checked.

The answer names the user (CN, masked 身份证号, unit, certificate serial) or says why not. A replayed, expired,
unknown or another application's challenge is refused, and every answer (accepted or refused) is audited.
"""
from __future__ import annotations

import base64
import datetime as dt
import secrets
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from audit import trail as audit
from store.db import as_utc, transaction, utcnow
from trust.certinfo import mask_id
from trust.models import TrustChallenge
from trust.verify import VerifyReport

# refusal -> words
REFUSALS = {
    "unknown_challenge": "no such challenge",
    "other_application": "the challenge was issued to another application",
    "replay": "the challenge has been used already (replay)",
    "expired": "the challenge has expired",
    "signature": "the signature over the challenge does not verify",
    "certificate": "the certificate is not valid",
}


@dataclass(frozen=True)
class LoginResult:
    authenticated: bool
    refusal: str | None = None
    reason: str = ""
    identity: dict | None = None
    verification: dict | None = None
    challenge_id: str = ""
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"authenticated": self.authenticated, "refusal": self.refusal, "reason": self.reason,
                "challenge_id": self.challenge_id, "identity": self.identity, "verification": self.verification}


class LoginService:
    def __init__(self, db: sessionmaker[Session], *, ttl: int = 120, mask: tuple[int, int] = (6, 4)):
        self.db = db
        self.ttl = ttl
        self.mask = mask

    def challenge(self, application: str, *, role: str) -> dict:
        """A new challenge for ``application``: id, the text to sign, expiry. Audited."""
        now = utcnow()
        challenge_id = secrets.token_hex(16)
        value = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
        expires = now + dt.timedelta(seconds=self.ttl)
        with transaction(self.db) as session:
            session.add(TrustChallenge(id=challenge_id, application=application, value=value, created_at=now,
                                       expires_at=expires))
            audit.record(session, actor=application, role=role, action="trust.login.challenge",
                         target_type="trust_challenge", target_id=challenge_id)
        return {"challenge_id": challenge_id, "challenge": value, "to_sign": value, "encoding": "ascii",
                "expires_at": expires.isoformat(), "ttl": self.ttl, "application": application}

    def _consume(self, application: str, challenge_id: str, role: str) -> tuple[str | None, str | None]:
        """(challenge text, None) when this call consumed the challenge, else (None, refusal). A refusal is
        audited in its own committed transaction."""
        now = utcnow()
        valid_id = isinstance(challenge_id, str) and 0 < len(challenge_id) <= 32
        with transaction(self.db) as session:
            if valid_id:
                taken = session.execute(
                    update(TrustChallenge).where(TrustChallenge.id == challenge_id,
                                                 TrustChallenge.application == application,
                                                 TrustChallenge.used_at.is_(None),
                                                 TrustChallenge.expires_at > now)
                    .values(used_at=now, outcome="pending")).rowcount
                if taken == 1:
                    return session.get(TrustChallenge, challenge_id).value, None
                row = session.get(TrustChallenge, challenge_id)
            else:
                row = None
            if row is None:
                refusal = "unknown_challenge"
            elif row.application != application:
                refusal = "other_application"
            elif row.used_at is not None:
                refusal = "replay"
            else:
                refusal = "expired"
                if as_utc(row.expires_at) <= now:
                    row.used_at, row.outcome = now, "expired"
            audit.record(session, actor=application, role=role, action="trust.login.refuse",
                         target_type="trust_challenge", target_id=str(challenge_id)[:64], refusal=refusal,
                         challenge_owner=row.application if row is not None and row.application != application
                         else None)
        return None, refusal

    def answer(self, application: str, challenge_id: str, *, role: str,
               verify: Callable[[bytes], VerifyReport]) -> LoginResult:
        """Check an answer: ``verify(challenge bytes)`` checks the signature and the certificate."""
        value, refusal = self._consume(application, challenge_id, role)
        if refusal is not None:
            return LoginResult(False, refusal, REFUSALS[refusal], challenge_id=str(challenge_id)[:64])
        report = verify(value.encode("ascii"))
        verdict = report.as_dict()
        signer = report.signers[0] if report.signers else None
        identity = None
        if signer is not None and signer.signer is not None:
            identity = self.identity(signer.signer)
        if report.valid:
            refusal, reason = None, "certificate login accepted"
        elif signer is None or not signer.signature_valid:
            refusal, reason = "signature", verdict["reason"]
        else:
            refusal, reason = "certificate", verdict["reason"]
        with transaction(self.db) as session:
            session.execute(update(TrustChallenge).where(TrustChallenge.id == challenge_id)
                            .values(outcome="accepted" if refusal is None else refusal))
            audit.record(session, actor=application, role=role,
                         action="trust.login.accept" if refusal is None else "trust.login.refuse",
                         target_type="trust_challenge", target_id=challenge_id, refusal=refusal,
                         serial=identity["serial"] if identity else None,
                         subject=identity["name"] if identity else None,
                         indication=verdict["indication"], sub_indication=verdict["sub_indication"])
        return LoginResult(refusal is None, refusal, reason, identity if refusal is None else None,
                           verdict, challenge_id)

    def identity(self, info: dict) -> dict:
        """Who a certificate names: CN, masked 身份证号, unit (O / OU), serial, issuer."""
        fields = info["subject_fields"]
        ident = info["identity"]
        id_number = ident.get("id_card_number")
        return {"name": (fields.get("CN") or [None])[0],
                "id_number": mask_id(id_number, *self.mask) if id_number else None,
                "unit": (fields.get("O") or [None])[0], "department": (fields.get("OU") or [None])[0],
                "unified_social_credit_code": ident.get("unified_social_credit_code"),
                "serial": info["serial"], "issuer": info["issuer"], "not_after": info["not_after"]}

