"""Console pages over the full app: the four-eyes flow (two officers approve, the certificate appears,
the auditor sees both approvals and verifies the chain), rejection with a reason, vetting, filters,
certificate search and detail, seals (made, staff authorised and suspended through the forms, CSRF
refused), M-of-N recovery approvals, language switch, dashboard chart."""
from __future__ import annotations

import io
import re
import secrets

import pytest
from asn1crypto import pem
from sqlalchemy import select

from audit.trail import AuditEvent
from tests.localca import LocalIssuer, make_signer
from tests.unit.console.site import logged_in as _officer_client, post_form as _post, app_for, csrf_of, login, officer, vetted_unit_request
from tests.unit.seal.sealpki import png_bytes


@pytest.fixture(scope="module")
def app(services):
    return app_for(services)


def test_four_eyes_approval_in_the_console(app, services):
    rid = vetted_unit_request(services)
    a, name_a = _officer_client(app, services, ["ra_officer"])
    b, name_b = _officer_client(app, services, ["ra_officer"])
    queue = a.get("/console/requests?state=vetted").get_data(as_text=True)
    assert f'id="request-{rid}"' in queue
    detail = a.get(f"/console/requests/{rid}").get_data(as_text=True)
    assert 'id="approve"' in detail and "营业执照已核验" in detail and "通过" in detail
    assert _post(a, f"/console/requests/{rid}", f"/console/requests/{rid}/approve").status_code == 303
    after_a = a.get(f"/console/requests/{rid}").get_data(as_text=True)
    assert re.search(r"<b>1</b>\s*/\s*2", after_a) and 'id="approve"' not in after_a   # one of two; no second vote
    assert _post(b, f"/console/requests/{rid}", f"/console/requests/{rid}/approve").status_code == 303
    done = b.get(f"/console/requests/{rid}").get_data(as_text=True)
    assert 'id="state">已签发' in done
    link = re.search(r'href="(/console/certificates/[^"]+)" class="cert-link"', done).group(1)
    cert = b.get(link).get_data(as_text=True)
    assert "杭州市数据资源局" in cert and "sm2" in cert.lower() and "BEGIN CERTIFICATE" in cert
    assert "杭州市数据资源局" in b.get("/console/certificates?q=数据资源局").get_data(as_text=True)
    auditor, _ = _officer_client(app, services, ["auditor"])
    log = auditor.get(f"/console/audit?target=ra_request:{rid}").get_data(as_text=True)
    assert log.count("ra.request.approve") == 2 and name_a in log and name_b in log
    verified = auditor.get(f"/console/audit?target=ra_request:{rid}&verify=1").get_data(as_text=True)
    assert 'id="chain-ok"' in verified or 'id="chain-broken"' in verified


def test_reject_with_reason_and_vetting(app, services):
    rid = vetted_unit_request(services)
    officer_client, _ = _officer_client(app, services, ["ra_officer"])
    assert _post(officer_client, f"/console/requests/{rid}", f"/console/requests/{rid}/reject",
                 reason="").status_code == 400
    assert _post(officer_client, f"/console/requests/{rid}", f"/console/requests/{rid}/reject",
                 reason="营业执照已过期").status_code == 303
    page = officer_client.get(f"/console/requests/{rid}").get_data(as_text=True)
    assert "已拒绝" in page and "营业执照已过期" in page
    assert f'id="request-{rid}"' in officer_client.get("/console/requests?state=rejected").get_data(as_text=True)
    assert f'id="request-{rid}"' not in officer_client.get(
        "/console/requests?state=rejected&older_than_days=3").get_data(as_text=True)


def test_dashboard_language_and_health(app, services):
    client, _ = _officer_client(app, services, ["ra_admin"])
    zh = client.get("/console/").get_data(as_text=True)
    assert "每日签发证书数" in zh and "<svg" in zh and "<rect" in zh
    en = client.get("/console/?lang=en")
    assert "Certificates issued per day" in en.get_data(as_text=True)
    assert "racentre_lang=en" in en.headers["Set-Cookie"]
    assert "Request queue" in client.get("/console/requests").get_data(as_text=True)   # the cookie keeps it


def test_recovery_approvals_m_of_n(app, services):
    book = services_kmc(app).book
    requester, _ = _officer_client(app, services, ["key_recovery_officer"])
    rid = book.request(purpose="export", requested_by="dr-requester", reason="容灾演练 2026-12", role="ra_admin")
    first, _ = _officer_client(app, services, ["key_recovery_officer"])
    second, _ = _officer_client(app, services, ["key_recovery_officer"])
    assert "容灾演练" in first.get("/console/recovery").get_data(as_text=True)
    assert _post(first, "/console/recovery", f"/console/recovery/{rid}/approve").status_code == 303
    assert _post(first, "/console/recovery", f"/console/recovery/{rid}/approve").status_code == 403   # twice
    assert _post(second, "/console/recovery", f"/console/recovery/{rid}/approve").status_code == 303
    assert book.status(rid)["approvals"] and len(book.status(rid)["approvals"]) == 2
    page = requester.get("/console/recovery").get_data(as_text=True)
    assert 'max="2" value="2"' in page


def test_recovery_page_with_the_kmc_elsewhere(app, services):
    """A CA site whose KMC is a separate service ([kmc] url) has no local approval book: a clear 404."""
    client, _ = _officer_client(app, services, ["key_recovery_officer"])
    kmc = app.extensions.pop("racentre.kms")
    try:
        page = client.get("/console/recovery")
        assert page.status_code == 404 and "独立服务" in page.get_data(as_text=True)
    finally:
        app.extensions["racentre.kms"] = kmc
    assert client.get("/console/recovery").status_code == 200


def services_kmc(app):
    return app.extensions["racentre.kms"]


def test_seal_registry_pages(app, services):
    admin, _ = _officer_client(app, services, ["ra_admin"])
    page = admin.get("/console/seals")
    assert page.status_code == 200 and "制作印章" in page.get_data(as_text=True)
    reader, _ = _officer_client(app, services, ["ra_operator"])
    assert "制作印章" not in reader.get("/console/seals").get_data(as_text=True)


def test_seal_make_authorise_and_suspend_through_the_forms(app, services):
    """An RA admin makes a seal for an HSM-held unit key, authorises a clerk and suspends the seal with
    the console's forms; each form without the page's CSRF token is refused and changes nothing."""
    km = services.key_manager
    tag = secrets.token_hex(3)
    issuer = LocalIssuer.create(km, f"console-seal-ca-{tag}")
    signer = make_signer(km, issuer, f"console-unit-{tag}", "Console Unit Signing", organization=f"控制台测试单位{tag}")
    admin, admin_name = _officer_client(app, services, ["ra_admin"])
    form = {"unit": f"控制台测试单位{tag}", "name": f"控制台测试单位公章{tag}", "type": "official",
            "key_label": signer.label, "users": "clerk-a"}

    def files():
        return {"certificate": (io.BytesIO(pem.armor("CERTIFICATE", signer.certificate)), "unit.pem"),
                "picture": (io.BytesIO(png_bytes()), "seal.png")}

    def seals_named():
        return [s for s in app.extensions["racentre.seal"].registry.list() if s.name == form["name"]]

    refused = admin.post("/console/seals", data={**form, **files()}, content_type="multipart/form-data")
    assert refused.status_code == 403
    token = csrf_of(admin.get("/console/seals").get_data(as_text=True))
    assert seals_named() == []
    made = admin.post("/console/seals", data={"csrf_token": token, **form, **files()},
                      content_type="multipart/form-data")
    assert made.status_code == 303 and made.headers["Location"].endswith("/console/seals")
    [seal] = seals_named()
    assert seal.status == "active" and seal.users == ("clerk-a",) and seal.unit == form["unit"]
    page = admin.get("/console/seals").get_data(as_text=True)
    assert form["name"] in page and f"/console/seals/{seal.id}/suspend" in page

    assert admin.post(f"/console/seals/{seal.id}/users", data={"principal": "clerk-b"}).status_code == 403
    assert admin.post(f"/console/seals/{seal.id}/users",
                      data={"csrf_token": token, "principal": "clerk-b"}).status_code == 303
    assert seals_named()[0].users == ("clerk-a", "clerk-b")

    assert admin.post(f"/console/seals/{seal.id}/suspend", data={"reason": "x"}).status_code == 403
    assert seals_named()[0].status == "active"
    suspended = admin.post(f"/console/seals/{seal.id}/suspend", data={"csrf_token": token, "reason": "印章遗失"})
    assert suspended.status_code == 303 and seals_named()[0].status == "suspended"
    page = admin.get("/console/seals").get_data(as_text=True)
    assert f"/console/seals/{seal.id}/resume" in page and f"/console/seals/{seal.id}/suspend" not in page
    # an officer without ra_admin cannot use the forms even with a token
    reader, _ = _officer_client(app, services, ["ra_operator"])
    reader_token = csrf_of(reader.get("/console/seals").get_data(as_text=True))
    assert reader.post(f"/console/seals/{seal.id}/resume", data={"csrf_token": reader_token}).status_code == 403
    with services.db() as session:
        actions = list(session.scalars(select(AuditEvent.action).where(
            AuditEvent.actor == admin_name, AuditEvent.target_type == "seal", AuditEvent.target_id == str(seal.id))))
    assert sorted(actions) == ["seal.authorise", "seal.make", "seal.suspend"]


def test_seal_verify_page_says_what_the_api_says(app, services):
    """签章验证: the console shows the same indication as POST /seal/verify, in Chinese first; an unknown
    root is 无法确定 (INDETERMINATE / NO_CERTIFICATE_CHAIN_FOUND), never 有效; the form needs its CSRF token."""
    from tests.unit.seal.sealpki import TESTDATA
    officer_client, _ = _officer_client(app, services, ["ra_officer"])
    page = officer_client.get("/console/seals/verify")
    assert page.status_code == 200 and "签章验证" in page.get_data(as_text=True)
    token = csrf_of(page.get_data(as_text=True))
    doc = (TESTDATA / "v4signed.ofd").read_bytes()
    refused = officer_client.post("/console/seals/verify", data={"document": (io.BytesIO(doc), "v4signed.ofd")},
                                  content_type="multipart/form-data")
    assert refused.status_code == 403
    shown = officer_client.post("/console/seals/verify", content_type="multipart/form-data",
                                data={"csrf_token": token, "document": (io.BytesIO(doc), "v4signed.ofd")})
    html = shown.get_data(as_text=True)
    assert shown.status_code == 200 and "无法确定" in html and "NO_CERTIFICATE_CHAIN_FOUND" in html, html[-2000:]
    assert "有效</strong>" not in html and "证书不能链接到受信任的根证书" in html
    english = officer_client.post("/console/seals/verify?lang=en", content_type="multipart/form-data",
                                  data={"csrf_token": token, "document": (io.BytesIO(doc), "v4signed.ofd")})
    assert "indeterminate" in english.get_data(as_text=True)
    empty = officer_client.post("/console/seals/verify", content_type="multipart/form-data",
                                data={"csrf_token": token})
    assert empty.status_code == 400


def test_recovery_page_shows_the_recipient_before_approval(app, services, tmp_path):
    """Issue 15: key-recovery officers see whom the key would go to (subject, issuer, serial, SHA-256)
    before they approve; the recipient was certified by our CA (a self-made one is refused)."""
    import hashlib

    from asn1crypto import x509

    from kms.errors import ApprovalError
    from tests.unit.kms.helpers import escrow_one
    from tests.unit.kms.subscriber import openssl_sm2_certificate, openssl_sm2_key
    kmc = services_kmc(app)
    _, spki = openssl_sm2_key(tmp_path / "sub.pem")
    archived = escrow_one(kmc.escrow, spki)
    _, court_spki = openssl_sm2_key(tmp_path / "court.pem")
    court = services.site.certify(f"court-{secrets.token_hex(3)}", court_spki, "seal-maker", "示范市中级人民法院").certificate
    selfmade = openssl_sm2_certificate(tmp_path / "court.pem", tmp_path / "court.der", "Court")
    with pytest.raises(ApprovalError, match="not issued by one of our CAs"):
        kmc.book.request(purpose="recover", requested_by="ra-admin", reason="法院裁定 2026-19", key_id=archived.key_id,
                         recipient_certificate=selfmade, role="ra_admin")
    rid = kmc.book.request(purpose="recover", requested_by="ra-admin", reason="法院裁定 2026-19",
                           key_id=archived.key_id, recipient_certificate=court, role="ra_admin")
    officer_client, _ = _officer_client(app, services, ["key_recovery_officer"])
    page = officer_client.get("/console/recovery").get_data(as_text=True)
    assert "接收方证书" in page and "CN=示范市中级人民法院" in page and hashlib.sha256(court).hexdigest() in page
    assert format(x509.Certificate.load(court).serial_number, "X") in page
    assert kmc.book.status(rid)["recipient"]["issuer"].endswith("Issuing CA")
    # the site's KMC checks the recipient's status at our CA: once revoked, nobody may name it again
    from ca_bridge.api import RevocationReason
    cert = x509.Certificate.load(court)
    issuer = next(name for name, info in services.ca.authorities().items()
                  if info.subject_der == cert.issuer.dump())
    services.ca.revoke(issuer, cert.serial_number, RevocationReason.key_compromise)
    with pytest.raises(ApprovalError, match="revoked"):
        kmc.book.request(purpose="recover", requested_by="ra-admin", reason="法院裁定 2026-20",
                         key_id=archived.key_id, recipient_certificate=court, role="ra_admin")


def _issued_dual(app, services, name: str) -> dict:
    """A civil servant's dual certificates through the app's RA (the KMC archives the encryption key)."""
    from ra.workflow import Actor
    from tests.unit.ra import helpers
    from tests.unit.ra.csr_tools import tongsuo_sm2_csr, tongsuo_sm2_key
    ra = app.extensions["racentre.ra"]
    op = Actor(f"op-{secrets.token_hex(3)}", "ra_operator")
    unit, _ = ra.add_unit(op, name=f"恢复测试局{secrets.token_hex(2)}", uscc=helpers.uscc(), legal_representative="王五")
    person, _ = ra.add_civil_servant(op, name=name, id_number=helpers.id_number(), unit_id=unit["id"])
    req = ra.submit(Actor("applicant-x", "applicant"), type="civil-servant-dual", subject_id=person["id"],
                    sign_csr=tongsuo_sm2_csr(tongsuo_sm2_key(), {"common_name": name}))
    ra.vet(op, req["id"], documents_checked=True)
    ra.approve(Actor(f"a-{secrets.token_hex(3)}", "ra_officer"), req["id"])
    done = ra.approve(Actor(f"b-{secrets.token_hex(3)}", "ra_officer"), req["id"])
    assert done["state"] == "issued"
    return {"person": person, "unit": unit, "enc": next(c for c in done["certificates"] if c["usage"] == "enc")}


def test_recovery_lookup_by_person_and_hex_serial_then_open_and_see_the_holder(app, services):
    """Issue 17: key recovery is looked up by the person's name, 身份证号 or the certificate's serial as
    printed (hex with colons, any case); a non-hex serial is just not found (never a 500); the request
    opened from the look-up shows person, certificate and recipient to the approving officers."""
    issued = _issued_dual(app, services, "陈晓明")
    serial = issued["enc"]["serial"]
    printed = ":".join(f"{int(serial, 16):X}".zfill(len(serial) + len(serial) % 2)[i:i + 2]
                       for i in range(0, len(serial) + len(serial) % 2, 2))
    admin, _ = _officer_client(app, services, ["ra_admin"])
    for q in ("陈晓明", issued["person"]["id_number"], printed, serial[:8].upper()):
        page = admin.get("/console/recovery", query_string={"q": q})
        assert page.status_code == 200, q
        assert serial.upper() in page.get_data(as_text=True) and "陈晓明" in page.get_data(as_text=True), q
    odd = admin.get("/console/recovery", query_string={"q": "zz:not-hex'"})
    assert odd.status_code == 200 and 'id="recovery-found"' in odd.get_data(as_text=True)
    court = services.site.certify(f"court-{secrets.token_hex(3)}", _court_spki(), "seal-maker", "示范市中级人民法院")
    refused = _post(admin, "/console/recovery", "/console/recovery/open", ca=issued["enc"]["ca"], serial=serial,
                    reason="法院裁定 2026-21", recipient_certificate="not a certificate")
    assert refused.status_code == 400
    opened = _post(admin, "/console/recovery", "/console/recovery/open", ca=issued["enc"]["ca"], serial=printed,
                   reason="法院裁定 2026-21", recipient_certificate=pem.armor("CERTIFICATE", court.certificate).decode())
    assert opened.status_code == 303
    kro, _ = _officer_client(app, services, ["key_recovery_officer"])
    listing = kro.get("/console/recovery").get_data(as_text=True)
    at = listing.index("法院裁定 2026-21")
    row = listing[listing.rfind("<tr>", 0, at):at]
    assert "陈晓明" in row and issued["person"]["id_number"] in row and serial.upper() in row
    assert "CN=示范市中级人民法院" in listing
    # the key's CA as the KMC knows it (GM/T 0014), in the short names officers read: C=CN, O=…, CN=…
    holder = re.search(r'<td class="key-holder">.*?</td>', row, re.S).group(0)
    assert "CN=" in holder and "Common Name" not in holder, holder


def test_recovery_executed_from_the_console_once_approved(app, services):
    """执行恢复 (issue 17): refused before M approvals (403) and with an unknown format (400); with 2 of 3 the
    console downloads the SM2EnvelopedKey, which opens with the recipient's key to the archived encryption
    key; the request is then used (a second execution is refused) and the recovery audited as its executor."""
    from asn1crypto import x509
    from pkicore.envelope import parse_sm2_enveloped_key
    from tests.unit.kms.subscriber import mul, public_point, sm2_decrypt, sm4_ecb_decrypt
    from tests.unit.ra.csr_tools import tongsuo_spki, tongsuo_sm2_key
    issued = _issued_dual(app, services, "王芳")
    court_key = tongsuo_sm2_key()
    court = services.site.certify(f"court-{secrets.token_hex(3)}", tongsuo_spki(court_key), "seal-maker", "示范市中级人民法院")
    admin, _ = _officer_client(app, services, ["ra_admin"])
    assert _post(admin, "/console/recovery", "/console/recovery/open", ca=issued["enc"]["ca"], serial=issued["enc"]["serial"],
                 reason="法院裁定 2026-22", recipient_certificate=pem.armor("CERTIFICATE", court.certificate).decode()
                 ).status_code == 303
    rid = max(_kms_ids(services))
    executor, executor_name = _officer_client(app, services, ["key_recovery_officer"])
    assert _post(executor, "/console/recovery", f"/console/recovery/{rid}/recover").status_code == 403
    for _ in range(2):
        approver, _ = _officer_client(app, services, ["key_recovery_officer"])
        assert _post(approver, "/console/recovery", f"/console/recovery/{rid}/approve").status_code == 303
    assert f'id="recover-{rid}"' in executor.get("/console/recovery").get_data(as_text=True)
    assert _post(executor, "/console/recovery", f"/console/recovery/{rid}/recover", format="zip").status_code == 400
    done = _post(executor, "/console/recovery", f"/console/recovery/{rid}/recover")
    assert done.status_code == 200 and f"recovery-{rid}-sm2-enveloped-key.der" in done.headers["Content-Disposition"]
    envelope = parse_sm2_enveloped_key(done.data)
    d = int.from_bytes(sm4_ecb_decrypt(sm2_decrypt(court_key.private_numbers().private_value, envelope.sym_encrypted_key),
                                       envelope.encrypted_private_key), "big")
    enc = services.ca.certificate(issued["enc"]["ca"], int(issued["enc"]["serial"], 16)).certificate
    assert mul(d) == public_point(x509.Certificate.load(enc).public_key.dump())
    assert services_kmc(app).book.status(rid)["state"] == "used"
    assert _post(executor, "/console/recovery", f"/console/recovery/{rid}/recover").status_code == 403
    with services.db() as session:
        actors = session.scalars(select(AuditEvent.actor).where(AuditEvent.action == "kms.key.recovered",
                                                                AuditEvent.target_type == "kms_key")).all()
    assert executor_name in actors


def _kms_ids(services) -> list[int]:
    from racentre.console import queries
    return queries.kms_request_ids(services.db)


def _court_spki() -> bytes:
    from tests.unit.ra.csr_tools import tongsuo_spki, tongsuo_sm2_key
    return tongsuo_spki(tongsuo_sm2_key())


def test_certificate_page_in_chinese_with_chain_downloads_and_beijing_time(app, services):
    """Subject names as officers read them (C=CN, O=…, CN=…), the chain up to the root, downloads as PEM,
    DER and PEM with chain, times in Beijing time."""
    from asn1crypto import x509
    issued = _issued_dual(app, services, "李明")
    client, _ = _officer_client(app, services, ["ra_officer"])
    base = f"/console/certificates/{issued['enc']['ca']}/{issued['enc']['serial']}"
    page = client.get(base).get_data(as_text=True)
    assert f"C=CN, O={issued['unit']['name']}, CN=李明" in page and "country_name" not in page
    assert 'id="cert-chain"' in page and "RA Centre SM2 Root CA" in page
    der = client.get(base + ".der")
    cert = x509.Certificate.load(der.data)
    assert der.mimetype == "application/pkix-cert" and format(cert.serial_number, "x") == issued["enc"]["serial"]
    assert pem.unarmor(client.get(base + ".pem").data)[2] == der.data
    chain = client.get(base + ".chain").data
    assert chain.count(b"BEGIN CERTIFICATE") == 3
    bj = cert["tbs_certificate"]["validity"]["not_after"].native.astimezone(
        __import__("zoneinfo").ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M:%S")
    assert bj in page
    listing = client.get("/console/certificates", query_string={"q": "李明"}).get_data(as_text=True)
    assert f"C=CN, O={issued['unit']['name']}, CN=李明" in listing


def test_certificate_search_by_person_id_unit_host_serial_with_filters_sort_and_pages(app, services):
    """Issue 17: 证书查询 finds a civil servant's certificates by name, 身份证号, unit and a part of the serial
    as printed (upper case, any part), a server's by host name; status, unit and expiry filters, sorting
    by expiry, paging; a hostile page or sort parameter is ignored, never a 500."""
    from ra.workflow import Actor
    from tests.unit.ra import helpers
    from tests.unit.ra.csr_tools import tongsuo_sm2_csr, tongsuo_sm2_key
    issued = _issued_dual(app, services, "王小红")
    client, _ = _officer_client(app, services, ["ra_officer"])
    serial = issued["enc"]["serial"]

    def found(**params):
        page = client.get("/console/certificates", query_string=params)
        assert page.status_code == 200, params
        return page.get_data(as_text=True)

    for q in ("王小红", issued["person"]["id_number"], issued["unit"]["name"], serial[2:10].upper()):
        assert serial.upper() in found(q=q), q
    assert serial.upper() in found(unit=issued["unit"]["name"][-6:], status="good")
    assert serial.upper() not in found(q="王小红", status="revoked")
    assert serial.upper() in found(q="王小红", expiring_days=3660) and serial.upper() not in found(q="王小红", expiring_days=1)
    ra = app.extensions["racentre.ra"]
    op = Actor("op-search", "ra_operator")
    host = helpers.host()
    server, _ = ra.add_server(op, host_name=host, unit_id=issued["unit"]["id"])
    req = ra.submit(Actor("applicant-s", "applicant"), type="server", subject_id=server["id"],
                    sign_csr=tongsuo_sm2_csr(tongsuo_sm2_key(), {"common_name": host}))
    ra.vet(op, req["id"], documents_checked=True)
    server_serial = ra.approve(Actor("officer-s", "ra_officer"), req["id"])["certificates"][0]["serial"]
    assert server_serial.upper() in found(q=host)
    by_unit = found(unit=issued["unit"]["name"], sort="expiry")
    assert by_unit.count('class="cert-row"') == 3                    # the person's two and the server's
    assert 'id="next-page"' not in by_unit and "页码 1" in by_unit
    for hostile in ({"page": "-3"}, {"page": "x"}, {"sort": "id; drop"}, {"expiring_days": "9" * 30},
                    {"endpoint": "x", "_anchor": "y"}):
        assert client.get("/console/certificates", query_string=hostile).status_code == 200, hostile


def test_statistics_per_unit_and_period_with_csv_export(app, services):
    """Issue 17 统计: per unit, certificates issued and revoked in the period and requests pending now, with
    a total; exported as CSV with Chinese headers (UTF-8 BOM for Excel); a bad period is a 400."""
    import csv
    import datetime as dt
    import io as _io
    from ra.workflow import Actor
    issued = _issued_dual(app, services, "统计甲")
    ra = app.extensions["racentre.ra"]
    ra.emergency_revoke(Actor("officer-stats", "ra_officer"), _request_of(app, issued), "测试吊销")
    auditor, _ = _officer_client(app, services, ["auditor"])
    today = dt.datetime.now(__import__("zoneinfo").ZoneInfo("Asia/Shanghai")).date()
    page = auditor.get("/console/statistics")
    assert page.status_code == 200 and issued["unit"]["name"] in page.get_data(as_text=True)
    exported = auditor.get("/console/statistics", query_string={"from": today.isoformat(), "to": today.isoformat(),
                                                                "format": "csv"})
    assert exported.mimetype == "text/csv" and exported.data.startswith("\ufeff".encode())
    rows = list(csv.reader(_io.StringIO(exported.data.decode("utf-8-sig"))))
    assert rows[0][:4] == ["单位", "签发证书数", "吊销证书数", "待处理申请数"]
    mine = next(r for r in rows if r[0] == issued["unit"]["name"])
    assert mine[1:4] == ["2", "2", "0"] and rows[-1][0] == "合计"
    past = auditor.get("/console/statistics", query_string={"from": "2020-01-01", "to": "2020-01-31", "format": "csv"})
    assert issued["unit"]["name"] not in past.data.decode("utf-8-sig")
    assert auditor.get("/console/statistics", query_string={"from": "2026-13-01"}).status_code == 400
    assert auditor.get("/console/statistics", query_string={"from": "2026-12-02", "to": "2026-12-01"}).status_code == 400


def test_statistics_days_are_beijing_days_whatever_the_hour(app, services):
    """A certificate issued at 01:30 Beijing time (17:30 UTC the day before) counts on its Beijing day, on
    SQLite too (which keeps UTC wall-clock text and drops the zone of a bound value)."""
    import datetime as dt
    from sqlalchemy import update as _update
    from ra.models import CertRequest
    issued = _issued_dual(app, services, "统计乙")
    rid = _request_of(app, issued)
    with app.extensions["racentre.db"]() as session, session.begin():
        session.execute(_update(CertRequest).where(CertRequest.id == rid).values(
            completed_at=dt.datetime(2026, 3, 1, 17, 30, tzinfo=dt.timezone.utc)))
    auditor, _ = _officer_client(app, services, ["auditor"])

    def issued_on(day: str) -> str | None:
        data = auditor.get("/console/statistics", query_string={"from": day, "to": day, "format": "csv"}).data
        return next((r.split(",")[1] for r in data.decode("utf-8-sig").splitlines()
                     if r.startswith(issued["unit"]["name"] + ",")), None)

    assert issued_on("2026-03-02") == "2"
    assert issued_on("2026-03-01") is None


def _request_of(app, issued) -> int:
    from sqlalchemy import select as _select
    from ra.models import RaCertificate
    with app.extensions["racentre.db"]() as session:
        return session.scalar(_select(RaCertificate.request_id).where(RaCertificate.serial == issued["enc"]["serial"]))


def test_audit_filters_by_day_and_exports_csv_which_is_itself_audited(app, services):
    """Issue 17: the audit log filtered by action and day (the site's zone) exports as CSV with Chinese
    headers; the export is an audit row of its own; a day outside the period finds nothing; a bad date 400."""
    import csv
    import datetime as dt
    import io as _io
    rid = vetted_unit_request(services)
    auditor, name = _officer_client(app, services, ["auditor"])
    today = dt.datetime.now(__import__("zoneinfo").ZoneInfo("Asia/Shanghai")).date().isoformat()
    page = auditor.get("/console/audit", query_string={"target": f"ra_request:{rid}", "from": today, "to": today})
    assert "ra.request.vet" in page.get_data(as_text=True) and 'id="audit-csv"' in page.get_data(as_text=True)
    assert "ra.request.vet" not in auditor.get("/console/audit", query_string={
        "target": f"ra_request:{rid}", "from": "2020-01-01", "to": "2020-01-02"}).get_data(as_text=True)
    exported = auditor.get("/console/audit", query_string={"target": f"ra_request:{rid}", "from": today,
                                                           "format": "csv"})
    rows = list(csv.reader(_io.StringIO(exported.data.decode("utf-8-sig"))))
    assert rows[0] == ["编号", "时间", "操作人", "角色", "操作", "对象类型", "对象", "详情"]
    assert {r[4] for r in rows[1:]} >= {"ra.request.submit", "ra.request.vet"}
    log = auditor.get("/console/audit", query_string={"action": "audit.export", "actor": name}).get_data(as_text=True)
    assert "audit.export" in log
    # filtered by operator and action too (their names are record()'s own arguments): exported, and audited
    by_action = auditor.get("/console/audit", query_string={"actor": "operator-setup", "action": "ra.request",
                                                            "format": "csv"})
    assert by_action.status_code == 200 and by_action.mimetype == "text/csv"
    with services.db() as session:
        detail = session.scalars(select(AuditEvent.detail).where(AuditEvent.action == "audit.export")
                                 .order_by(AuditEvent.id.desc())).first()
    assert detail["filter_actor"] == "operator-setup" and detail["filter_action"] == "ra.request"
    assert auditor.get("/console/audit", query_string={"from": "yesterday"}).status_code == 400
