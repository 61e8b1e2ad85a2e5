"""Issue 17's traps that lose work, in a real headless Chromium (1366×768) against `racentre serve`: 审核
stays impossible until "identity documents checked" is ticked (and the request stays submitted); 退回补正
sends a request back for correction and the operator resubmits it; a form answered by an error keeps its
input when the officer goes back to it (console.js); an officer's emergency revocation (key compromise)
revokes at once and the RA shows it. No CSP violations."""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from tests.e2e.test_console_browser import _csp_violations, _login, browser, served_site  # noqa: F401

from selenium.webdriver.common.by import By  # noqa: E402  (after the module-level skip above)
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.common.exceptions import WebDriverException  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SETUP = """
import json, secrets
from racentre.config import load_config
from racentre.services import Services
from ra.services import build_ra_service
from ra.workflow import Actor
from tests.unit.console.site import officer
from tests.unit.ra import helpers
from tests.unit.ra.csr_tools import tongsuo_sm2_csr, tongsuo_sm2_key
s = Services(load_config())
s.site.init(kinds=("sm2",))
ra = build_ra_service(s.db, s.ca)
applicant, clerk = Actor("applicant-traps", "applicant"), Actor("operator-setup", "ra_operator")
unit, _ = ra.add_unit(clerk, name="陷阱测试局", uscc=helpers.uscc(), legal_representative="王五")
req = ra.submit(applicant, type="unit", subject_id=unit["id"],
                sign_csr=tongsuo_sm2_csr(tongsuo_sm2_key(), {"common_name": unit["name"]}))
host = helpers.host()
server, _ = ra.add_server(clerk, host_name=host, unit_id=unit["id"])
issued = ra.submit(applicant, type="server", subject_id=server["id"],
                   sign_csr=tongsuo_sm2_csr(tongsuo_sm2_key(), {"common_name": host}))
ra.vet(clerk, issued["id"], documents_checked=True)
done = ra.approve(Actor("officer-setup", "ra_officer"), issued["id"])
cert = done["certificates"][0]
people = {"operator": officer(s, ["ra_operator"], password=True), "officer": officer(s, ["ra_officer"], password=True),
          "duty": officer(s, ["ra_officer"], password=True), "clerk": officer(s, ["ra_operator"], password=True)}     # a one-time code is good for one login
print(json.dumps({"people": people, "rid": req["id"], "issued": issued["id"], "cert": [cert["ca"], cert["serial"]]}))
s.close()
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory, softtoken_module):
    tmp = tmp_path_factory.mktemp("browser-traps")
    with served_site(tmp, "browser-traps", SETUP) as (base, data):
        engine = create_engine(f"sqlite:///{tmp}/db.sqlite")
        yield base, data, engine
        engine.dispose()


def _state(engine, rid: int) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT state FROM ra_request WHERE id = :i"), {"i": rid}).scalar_one()


def _gone(element):
    """The old page is gone: its root element is stale. While the new document loads, ChromeDriver may
    answer "Node with given id does not belong to the document" (an inspector error, not a
    StaleElementReferenceException): that means gone too."""
    def check(_driver):
        try:
            element.is_enabled()
            return False
        except WebDriverException:          # StaleElementReferenceException included
            return True
    return check


def _click_and_wait(driver, element_id: str, confirm: bool = False) -> None:
    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.ID, element_id).click()
    if confirm:
        WebDriverWait(driver, 5).until(ec.alert_is_present()).accept()
    WebDriverWait(driver, 20).until(_gone(page))


def test_vet_needs_the_documents_tick_then_return_and_resubmit_keeping_input(site, browser):  # noqa: F811
    base, data, engine = site
    rid = data["rid"]
    browser.set_window_size(1366, 768)
    _login(browser, base, data["people"]["operator"])
    browser.get(f"{base}/console/requests/{rid}")
    vet = browser.find_element(By.ID, "vet")
    assert vet.is_displayed()
    vet.click()                                        # not ticked: the browser does not send the form
    assert browser.find_element(By.ID, "documents-checked").get_attribute("validationMessage")
    assert _state(engine, rid) == "submitted" and browser.current_url.endswith(f"/console/requests/{rid}")
    browser.find_element(By.ID, "documents-checked").click()
    _click_and_wait(browser, "vet")
    assert browser.find_element(By.ID, "state").text == "已审核" and _state(engine, rid) == "vetted"

    _login(browser, base, data["people"]["officer"])
    browser.get(f"{base}/console/requests/{rid}")
    browser.find_element(By.ID, "return-reason").send_keys("请补充单位介绍信")
    _click_and_wait(browser, "return")
    assert browser.find_element(By.ID, "state").text == "已退回补正" and _state(engine, rid) == "returned"
    assert "请补充单位介绍信" in browser.page_source

    _login(browser, base, data["people"]["clerk"])
    browser.get(f"{base}/console/requests/{rid}")
    pasted = "-----BEGIN CERTIFICATE REQUEST-----\nnot a CSR\n-----END CERTIFICATE REQUEST-----"
    browser.find_element(By.ID, "resubmit-csr").send_keys(pasted)
    _click_and_wait(browser, "resubmit")
    assert browser.find_element(By.ID, "message").text and _state(engine, rid) == "returned"   # 400, nothing changed
    back = browser.find_element(By.LINK_TEXT, "返回")
    page = browser.find_element(By.TAG_NAME, "html")
    back.click()
    WebDriverWait(browser, 20).until(_gone(page))
    kept = browser.find_element(By.ID, "resubmit-csr").get_attribute("value")
    assert kept.replace("\r\n", "\n") == pasted                     # the officer's input came back
    browser.find_element(By.ID, "resubmit-csr").clear()
    _click_and_wait(browser, "resubmit")
    assert browser.find_element(By.ID, "state").text == "已提交" and _state(engine, rid) == "submitted"
    assert _csp_violations(browser) == []


def test_emergency_revocation_in_the_browser(site, browser):  # noqa: F811
    base, data, engine = site
    ca_name, serial = data["cert"]
    browser.set_window_size(1366, 768)
    _login(browser, base, data["people"]["duty"])
    browser.get(f"{base}/console/certificates/{ca_name}/{serial}")
    button = browser.find_element(By.ID, "emergency-revoke")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    assert button.is_displayed() and button.rect["x"] + button.rect["width"] <= 1366
    browser.find_element(By.ID, "emergency-justification").send_keys("持有人报告 USB key 遗失")
    _click_and_wait(browser, "emergency-revoke", confirm=True)
    assert browser.find_element(By.ID, "cert-status").text == "已吊销"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM ra_certificate WHERE request_id = :i"),
                            {"i": data["issued"]}).scalars().all() == ["revoked"]
        assert conn.execute(text("SELECT count(*) FROM audit_event WHERE action = 'ra.request.emergency_revoke'"
                                 " AND actor = :a"), {"a": data["people"]["duty"][0]}).scalar_one() == 1
    assert _csp_violations(browser) == []
