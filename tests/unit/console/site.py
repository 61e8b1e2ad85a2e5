"""A whole site for the console tests: a fresh token (the CA refuses to reuse key labels), a migrated
database, the SM2 hierarchy, and the full app from racentre.app.build_app. Plus officers and sessions."""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import re
import secrets
import time

from hsm import init_token
from store.db import transaction
from pkicore.secret import Secret
from ra.services import build_ra_service
from ra.workflow import Actor
from racentre import accounts, passwords, totp
from racentre.app import build_app
from racentre.config import Config, DatabaseConfig, ServiceConfig
from racentre.console import sessions
from racentre.console.config import ConsoleConfig
from racentre.services import Services
from timestamp.config import TsaConfig
from tests.constants import TEST_TSA_POLICY
from tests.unit.ra import helpers
from tests.unit.ra.csr_tools import tongsuo_sm2_csr, tongsuo_sm2_key

PASSWORD = "correct horse battery staple"
# The test officers' passwords are hashed at scrypt N=2^12 (4 MiB, ~10 ms) instead of the production N=2^17
# (128 MiB, ~0.3 s of CPU): the stored hash carries its parameters, so every later check of these accounts
# (in this process or in a `racentre serve` child) costs the same small amount. What a test proves about
# logins, lock-outs and throttling is counted in attempts, not in CPU; the production cost itself is
# checked by test_totp_passwords.py::test_scrypt_hashes, and accounts made otherwise (CLI, demo) keep it.
TEST_PASSWORD_LOG_N = 12


@contextlib.contextmanager
def cheap_password_hashing():
    """Hash new passwords at TEST_PASSWORD_LOG_N within the block (tests only; restored on the way out)."""
    saved, passwords.LOG_N = passwords.LOG_N, TEST_PASSWORD_LOG_N
    try:
        yield
    finally:
        passwords.LOG_N = saved


def make_services(url: str, hsm_config, console: ConsoleConfig | None = None) -> Services:
    hsm_config = dataclasses.replace(hsm_config, token=f"console-{secrets.token_hex(4)}")
    init_token(hsm_config, Secret(secrets.token_hex(8)), hsm_config.pin)
    config = Config(hsm=hsm_config, database=DatabaseConfig(url=url), service=ServiceConfig(public_url="http://console.test"),
                    console=console or ConsoleConfig(job_thread=False, trusted_proxies="10.9.8.7/32"),
                    tsa=TsaConfig(policy=TEST_TSA_POLICY, require_sync=False))  # this box's clock is unsynchronised
    services = Services(config)
    services.site.init(kinds=("sm2",))
    return services


def app_for(services: Services):
    app = build_app(services)
    app.config["TESTING"] = True
    return app


def officer(services: Services, roles, *, password: bool = False, cert_der: bytes | None = None) -> tuple[str, str | None]:
    """A new officer account; (name, TOTP secret or None). Without a password it gets a placeholder
    certificate binding (accounts need one way to log in)."""
    name = f"{'-'.join(sorted(roles))}-{secrets.token_hex(3)}"
    with transaction(services.db) as session, cheap_password_hashing():
        _, secret = accounts.add_account(session, name=name, roles=roles, actor="test",
                                         box=accounts.totp_box(services.key_manager), password=PASSWORD if password else None,
                                         cert_der=cert_der if cert_der or password else secrets.token_bytes(32))
    return name, secret


def session_cookie(services: Services, name: str) -> tuple[str, str]:
    """(cookie token, CSRF token) of a fresh console session for ``name``."""
    principal = accounts.enabled_principal(services.db, name, "password")
    token = sessions.create(services.db, principal, "127.0.0.1")
    info = sessions.load(services.db, token, idle=_forever(), absolute=_forever())
    return token, info.csrf


def _forever():
    return dt.timedelta(days=1)


def code_for(secret: str, offset_steps: int = 0) -> str:
    return totp.totp(totp.secret_bytes(secret), time.time() + offset_steps * totp.STEP)


def login_csrf(client) -> str:
    page = client.get("/console/login")
    return re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def login(client, name: str, secret: str, password: str = PASSWORD, offset_steps: int = 0):
    return client.post("/console/login", data={"csrf_token": login_csrf(client), "name": name, "password": password,
                                               "otp": code_for(secret, offset_steps)})


def csrf_of(page_html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page_html).group(1)


def logged_in(app, services: Services, roles=("ra_officer",)):
    """A test client logged in (password and TOTP) as a new officer with ``roles``: (client, name)."""
    name, secret = officer(services, list(roles), password=True)
    client = app.test_client()
    assert login(client, name, secret).status_code == 303
    return client, name


def post_form(client, page_path: str, action_path: str, **data):
    """Send a console form as the browser does: with the CSRF token of the page it is on."""
    token = csrf_of(client.get(page_path).get_data(as_text=True))
    return client.post(action_path, data={"csrf_token": token, **data})


def vetted_unit_request(services: Services, ra_service=None) -> int:
    """A unit certificate request (two approvals needed), submitted by an applicant and vetted by an
    operator through the RA service; returns its id."""
    ra = ra_service or build_ra_service(services.db, services.ca)
    applicant, operator = Actor(f"applicant-{secrets.token_hex(3)}", "applicant"), Actor(f"operator-{secrets.token_hex(3)}", "ra_operator")
    unit, _ = ra.add_unit(operator, name=f"杭州市数据资源局{secrets.token_hex(2)}", uscc=helpers.uscc(),
                          legal_representative="王五")
    req = ra.submit(applicant, type="unit", subject_id=unit["id"],
                    sign_csr=tongsuo_sm2_csr(tongsuo_sm2_key(), {"common_name": unit["name"]}))
    ra.vet(operator, req["id"], documents_checked=True, note="营业执照已核验")
    return req["id"]
