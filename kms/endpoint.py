"""The KMC's GM/T 0014 endpoint: verify a signed CARequest, run its items, answer a signed KMRespond.

A request is accepted only from a CA whose certificate the KMC trusts (matched on EntName's
entPubKeyHash, subject and serial), with a valid SM2-with-SM3 signature over DER(KSRequest), a
requestTime inside the freshness window and a (CA, taskNo) pair never seen before. Anything else is
answered — still signed by the KMC — with an ErrorPkgRespond. The same object serves in-process
(``gmt0014.client.InProcessTransport``) and over HTTP (``POST /kmc/v1/request``, kms/views.py).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from asn1crypto import x509
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gmt0014 import messages as m
from gmt0014.messages import public_key_hash
from kms.errors import EscrowConflict, EscrowError, EscrowNotFound
from kms.escrow import EscrowRequest, KeyEscrow
from kms.models import KmsSetting, SeenRequest
from kms.recovery import authorise_subscriber_restore
from pkicore.algorithms import algorithm
from audit.trail import RefusalTally, record
from store.db import transaction, utcnow
from pkicore.envelope import Party
from store.generation import KMC_SETTINGS, GenerationWatch, bump
from pkicore.keys import point_from_public_key_info, verify_signature
from pkicore.names import display_name
from pkicore.oids import OID
from pkicore.sm2 import SM2PublicKey

log = logging.getLogger(__name__)

_SM2_KEY_OIDS = (OID.SM2_CURVE, OID.EC_PUBLIC_KEY, OID.SM2_SIGN)
MAX_SERIAL = 1 << 159          # a positive INTEGER of at most 20 octets (RFC 5280 §4.1.2.2)
_SM2_ENC_OIDS = (OID.SM2_ENCRYPT, OID.SM2_EXCHANGE, OID.SM2_CURVE)
_TRUST_PREFIX, _TRUST_ID_LEN = "trusted-ca:", 48      # kms_setting.name is String(64)


class _Refused(Exception):
    def __init__(self, err_no: m.ErrNo, description: str):
        super().__init__(description)
        self.err_no, self.description = err_no, description


@dataclass(frozen=True)
class TrustedCA:
    certificate: bytes
    ca_id: str          # hex SM3 of the CA public key (EntName.entPubKeyHash)
    name: str
    subject: x509.Name
    public_key_info: bytes

    @classmethod
    def load(cls, der: bytes) -> "TrustedCA":
        cert = x509.Certificate.load(der, strict=True)
        spki = cert.public_key.dump()
        return cls(der, public_key_hash(spki).hex(), display_name(cert.subject), cert.subject, spki)


class Gmt0014Endpoint:
    """GM/T 0014 server side over a KeyEscrow. Trusted CAs: those given here or configured
    (``KmsConfig.trusted_cas``), those trusted in process (``trust``, the embedded KMC) and those an
    operator stored in the KMC database (``trust(..., persist=True)``, ``racentre kms trust-ca``; read at
    start, again when an unknown CA calls, and within a second of a change made anywhere
    (``store.generation``), so a running stand-alone KMC needs no restart)."""

    def __init__(self, escrow: KeyEscrow, trusted_cas: tuple[bytes, ...] | list[bytes] = (), *,
                 refusal_window: float = 60.0):
        self.escrow = escrow
        # refusals before a request is authenticated (junk, unknown CA, bad signature, stale, replayed) are
        # counted per source and reason, one audit row per window: nobody floods the trail
        self.refusals = RefusalTally(escrow.db, action="kms.request.refused", target_type="kms",
                                     window=refusal_window)
        self.trusted = {}
        for der in tuple(trusted_cas) or escrow.config.trusted_cas():
            self.trust(der)
        # `racentre kms trust-ca` run elsewhere (a new CA, or a renewed certificate of a known key)
        self._stored_watch = GenerationWatch(escrow.db, KMC_SETTINGS)
        self._load_stored()

    def trust(self, ca_certificate: bytes, *, persist: bool = False, actor: str = "system") -> TrustedCA:
        """Accept GM/T 0014 requests signed by this CA. ``persist``: store it in the KMC database (audited)."""
        ca = TrustedCA.load(ca_certificate)
        if persist:
            cert = x509.Certificate.load(ca_certificate)
            if not cert.ca or cert.public_key.algorithm != "ec":
                raise EscrowError("only a CA certificate with an SM2 key can be trusted to call the KMC")
            with transaction(self.escrow.db) as s:
                name = _TRUST_PREFIX + ca.ca_id[:_TRUST_ID_LEN]
                row = s.get(KmsSetting, name)
                if row is None:
                    s.add(KmsSetting(name=name, value=ca_certificate))
                else:
                    row.value = ca_certificate
                bump(s, KMC_SETTINGS)
                record(s, actor=actor, role="system", action="kms.ca.trusted", target_type="ca",
                       target_id=ca.ca_id, subject=ca.name)
        self.trusted[ca.ca_id] = ca
        return ca

    def _load_stored(self) -> None:
        generation = self._stored_watch.read()
        with self.escrow.db() as s:
            stored = [bytes(r.value) for r in s.scalars(
                select(KmsSetting).where(KmsSetting.name.startswith(_TRUST_PREFIX)))]
        for der in stored:
            self.trust(der)
        self._stored_watch.loaded(generation)

    # ------------------------------------------------------------------ entry point
    def handle(self, der: bytes, source: str = "in-process") -> bytes:
        """DER CARequest in, DER KMRespond (always signed by the KMC) out. ``source``: who sent it (the
        client address), for the refusal counts."""
        task_no = 0
        caller = None
        try:
            try:
                req = m.load_strict(m.CARequest, der)
            except (ValueError, TypeError) as exc:
                raise _Refused(m.ErrNo.BAD_REQUEST, "malformed CARequest") from exc
            ks = req["ks_request"]
            task_no = ks["task_no"].native
            ca = self._authenticate(req)
            self._check_fresh_and_new(ca, ks)
            caller = ca
            items = self._run_all(ca, list(ks["request_list"]))
        except _Refused as exc:
            log.warning("GM/T 0014 request from %s refused (errNo %s): %s", source, int(exc.err_no),
                        exc.description)
            if caller is None:
                self.refusals.count(source, f"{int(exc.err_no)} {exc.description}")
            else:
                self._audit_refusal(exc, task_no, caller)
            items = [m.Failure(exc.err_no, exc.description)]
        return self._respond(items, task_no)

    def _audit_refusal(self, exc: _Refused, task_no: int, ca: TrustedCA) -> None:
        """A fresh, signed request of a trusted CA refused as a whole: one audit row each (they cannot be
        sent by anyone but the CA, and no more than once per taskNo)."""
        try:
            with transaction(self.escrow.db) as s:
                record(s, actor=ca.name[:128], role="ca", action="kms.request.refused", target_type="kms_task",
                       target_id=task_no, ca=ca.ca_id, err_no=int(exc.err_no), why=exc.description)
        except Exception:  # noqa: BLE001 - auditing a refusal must not hide the refusal
            log.exception("could not audit a refused GM/T 0014 request")

    def _respond(self, items, task_no: int) -> bytes:
        ks = m.build_ks_respond(self.escrow.certificate, items, task_no, utcnow())
        return m.sign_message(m.KMRespond, ks, self.escrow.sign)

    # ------------------------------------------------------------------ checks
    def _authenticate(self, req) -> TrustedCA:
        ks = req["ks_request"]
        if ks["version"].native != 1:
            raise _Refused(m.ErrNo.BAD_REQUEST, "KSRequest version must be 1")
        ent = ks["ca_name"]
        ca_id = ent["ent_pub_key_hash"].native.hex()
        if self._stored_watch.due():
            self._load_stored()
        ca = self.trusted.get(ca_id)
        if ca is None:
            self._load_stored()       # trusted since start-up by `racentre kms trust-ca`?
            ca = self.trusted.get(ca_id)
        if ca is None:
            raise _Refused(m.ErrNo.UNKNOWN_CA, "the requesting CA is not trusted by this KMC")
        name = ent["ent_name"]
        cert = x509.Certificate.load(ca.certificate)
        if name.name != "directory_name" or name.chosen != ca.subject \
                or ent["serial_number"].native != cert.serial_number:
            raise _Refused(m.ErrNo.UNKNOWN_CA, "caName does not match the trusted CA certificate")
        if req["signature_algorithm"]["algorithm"].dotted != OID.SM2_WITH_SM3:
            raise _Refused(m.ErrNo.UNSUPPORTED_ALGORITHM, "requests must be signed SM2-with-SM3")
        if not verify_signature(ca.public_key_info, algorithm("sm2-sm3"), ks.dump(),
                                req["signature_value"].native):
            raise _Refused(m.ErrNo.BAD_SIGNATURE, "CARequest signature does not verify")
        return ca

    def _check_fresh_and_new(self, ca: TrustedCA, ks) -> None:
        when = ks["request_time"].native
        window = self.escrow.config.request_freshness
        if abs(utcnow() - when) > window:
            raise _Refused(m.ErrNo.STALE, "requestTime outside the accepted window")
        try:
            with transaction(self.escrow.db) as s:
                s.add(SeenRequest(ca_id=ca.ca_id, task_no=str(ks["task_no"].native), request_time=when,
                                  received_at=utcnow()))
        except IntegrityError as exc:
            raise _Refused(m.ErrNo.REPLAY, "replayed request (taskNo already seen)") from exc

    # ------------------------------------------------------------------ items
    def _run_all(self, ca: TrustedCA, items: list) -> list:
        """Several ApplyKeyReq items (bulk issuance) and nothing else: one escrow transaction for all.
        When that is refused as a whole (a bad item, a certificate that already has a key, the same
        certificate twice) nothing was written, and the items run one by one for their own verdicts."""
        if len(items) > 1 and all(item.name == "apply_key_req" for item in items):
            try:
                return self._apply_all(ca, [item.chosen for item in items])
            except (_Refused, EscrowError) as exc:   # EscrowConflict is an EscrowError
                log.info("GM/T 0014 bulk apply falls back to one item at a time: %s", exc)
            except Exception:  # noqa: BLE001 - as in _run: the cause goes to the log, the CA gets errNo
                log.exception("GM/T 0014 bulk apply failed")
                return [m.Failure(m.ErrNo.INTERNAL, "internal error") for _ in items]
        return [self._run(ca, item) for item in items]

    def _apply_all(self, ca: TrustedCA, reqs: list) -> list:
        requests = []
        for req in reqs:
            self._check_apply(req)
            info = req["app_user_info"]
            serial = info["user_cert_no"].native
            user_name = info["user_name"].native
            requests.append(EscrowRequest(
                ca_id=ca.ca_id, ca_name=ca.name, user_cert_no=serial,
                subscriber_public_key_info=info["user_pub_key"].dump(),
                not_before=info["not_before"].native, not_after=info["not_after"].native,
                recipient=Party(ca.subject, serial),
                user_name=user_name.decode("utf-8", "replace") if user_name else None))
        deliveries = self.escrow.escrow_new_keys(requests, actor=f"ca:{ca.name}")
        return [m.RetKey(d.user_cert_no, d.public_key_info, d.signed_and_enveloped) for d in deliveries]

    def _run(self, ca: TrustedCA, item):
        try:
            if item.name == "apply_key_req":
                return self._apply(ca, item.chosen)
            if item.name == "restore_key_req":
                return self._restore(ca, item.chosen)
            return self._revoke(ca, item.chosen)
        except _Refused as exc:
            return m.Failure(exc.err_no, exc.description)
        except EscrowNotFound as exc:
            return m.Failure(m.ErrNo.NOT_FOUND, exc.public_message)
        except EscrowConflict as exc:
            return m.Failure(m.ErrNo.CONFLICT, exc.public_message)
        except EscrowError as exc:
            return m.Failure(m.ErrNo.BAD_REQUEST, exc.public_message)
        except Exception:  # noqa: BLE001 - one failed item must not sink the batch; the cause goes to the log
            log.exception("GM/T 0014 item failed")
            return m.Failure(m.ErrNo.INTERNAL, "internal error")

    @staticmethod
    def _check_algs(asym, sym, hsh) -> None:
        if asym["algorithm"].dotted not in _SM2_ENC_OIDS or sym["algorithm"].dotted != OID.SM4_ECB \
                or hsh["algorithm"].dotted != OID.SM3:
            raise _Refused(m.ErrNo.UNSUPPORTED_ALGORITHM, "only SM2 / SM4-ECB / SM3 envelopes are supported")

    def _check_apply(self, req) -> None:
        """An ApplyKeyReq we can honour: SM2 key of 256 bits, our envelope algorithms, a certificate serial
        RFC 5280 §4.1.2.2 allows (positive, at most 20 octets), a validity that ends after it starts, and a
        subscriber signing key that is a point on the SM2 curve (GB/T 32918.1 §6.2.1) — the envelope is
        encrypted to it. Each refusal is the GM/T 0014 error that says why."""
        if req["app_key_type"]["algorithm"].dotted not in _SM2_KEY_OIDS or req["app_key_len"].native != 256:
            raise _Refused(m.ErrNo.UNSUPPORTED_ALGORITHM, "only 256-bit SM2 encryption keys are issued")
        self._check_algs(req["ret_asym_alg"], req["ret_sym_alg"], req["ret_hash_alg"])
        info = req["app_user_info"]
        serial = info["user_cert_no"].native
        if not 0 < serial < MAX_SERIAL:
            raise _Refused(m.ErrNo.BAD_REQUEST, "userCertNo must be a positive certificate serial of at most 20 "
                                                "octets (RFC 5280 §4.1.2.2)")
        if info["not_after"].native <= info["not_before"].native:
            raise _Refused(m.ErrNo.BAD_REQUEST, "the key's validity ends before it starts")
        try:
            curve, point = point_from_public_key_info(info["user_pub_key"].dump())
            if curve != "sm2p256v1":
                raise ValueError(curve)
            SM2PublicKey.from_point(point)
        except (ValueError, TypeError, KeyError) as exc:
            raise _Refused(m.ErrNo.BAD_REQUEST, "userPubKey is not an SM2 public key on the curve "
                                                "(GB/T 32918.1 §6.2.1)") from exc

    def _apply(self, ca: TrustedCA, req) -> m.RetKey:
        self._check_apply(req)
        info = req["app_user_info"]
        serial = info["user_cert_no"].native
        user_name = info["user_name"].native
        delivery = self.escrow.escrow_new_key(
            ca_id=ca.ca_id, ca_name=ca.name, user_cert_no=serial,
            subscriber_public_key_info=info["user_pub_key"].dump(),
            not_before=info["not_before"].native, not_after=info["not_after"].native,
            recipient=Party(ca.subject, serial),
            user_name=user_name.decode("utf-8", "replace") if user_name else None, actor=f"ca:{ca.name}")
        return m.RetKey(serial, delivery.public_key_info, delivery.signed_and_enveloped)

    def _restore(self, ca: TrustedCA, req) -> m.RetKey:
        self._check_algs(req["ret_asym_alg"], req["ret_sym_alg"], req["ret_hash_alg"])
        serial = req["user_cert_no"].native
        key_id = self.escrow.find(ca.ca_id, serial)
        auth = authorise_subscriber_restore(key_id, req["user_pub_key"].dump(), ca.ca_id)
        delivery = self.escrow.recover(auth, recipient=Party(ca.subject, serial), actor=f"ca:{ca.name}")
        return m.RetKey(serial, delivery.public_key_info, delivery.signed_and_enveloped, restored=True)

    def _revoke(self, ca: TrustedCA, req) -> m.Revoked:
        serial = req["user_cert_no"].native
        self.escrow.revoke(ca.ca_id, serial, actor=f"ca:{ca.name}")
        return m.Revoked(serial)

