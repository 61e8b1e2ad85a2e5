"""Issue 17, the certificate lifecycle in the console (SQLite and PostgreSQL, the full app): 冻结/解冻 through the
four-eyes gate with the CRL and OCSP saying certificateHold and then good again; 换发/补发 from the certificate
page through vetting and approval, the old certificates superseded; 即将过期 with the home page's notice and
the CSV export; the SM2 envelope download for the right roles, audited; the services' words in Chinese."""
from __future__ import annotations

import csv
import dataclasses
import io
import re
import secrets

import pytest
from asn1crypto import crl as asn1_crl, ocsp, pem
from sqlalchemy import select

from audit.trail import AuditEvent
from ra.workflow import Actor
from racentre.console import i18n
from tests.unit.ca_bridge.helpers import ocsp_request
from tests.unit.console.site import logged_in as _client, post_form as _post, app_for, csrf_of, login, officer
from tests.unit.ra import helpers
from tests.unit.ra.csr_tools import tongsuo_sm2_csr, tongsuo_sm2_key


@pytest.fixture(scope="module")
def app(services):
    return app_for(services)


def _issued_unit(app) -> dict:
    """A unit certificate through the app's RA (two officers approve); its request, unit and key."""
    ra = app.extensions["racentre.ra"]
    op = Actor(f"op-{secrets.token_hex(3)}", "ra_operator")
    unit, _ = ra.add_unit(op, name=f"生命周期测试局{secrets.token_hex(2)}", uscc=helpers.uscc(), legal_representative="王五")
    key = tongsuo_sm2_key()
    req = ra.submit(Actor("applicant-l", "applicant"), type="unit", subject_id=unit["id"],
                    sign_csr=tongsuo_sm2_csr(key, {"common_name": unit["name"]}))
    ra.vet(op, req["id"], documents_checked=True)
    ra.approve(Actor(f"a-{secrets.token_hex(3)}", "ra_officer"), req["id"])
    done = ra.approve(Actor(f"b-{secrets.token_hex(3)}", "ra_officer"), req["id"])
    assert done["state"] == "issued"
    return {"request": done, "unit": unit, "key": key, "cert": done["certificates"][0]}


def _vet(client, rid):
    assert _post(client, f"/console/requests/{rid}", f"/console/requests/{rid}/vet",
                 documents_checked="yes").status_code == 303


def _ocsp_status(app, ca_name: str, serial: str) -> tuple[str, str | None]:
    issuer = app.extensions["racentre.ca"].directory.get(ca_name).certificate
    answer = app.test_client().post(f"/ocsp/{ca_name}", data=ocsp_request(issuer, [int(serial, 16)], "sha256"),
                                    content_type="application/ocsp-request")
    assert answer.status_code == 200
    single = ocsp.OCSPResponse.load(answer.data).basic_ocsp_response["tbs_response_data"]["responses"][0]
    status = single["cert_status"]
    reason = status.chosen["revocation_reason"].native if status.name == "revoked" else None
    return status.name, reason


def _crl_entry(app, ca_name: str, serial: str, delta: bool = False):
    """The CRL entry of ``serial`` in the full CRL as served now, or in a delta CRL signed now over the last
    full one (the served delta is over a fresh base, which already says the same), or None."""
    published = app.extensions["racentre.ca"].crls.generate(ca_name, delta=delta)
    der = published.der
    if not delta:
        served = app.test_client().get(f"/ca/{ca_name}/crl")
        assert served.status_code == 200
        der = served.data
    for entry in asn1_crl.CertificateList.load(der)["tbs_cert_list"]["revoked_certificates"]:
        if entry["user_certificate"].native == int(serial, 16):
            return entry
    return None


def _pem(csr_der: bytes) -> str:
    return pem.armor("CERTIFICATE REQUEST", csr_der).decode("ascii")


def _reason(entry):
    return entry.crl_reason_value.native if entry is not None and entry.crl_reason_value else None


def test_suspend_and_resume_through_four_eyes_crl_and_ocsp(app, services):
    """冻结: an officer asks (first approval), an operator vets, a second officer approves: the certificate is on
    hold at the CA and in the RA, the CRL lists it with certificateHold and OCSP answers revoked (hold).
    解冻 the same way: good again in OCSP, gone from the next full CRL, removeFromCRL in the delta CRL.
    The asking officer cannot approve their own request; every step is audited."""
    issued = _issued_unit(app)
    cert = issued["cert"]
    page = f"/console/certificates/{cert['ca']}/{cert['serial']}"
    a, name_a = _client(app, services, ["ra_officer"])
    b, name_b = _client(app, services, ["ra_officer"])
    operator, _ = _client(app, services, ["ra_operator"])
    shown = a.get(page).get_data(as_text=True)
    assert 'id="suspend-cert"' in shown and 'id="resume-cert"' not in shown and "冻结（需双人审批）" in shown
    asked = _post(a, page, page + "/suspend")
    assert asked.status_code == 303
    rid = int(asked.headers["Location"].rsplit("/", 1)[1])
    detail = a.get(f"/console/requests/{rid}").get_data(as_text=True)
    assert "单位证书 / 冻结" in detail and re.search(r"<b>1</b>\s*/\s*2", detail) and 'id="approve"' not in detail
    assert f'id="open-request-{rid}"' in a.get(page).get_data(as_text=True)
    _vet(operator, rid)
    assert _post(a, f"/console/requests/{rid}", f"/console/requests/{rid}/approve").status_code == 303   # a no-op
    assert re.search(r"<b>1</b>\s*/\s*2", a.get(f"/console/requests/{rid}").get_data(as_text=True))
    assert 'id="approve"' in b.get(f"/console/requests/{rid}").get_data(as_text=True)
    assert _post(b, f"/console/requests/{rid}", f"/console/requests/{rid}/approve").status_code == 303
    assert 'id="state">已冻结' in b.get(f"/console/requests/{rid}").get_data(as_text=True)
    held = a.get(page).get_data(as_text=True)
    assert 'id="cert-status">已冻结' in held and 'id="resume-cert"' in held and 'id="suspend-cert"' not in held
    ra = app.extensions["racentre.ra"]
    assert [c["status"] for c in ra.get_request(issued["request"]["id"])["certificates"]] == ["hold"]
    assert _ocsp_status(app, cert["ca"], cert["serial"]) == ("revoked", "certificate_hold")
    assert _reason(_crl_entry(app, cert["ca"], cert["serial"])) == "certificate_hold"

    asked = _post(b, page, page + "/resume")
    assert asked.status_code == 303
    release = int(asked.headers["Location"].rsplit("/", 1)[1])
    _vet(operator, release)
    assert _post(a, f"/console/requests/{release}", f"/console/requests/{release}/approve").status_code == 303
    assert 'id="state">已解冻' in a.get(f"/console/requests/{release}").get_data(as_text=True)
    assert 'id="cert-status">有效' in a.get(page).get_data(as_text=True)
    assert [c["status"] for c in ra.get_request(issued["request"]["id"])["certificates"]] == ["good"]
    assert _ocsp_status(app, cert["ca"], cert["serial"]) == ("good", None)
    # the delta of the full CRL that listed the hold says removeFromCRL (RFC 5280 §5.2.4); the next full one drops it
    assert _reason(_crl_entry(app, cert["ca"], cert["serial"], delta=True)) == "remove_from_crl"
    assert _crl_entry(app, cert["ca"], cert["serial"]) is None
    with services.db() as session:
        actions = [(e.action, e.actor) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.target_type == "ra_request",
                                     AuditEvent.target_id.in_((str(rid), str(release)))).order_by(AuditEvent.id))]
    assert ("ra.certificate.hold", name_b) in actions and ("ra.certificate.release", name_a) in actions
    assert ("ra.request.approve", name_a) in actions and ("ra.request.approve", name_b) in actions


def test_nothing_to_resume_and_an_own_request_are_refused_in_chinese(app, services):
    issued = _issued_unit(app)
    cert = issued["cert"]
    page = f"/console/certificates/{cert['ca']}/{cert['serial']}"
    a, _ = _client(app, services, ["ra_officer"])
    refused = _post(a, page, page + "/resume")
    assert refused.status_code == 409 and "没有可解冻的冻结证书" in refused.get_data(as_text=True)
    rid = int(_post(a, page, page + "/suspend").headers["Location"].rsplit("/", 1)[1])
    operator, _ = _client(app, services, ["ra_operator"])
    own_vet = _post(operator, f"/console/requests/{rid}", f"/console/requests/{rid}/vet", documents_checked="no")
    assert own_vet.status_code == 400 and "请先确认已核验身份证件" in own_vet.get_data(as_text=True)
    returned = _post(a, f"/console/requests/{rid}", f"/console/requests/{rid}/return", reason="x")
    assert returned.status_code == 400 and "不能退回补正" in returned.get_data(as_text=True)
    auditor, _ = _client(app, services, ["auditor"])
    assert _post(auditor, "/console/", page + "/suspend").status_code == 403


def test_renewal_and_reissue_from_the_certificate_page_supersede_the_old(app, services):
    """换发 with the same key (the original CSR used again) and 补发 with a new key: requests vetted and approved
    like issuance; at issuance the old certificate is revoked with reason superseded (policy default)."""
    issued = _issued_unit(app)
    cert = issued["cert"]
    page = f"/console/certificates/{cert['ca']}/{cert['serial']}"
    operator, op_name = _client(app, services, ["ra_operator"])
    vetter, _ = _client(app, services, ["ra_operator"])
    a, _ = _client(app, services, ["ra_officer"])
    b, _ = _client(app, services, ["ra_officer"])
    shown = operator.get(page).get_data(as_text=True)
    assert 'id="renew-cert"' in shown and 'id="reissue-cert"' in shown
    form = operator.get(page + "/renew?kind=renewal").get_data(as_text=True)
    assert "换发（原密钥更新）" in form and issued["unit"]["name"] in form and "已被替代" in form
    asked = _post(operator, page + "/renew", page + "/renew", kind="renewal", csr="")
    assert asked.status_code == 303
    rid = int(asked.headers["Location"].rsplit("/", 1)[1])
    _vet(vetter, rid)
    checks = a.get(f"/console/requests/{rid}").get_data(as_text=True)
    assert "原证书状态" in checks and "有效证书" in checks and "私钥持有证明已验证" in checks
    assert f"证书请求主体与登记信息一致：C=CN, O={issued['unit']['name']}, CN=" in checks
    for client in (a, b):
        assert _post(client, f"/console/requests/{rid}", f"/console/requests/{rid}/approve").status_code == 303
    ra = app.extensions["racentre.ra"]
    renewed = ra.get_request(rid)
    assert renewed["state"] == "issued" and renewed["kind"] == "renewal"
    old = app.extensions["racentre.ca"].certificate(cert["ca"], int(cert["serial"], 16))
    assert (old.status, old.reason) == ("revoked", "superseded")
    new = renewed["certificates"][0]
    assert new["serial"] != cert["serial"]

    new_page = f"/console/certificates/{new['ca']}/{new['serial']}"
    no_csr = _post(operator, new_page + "/renew?kind=reissue", new_page + "/renew", kind="reissue", csr="")
    assert no_csr.status_code == 400 and "须提供用新密钥生成的证书请求" in no_csr.get_data(as_text=True)
    same_key = _pem(tongsuo_sm2_csr(issued["key"], {"common_name": issued["unit"]["name"]}))
    stale = _post(operator, new_page + "/renew?kind=reissue", new_page + "/renew", kind="reissue", csr=same_key)
    stale_id = int(stale.headers["Location"].rsplit("/", 1)[1])
    _vet(vetter, stale_id)
    rejected = a.get(f"/console/requests/{stale_id}").get_data(as_text=True)
    assert 'id="state">已拒绝' in rejected and "该公钥已签发过证书" in rejected
    fresh = _pem(tongsuo_sm2_csr(tongsuo_sm2_key(), {"common_name": issued["unit"]["name"]}))
    asked = _post(operator, new_page + "/renew?kind=reissue", new_page + "/renew", kind="reissue", csr=fresh)
    reissue = int(asked.headers["Location"].rsplit("/", 1)[1])
    assert "补发（遗失后）" in a.get(f"/console/requests/{reissue}").get_data(as_text=True)
    _vet(vetter, reissue)
    for client in (a, b):
        assert _post(client, f"/console/requests/{reissue}", f"/console/requests/{reissue}/approve").status_code == 303
    assert ra.get_request(reissue)["state"] == "issued"
    assert [(c["status"], c["revocation_reason"]) for c in ra.get_request(rid)["certificates"]] == [
        ("revoked", "superseded")]
    assert _ocsp_status(app, new["ca"], new["serial"]) == ("revoked", "superseded")
    assert operator.get(page + "/renew?kind=forever").status_code == 400


def test_expiry_page_notice_and_csv(app, services, monkeypatch):
    """即将过期: certificates in force ending within N days ([console] expiry_notice_days), per unit, on the
    officers' home page and as CSV; a certificate on hold or revoked is not listed; bad days are a 400."""
    issued = _issued_unit(app)
    cert, unit = issued["cert"], issued["unit"]["name"]
    client, _ = _client(app, services, ["ra_officer"])
    default = client.get("/console/expiring", query_string={"unit": unit}).get_data(as_text=True)
    assert cert["serial"].upper() not in default and "30 天内到期的有效证书：0 张" in default
    config = app.extensions["racentre.config"]
    monkeypatch.setitem(app.extensions, "racentre.config", dataclasses.replace(
        config, console=dataclasses.replace(config.console, expiry_notice_days=3660)))
    listing = client.get("/console/expiring", query_string={"unit": unit}).get_data(as_text=True)
    assert cert["serial"].upper() in listing and 'class="expiring-row"' in listing and f"{unit}: <b>1</b>" in listing
    home = client.get("/console/").get_data(as_text=True)
    assert 'id="expiry-notice"' in home and "天内到期" in home
    exported = client.get("/console/expiring", query_string={"unit": unit, "format": "csv"})
    assert exported.mimetype == "text/csv" and exported.data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:2] == ["单位", "持有人/主机"] and len(rows) == 2 and rows[1][0] == unit
    assert rows[1][4] == cert["serial"].upper() and int(rows[1][7]) > 300
    assert cert["serial"].upper() not in client.get("/console/expiring", query_string={"days": 1, "unit": unit}).get_data(
        as_text=True)
    for bad in ("0", "x", "99999"):
        assert client.get("/console/expiring", query_string={"days": bad}).status_code == 400
    app.extensions["racentre.ra"].emergency_revoke(Actor("officer-x", "ra_officer"), issued["request"]["id"], "泄露")
    assert cert["serial"].upper() not in client.get("/console/expiring", query_string={"unit": unit}).get_data(
        as_text=True)


def _issued_dual(app, name: str) -> dict:
    ra = app.extensions["racentre.ra"]
    op = Actor(f"op-{secrets.token_hex(3)}", "ra_operator")
    unit, _ = ra.add_unit(op, name=f"信封测试局{secrets.token_hex(2)}", uscc=helpers.uscc(), legal_representative="王五")
    person, _ = ra.add_civil_servant(op, name=name, id_number=helpers.id_number(), unit_id=unit["id"])
    req = ra.submit(Actor("applicant-e", "applicant"), type="civil-servant-dual", subject_id=person["id"],
                    sign_csr=tongsuo_sm2_csr(tongsuo_sm2_key(), {"common_name": name}))
    ra.vet(op, req["id"], documents_checked=True)
    ra.approve(Actor(f"a-{secrets.token_hex(3)}", "ra_officer"), req["id"])
    done = ra.approve(Actor(f"b-{secrets.token_hex(3)}", "ra_officer"), req["id"])
    assert done["state"] == "issued"
    return {"request": done, **{c["usage"]: c for c in done["certificates"]}}


def test_sm2_envelope_download_for_operators_audited(app, services):
    """The KMC's envelope of the encryption key: GB/T 35276 SM2EnvelopedKey or GM/T 0010 SignedAndEnvelopedData,
    the same bytes as the RA API gives, for operators and officers (制证), not auditors; each download audited;
    a signing certificate has none (404)."""
    issued = _issued_dual(app, "赵信封")
    enc, sign = issued["enc"], issued["sign"]
    page = f"/console/certificates/{enc['ca']}/{enc['serial']}"
    operator, op_name = _client(app, services, ["ra_operator"])
    assert 'id="download-envelope"' in operator.get(page).get_data(as_text=True)
    ra = app.extensions["racentre.ra"]
    sm2 = operator.get(page + "/envelope", query_string={"format": "sm2env"})
    assert sm2.status_code == 200 and sm2.data == ra.key_envelope(issued["request"]["id"], "sm2-enveloped-key")
    assert "attachment" in sm2.headers["Content-Disposition"]
    p7 = operator.get(page + "/envelope", query_string={"format": "p7"})
    assert p7.data == ra.key_envelope(issued["request"]["id"], "signed-and-enveloped")
    assert operator.get(page + "/envelope", query_string={"format": "zip"}).status_code == 400
    assert operator.get(f"/console/certificates/{sign['ca']}/{sign['serial']}/envelope").status_code == 404
    assert 'id="download-envelope"' not in operator.get(
        f"/console/certificates/{sign['ca']}/{sign['serial']}").get_data(as_text=True)
    auditor, _ = _client(app, services, ["auditor"])
    assert auditor.get(page + "/envelope").status_code == 403
    assert 'id="download-envelope"' not in auditor.get(page).get_data(as_text=True)
    with services.db() as session:
        downloads = list(session.scalars(select(AuditEvent).where(
            AuditEvent.action == "console.key_envelope.download", AuditEvent.target_id == f"{enc['ca']}/{enc['serial']}")))
    assert [(e.actor, e.detail["format"]) for e in downloads] == [(op_name, "sm2-enveloped-key"),
                                                                   (op_name, "signed-and-enveloped")]


def test_request_words_checks_and_job_results_in_chinese(app, services):
    issued = _issued_unit(app)
    client, _ = _client(app, services, ["ra_officer"])
    page = client.get(f"/console/requests/{issued['request']['id']}").get_data(as_text=True)
    assert "单位证书 / 新申请" in page and "证件核验" in page and "统一社会信用代码有效" in page
    assert "公钥未为他人签发过证书" in page and "unit code valid" not in page
    queue = client.get("/console/requests?state=issued").get_data(as_text=True)
    assert "单位证书 / 新申请" in queue and ">unit<" not in queue
    assert "申请 999999999 不存在" in client.get("/console/requests/999999999").get_data(as_text=True)
    cert = client.get(f"/console/certificates/{issued['cert']['ca']}/{issued['cert']['serial']}").get_data(as_text=True)
    assert '<option value="key_compromise">密钥泄露</option>' in cert and 'value="certificate_hold"' not in cert
    english = client.get(f"/console/requests/{issued['request']['id']}?lang=en").get_data(as_text=True)
    assert "Unit / New" in english and "unit code valid" in english


@pytest.mark.parametrize("text,expected", [
    ("request 7 is submitted, only vetted requests can be approved", "申请 7 当前为“已提交”，只有已审核的申请才能批准"),
    ("vetting failed: subject: CSR subject common_name='x' contradicts the vetted record; key: a re-key needs a new "
     "signing key", "审核未通过：主体：证书请求主体 common_name='x' 与登记信息不符；公钥：更换密钥或补发须使用新的签名密钥"),
    ("an officer cannot approve a request they submitted", "提交人不能批准自己提交的申请"),
    ("something the catalogue does not know", "something the catalogue does not know"),
])
def test_service_messages_in_chinese(text, expected):
    assert i18n.message(text, "zh") == expected
    assert i18n.message(text, "en") == text


def test_reissue_of_a_dual_pair_gets_a_new_kmc_key_and_its_envelope(app, services):
    """补发 of a civil servant's pair after the USB key was lost, asked from the encryption certificate's page:
    a new signing CSR, the KMC makes the new encryption key at approval; both old certificates superseded; the
    new encryption certificate's envelope downloadable (and not the old one's key)."""
    issued = _issued_dual(app, "钱补发")
    enc = issued["enc"]
    page = f"/console/certificates/{enc['ca']}/{enc['serial']}"
    operator, _ = _client(app, services, ["ra_operator"])
    vetter, _ = _client(app, services, ["ra_operator"])
    a, _ = _client(app, services, ["ra_officer"])
    b, _ = _client(app, services, ["ra_officer"])
    form = operator.get(page + "/renew?kind=reissue").get_data(as_text=True)
    assert 'id="renew-enc-csr"' in form and "由密钥管理中心生成加密密钥" in form
    fresh = _pem(tongsuo_sm2_csr(tongsuo_sm2_key(), {"common_name": "钱补发"}))
    asked = _post(operator, page + "/renew?kind=reissue", page + "/renew", kind="reissue", csr=fresh)
    assert asked.status_code == 303
    rid = int(asked.headers["Location"].rsplit("/", 1)[1])
    _vet(vetter, rid)
    for client in (a, b):
        assert _post(client, f"/console/requests/{rid}", f"/console/requests/{rid}/approve").status_code == 303
    ra = app.extensions["racentre.ra"]
    done = ra.get_request(rid)
    assert done["state"] == "issued" and sorted(c["usage"] for c in done["certificates"]) == ["enc", "sign"]
    assert {(c["status"], c["revocation_reason"]) for c in ra.get_request(issued["request"]["id"])["certificates"]} \
        == {("revoked", "superseded")}
    new_enc = next(c for c in done["certificates"] if c["usage"] == "enc")
    assert new_enc["key_escrowed"] and new_enc["serial"] != enc["serial"]
    envelope = operator.get(f"/console/certificates/{new_enc['ca']}/{new_enc['serial']}/envelope?format=sm2env")
    assert envelope.status_code == 200 and envelope.data == ra.key_envelope(rid, "sm2-enveloped-key")


def test_suspend_with_the_officers_reason_shown_audited_and_exported(app, services):
    """冻结 from the certificate page with the officer's reason (free text): shown on the request page,
    in the audit rows of the request and of the hold, and in the auditor's CSV export; too long is refused in
    Chinese (the form keeps the limit as maxlength too)."""
    issued = _issued_unit(app)
    cert = issued["cert"]
    page = f"/console/certificates/{cert['ca']}/{cert['serial']}"
    a, _ = _client(app, services, ["ra_officer"])
    b, _ = _client(app, services, ["ra_officer"])
    operator, _ = _client(app, services, ["ra_operator"])
    shown = a.get(page).get_data(as_text=True)
    assert 'name="status_reason"' in shown and 'maxlength="500"' in shown and "原因说明" in shown
    refused = _post(a, page, page + "/suspend", status_reason="长" * 501)
    assert refused.status_code == 400 and "原因说明不能超过 500 个字符" in refused.get_data(as_text=True)
    words = "单位公章遗失，<b>暂停</b>使用"
    asked = _post(a, page, page + "/suspend", status_reason=words)
    assert asked.status_code == 303
    rid = int(asked.headers["Location"].rsplit("/", 1)[1])
    detail = a.get(f"/console/requests/{rid}").get_data(as_text=True)
    assert 'id="request-status-reason">单位公章遗失，&lt;b&gt;暂停&lt;/b&gt;使用<' in detail
    _vet(operator, rid)
    assert _post(b, f"/console/requests/{rid}", f"/console/requests/{rid}/approve").status_code == 303
    auditor, _ = _client(app, services, ["auditor"])
    exported = auditor.get("/console/audit", query_string={"target": f"ra_request:{rid}", "format": "csv"})
    rows = list(csv.reader(io.StringIO(exported.data.decode("utf-8-sig"))))
    with_reason = {r[4] for r in rows[1:] if words in r[7]}
    assert with_reason == {"ra.request.submit", "ra.certificate.hold"}, rows


def _cli(services, group, *args):
    """A ``racentre ca|ra`` command as the racentre CLI wires it (officers by console name, RA revocation)."""
    from click.testing import CliRunner
    from ra.cli import ra_revoke
    from racentre.accounts import enabled_principal
    obj = {"services": services, "ra_revoke": ra_revoke,
           "officer_principal": lambda name: enabled_principal(services.db, name, "cli")}
    return CliRunner().invoke(group, list(args), obj=obj)


def _same_status_everywhere(app, cert, rid) -> str:
    """The certificate's status as the RA records it (有效/冻结/吊销), checked against the CA's OCSP answer, its
    CRL and the console's certificate page; returns the RA's status."""
    ra_status = [c["status"] for c in app.extensions["racentre.ra"].get_request(rid)["certificates"]
                 if c["serial"] == cert["serial"]][0]
    ocsp_status, ocsp_reason = _ocsp_status(app, cert["ca"], cert["serial"])
    entry = _crl_entry(app, cert["ca"], cert["serial"])
    if ra_status == "good":
        assert (ocsp_status, entry) == ("good", None), (ocsp_status, ocsp_reason)
    elif ra_status == "hold":
        assert (ocsp_status, ocsp_reason, _reason(entry)) == ("revoked", "certificate_hold", "certificate_hold")
    else:
        assert ocsp_status == "revoked" and ocsp_reason == _reason(entry) != "certificate_hold", (ocsp_reason, entry)
    return ra_status


def test_cli_revoke_hold_and_release_keep_the_ra_and_the_ca_in_step(app, services):
    """One path, one truth: `racentre ca revoke` of an RA certificate acts through the RA. certificate_hold (挂失)
    is the officer's immediate, audited 冻结 (an RA suspend request); remove_from_crl is a 解冻 request through the
    four-eyes gate (vetted, approved by a second officer, from the CLI too) and nothing is released before;
    key_compromise revokes at once. After every step the RA's status is what the CA's OCSP and CRL say."""
    from ca_bridge.cli import ca_group
    from ra.cli import ra_group
    issued = _issued_unit(app)
    cert, rid = issued["cert"], issued["request"]["id"]
    a, _ = officer(services, ["ra_officer"])
    b, _ = officer(services, ["ra_officer"])
    op, _ = officer(services, ["ra_operator"])
    revoke = ("revoke", cert["serial"], "--ca", cert["ca"])
    assert _same_status_everywhere(app, cert, rid) == "good"
    held = _cli(services, ca_group, *revoke, "--reason", "certificate_hold", "--as", a, "--justification", "本人电话挂失")
    assert held.exit_code == 0, held.output
    assert "suspended (certificate_hold) through RA suspend request" in held.output
    assert _same_status_everywhere(app, cert, rid) == "hold"
    suspend = app.extensions["racentre.ra"].get_request(int(held.output.rsplit(" ", 1)[1]))
    assert (suspend["kind"], suspend["state"], suspend["status_reason"]) == ("suspend", "suspended", "本人电话挂失")
    again = _cli(services, ca_group, *revoke, "--reason", "certificate_hold", "--as", b, "--justification", "再次")
    assert "no certificate in force" in str(again.exception) and _same_status_everywhere(app, cert, rid) == "hold"
    # the release: without an officer it says which command to use; with one it is a 解冻 request, still on hold
    bare = _cli(services, ca_group, *revoke, "--reason", "remove_from_crl")
    assert bare.exit_code == 2 and "released (解冻) by an RA resume request" in bare.output
    assert "--kind revocation|suspend|resume" in bare.output
    asked = _cli(services, ca_group, *revoke, "--reason", "remove_from_crl", "--as", a, "--justification", "USB Key 已找回")
    assert asked.exit_code == 0, asked.output
    found = re.search(r"release \(解冻\) request (\d+) submitted with 1 of 2 approvals", asked.output)
    assert found and f"racentre ra request approve {found.group(1)}" in asked.output, asked.output
    release = int(found.group(1))
    assert _same_status_everywhere(app, cert, rid) == "hold"
    assert _cli(services, ra_group, "request", "vet", str(release), "--documents-checked", "--as", op).exit_code == 0
    assert _same_status_everywhere(app, cert, rid) == "hold"
    approved = _cli(services, ra_group, "request", "approve", str(release), "--as", b)
    assert approved.exit_code == 0 and '"state": "resumed"' in approved.output, approved.output
    assert _same_status_everywhere(app, cert, rid) == "good"
    # revoked for good from the CLI: the RA says revoked as the CA does
    gone = _cli(services, ca_group, *revoke, "--reason", "key_compromise", "--as", b, "--justification", "私钥泄露")
    assert gone.exit_code == 0 and "revoked (key_compromise) through RA revocation request" in gone.output
    assert _same_status_everywhere(app, cert, rid) == "revoked"
    with services.db() as session:
        actions = {e.action for e in session.scalars(select(AuditEvent).where(
            AuditEvent.target_type == "ra_request", AuditEvent.actor.in_((a, b))))}
    assert {"ra.request.emergency_suspend", "ra.certificate.hold", "ra.request.submit", "ra.certificate.release",
            "ra.request.emergency_revoke", "ra.certificate.revoke"} <= actions
