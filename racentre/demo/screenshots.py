"""Headless Debian Chromium for the demo's day in the console (``racentre.demo.walk``, ``DIR/screenshots/``)
and the browser tests, through Selenium with explicit binary and driver paths (Selenium Manager never
downloads anything: SE_OFFLINE and an explicit Service path), and the console's login form."""
from __future__ import annotations

from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from racentre import totp

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         "--window-size=1280,900", "--lang=zh-CN")



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
