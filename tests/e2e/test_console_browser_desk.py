"""Issue 17's counter pages in a real headless Chromium against `racentre serve`, driven as the roles that use
them, at 768 px wide: 受理 of a civil servant (a wrong 身份证号 comes back beside its field with everything
else still filled in; corrected, the request is submitted with its documents), roster import with Chinese
headers (a bad row: nothing written; check, then import), the seal position preview and the verification
sketch; the main pages have no horizontal scroll at 768 px. No CSP violations."""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from tests.e2e.test_console_browser import _csp_violations, _login, browser, served_site, shots  # noqa: F401
from tests.e2e.test_console_browser_traps import _click_and_wait

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

SETUP = """
import json, secrets
from asn1crypto import pem
from ca_bridge.api import IssueRequest
from pkicore.oids import OID
from racentre.config import load_config
from racentre.services import Services
from ra.services import build_ra_service
from ra.workflow import Actor
from seal.registry import Signer, signer_algorithm
from racentre.site import build_seal_service
from tests.unit.console.site import officer
from tests.unit.ra import helpers
from tests.unit.ra.csr_tools import tongsuo_sm2_csr, tongsuo_sm2_key
from tests.unit.seal.sealpki import png_bytes
s = Services(load_config())
s.site.init(kinds=("sm2",))
ra = build_ra_service(s.db, s.ca)
unit, _ = ra.add_unit(Actor("setup", "ra_operator"), name="浏览器测试市人社局", uscc=helpers.uscc(), legal_representative="王五")
name = "陈晓明" + secrets.token_hex(2)
# long unbroken Latin text (an e-mail address, a department code) is what widens tables on narrow screens
ra.add_civil_servant(Actor("setup", "ra_operator"), name="长邮箱", id_number=helpers.id_number(), unit_id=unit["id"],
                     department="DEPT-" + "X" * 58, contact="邮箱 " + "a" * 60 + "@information-centre.example.gov.cn")
csr = pem.armor("CERTIFICATE REQUEST", tongsuo_sm2_csr(tongsuo_sm2_key(), {"common_name": name})).decode()
people = {"operator": officer(s, ["ra_operator"], password=True), "clerk": officer(s, ["ra_operator"], password=True),
          "officer": officer(s, ["ra_officer"], password=True), "auditor": officer(s, ["auditor"], password=True),
          "viewer": officer(s, ["ra_operator"], password=True)}     # a one-time code is good for one login
spki = s.key_manager.ensure_key_pair("browser-unit-seal", "sm2")
issued = s.ca.issue(IssueRequest(request_id="browser-seal", profile="unit", public_key_info=spki,
                                 ca=s.ca.issuing_ca_for(spki).name, subject=s.ca.config.subject(unit["name"], unit["name"]),
                                 identity=((OID.UNIFIED_SOCIAL_CREDIT_CODE, unit["uscc"]),)))
seals = build_seal_service(s.site, s)
seal = seals.registry.make_seal(actor="setup", role="ra_admin", unit=unit["name"], name="浏览器测试市人社局公章",
                                seal_type="official", picture=png_bytes(), width_mm=40, height_mm=40, valid_days=30,
                                signers=[Signer("browser-unit-seal", issued.certificate, signer_algorithm(issued.certificate))],
                                users=(people["officer"][0],))
print(json.dumps({"people": people, "unit": unit, "name": name, "id_number": helpers.id_number(), "csr": csr,
                  "roster": [[f"张{secrets.token_hex(2)}", helpers.id_number()] for _ in range(3)], "seal": seal.id}))
s.close()
"""

NARROW = (768, 1000)


@pytest.fixture(scope="module")
def site(tmp_path_factory, softtoken_module):
    tmp = tmp_path_factory.mktemp("browser-desk")
    with served_site(tmp, "browser-desk", SETUP) as (base, data):
        engine = create_engine(f"sqlite:///{tmp}/db.sqlite")
        yield base, data, engine, tmp
        engine.dispose()


def _no_sideways_scroll(driver) -> bool:
    return driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")


def _count(engine, sql: str, **params) -> int:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar_one()


def test_intake_at_768px_keeps_input_and_submits(site, browser, shots):  # noqa: F811
    base, data, engine, _ = site
    browser.set_window_size(*NARROW)
    _login(browser, base, data["people"]["operator"])
    browser.get(f"{base}/console/intake?type=civil-servant-dual")
    assert _no_sideways_scroll(browser)
    Select(browser.find_element(By.ID, "f-unit_id")).select_by_visible_text(data["unit"]["name"])
    good = data["id_number"]
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    browser.find_element(By.ID, "f-name").send_keys(data["name"])
    browser.find_element(By.ID, "f-id_number").send_keys(bad)
    browser.find_element(By.ID, "f-mobile").send_keys("13800138000")
    browser.find_element(By.ID, "doc-id_card").click()
    browser.find_element(By.ID, "doc-unit_letter").click()
    browser.execute_script("document.getElementById('f-sign_csr').value = arguments[0]", data["csr"])
    button = browser.find_element(By.ID, "submit-request")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    assert button.is_displayed() and button.rect["x"] + button.rect["width"] <= NARROW[0]
    _click_and_wait(browser, "submit-request")
    assert "身份证号" in browser.find_element(By.ID, "error-id_number").text
    # everything else is still there: name, mobile, the ticks, the unit, the CSR
    assert browser.find_element(By.ID, "f-name").get_attribute("value") == data["name"]
    assert browser.find_element(By.ID, "f-mobile").get_attribute("value") == "13800138000"
    assert browser.find_element(By.ID, "doc-id_card").is_selected()
    assert Select(browser.find_element(By.ID, "f-unit_id")).first_selected_option.text == data["unit"]["name"]
    assert "BEGIN CERTIFICATE REQUEST" in browser.find_element(By.ID, "f-sign_csr").get_attribute("value")
    assert _count(engine, "SELECT count(*) FROM ra_civil_servant WHERE name = :n", n=data["name"]) == 0
    assert _no_sideways_scroll(browser)
    browser.save_screenshot(str(shots / "intake-error-768.png"))
    field = browser.find_element(By.ID, "f-id_number")
    field.clear()
    field.send_keys(good)
    _click_and_wait(browser, "submit-request")
    assert browser.find_element(By.ID, "state").text == "已提交"
    assert "申请人身份证" in browser.find_element(By.ID, "documents-received").text
    assert _count(engine, "SELECT count(*) FROM ra_civil_servant WHERE id_number = :i", i=good) == 1
    assert _no_sideways_scroll(browser)
    assert _csp_violations(browser) == []


def test_roster_import_in_the_browser(site, browser, shots):  # noqa: F811
    base, data, engine, tmp = site
    browser.set_window_size(*NARROW)
    _login(browser, base, data["people"]["clerk"])
    rows = data["roster"]
    good = "姓名,身份证号,单位,部门,手机\n" + "".join(f"{n},{i},{data['unit']['name']},办公室,1390000000{k}\n"
                                             for k, (n, i) in enumerate(rows))
    bad = good + "李四,123,浏览器测试市人社局,办公室,\n"
    (tmp / "bad.csv").write_bytes(bad.encode("gb18030"))
    (tmp / "good.csv").write_bytes(good.encode("utf-8-sig"))
    browser.get(f"{base}/console/roster")
    browser.find_element(By.ID, "roster-file").send_keys(str(tmp / "bad.csv"))
    _click_and_wait(browser, "roster-import")
    assert "未写入任何数据" in browser.find_element(By.ID, "roster-verdict").text
    assert browser.find_element(By.ID, "count-failed").text == "1"
    assert _count(engine, "SELECT count(*) FROM ra_civil_servant WHERE id_number = :i", i=rows[0][1]) == 0
    assert _no_sideways_scroll(browser)
    browser.find_element(By.ID, "roster-file").send_keys(str(tmp / "good.csv"))
    _click_and_wait(browser, "roster-check")
    assert "检查通过" in browser.find_element(By.ID, "roster-verdict").text
    browser.find_element(By.ID, "roster-file").send_keys(str(tmp / "good.csv"))
    _click_and_wait(browser, "roster-import")
    assert "已导入" in browser.find_element(By.ID, "roster-verdict").text
    assert browser.find_element(By.ID, "count-created").text == "3"
    browser.save_screenshot(str(shots / "roster-import-768.png"))
    assert _count(engine, "SELECT count(*) FROM ra_civil_servant WHERE id_number IN (:a, :b, :c)",
                  a=rows[0][1], b=rows[1][1], c=rows[2][1]) == 3
    browser.get(f"{base}/console/people?q={rows[0][0]}")
    assert rows[0][1] in browser.find_element(By.ID, "people-list").text
    assert _csp_violations(browser) == []


def test_seal_preview_and_verification_sketch(site, browser, shots):  # noqa: F811
    from racentre.demo.samples import make_pdf
    from tests.unit.seal.sealpki import TESTDATA
    base, data, _, tmp = site
    (tmp / "contract.pdf").write_bytes(make_pdf(1))
    browser.set_window_size(*NARROW)
    _login(browser, base, data["people"]["officer"])
    browser.get(f"{base}/console/seals/sign")
    browser.find_element(By.ID, "seal-document").send_keys(str(tmp / "contract.pdf"))
    for field, value in (("seal-x", "20"), ("seal-y", "30")):
        browser.find_element(By.ID, field).clear()
        browser.find_element(By.ID, field).send_keys(value)
    _click_and_wait(browser, "seal-preview")
    image = browser.find_element(By.ID, "seal-preview-image")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) == 360
    assert image.rect["x"] + image.rect["width"] <= NARROW[0]
    assert browser.find_element(By.ID, "seal-apply").is_displayed()
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", image)
    browser.save_screenshot(str(shots / "seal-preview-768.png"))
    assert _no_sideways_scroll(browser)
    browser.get(f"{base}/console/seals/verify")
    browser.find_element(By.CSS_SELECTOR, "input[name=document]").send_keys(str(TESTDATA / "v4signed.ofd"))
    page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.CSS_SELECTOR, "#main-content button[type=submit], main form.stack button").click()
    from selenium.webdriver.support.ui import WebDriverWait
    from tests.e2e.test_console_browser_traps import _gone
    WebDriverWait(browser, 30).until(_gone(page))
    sketch = browser.find_element(By.ID, "verify-page-1")
    assert browser.execute_script("return arguments[0].naturalWidth", sketch) == 360
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", sketch)
    browser.save_screenshot(str(shots / "seal-verify-768.png"))
    assert _no_sideways_scroll(browser)
    assert _csp_violations(browser) == []


@pytest.mark.parametrize("who,paths", [
    ("viewer", ["/console/", "/console/requests?state=", "/console/certificates", "/console/people", "/console/people?q=长邮箱",
                  "/console/units", "/console/intake?type=server", "/console/roster", "/console/seals", "/console/seals/verify",
                  "/console/jobs"]),
    ("auditor", ["/console/audit", "/console/statistics", "/console/people"])])
def test_main_pages_fit_768px(site, browser, who, paths):  # noqa: F811
    base, data, _, _ = site
    browser.set_window_size(*NARROW)
    _login(browser, base, data["people"][who])
    wide = []
    for path in paths:
        browser.get(base + path)
        if not _no_sideways_scroll(browser):
            wide.append((path, browser.execute_script("return document.documentElement.scrollWidth")))
    assert wide == []
    assert _csp_violations(browser) == []
