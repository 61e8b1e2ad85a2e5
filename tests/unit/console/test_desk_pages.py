"""Issue 17, the counter pages over the full app (SQLite and PostgreSQL): 受理 for a 公务员, a 单位 and an
应用服务器 (documents checklist, fields checked at submission, the form refilled on errors, nothing written
when refused), the person and unit registries, roster import with Chinese headers (all or nothing, one
outcome per row, XLSX and CSV), and sealing with a position preview, then verification with its sketch."""
from __future__ import annotations

import base64
import datetime as dt
import io
import re
import secrets
from zoneinfo import ZoneInfo

import pytest
from asn1crypto import pem
from PIL import Image
from sqlalchemy import func, select

from pkicore.algorithms import algorithm
from pkicore.oids import OID
from ra.models import CivilServant, Server, Unit
from ca_bridge.api import IssueRequest
from racentre.demo.samples import make_ofd, make_pdf
from tests.unit.console.site import logged_in as _client, app_for, csrf_of, login, officer
from tests.unit.ra import helpers
from tests.unit.ra.csr_tools import tongsuo_sm2_csr, tongsuo_sm2_key
from tests.unit.seal.sealpki import png_bytes

CS = "civil-servant-dual"


@pytest.fixture(scope="module")
def app(services):
    return app_for(services)


def _csr(common_name: str) -> str:
    """A PEM CSR (as USB-key middleware exports it) from a new SM2 key."""
    return pem.armor("CERTIFICATE REQUEST", tongsuo_sm2_csr(tongsuo_sm2_key(), {"common_name": common_name})).decode()


def _count(services, model, **where) -> int:
    with services.db() as session:
        return session.scalar(select(func.count()).select_from(model).filter_by(**where))


def _unit(services, name=None) -> dict:
    from ra.services import build_ra_service
    from ra.workflow import Actor
    ra = build_ra_service(services.db, services.ca)
    return ra.add_unit(Actor("setup", "ra_operator"), name=name or f"测试市档案局{helpers.tag()}", uscc=helpers.uscc(),
                       legal_representative="李四")[0]


def _intake(client, rtype, **fields):
    token = csrf_of(client.get(f"/console/intake?type={rtype}").get_data(as_text=True))
    data = {"csrf_token": token, "type": rtype, **fields}
    return client.post("/console/intake", data=data, content_type="multipart/form-data")


def test_intake_civil_servant_checks_refills_and_submits(app, services):
    clerk, clerk_name = _client(app, services, ["ra_operator"])
    unit = _unit(services)
    page = clerk.get(f"/console/intake?type={CS}").get_data(as_text=True)
    assert "身份材料核验清单" in page and "申请人身份证" in page and "单位介绍信或授权书" in page
    person = f"陈晓明{secrets.token_hex(2)}"
    good_id = helpers.id_number()
    bad_id = good_id[:17] + ("0" if good_id[17] != "0" else "1")          # wrong GB 11643 check character
    csr = _csr(person)
    fields = {"unit_mode": "existing", "unit_id": str(unit["id"]), "name": person, "department": "办公室",
              "mobile": "13800138000", "email": "chen@example.cn", "documents": ["id_card", "unit_letter"],
              "enc_source": "kmc", "sign_csr": csr}
    refused = _intake(clerk, CS, **fields, id_number=bad_id)
    html = refused.get_data(as_text=True)
    assert refused.status_code == 400 and 'id="error-id_number"' in html and "身份证号" in html
    # the form comes back as it was sent: every field refilled, the checklist ticked, the CSR kept
    assert f'value="{person}"' in html and f'value="{bad_id}"' in html and 'value="13800138000"' in html
    assert re.search(r'id="doc-id_card"\s+checked', html) and "BEGIN CERTIFICATE REQUEST" in html
    assert f'<option value="{unit["id"]}" selected' in html
    assert _count(services, CivilServant, name=person) == 0
    missing = _intake(clerk, CS, **{**fields, "documents": ["id_card"]}, id_number=good_id)
    assert missing.status_code == 400 and "缺少必需的材料" in missing.get_data(as_text=True) and "单位介绍信" in \
        missing.get_data(as_text=True)
    assert _count(services, CivilServant, name=person) == 0
    done = _intake(clerk, CS, **fields, id_number=good_id)
    assert done.status_code == 303, done.get_data(as_text=True)[-1500:]
    rid = int(done.headers["Location"].rsplit("/", 1)[1])
    detail = clerk.get(f"/console/requests/{rid}").get_data(as_text=True)
    assert 'id="documents-received"' in detail and "申请人身份证" in detail and person in detail
    assert 'id="state">已提交' in detail
    # the registry shows the person, the unit and the request; the detail links the request
    people = clerk.get(f"/console/people?q={person}").get_data(as_text=True)
    pid = int(re.search(r'id="person-(\d+)"', people).group(1))
    shown = clerk.get(f"/console/people/{pid}").get_data(as_text=True)
    assert good_id in shown and "手机 13800138000" in shown and f"/console/requests/{rid}" in shown
    assert unit["name"] in shown
    # found by the last digits of the 身份证号 too; an auditor sees it masked
    assert f'id="person-{pid}"' in clerk.get(f"/console/people?q={good_id[-6:]}").get_data(as_text=True)
    # a second certificate for the registered person: the person page leads to the form filled in
    assert f"/console/intake?type={CS}&amp;person_id={pid}" in shown
    prefilled = clerk.get(f"/console/intake?type={CS}&person_id={pid}").get_data(as_text=True)
    assert f'value="{good_id}"' in prefilled and f'value="{person}"' in prefilled
    again = _intake(clerk, CS, **{**fields, "sign_csr": _csr(person)}, id_number=good_id)
    assert again.status_code == 303 and _count(services, CivilServant, id_number=good_id) == 1
    assert len(re.findall(r'href="/console/requests/\d+"', clerk.get(f"/console/people/{pid}").get_data(as_text=True))) >= 2
    auditor, _ = _client(app, services, ["auditor"])
    masked = auditor.get(f"/console/people/{pid}").get_data(as_text=True)
    assert good_id not in masked and good_id[:6] + "********" + good_id[-4:] in masked
    assert auditor.get("/console/intake").status_code == 403


def test_intake_new_unit_is_atomic(app, services):
    """A new unit registered at the counter with a CSR whose subject names another unit: refused (409/400) and
    the unit is not left behind; with the right CSR the unit and its request are both there."""
    clerk, _ = _client(app, services, ["ra_operator"])
    name, code = f"测试县财政局{helpers.tag()}", helpers.uscc()
    fields = {"unit_mode": "new", "unit_name": name, "uscc": code, "legal_representative": "赵六",
              "documents": ["business_licence", "agent_id_card", "authorisation"]}
    wrong = _csr("另一个单位")
    refused = _intake(clerk, "unit", **fields, sign_csr=wrong)
    assert refused.status_code == 400 and 'id="intake-message"' in refused.get_data(as_text=True)
    assert f'value="{code}"' in refused.get_data(as_text=True)
    assert _count(services, Unit, uscc=code) == 0
    bad_code = _intake(clerk, "unit", **{**fields, "uscc": code[:17] + ("0" if code[17] != "0" else "1")},
                       sign_csr=wrong)
    assert bad_code.status_code == 400 and 'id="error-uscc"' in bad_code.get_data(as_text=True)
    right = _csr(name)
    done = _intake(clerk, "unit", **fields, sign_csr=right)
    assert done.status_code == 303
    assert _count(services, Unit, uscc=code) == 1
    units = clerk.get(f"/console/units?q={code}").get_data(as_text=True)
    uid = int(re.search(r'id="unit-(\d+)"', units).group(1))
    detail = clerk.get(f"/console/units/{uid}").get_data(as_text=True)
    assert name in detail and "赵六" in detail and done.headers["Location"].rsplit("/", 1)[1] in detail


def test_intake_server(app, services):
    clerk, _ = _client(app, services, ["ra_operator"])
    unit = _unit(services)
    host = helpers.host()
    fields = {"unit_mode": "existing", "unit_id": str(unit["id"]), "host_name": host,
              "dns_names": f"www.{host}, api.{host}", "ip_addresses": helpers.ipv4(),
              "documents": ["business_licence", "authorisation", "domain_proof"],
              "sign_csr": _csr(host)}
    bad = _intake(clerk, "server", **{**fields, "dns_names": "bad_name!.example"})
    assert bad.status_code == 400 and 'id="error-dns_names"' in bad.get_data(as_text=True)
    assert _count(services, Server, host_name=host) == 0
    # the CSR uploaded as a file, in DER as some USB-key middleware saves it
    der = tongsuo_sm2_csr(tongsuo_sm2_key(), {"common_name": host})
    upload = {k: v for k, v in fields.items() if k != "sign_csr"}
    done = _intake(clerk, "server", **upload, sign_csr_file=(io.BytesIO(der), "server.csr"))
    assert done.status_code == 303 and _count(services, Server, host_name=host) == 1
    assert f"www.{host}" in clerk.get(f"/console/units/{unit['id']}").get_data(as_text=True)


def _roster_post(client, data: bytes, filename: str, mode: str, unit_id=""):
    token = csrf_of(client.get("/console/roster").get_data(as_text=True))
    return client.post("/console/roster", content_type="multipart/form-data", data={
        "csrf_token": token, "mode": mode, "unit_id": str(unit_id), "roster": (io.BytesIO(data), filename)})


def test_roster_csv_all_or_nothing(app, services):
    clerk, _ = _client(app, services, ["ra_operator"])
    unit = _unit(services)
    people = [(f"张{secrets.token_hex(2)}", helpers.id_number()) for _ in range(3)]
    lines = ["姓名,身份证号,部门,职务,手机,邮箱"] + [f"{n},{i},办公室,科员,1390000000{k},p{k}@example.cn"
                                          for k, (n, i) in enumerate(people)]
    bad = lines + [f"王{secrets.token_hex(2)},110101199001011234,办公室,科员,12345,x@example.cn"]
    refused = _roster_post(clerk, "\n".join(bad).encode("gb18030"), "名册.csv", "import", unit["id"])
    html = refused.get_data(as_text=True)
    assert refused.status_code == 400 and "名册有错误，未写入任何数据" in html
    assert re.search(r'id="count-failed">1<', html) and re.search(r'id="count-created">3<', html)
    assert "不是 11 位大陆手机号" in html or "identity number" in html
    assert all(_count(services, CivilServant, id_number=i) == 0 for _, i in people)      # nothing half-written
    checked = _roster_post(clerk, "\n".join(lines).encode("utf-8-sig"), "名册.csv", "check", unit["id"])
    assert checked.status_code == 200 and "检查通过" in checked.get_data(as_text=True)
    assert all(_count(services, CivilServant, id_number=i) == 0 for _, i in people)
    done = _roster_post(clerk, "\n".join(lines).encode("utf-8"), "名册.csv", "import", unit["id"])
    assert done.status_code == 200 and "已导入" in done.get_data(as_text=True)
    assert all(_count(services, CivilServant, id_number=i, unit_id=unit["id"]) == 1 for _, i in people)
    again = _roster_post(clerk, "\n".join(lines).encode("utf-8"), "名册.csv", "import", unit["id"])
    assert re.search(r'id="count-existing">3<', again.get_data(as_text=True))
    no_unit = _roster_post(clerk, "\n".join(lines).encode("utf-8"), "名册.csv", "check")
    assert no_unit.status_code == 400 and "本行没有单位" in no_unit.get_data(as_text=True)
    headerless = _roster_post(clerk, "a,b\n1,2".encode(), "x.csv", "check", unit["id"])
    assert headerless.status_code == 400 and "姓名" in headerless.get_data(as_text=True)


def test_roster_xlsx_registers_new_units_by_credit_code(app, services):
    import openpyxl
    clerk, _ = _client(app, services, ["ra_admin"])
    unit_name, code = f"测试区教育局{helpers.tag()}", helpers.uscc()
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["姓名", "身份证号", "单位", "统一社会信用代码", "法定代表人", "部门", "手机"])
    rows = [(f"刘{secrets.token_hex(2)}", helpers.id_number()) for _ in range(2)]
    for n, i in rows:
        sheet.append([n, i, unit_name, code, "钱七", "教研室", 13912345678])       # a number cell, as Excel keeps it
    out = io.BytesIO()
    book.save(out)
    done = _roster_post(clerk, out.getvalue(), "roster.xlsx", "import")
    assert done.status_code == 200, done.get_data(as_text=True)[-2000:]
    assert re.search(r'id="count-created">2<', done.get_data(as_text=True))
    assert _count(services, Unit, uscc=code) == 1
    with services.db() as session:
        unit_id = session.scalar(select(Unit.id).where(Unit.uscc == code))
        contacts = set(session.scalars(select(CivilServant.contact).where(CivilServant.unit_id == unit_id)))
    assert contacts == {"手机 13912345678"}


def test_roster_checks_without_the_writer_lock_and_a_concurrent_registration_writes_nothing(services, monkeypatch):
    """批量导入 of many rows holds no write transaction while the rows are checked: another officer registers
    someone meanwhile at once (on SQLite the writer lock is free; the old import held it for the whole file). That
    person is one of the roster's: the import then writes nothing and says which row (all or nothing kept), and
    the same roster imports once checked again (that row 已登记). Audit rows as ``workflow`` writes them."""
    import threading
    from audit.trail import AuditEvent
    from racentre.console import roster
    from ra.workflow import Actor, add_civil_servant
    from store.db import transaction
    unit = _unit(services)
    people = [(f"周{i:03d}{helpers.tag()}", helpers.id_number()) for i in range(300)]
    people = list(dict(((i, (n, i)) for n, i in people)).values())        # distinct identity numbers
    data = "\n".join(["姓名,身份证号,部门"] + [f"{n},{i},办公室" for n, i in people]).encode()
    racer_name, racer_id = people[7]
    done = threading.Event()
    original, calls = roster._contact, []

    def register_meanwhile():
        with transaction(services.db) as session:
            add_civil_servant(session, Actor("other-officer", "ra_operator"), name=racer_name, id_number=racer_id,
                              unit_id=unit["id"])
        done.set()

    def contact_then_race(row):
        calls.append(1)
        if len(calls) == 150:          # half-way through the checks: another officer's write must not wait
            racer = threading.Thread(target=register_meanwhile)
            racer.start()
            racer.join(timeout=20)
            assert done.is_set(), "a writer waited for the roster's checks"
        return original(row)

    monkeypatch.setattr(roster, "_contact", contact_then_race)
    actor = Actor(f"clerk-{helpers.tag()}", "ra_operator")
    outcomes, written = roster.run(services.db, actor, data, default_unit_id=unit["id"])
    assert done.is_set() and not written
    raced = [o for o in outcomes if o.result == "failed"]
    assert [(o.row, o.message) for o in raced] == [(9, "检查期间此人或其单位已被他人登记：请重新检查")]
    assert _count(services, CivilServant, unit_id=unit["id"]) == 1                   # only the other officer's
    monkeypatch.setattr(roster, "_contact", original)
    outcomes, written = roster.run(services.db, actor, data, default_unit_id=unit["id"])
    assert written and [o.result for o in outcomes].count("existing") == 1
    assert _count(services, CivilServant, unit_id=unit["id"]) == len(people)
    with services.db() as session:
        audited = session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.actor == actor.name, AuditEvent.action == "ra.civil_servant.add"))
        suffixes = {e.detail["id_number_suffix"] for e in session.scalars(select(AuditEvent).where(
            AuditEvent.actor == actor.name).limit(5))}
    assert audited == len(people) - 1 and all(len(x) == 4 for x in suffixes)


@pytest.fixture(scope="module")
def seal_for(app, services):
    """An active seal of a unit whose signing key is in the HSM, usable by a new RA officer."""
    km = services.key_manager
    # the TSA units' keys and certificates, as `racentre setup` makes them (seals are timestamped)
    issue_tsa = services.site.tsa_issuer()
    for unit_name, unit_config in services.config.tsa.unit_configs().items():
        spki = km.ensure_key_pair(unit_config.key, algorithm(unit_config.algorithm).key_algorithm)
        if services.site.tsa_certificates(unit_name, spki) is None:
            issue_tsa(spki, unit_name)
            services.tsa.retry_now()      # as racentre setup does: a page that asked the TSA before is not stuck
    tag = secrets.token_hex(3)
    unit = f"签章测试单位{tag}"
    # the unit's sealing key in the HSM, certified by the site's own CA (PDF seals are PAdES B-LT: the chain
    # must validate) with the unit as its organisation (a seal's certificate belongs to the seal's unit)
    label = f"desk-unit-{tag}"
    spki = km.ensure_key_pair(label, "sm2")
    issued = services.ca.issue(IssueRequest(request_id=f"desk-seal-{tag}", profile="unit", public_key_info=spki,
                                            ca=services.ca.issuing_ca_for(spki).name,
                                            subject=services.ca.config.subject(unit, unit),
                                            identity=((OID.UNIFIED_SOCIAL_CREDIT_CODE, helpers.uscc()),)))
    client, name = _client(app, services, ["ra_officer"])
    from seal.registry import Signer, signer_algorithm
    assert client.get("/console/seals").status_code == 200           # the seal service is built on first use
    registry = app.extensions["racentre.seal"].registry
    record = registry.make_seal(actor="setup", role="ra_admin", unit=unit, name=f"{unit}公章", seal_type="official",
                                picture=png_bytes(), width_mm=40, height_mm=40, valid_days=30,
                                signers=[Signer(label, issued.certificate, signer_algorithm(issued.certificate))],
                                users=(name,))
    return client, record


def _sketch_red(uri: str) -> tuple[Image.Image, list[tuple[int, int]]]:
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB")
    # the picture's ring (220,0,0), scaled down and so blended with the white page; the box outline is (200,0,0)
    red = [(x, y) for x in range(image.width) for y in range(image.height)
           if (p := image.getpixel((x, y))) != (200, 0, 0) and p[0] > p[1] + 40]
    return image, red


def test_seal_preview_then_seal_then_verify(app, services, seal_for):
    client, seal = seal_for
    page = client.get("/console/seals/sign").get_data(as_text=True)
    assert seal.name in page and 'id="seal-preview"' in page
    token = csrf_of(page)
    doc = make_pdf(2)
    preview = client.post("/console/seals/sign", content_type="multipart/form-data", data={
        "csrf_token": token, "document": (io.BytesIO(doc), "合同.pdf"), "seal_id": str(seal.id), "page": "2",
        "x_mm": "100", "y_mm": "50", "action": "preview"})
    html = preview.get_data(as_text=True)
    assert preview.status_code == 200 and 'id="seal-preview-image"' in html, html[-1500:]
    # A4 page 210x297 mm, 360 px wide: the seal's picture (its red ring) lies inside the box drawn at
    # x=100..140 mm, y from the top = 297-50-40 = 207..247 mm; none of it elsewhere
    uri = re.search(r'src="(data:image/png;base64,[^"]+)" alt="[^"]*" id="seal-preview-image"', html).group(1)
    image, red = _sketch_red(uri)
    scale = 360 / 210
    assert image.size == (360, round(297 * scale)) and red
    assert all(100 * scale - 1 <= x <= 140 * scale + 1 and 207 * scale - 1 <= y <= 247 * scale + 1 for x, y in red)
    assert "x=100.0, y=207.0" in html
    # the confirm step carries the document; sealing downloads it
    b64 = re.search(r'name="document_b64" value="([^"]+)"', html).group(1)
    sealed = client.post("/console/seals/sign", data={
        "csrf_token": token, "document_b64": b64, "filename": "合同.pdf", "seal_id": str(seal.id), "page": "2",
        "x_mm": "100", "y_mm": "50", "action": "seal"}, content_type="multipart/form-data")
    assert sealed.status_code == 200 and sealed.mimetype == "application/pdf", sealed.get_data(as_text=True)[-800:]
    assert "sealed.pdf" in sealed.headers["Content-Disposition"] and sealed.data.startswith(doc[:8])
    report = client.post("/console/seals/verify", content_type="multipart/form-data", data={
        "csrf_token": token, "document": (io.BytesIO(sealed.data), "sealed.pdf")}).get_data(as_text=True)
    assert 'id="verify-report"' in report and 'id="verify-page-2"' in report and "#1" in report
    # the signing time in the console's zone (Beijing by default), to the second, not the service's ISO UTC
    shown_time = re.search(r'<td class="signing-time">([^<]*)<br>', report).group(1)
    at = dt.datetime.strptime(shown_time, "%Y-%m-%d %H:%M:%S").replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    assert abs((at - dt.datetime.now(dt.timezone.utc)).total_seconds()) < 600, shown_time
    shown = re.search(r'src="(data:image/png;base64,[^"]+)" alt="[^"]*" class="page-sketch" id="verify-page-2"', report)
    image = Image.open(io.BytesIO(base64.b64decode(shown.group(1).split(",", 1)[1]))).convert("RGB")
    assert image.getpixel((round(120 * scale), round(207 * scale))) == (200, 0, 0)      # the box's top edge
    assert client.get(f"/console/seals/{seal.id}/picture").data == png_bytes()
    assert f'src="/console/seals/{seal.id}/picture"' in client.get("/console/seals").get_data(as_text=True)


def test_seal_preview_ofd_anchor_and_refusals(app, services, seal_for):
    client, seal = seal_for
    token = csrf_of(client.get("/console/seals/sign").get_data(as_text=True))
    doc = make_ofd("合同编号 2026-017 甲方签章处")
    preview = client.post("/console/seals/sign", content_type="multipart/form-data", data={
        "csrf_token": token, "document": (io.BytesIO(doc), "合同.ofd"), "seal_id": str(seal.id),
        "anchor": "甲方签章处", "action": "preview"})
    assert preview.status_code == 200 and 'id="seal-preview-image"' in preview.get_data(as_text=True)
    missing = client.post("/console/seals/sign", content_type="multipart/form-data", data={
        "csrf_token": token, "document": (io.BytesIO(doc), "合同.ofd"), "seal_id": str(seal.id),
        "anchor": "没有这段文字", "action": "preview"})
    assert missing.status_code == 400
    other, _ = _client(app, services, ["ra_officer"])                 # not authorised to use the seal
    other_token = csrf_of(other.get("/console/seals/sign").get_data(as_text=True))
    for action in ("preview", "seal"):
        refused = other.post("/console/seals/sign", content_type="multipart/form-data", data={
            "csrf_token": other_token, "document": (io.BytesIO(doc), "合同.ofd"), "seal_id": str(seal.id),
            "action": action})
        assert refused.status_code in (400, 403), (action, refused.status_code)
    no_token = client.post("/console/seals/sign", content_type="multipart/form-data", data={
        "document": (io.BytesIO(doc), "a.ofd"), "seal_id": str(seal.id), "action": "seal"})
    assert no_token.status_code == 403


def test_background_import_job_reads_chinese_headers_too():
    """The resumable import job (/console/jobs/import) understands the same headers as 批量导入."""
    from racentre.console import jobs
    number = helpers.id_number()
    rows = jobs.parse_roster(f"姓名,身份证号,部门,职务\n王芳,{number},办公室,科员\n".encode("gb18030"))
    assert rows == [{"name": "王芳", "id_number": number, "department": "办公室", "position": "科员", "contact": None}]
