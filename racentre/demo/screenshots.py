"""Screenshots of the console for ``racentre demo --out DIR`` (``DIR/screenshots/``) and the browser
tests: headless Debian Chromium through Selenium with explicit binary and driver paths (Selenium Manager
never downloads anything: SE_OFFLINE and an explicit Service path)."""
from __future__ import annotations

import secrets
import shutil
import socket
import tempfile
import threading
from pathlib import Path

import waitress
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from store.db import transaction
from racentre import accounts, totp
from racentre.app import build_app

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         "--window-size=1280,900", "--lang=zh-CN")
PAGES = (("dashboard", "/console/"), ("requests", "/console/requests?state="), ("certificates", "/console/certificates"),
         ("expiring", "/console/expiring?days=3660"), ("seals", "/console/seals"), ("recovery", "/console/recovery"),
         ("audit", "/console/audit?verify=1"), ("jobs", "/console/jobs"), ("people", "/console/people"),
         ("units", "/console/units"), ("roster", "/console/roster"))


def chromium(user_data_dir: str | Path) -> webdriver.Chrome:
    """Headless Chromium with a fresh profile directory (the caller removes it after ``quit()``)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


def login(driver, base_url: str, name: str, password: str, secret: str) -> None:
    driver.get(f"{base_url}/console/login")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
    driver.find_element(By.ID, "otp").send_keys(totp.totp(totp.secret_bytes(secret)))
    driver.find_element(By.ID, "login-submit").click()
    # the click only starts the POST: wait until it has landed (a page other than the login form), or a
    # following driver.get() may cancel it and every screenshot would show the login page
    try:
        WebDriverWait(driver, 30).until(lambda d: "/console/login" not in d.current_url)
    except TimeoutException:
        raise RuntimeError(f"console login as {name} did not succeed (still on {driver.current_url})") from None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_screenshots(source, out_dir: str | Path) -> list[str]:
    """Fill ``out_dir/screenshots``. ``source``: a directory of PNGs from the browser test run (copied),
    or a ``racentre.services.Services`` container: the console is served over it on a loopback port,
    a throw-away auditor + RA-admin account (disabled afterwards) logs in and each main page is shot."""
    target = Path(out_dir) / "screenshots"
    target.mkdir(parents=True, exist_ok=True)
    if isinstance(source, (str, Path)):
        written = []
        for png in sorted(Path(source).glob("*.png")):
            shutil.copy2(png, target / png.name)
            written.append(str(target / png.name))
        return written
    name, password = f"demo-screens-{secrets.token_hex(3)}", secrets.token_urlsafe(18)
    with transaction(source.db) as session:
        _, secret = accounts.add_account(session, name=name, roles=["auditor", "ra_admin"], actor="demo",
                                         box=accounts.totp_box(source.key_manager), password=password)
    port = _free_port()
    server = waitress.create_server(build_app(source), host="127.0.0.1", port=port, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    profile = tempfile.mkdtemp(prefix="racentre-chromium-")
    driver = chromium(profile)
    written = []
    try:
        base = f"http://127.0.0.1:{port}"
        login(driver, base, name, password, secret)
        for label, path in PAGES:
            driver.get(base + path)
            driver.save_screenshot(str(target / f"{label}.png"))
            written.append(str(target / f"{label}.png"))
    finally:
        driver.quit()
        server.close()
        shutil.rmtree(profile, ignore_errors=True)
        with transaction(source.db) as session:
            accounts.set_disabled(session, name, True, actor="demo")
    return written
