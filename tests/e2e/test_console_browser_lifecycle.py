"""Issue 17's certificate lifecycle in a real headless Chromium (1366×768) against `racentre serve`, each step as
the role that does it: an officer asks for 冻结 from the certificate page, an operator vets, a second officer
approves and the page says 已冻结 (OCSP says certificateHold); 解冻 the same way and the page says 有效 again;
an operator opens 换发 from the certificate page; the 即将过期 page lists the certificate with its CSV link. The
buttons are on screen at 1366×768; no CSP violations."""
from __future__ import annotations

import urllib.request

import pytest
from asn1crypto import ocsp
from sqlalchemy import create_engine, text

from tests.e2e.test_console_browser import _csp_violations, _login, browser, served_site, shots  # noqa: F401
from tests.e2e.test_console_browser_traps import _click_and_wait
from tests.unit.ca_bridge.helpers import ocsp_request

from selenium.webdriver.common.by import By  # noqa: E402  (after the module-level skip above)

SETUP = """
import json
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
clerk = Actor("operator-setup", "ra_operator")
unit, _ = ra.add_unit(clerk, name="冻结测试局", uscc=helpers.uscc(), legal_representative="王五")
req = ra.submit(Actor("applicant-life", "applicant"), type="unit", subject_id=unit["id"],
                sign_csr=tongsuo_sm2_csr(tongsuo_sm2_key(), {"common_name": unit["name"]}))
ra.vet(clerk, req["id"], documents_checked=True)
ra.approve(Actor("officer-setup-a", "ra_officer"), req["id"])
cert = ra.approve(Actor("officer-setup-b", "ra_officer"), req["id"])["certificates"][0]
issuer = s.ca.directory.get(cert["ca"]).certificate.hex()
# a one-time code is good for one login: one account per login below
people = {who: officer(s, [role], password=True) for who, role in (
    ("asker", "ra_officer"), ("vetter", "ra_operator"), ("approver", "ra_officer"),
    ("asker2", "ra_officer"), ("vetter2", "ra_operator"), ("approver2", "ra_officer"), ("renewer", "ra_operator"))}
print(json.dumps({"people": people, "rid": req["id"], "cert": [cert["ca"], cert["serial"]], "issuer": issuer}))
s.close()
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory, softtoken_module):
    tmp = tmp_path_factory.mktemp("browser-lifecycle")
    with served_site(tmp, "browser-lifecycle", SETUP) as (base, data):
        engine = create_engine(f"sqlite:///{tmp}/db.sqlite")
        yield base, data, engine
        engine.dispose()


def _ocsp(base, data) -> str:
    ca_name, serial = data["cert"]
    body = ocsp_request(bytes.fromhex(data["issuer"]), [int(serial, 16)], "sha256")
    asked = urllib.request.Request(f"{base}/ocsp/{ca_name}", data=body,
                                   headers={"Content-Type": "application/ocsp-request"})
    with urllib.request.urlopen(asked, timeout=20) as answer:
        single = ocsp.OCSPResponse.load(answer.read()).basic_ocsp_response["tbs_response_data"]["responses"][0]
    status = single["cert_status"]
    return status.chosen["revocation_reason"].native if status.name == "revoked" else status.name


def _on_screen(driver, element_id: str):
    button = driver.find_element(By.ID, element_id)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
    assert button.is_displayed() and button.rect["x"] + button.rect["width"] <= 1366, element_id
    return button


def _hold_cycle(browser, base, data, engine, action: str, people: tuple[str, str, str], shown: str):
    """``action`` (suspend/resume) asked from the certificate page, vetted, approved by a second officer."""
    ca_name, serial = data["cert"]
    page = f"{base}/console/certificates/{ca_name}/{serial}"
    asker, vetter, approver = (data["people"][p] for p in people)
    _login(browser, base, asker)
    browser.get(page)
    _on_screen(browser, f"{action}-cert")
    _click_and_wait(browser, f"{action}-cert", confirm=True)
    rid = int(browser.current_url.rsplit("/", 1)[1])
    assert browser.find_element(By.ID, "state").text == "已提交"
    assert ("冻结" if action == "suspend" else "解冻") in browser.find_element(By.ID, "request-type").text
    _login(browser, base, vetter)
    browser.get(f"{base}/console/requests/{rid}")
    browser.find_element(By.ID, "documents-checked").click()
    _click_and_wait(browser, "vet")
    _login(browser, base, approver)
    browser.get(f"{base}/console/requests/{rid}")
    _on_screen(browser, "approve")
    _click_and_wait(browser, "approve", confirm=True)
    assert browser.find_element(By.ID, "state").text == ("已冻结" if action == "suspend" else "已解冻")
    browser.get(page)
    assert browser.find_element(By.ID, "cert-status").text == shown
    return rid


def test_suspend_and_resume_in_the_browser(site, browser, shots):  # noqa: F811
    base, data, engine = site
    browser.set_window_size(1366, 768)
    _hold_cycle(browser, base, data, engine, "suspend", ("asker", "vetter", "approver"), "已冻结")
    browser.save_screenshot(str(shots / "certificate-on-hold.png"))
    assert _ocsp(base, data) == "certificate_hold"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM ra_certificate WHERE request_id = :i"),
                            {"i": data["rid"]}).scalars().all() == ["hold"]
    _hold_cycle(browser, base, data, engine, "resume", ("asker2", "vetter2", "approver2"), "有效")
    assert _ocsp(base, data) == "good"
    with engine.connect() as conn:
        assert conn.execute(text("SELECT status FROM ra_certificate WHERE request_id = :i"),
                            {"i": data["rid"]}).scalars().all() == ["good"]
        actions = conn.execute(text("SELECT action FROM audit_event WHERE action IN "
                                    "('ra.certificate.hold', 'ra.certificate.release')")).scalars().all()
    assert sorted(actions) == ["ra.certificate.hold", "ra.certificate.release"]
    assert _csp_violations(browser) == []


def test_renewal_from_the_certificate_page_and_the_expiry_page(site, browser, shots):  # noqa: F811
    base, data, engine = site
    ca_name, serial = data["cert"]
    browser.set_window_size(1366, 768)
    _login(browser, base, data["people"]["renewer"])
    browser.get(f"{base}/console/certificates/{ca_name}/{serial}")
    _on_screen(browser, "renew-cert")
    _click_and_wait(browser, "renew-cert")
    assert "冻结测试局" in browser.find_element(By.ID, "renew-subject").text
    assert "已被替代" in browser.find_element(By.ID, "renew-note").text
    browser.save_screenshot(str(shots / "renewal.png"))
    _on_screen(browser, "renew-submit")
    _click_and_wait(browser, "renew-submit", confirm=True)
    rid = int(browser.current_url.rsplit("/", 1)[1])
    assert browser.find_element(By.ID, "state").text == "已提交"
    assert "换发" in browser.find_element(By.ID, "request-type").text
    with engine.connect() as conn:
        kind, target = conn.execute(text("SELECT kind, target_request_id FROM ra_request WHERE id = :i"),
                                    {"i": rid}).one()
    assert (kind, target) == ("renewal", data["rid"])
    browser.get(f"{base}/console/expiring?days=3660")
    rows = browser.find_elements(By.CSS_SELECTOR, "#expiring-list .expiring-row")
    assert any(serial.upper() in r.text for r in rows)
    assert browser.find_element(By.ID, "expiring-csv").is_displayed()
    assert "3660 天内到期的有效证书" in browser.find_element(By.ID, "expiring-summary").text
    browser.save_screenshot(str(shots / "expiring.png"))
    assert _csp_violations(browser) == []
