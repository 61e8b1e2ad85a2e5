"""GM/T 0034 dual certificates through the whole service app (build_app over a real Services container,
migrated database, the software token): a civil servant's signing CSR is vetted and approved by two
officers; the CA asks the KMC (GM/T 0014, in process) for the encryption key pair; the subscriber fetches
both certificates and the KMC's SignedAndEnvelopedData over REST and opens it with independent code; the
key matches the encryption certificate. Revoking the pair puts both on the CRL, OCSP says revoked, and
the KMC's archive marks the escrowed key revoked. On SQLite and PostgreSQL."""
from __future__ import annotations

import dataclasses

import pytest
from asn1crypto import crl as asn1_crl, ocsp as asn1_ocsp, pem, x509
from sqlalchemy import select

from kms.models import EscrowedKey
from store.db import transaction
from pkicore.envelope import parse_signed_and_enveloped, parse_sm2_enveloped_key, verify_signed_and_enveloped
from tests.e2e.apiclient import api_client, site_services
from tests.pgschema import database_url
from tests.unit.ca_bridge.helpers import ocsp_request
from tests.unit.kms.subscriber import mul, openssl_sm2_key, public_point, sm2_decrypt, sm4_ecb_decrypt
from tests.unit.ra import helpers
from tests.unit.ra.csr_tools import openssl_csr

ROLES = {"applicant": ["applicant"], "operator": ["ra_operator"], "officer_a": ["ra_officer"],
         "officer_b": ["ra_officer"]}


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def services(request, tmp_path_factory, softtoken_config):
    with database_url(request.param, tmp_path_factory.mktemp("dual"), "dual") as url:
        yield site_services(url, softtoken_config)



@pytest.fixture(scope="module")
def client(services):
    call = api_client(services, ROLES)
    yield call
    services.close()


def test_dual_pair_with_kmc_generated_encryption_key(client, services, tmp_path):
    unit = client("POST", "/api/v1/ra/units", "operator",
                  json={"name": f"杭州市测试局-{helpers.tag()}", "uscc": helpers.uscc(), "legal_representative": "王五"})
    assert unit.status_code == 201, unit.json
    person = client("POST", "/api/v1/ra/civil-servants", "operator",
                    json={"name": "张三", "id_number": helpers.id_number(), "unit_id": unit.json["id"],
                          "department": "办公室"})
    assert person.status_code == 201, person.json
    # the subscriber's own signing key and CSR, made by OpenSSL with the default SM2 ID
    d_sub, spki_sub = openssl_sm2_key(tmp_path / "sign.key")
    csr = openssl_csr(tmp_path, "sign", "/CN=张三", sm2=True, key=tmp_path / "sign.key")
    resp = client("POST", "/api/v1/ra/requests", "applicant",
                  json={"type": "civil-servant-dual", "subject_id": person.json["id"], "csr": csr.decode()})
    assert resp.status_code == 201, resp.json
    rid = resp.json["id"]
    assert client("POST", f"/api/v1/ra/requests/{rid}/vet", "operator",
                  json={"documents_checked": True}).json["state"] == "vetted"
    assert client("POST", f"/api/v1/ra/requests/{rid}/approve", "officer_a").json["state"] == "vetted"
    done = client("POST", f"/api/v1/ra/requests/{rid}/approve", "officer_b")
    assert done.status_code == 200 and done.json["state"] == "issued", done.json
    by_usage = {c["usage"]: c for c in done.json["certificates"]}
    assert by_usage["enc"]["key_escrowed"] is True and by_usage["sign"]["key_escrowed"] is False

    sign = x509.Certificate.load(pem.unarmor(client("GET", f"/api/v1/ra/requests/{rid}/certificates/sign",
                                                    "applicant").data)[2])
    enc = x509.Certificate.load(pem.unarmor(client("GET", f"/api/v1/ra/requests/{rid}/certificates/enc",
                                                   "applicant").data)[2])
    assert sign.public_key.dump() == spki_sub and enc.public_key.dump() != spki_sub
    assert sign.subject == enc.subject and sign.issuer == enc.issuer
    assert enc.key_usage_value.native == {"key_encipherment", "data_encipherment", "key_agreement"}

    # the envelope: signed by the KMC (its certificate now issued by our CA), opened with independent code
    envelope = client("GET", f"/api/v1/ra/requests/{rid}/certificates/enc/envelope", "applicant")
    assert envelope.status_code == 200 and envelope.mimetype == "application/octet-stream"
    kmc = services.site.ca.kmc
    kmc_cert = x509.Certificate.load(kmc.kmc_certificate)
    assert kmc_cert.issuer == sign.issuer and kmc_cert.self_signed == "no"
    check = verify_signed_and_enveloped(envelope.data, kmc_cert.public_key.dump(), kmc.kmc_certificate)
    assert check.ok, check.reasons
    sed = parse_signed_and_enveloped(envelope.data)
    d_enc = int.from_bytes(sm4_ecb_decrypt(sm2_decrypt(d_sub, sed.encrypted_key), sed.encrypted_content), "big")
    assert mul(d_enc) == public_point(enc.public_key.dump())
    # the same key as a GB/T 35276 SM2EnvelopedKey (what USB-key middleware imports)
    blob = client("GET", f"/api/v1/ra/requests/{rid}/certificates/enc/envelope?format=sm2-enveloped-key", "applicant")
    assert blob.status_code == 200
    env = parse_sm2_enveloped_key(blob.data)
    assert env.public_key_info == enc.public_key.dump()
    assert int.from_bytes(sm4_ecb_decrypt(sm2_decrypt(d_sub, env.sym_encrypted_key), env.encrypted_private_key),
                          "big") == d_enc
    assert client("GET", f"/api/v1/ra/requests/{rid}/certificates/enc/envelope?format=pem",
                  "applicant").status_code == 400
    assert client("GET", f"/api/v1/ra/requests/{rid}/certificates/enc/envelope", "officer_a").status_code == 200
    assert client("GET", f"/api/v1/ra/requests/{rid}/certificates/sign/envelope", "applicant").status_code == 404

    # the KMC archived exactly this key under the encryption certificate's serial
    with services.db() as session:
        row = session.scalar(select(EscrowedKey).where(EscrowedKey.user_cert_no == str(enc.serial_number)))
        assert row is not None and row.public_key_info == enc.public_key.dump() and row.status == "active"

    # revocation goes through the same gate; the CRL, OCSP and the KMC archive follow
    rev = client("POST", f"/api/v1/ra/requests/{rid}/revoke", "applicant", json={"reason": "key_compromise"})
    assert rev.status_code == 201, rev.json
    rev_id = rev.json["id"]
    client("POST", f"/api/v1/ra/requests/{rev_id}/vet", "operator", json={"documents_checked": True})
    client("POST", f"/api/v1/ra/requests/{rev_id}/approve", "officer_a")
    final = client("POST", f"/api/v1/ra/requests/{rev_id}/approve", "officer_b")
    assert final.status_code == 200 and final.json["state"] == "revoked", final.json
    with services.db() as session:
        row = session.scalar(select(EscrowedKey).where(EscrowedKey.user_cert_no == str(enc.serial_number)))
        assert row.status == "revoked"
    ca_name = by_usage["enc"]["ca"]
    crl = asn1_crl.CertificateList.load(services.ca.crls.generate(ca_name).der)
    listed = {r["user_certificate"].native for r in crl["tbs_cert_list"]["revoked_certificates"]}
    assert {sign.serial_number, enc.serial_number} <= listed
    issuer_der = services.ca.authorities()[ca_name].certificate
    ocsp = client("POST", f"/ocsp/{ca_name}", data=ocsp_request(issuer_der, [enc.serial_number]),
                  headers={"Content-Type": "application/ocsp-request"})
    assert ocsp.status_code == 200
    basic = asn1_ocsp.OCSPResponse.load(ocsp.data)["response_bytes"]["response"].parsed
    assert basic["tbs_response_data"]["responses"][0]["cert_status"].name == "revoked"


@pytest.fixture
def without_kmc(services):
    """The same site's CA with its key-management centre detached for one test."""
    kmc, services.ca.kmc = services.ca.kmc, None
    yield
    services.ca.kmc = kmc


def test_dual_request_without_kmc_is_refused_at_submission(client, services, without_kmc, tmp_path):
    unit = client("POST", "/api/v1/ra/units", "operator",
                  json={"name": f"测试局-{helpers.tag()}", "uscc": helpers.uscc(), "legal_representative": "王五"})
    person = client("POST", "/api/v1/ra/civil-servants", "operator",
                    json={"name": "李四", "id_number": helpers.id_number(), "unit_id": unit.json["id"]})
    openssl_sm2_key(tmp_path / "k.key")
    csr = openssl_csr(tmp_path, "s", "/CN=李四", sm2=True, key=tmp_path / "k.key")
    resp = client("POST", "/api/v1/ra/requests", "applicant",
                  json={"type": "civil-servant-dual", "subject_id": person.json["id"], "csr": csr.decode()})
    assert resp.status_code == 400 and "key-management centre" in resp.json["error"]["message"]


def _one_approval_from_issuance(client, tmp_path, unit_name: str, person: str) -> int:
    """A civil servant's dual request (signing CSR only, the KMC makes the encryption key), vetted and
    approved by officer_a: officer_b's approval is the final one."""
    unit = client("POST", "/api/v1/ra/units", "operator",
                  json={"name": f"{unit_name}-{helpers.tag()}", "uscc": helpers.uscc(), "legal_representative": "王五"})
    subject = client("POST", "/api/v1/ra/civil-servants", "operator",
                     json={"name": person, "id_number": helpers.id_number(), "unit_id": unit.json["id"]})
    assert subject.status_code == 201, subject.json
    openssl_sm2_key(tmp_path / "sign.key")
    csr = openssl_csr(tmp_path, "sign", f"/CN={person}", sm2=True, key=tmp_path / "sign.key")
    rid = client("POST", "/api/v1/ra/requests", "applicant",
                 json={"type": "civil-servant-dual", "subject_id": subject.json["id"], "csr": csr.decode()}).json["id"]
    client("POST", f"/api/v1/ra/requests/{rid}/vet", "operator", json={"documents_checked": True})
    assert client("POST", f"/api/v1/ra/requests/{rid}/approve", "officer_a").json["state"] == "vetted"
    return rid


def test_rejecting_after_a_failed_approval_gives_the_reserved_kmc_key_back(client, services, tmp_path, monkeypatch):
    """The final approval reserves a KMC key before its transaction; if issuing then fails, the reservation
    stays (a retry reuses it). Rejecting the request afterwards deletes the reservation and tells the KMC
    (RevokeKeyReq), so the archive keeps no live key that no certificate names; both steps are audited."""
    from ca_bridge.models import EscrowReservation
    from audit.trail import AuditEvent
    rid = _one_approval_from_issuance(client, tmp_path, "杭州市拒绝局", "李四")

    def broken_issue(*args, **kwargs):
        raise RuntimeError("CA signing failed")

    monkeypatch.setattr(services.ca, "issue", broken_issue)
    monkeypatch.setattr(services.ca, "issue_groups", broken_issue)     # the path approvals take (ra.bulk)
    failed = client("POST", f"/api/v1/ra/requests/{rid}/approve", "officer_b")
    assert failed.status_code >= 500 and "nothing was recorded" in failed.get_data(as_text=True), failed.json
    monkeypatch.undo()
    with services.db() as session:
        reserved = session.scalar(select(EscrowReservation).where(EscrowReservation.request_id == f"ra-{rid}-enc"))
        assert reserved is not None
        serial = str(int(reserved.serial, 16))
        assert session.scalar(select(EscrowedKey.status).where(EscrowedKey.user_cert_no == serial)) == "active"

    rejected = client("POST", f"/api/v1/ra/requests/{rid}/reject", "officer_b", json={"reason": "材料不实"})
    assert rejected.status_code == 200 and rejected.json["state"] == "rejected", rejected.json
    with services.db() as session:
        assert session.scalar(select(EscrowReservation).where(EscrowReservation.request_id == f"ra-{rid}-enc")) is None
        assert session.scalar(select(EscrowedKey.status).where(EscrowedKey.user_cert_no == serial)) == "revoked"
        actions = set(session.scalars(select(AuditEvent.action).where(
            AuditEvent.action.in_(("ca.escrow.reserve", "ca.escrow.release")),
            AuditEvent.target_id.like(f"%/{int(serial):x}"))))
        assert actions == {"ca.escrow.reserve", "ca.escrow.release"}
    # the rejected request has nothing to hand out
    assert client("GET", f"/api/v1/ra/requests/{rid}/certificates/enc/envelope", "applicant").status_code == 404


def test_a_lost_kmc_answer_leaves_no_live_orphan_key(client, services, tmp_path):
    """The KMC archives a key but its answer never reaches the CA: the approval fails (nothing issued, no
    reservation, the key stays for the retry), and the retry asks for the same serial, takes that very
    key back (RestoreKeyReq) and issues: no orphan key, no outbox row."""
    from ca_bridge.models import EscrowReservation
    from gmt0014.errors import ProtocolError
    from pkicore.errors import ErrorCode
    rid = _one_approval_from_issuance(client, tmp_path, "杭州市失联局", "王五")

    link = services.ca.kmc
    real = link.transport

    class LosesOneAnswer:
        lost = False

        def send(self, der: bytes) -> bytes:
            answer = real.send(der)            # the KMC does the work ...
            if not self.lost:
                self.lost = True               # ... and the first answer is lost on the way back
                raise ProtocolError("the key-management centre is unreachable; try again later", 1,
                                    code=ErrorCode.UPSTREAM_UNAVAILABLE)        # what HttpTransport raises
            return answer

    with services.db() as session:
        before = set(session.scalars(select(EscrowedKey.id)))
    link.transport, link._clients = LosesOneAnswer(), {}
    try:
        failed = client("POST", f"/api/v1/ra/requests/{rid}/approve", "officer_b")
    finally:
        link.transport, link._clients = real, {}
    assert failed.status_code == 503 and "unreachable" in failed.get_data(as_text=True), failed.json
    with services.db() as session:
        orphans = session.scalars(select(EscrowedKey).where(EscrowedKey.id.notin_(before))).all()
        assert len(orphans) == 1 and orphans[0].status == "active"      # archived by the KMC, kept for the retry
        assert session.scalar(select(EscrowReservation).where(EscrowReservation.request_id == f"ra-{rid}-enc")) is None
    done = client("POST", f"/api/v1/ra/requests/{rid}/approve", "officer_b")
    assert done.status_code == 200 and done.json["state"] == "issued", done.json
    enc = next(c for c in done.json["certificates"] if c["usage"] == "enc")
    with services.db() as session:
        live = session.scalar(select(EscrowedKey).where(EscrowedKey.user_cert_no == str(int(enc["serial"], 16))))
        assert live is not None and live.status == "active" and live.id == orphans[0].id
        assert session.scalars(select(EscrowedKey).where(EscrowedKey.id.notin_(before))).all() == [live]


def test_a_revocation_the_kmc_missed_is_delivered_by_racentre_ca_kmc_retry(client, services, tmp_path):
    """The KMC is unreachable when the certificate is revoked: the revocation stands, the RevokeKeyReq
    waits in the CA's outbox (``racentre ca kmc-pending``), and ``racentre ca kmc-retry`` -- wired from the
    service container as the CLI is, with the embedded KMC -- delivers it once it is due."""
    from click.testing import CliRunner
    from sqlalchemy import update
    from ca_bridge.cli import ca_group
    from ca_bridge.models import KmcNotification
    from gmt0014.errors import ProtocolError
    from store.db import utcnow
    from pkicore.errors import ErrorCode
    rid = _one_approval_from_issuance(client, tmp_path, "杭州市外联局", "赵六")
    done = client("POST", f"/api/v1/ra/requests/{rid}/approve", "officer_b")
    assert done.status_code == 200 and done.json["state"] == "issued", done.json
    enc = next(c for c in done.json["certificates"] if c["usage"] == "enc")
    serial = int(enc["serial"], 16)

    class Unreachable:
        def send(self, der: bytes) -> bytes:
            raise ProtocolError("the key-management centre is unreachable; try again later", 9,
                                code=ErrorCode.UPSTREAM_UNAVAILABLE)          # what HttpTransport raises

    link = services.ca.kmc
    real = link.transport
    link.transport, link._clients = Unreachable(), {}
    try:
        rev = client("POST", f"/api/v1/ra/requests/{rid}/revoke", "applicant", json={"reason": "key_compromise"})
        rev_id = rev.json["id"]
        client("POST", f"/api/v1/ra/requests/{rev_id}/vet", "operator", json={"documents_checked": True})
        client("POST", f"/api/v1/ra/requests/{rev_id}/approve", "officer_a")
        final = client("POST", f"/api/v1/ra/requests/{rev_id}/approve", "officer_b")
    finally:
        link.transport, link._clients = real, {}
    assert final.status_code == 200 and final.json["state"] == "revoked", final.json
    with services.db() as session:
        assert session.scalar(select(EscrowedKey.status).where(EscrowedKey.user_cert_no == str(serial))) == "active"

    runner = CliRunner()
    listed = runner.invoke(ca_group, ["kmc-pending"], obj={"services": services})
    assert listed.exit_code == 0 and f"{enc['ca']}/{serial:x}\trevoke-key\t1\t" in listed.output, listed.output
    with transaction(services.db) as session:          # wait out the back-off
        session.execute(update(KmcNotification).where(KmcNotification.serial == format(serial, "x"))
                        .values(next_attempt_at=utcnow()))
    retried = runner.invoke(ca_group, ["kmc-retry"], obj={"services": services})
    assert retried.exit_code == 0 and "1 answered, 0 failed, 0 pending" in retried.output, retried.output
    with services.db() as session:
        assert session.scalar(select(EscrowedKey.status).where(EscrowedKey.user_cert_no == str(serial))) == "revoked"


def test_racentre_serve_sweeps_the_kmc_outbox(client, services, tmp_path, monkeypatch):
    """The serving process retries what the KMC missed by itself, every ``[service] kmc_retry_interval``
    seconds (here 1), through the same link the CA revokes with."""
    import time
    from sqlalchemy import update
    from ca_bridge.api import RevocationReason
    from ca_bridge.models import KmcNotification
    from gmt0014.errors import ProtocolError
    from store.db import utcnow
    from pkicore.errors import ErrorCode
    from racentre.serve import service_app
    from racentre.app import DEFAULT_PACKAGES
    rid = _one_approval_from_issuance(client, tmp_path, "杭州市巡检局", "钱七")
    done = client("POST", f"/api/v1/ra/requests/{rid}/approve", "officer_b")
    enc = next(c for c in done.json["certificates"] if c["usage"] == "enc")
    serial = int(enc["serial"], 16)
    monkeypatch.setattr(services, "config", dataclasses.replace(
        services.config, service=dataclasses.replace(services.config.service, kmc_retry_interval=1)))
    app = service_app(services, DEFAULT_PACKAGES)
    stop = app.extensions["racentre.kmc_outbox_sweep"]
    try:
        link = services.ca.kmc
        real = link.transport

        class Unreachable:
            def send(self, der: bytes) -> bytes:
                raise ProtocolError("the key-management centre is unreachable; try again later", 9,
                                    code=ErrorCode.UPSTREAM_UNAVAILABLE)

        link.transport, link._clients = Unreachable(), {}
        try:
            services.ca.revoke(enc["ca"], serial, RevocationReason.key_compromise)
        finally:
            link.transport, link._clients = real, {}
        with transaction(services.db) as session:      # wait out the back-off
            session.execute(update(KmcNotification).where(KmcNotification.serial == format(serial, "x"))
                            .values(next_attempt_at=utcnow()))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:             # the outbox row is done once the KMC has answered
            with services.db() as session:
                row = session.scalar(select(KmcNotification).where(KmcNotification.serial == format(serial, "x")))
            if row.done_at is not None:
                break
            time.sleep(0.2)
        assert row.outcome == "delivered" and row.attempts == 2, (row.attempts, row.last_error)
        with services.db() as session:
            assert session.scalar(select(EscrowedKey.status).where(EscrowedKey.user_cert_no == str(serial))) == "revoked"
    finally:
        stop.set()
        app.extensions["racentre.audit_checkpoints"].set()    # the serving process's checkpoint loop too


def test_racentre_ca_revoke_tells_the_kmc(client, services, tmp_path):
    """Revoking an encryption certificate from the command line (a CA of its own, wired from the service
    container as the CLI is) queues and sends the RevokeKeyReq like a revocation through the RA does."""
    from click.testing import CliRunner
    from ca_bridge.cli import ca_group
    from ca_bridge.models import KmcNotification
    rid = _one_approval_from_issuance(client, tmp_path, "杭州市命令行局", "钱七")
    done = client("POST", f"/api/v1/ra/requests/{rid}/approve", "officer_b")
    certs = {c["usage"]: c for c in done.json["certificates"]}
    enc, sign = certs["enc"], certs["sign"]
    from ra.cli import ra_revoke
    runner = CliRunner()
    # a certificate issued through the RA is revoked through it (issue 17): an officer and a justification
    obj = {"services": services, "ra_revoke": ra_revoke}
    refused = runner.invoke(ca_group, ["revoke", enc["serial"], "--ca", enc["ca"], "--reason", "superseded"], obj=obj)
    assert refused.exit_code == 2 and "--as OFFICER" in refused.output, refused.output
    result = runner.invoke(ca_group, ["revoke", enc["serial"], "--ca", enc["ca"], "--reason", "superseded",
                                      "--as", client.names["officer_a"], "--justification", "钱七 changed posts"],
                           obj=obj)
    assert result.exit_code == 0, result.output
    with services.db() as session:
        assert session.scalar(select(EscrowedKey.status).where(
            EscrowedKey.user_cert_no == str(int(enc["serial"], 16)))) == "revoked"
        rows = session.scalars(select(KmcNotification).where(
            KmcNotification.serial.in_([enc["serial"], sign["serial"]]))).all()
        assert [(r.serial, r.outcome) for r in rows] == [(enc["serial"], "delivered")]   # the signing key: none
