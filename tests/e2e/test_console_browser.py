"""The console in a real headless Chromium (Debian chromium + chromium-driver through Selenium, no
downloads) against a real `racentre serve` with a fresh software token: officer A logs in with
password + TOTP and approves a request, officer B completes four-eyes, the certificate appears; the
auditor sees both approvals in the audit browser and verifies the chain. No CSP violations in the
browser log. Screenshots of the main pages go to $RACENTRE_SCREENSHOTS or tests/artifacts/screenshots."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_python
from tests.pgschema import migrated

if not (Path("/usr/bin/chromium").is_file() and Path("/usr/bin/chromedriver").is_file()):
    pytest.skip("Debian chromium and chromium-driver are not installed (scripts/setup.sh installs them)",
                allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

from racentre.demo import screenshots  # noqa: E402
from tests.unit.console.site import PASSWORD  # noqa: E402

SETUP = """
import json
from racentre.config import load_config
from racentre.services import Services
from tests.unit.console.site import officer, vetted_unit_request
s = Services(load_config())
s.site.init(kinds=("sm2",))
people = {who: officer(s, roles, password=True) for who, roles in
          (("a", ["ra_officer"]), ("b", ["ra_officer"]), ("auditor", ["auditor", "ra_admin"]))}
print(json.dumps({"people": people, "rid": vetted_unit_request(s)}))
s.close()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def served_site(tmp: Path, token: str, setup: str):
    """A site of its own in ``tmp`` (SQLite, a fresh software token): ``setup`` runs in a child
    interpreter and prints one JSON line; then `racentre serve` runs until the block ends. Yields
    (base URL, the JSON data). On the way out the service's output must name no PIN or password."""
    (tmp / "softtoken").mkdir()
    (tmp / "softtoken" / "softtoken.conf").write_text("pbkdf2_iterations = 1000\n")
    (tmp / "racentre.toml").write_text(
        f'[hsm]\ntoken = "{token}"\n[softtoken]\ndir = "softtoken"\nauto_init = true\n'
        f'[database]\nurl = "{migrated(f"sqlite:///{tmp}/db.sqlite")}"\n'
        '[service]\npublic_url = "http://browser.test"\n[tsa]\npolicy = "1.2.3.4.1"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("RACENTRE_")}
    env.update(RACENTRE_CONFIG=str(tmp / "racentre.toml"), RACENTRE_HSM_PIN="browser-pin",
               RACENTRE_SOFTTOKEN_SO_PIN="browser-so-pin", RACENTRE_SOFTTOKEN_DIR=str(tmp / "softtoken"),
               RACENTRE_TSA_REQUIRE_SYNC="false")      # this box's kernel clock is unsynchronised
    done = run_python(setup, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(done.stdout.strip().splitlines()[-1])
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "racentre.cli", "serve", "--port", str(port)], env=env,
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/hsm/health", timeout=5).read()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()[-3000:]
            time.sleep(0.3)
    yield base, data
    proc.terminate()
    out = proc.communicate(timeout=30)[0].decode()
    assert "browser-pin" not in out and PASSWORD not in out


@pytest.fixture(scope="module")
def site(tmp_path_factory, softtoken_module):
    with served_site(tmp_path_factory.mktemp("browser"), "browser-test", SETUP) as served:
        yield served


@pytest.fixture(scope="module")
def shots():
    path = Path(os.environ.get("RACENTRE_SCREENSHOTS") or ROOT / "tests" / "artifacts" / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    os.environ.setdefault("SE_OFFLINE", "1")            # Selenium Manager must not try to download
    profile = tmp_path_factory.mktemp("chromium-profile")
    driver = screenshots.chromium(profile)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _login(driver, base, person):
    name, secret = person
    driver.delete_all_cookies()
    screenshots.login(driver, base, name, PASSWORD, secret)
    WebDriverWait(driver, 10).until(ec.presence_of_element_located((By.ID, "whoami")))
    assert name in driver.find_element(By.ID, "whoami").text


def _approve(driver, base, rid):
    driver.get(f"{base}/console/requests?state=vetted")
    driver.find_element(By.ID, f"request-{rid}").click()
    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.ID, "approve").click()
    WebDriverWait(driver, 5).until(ec.alert_is_present()).accept()      # data-confirm, from console.js
    WebDriverWait(driver, 10).until(ec.staleness_of(page))


def _csp_violations(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]


def test_four_eyes_in_the_browser(site, browser, shots):
    base, data = site
    rid, people = data["rid"], data["people"]
    browser.get(f"{base}/console/login")
    browser.save_screenshot(str(shots / "login.png"))
    _login(browser, base, people["a"])
    browser.save_screenshot(str(shots / "dashboard.png"))
    browser.get(f"{base}/console/requests?state=vetted")
    browser.save_screenshot(str(shots / "requests.png"))
    _approve(browser, base, rid)
    assert "1" in browser.find_element(By.ID, "four-eyes").text and browser.find_elements(By.ID, "approve") == []
    browser.save_screenshot(str(shots / "request-one-approval.png"))
    browser.find_element(By.CSS_SELECTOR, "form[action='/console/logout'] button").click()
    WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "login-form")))

    _login(browser, base, people["b"])
    _approve(browser, base, rid)
    assert browser.find_element(By.ID, "state").text == "已签发"
    browser.save_screenshot(str(shots / "request-issued.png"))
    browser.find_element(By.CSS_SELECTOR, "a.cert-link").click()
    assert "数据资源局" in browser.find_element(By.ID, "cert-subject").text
    assert browser.find_element(By.ID, "cert-status").text == "有效"
    browser.save_screenshot(str(shots / "certificate.png"))

    _login(browser, base, people["auditor"])
    browser.get(f"{base}/console/audit?target=ra_request:{rid}")
    actions = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#audit-list td.action")]
    assert actions.count("ra.request.approve") == 2
    log_text = browser.find_element(By.ID, "audit-list").text
    assert people["a"][0] in log_text and people["b"][0] in log_text
    browser.find_element(By.ID, "verify-chain").click()
    WebDriverWait(browser, 20).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#chain-ok, #chain-broken")))
    assert browser.find_elements(By.ID, "chain-ok"), browser.find_element(By.ID, "chain-status").text
    browser.save_screenshot(str(shots / "audit.png"))
    for label, path in (("certificates", "/console/certificates"), ("seals", "/console/seals"),
                        ("recovery", "/console/recovery"), ("jobs", "/console/jobs")):
        browser.get(base + path)
        browser.save_screenshot(str(shots / f"{label}.png"))
    browser.get(f"{base}/console/?lang=en")
    assert "Dashboard" in browser.page_source
    browser.save_screenshot(str(shots / "dashboard-en.png"))
    assert _csp_violations(browser) == []
    assert len(list(shots.glob("*.png"))) >= 10
