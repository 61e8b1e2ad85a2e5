"""Issue 17's certificate lifecycle in a real headless Chromium (1366×768) against `racentre serve`, each step as
the role that does it: an officer asks for 冻结 from the certificate page, an operator vets, a second officer
approves and the page says 已冻结 (OCSP says certificateHold); 解冻 the same way and the page says 有效 again;
an operator opens 换发 from the certificate page; the 即将过期 page lists the certificate with its CSV link. The
buttons are on screen at 1366×768; no CSP violations."""
from __future__ import annotations

import time
import urllib.request
from pathlib import Path

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
# a civil servant's dual pair, the encryption key made by the KMC (its envelope: 制证); the subscriber's signing key
person, _ = ra.add_civil_servant(clerk, name="钱信封", id_number=helpers.id_number(), unit_id=unit["id"])
sign_key = tongsuo_sm2_key()
dual = ra.submit(Actor("applicant-life", "applicant"), type="civil-servant-dual", subject_id=person["id"],
                 sign_csr=tongsuo_sm2_csr(sign_key, {"common_name": "钱信封"}))
ra.vet(clerk, dual["id"], documents_checked=True)
ra.approve(Actor("officer-setup-a", "ra_officer"), dual["id"])
enc = [c for c in ra.approve(Actor("officer-setup-b", "ra_officer"), dual["id"])["certificates"] if c["usage"] == "enc"][0]
# a one-time code is good for one login: one account per login below
people = {who: officer(s, [role], password=True) for who, role in (
    ("asker", "ra_officer"), ("vetter", "ra_operator"), ("approver", "ra_officer"),
    ("asker2", "ra_officer"), ("vetter2", "ra_operator"), ("approver2", "ra_officer"), ("renewer", "ra_operator"),
    ("maker", "ra_officer"), ("auditor", "auditor"))}
print(json.dumps({"people": people, "rid": req["id"], "cert": [cert["ca"], cert["serial"]], "issuer": issuer,
                  "enc": [enc["ca"], enc["serial"]], "dual_rid": dual["id"],
                  "sign_d": format(sign_key.private_numbers().private_value, "x")}))
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


def _downloaded(directory: Path, before: set[str], timeout: float = 20) -> Path:
    """The file Chromium finished writing into ``directory`` since ``before`` (no .crdownload left)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        new = [p for p in directory.iterdir() if p.name not in before]
        if new and not any(p.suffix == ".crdownload" for p in new):
            return new[0]
        time.sleep(0.2)
    raise AssertionError(f"no download in {directory}: {sorted(p.name for p in directory.iterdir())}")


def _status_of(driver, url: str) -> int:
    """The HTTP status of a GET of ``url`` with this browser session's cookies (fetch from the page)."""
    return driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'}).then(r => done(r.status), e => done(String(e)));", url)


def test_sm2_envelope_downloaded_by_an_officer_opens_to_the_encryption_key(site, browser, tmp_path):  # noqa: F811
    """制证 in Chromium: an officer clicks the two envelope links on the encryption certificate's page (visible at
    1366×768); the files Chromium saves are the GB/T 35276 SM2EnvelopedKey and the GM/T 0010
    SignedAndEnvelopedData, and both open with the subscriber's signing key, by code independent of ours (SM2
    decryption with the C3 check in tests.unit.kms.subscriber, SM4 from pyca), to the private key of the
    certificate's public key. An auditor sees no link and gets 403; each download is audited."""
    from asn1crypto import x509
    from pkicore.envelope import parse_signed_and_enveloped, parse_sm2_enveloped_key
    from tests.unit.kms.subscriber import mul, sm2_decrypt, sm4_ecb_decrypt
    base, data, engine = site
    ca_name, serial = data["enc"]
    page = f"{base}/console/certificates/{ca_name}/{serial}"
    d_sub = int(data["sign_d"], 16)
    with engine.connect() as conn:
        der = conn.execute(text("SELECT certificate FROM ra_certificate WHERE ca = :c AND serial = :s"),
                           {"c": ca_name, "s": serial}).scalar_one()
    point = x509.Certificate.load(der).public_key["public_key"].native
    q = (int.from_bytes(point[1:33], "big"), int.from_bytes(point[33:], "big"))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.set_window_size(1366, 768)
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    _login(browser, base, data["people"]["maker"])
    browser.get(page)
    opened = {}
    for link, suffix in (("download-envelope", "sm2env.der"), ("download-envelope-p7", "envelope.p7b")):
        before = {p.name for p in downloads.iterdir()}
        _on_screen(browser, link).click()
        saved = _downloaded(downloads, before)
        assert saved.name == f"{ca_name}-{serial}-{suffix}", saved.name
        opened[suffix] = saved.read_bytes()
    envelope = parse_sm2_enveloped_key(opened["sm2env.der"])
    sm4_key = sm2_decrypt(d_sub, envelope.sym_encrypted_key)
    assert mul(int.from_bytes(sm4_ecb_decrypt(sm4_key, envelope.encrypted_private_key), "big")) == q
    signed = parse_signed_and_enveloped(opened["envelope.p7b"])
    sm4_key = sm2_decrypt(d_sub, signed.encrypted_key)
    assert mul(int.from_bytes(sm4_ecb_decrypt(sm4_key, signed.encrypted_content), "big")) == q
    assert _status_of(browser, f"{page}/envelope?format=sm2env") == 200
    _login(browser, base, data["people"]["auditor"])
    browser.get(page)
    assert browser.find_elements(By.ID, "download-envelope") == []
    assert _status_of(browser, f"{page}/envelope?format=sm2env") == 403
    assert _status_of(browser, f"{page}/envelope?format=p7") == 403
    with engine.connect() as conn:
        who = conn.execute(text("SELECT actor FROM audit_event WHERE action = 'console.key_envelope.download' "
                                "AND target_id = :t"), {"t": f"{ca_name}/{serial}"}).scalars().all()
    assert who == [data["people"]["maker"][0]] * 3
    assert _csp_violations(browser) == []
