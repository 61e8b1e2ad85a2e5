""""Approve selected" in a real headless Chromium against a real `racentre serve`: the officer ticks all
with "select all" (console.js), unticks one, confirms, and the result page counts the issued requests;
the database shows exactly the ticked requests issued. A request the officer submitted has no checkbox.
No CSP violations in the browser log."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, text

from tests.e2e.test_console_browser import _csp_violations, _login, browser, served_site  # noqa: F401

from selenium.webdriver.common.by import By  # noqa: E402  (after the module-level skip above)
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
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
op = Actor("operator-browser", "ra_operator")
unit, _ = ra.add_unit(op, name="浏览器批量批准测试局", uscc=helpers.uscc(), legal_representative="王五")
person = officer(s, ["ra_officer"], password=True)
def server_request(submitter):
    host = helpers.host()
    server, _ = ra.add_server(op, host_name=host, unit_id=unit["id"])
    req = ra.submit(Actor(submitter, "applicant"), type="server", subject_id=server["id"],
                    sign_csr=tongsuo_sm2_csr(tongsuo_sm2_key(), {"common_name": host}))
    ra.vet(op, req["id"], documents_checked=True)
    return req["id"]
ids = [server_request("applicant-browser") for _ in range(3)]
own = server_request(person[0])
print(json.dumps({"person": person, "ids": ids, "own": own}))
s.close()
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory, softtoken_module):
    tmp = tmp_path_factory.mktemp("browser-bulk")
    with served_site(tmp, "browser-bulk", SETUP) as (base, data):
        engine = create_engine(f"sqlite:///{tmp}/db.sqlite")
        yield base, data, engine
        engine.dispose()


def test_approve_selected_in_the_browser(site, browser):  # noqa: F811
    base, data, engine = site
    first, second, left = data["ids"]
    _login(browser, base, data["person"])
    browser.get(f"{base}/console/requests?state=vetted")
    assert browser.find_elements(By.ID, f"select-{data['own']}") == []
    browser.find_element(By.ID, "select-all").click()                # shown and wired by console.js
    assert all(browser.find_element(By.ID, f"select-{rid}").is_selected() for rid in data["ids"])
    browser.find_element(By.ID, f"select-{left}").click()
    page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.ID, "approve-selected").click()
    WebDriverWait(browser, 5).until(ec.alert_is_present()).accept()  # data-confirm
    WebDriverWait(browser, 20).until(ec.staleness_of(page))
    assert browser.find_element(By.ID, "count-issued").text.endswith("2")
    assert browser.find_elements(By.ID, "approve-failures") == []
    with engine.connect() as conn:
        states = dict(conn.execute(text("SELECT id, state FROM ra_request WHERE id IN (:a, :b, :c, :d)"),
                                   {"a": first, "b": second, "c": left, "d": data["own"]}).all())
        certs = conn.execute(text("SELECT request_id FROM ra_certificate WHERE request_id IN (:a, :b, :c)"),
                             {"a": first, "b": second, "c": left}).scalars().all()
    assert states == {first: "issued", second: "issued", left: "vetted", data["own"]: "vetted"}
    assert sorted(certs) == [first, second]
    assert _csp_violations(browser) == []
