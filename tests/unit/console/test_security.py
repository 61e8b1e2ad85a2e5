"""Console security: CSRF refusals (no token, wrong token, cross-origin, login form), lock-out after
repeated failures in a window (correct credentials refused while locked, accepted after), TOTP replay,
per-address throttling across accounts (429 + Retry-After), idle and absolute session timeouts, cookie
attributes and security headers, and client-certificate
login only through the trusted proxy with a good certificate from our CA (untrusted address, unverified,
foreign, revoked: refused), for the console and for the REST API."""
from __future__ import annotations

import datetime as dt
import secrets
import subprocess
from urllib.parse import quote

import pytest
from asn1crypto import pem, x509
from sqlalchemy import select, update

from ca_bridge.api import IssueRequest, RevocationReason
from audit.trail import AuditEvent
from store.db import transaction, utcnow
from pkicore.oids import OID
from racentre.accounts import OfficerAccount
from racentre.console.models import ConsoleLoginFailure, ConsoleSession
from tests.unit.console.site import logged_in as _logged_in, PASSWORD, app_for, code_for, csrf_of, login, login_csrf, officer
from tests.unit.ra import helpers
from tests.unit.ra.csr_tools import ec_key, spki_der, tongsuo_sm2_key, tongsuo_spki

PROXY = "10.9.8.7"


@pytest.fixture(scope="module")
def app(services):
    return app_for(services)


def test_csrf_is_required_on_every_form(app, services):
    client, name = _logged_in(app, services)
    page = client.get("/console/requests").get_data(as_text=True)
    token = csrf_of(page)
    assert client.post("/console/logout").status_code == 403                          # no token
    refused = client.post("/console/logout", data={"csrf_token": token[:-2] + "xx"})  # wrong token
    assert refused.status_code == 403 and "表单已过期" in refused.get_data(as_text=True)
    cross = client.post("/console/logout", data={"csrf_token": token}, headers={"Origin": "https://evil.example"})
    assert cross.status_code == 403
    assert client.get("/console/").status_code == 200                                 # still logged in
    assert client.post("/console/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/console/").status_code == 401                                 # logged out
    # the login form has its own (double-submit) token
    fresh = app.test_client()
    _, secret = officer(services, ["auditor"], password=True)
    assert fresh.post("/console/login", data={"name": "x", "password": PASSWORD, "otp": "000000"}).status_code == 403
    other = login_csrf(app.test_client())
    assert fresh.post("/console/login", data={"csrf_token": other, "name": "x", "password": "y", "otp": "1"}).status_code == 403


def test_cookies_and_headers(app, services):
    name, secret = officer(services, ["auditor"], password=True)
    client = app.test_client()
    resp = login(client, name, secret)
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    page = client.get("/console/audit")
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Cache-Control"] == "no-store"
    assert "<script>" not in page.get_data(as_text=True) and " style=" not in page.get_data(as_text=True)
    https = app.test_client()
    # over https the cookie is Secure with the __Host- prefix (RFC 6265bis)
    token = login_csrf(https)
    resp = https.post("/console/login", base_url="https://localhost",
                      data={"csrf_token": token, "name": name, "password": PASSWORD, "otp": code_for(secret, 1)})
    assert resp.status_code == 303
    assert resp.headers["Set-Cookie"].startswith("__Host-racentre_session=") and "Secure" in resp.headers["Set-Cookie"]


def test_lockout_after_repeated_failures(app, services):
    name, secret = officer(services, ["ra_officer"], password=True)
    client = app.test_client()
    for _ in range(services.config.console.lockout_failures):
        assert login(client, name, secret, password="wrong password!!").status_code == 401
    locked = login(client, name, secret)                               # right credentials, still refused
    assert locked.status_code == 401 and "登录失败" in locked.get_data(as_text=True)
    with services.db() as session:
        actions = list(session.scalars(select(AuditEvent.action).where(AuditEvent.target_id == name)))
    assert actions.count("console.login_failed") == 6 and "console.account_locked" in actions
    with transaction(services.db) as session:                          # the lock-out duration has passed
        session.execute(update(OfficerAccount).where(OfficerAccount.name == name)
                        .values(locked_until=utcnow() - dt.timedelta(seconds=1)))
    assert login(client, name, secret, offset_steps=1).status_code == 303


def test_failures_outside_the_window_do_not_add_up(app, services):
    name, secret = officer(services, ["ra_officer"], password=True)
    client = app.test_client()
    for _ in range(services.config.console.lockout_failures - 1):
        login(client, name, secret, password="wrong password!!")
    with transaction(services.db) as session:
        session.execute(update(OfficerAccount).where(OfficerAccount.name == name)
                        .values(failed_since=utcnow() - dt.timedelta(hours=1)))
    login(client, name, secret, password="wrong password!!")           # starts a new window
    assert login(client, name, secret).status_code == 303


def test_totp_code_cannot_be_replayed(app, services):
    name, secret = officer(services, ["ra_officer"], password=True)
    code = code_for(secret)                  # one code, even if a 30 s step ends between the two logins

    def login_with(code):
        client = app.test_client()
        return client.post("/console/login", data={"csrf_token": login_csrf(client), "name": name,
                                                   "password": PASSWORD, "otp": code})

    assert login_with(code).status_code == 303
    assert login_with(code).status_code == 401                                # same code again
    assert login(app.test_client(), name, "A" * 32).status_code == 401        # wrong code


def test_session_idle_and_absolute_timeouts(app, services):
    client, name = _logged_in(app, services)
    assert client.get("/console/").status_code == 200
    idle = dt.timedelta(seconds=services.config.console.idle_timeout + 5)
    with transaction(services.db) as session:
        session.execute(update(ConsoleSession).where(ConsoleSession.account == name)
                        .values(last_seen_at=utcnow() - idle))
    assert client.get("/console/").status_code == 401
    client, name = _logged_in(app, services)
    old = dt.timedelta(seconds=services.config.console.absolute_timeout + 5)
    with transaction(services.db) as session:                           # active all along, but too old
        session.execute(update(ConsoleSession).where(ConsoleSession.account == name)
                        .values(created_at=utcnow() - old))
    assert client.get("/console/").status_code == 401
    with services.db() as session:
        reasons = set(session.scalars(select(ConsoleSession.end_reason).where(ConsoleSession.end_reason.isnot(None))))
    assert {"idle", "absolute"} <= reasons


def test_disabled_account_loses_its_session(app, services):
    client, name = _logged_in(app, services)
    with transaction(services.db) as session:
        session.execute(update(OfficerAccount).where(OfficerAccount.name == name).values(disabled=True))
    assert client.get("/console/").status_code == 401


def _client_certificate(services, *, sm2=True) -> bytes:
    key = tongsuo_sm2_key() if sm2 else ec_key()
    spki = tongsuo_spki(key) if sm2 else spki_der(key)
    issued = services.ca.issue(IssueRequest(
        request_id=f"officer-{secrets.token_hex(6)}", profile="civil-servant-sign",
        subject=(("country_name", "CN"), ("organization_name", "RA Centre"), ("common_name", "王审核")),
        public_key_info=spki, identity=((OID.ID_CARD_NUMBER, helpers.id_number()),)))
    return issued


def _headers(der: bytes, verify="SUCCESS") -> dict:
    return {"X-SSL-Client-Cert": quote(pem.armor("CERTIFICATE", der).decode()), "X-SSL-Client-Verify": verify}


def test_client_certificate_login_through_the_trusted_proxy_only(app, services):
    issued = _client_certificate(services)
    name, _ = officer(services, ["auditor"], cert_der=issued.certificate)
    client = app.test_client()
    proxy = {"REMOTE_ADDR": PROXY}
    direct = client.post("/console/login/certificate", data={"csrf_token": login_csrf(client)},
                         headers=_headers(issued.certificate))
    assert direct.status_code == 401                                    # header from an untrusted address
    unverified = client.post("/console/login/certificate", data={"csrf_token": login_csrf(client)}, environ_base=proxy,
                             headers=_headers(issued.certificate, verify="FAILED:unable to verify"))
    assert unverified.status_code == 401
    ok = client.post("/console/login/certificate", data={"csrf_token": login_csrf(client)}, environ_base=proxy,
                     headers=_headers(issued.certificate))
    assert ok.status_code == 303
    page = client.get("/console/audit")
    assert page.status_code == 200 and name in page.get_data(as_text=True)
    # REST with the same certificate: GETs work, changes need X-RACentre-API (CSRF), revoked -> refused
    rest = app.test_client()
    assert rest.get("/api/v1/audit?target=officer_account:x", environ_base=proxy,
                    headers=_headers(issued.certificate)).status_code == 200
    assert rest.get("/api/v1/audit?target=officer_account:x",
                    headers=_headers(issued.certificate)).status_code == 401
    assert rest.post("/kmc/v1/kek/rotate", environ_base=proxy, headers=_headers(issued.certificate)).status_code == 401
    services.ca.revoke(issued.ca, issued.serial, RevocationReason.key_compromise)
    again = app.test_client()
    token = login_csrf(again)
    assert again.post("/console/login/certificate", data={"csrf_token": token}, environ_base=proxy,
                      headers=_headers(issued.certificate)).status_code == 401
    assert rest.get("/api/v1/audit?target=officer_account:x", environ_base=proxy,
                    headers=_headers(issued.certificate)).status_code == 401


def test_certificates_not_from_our_ca_are_refused(app, services, tmp_path):
    key = tmp_path / "k.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(tmp_path / "c.pem"), "-subj", "/CN=王审核/O=RA Centre",
                    "-days", "2"], check=True, capture_output=True)
    der = pem.unarmor((tmp_path / "c.pem").read_bytes())[2]
    officer(services, ["auditor"], cert_der=der)
    client = app.test_client()
    token = login_csrf(client)
    resp = client.post("/console/login/certificate", data={"csrf_token": token}, environ_base={"REMOTE_ADDR": PROXY},
                       headers=_headers(der))
    assert resp.status_code == 401


def test_per_address_throttling_across_accounts(app, services):
    """N failed logins from one address, spread over several accounts (none of them locked), make that
    address wait: 429 with Retry-After even for correct credentials; other addresses are unaffected;
    behind the trusted proxy the forwarded client address counts, elsewhere X-Forwarded-For is ignored."""
    limit = services.config.console.throttle_failures
    assert limit > services.config.console.lockout_failures
    attacker = {"REMOTE_ADDR": "192.0.2.77"}
    per_account = services.config.console.lockout_failures - 1       # none of them reaches its own lock-out
    victims = [officer(services, ["ra_officer"], password=True) for _ in range(-(-limit // per_account))]
    client = app.test_client()
    for attempt in range(limit):
        name, secret = victims[attempt % len(victims)]
        token = login_csrf(client)
        resp = client.post("/console/login", environ_base=attacker,
                           data={"csrf_token": token, "name": name, "password": "wrong password!!",
                                 "otp": code_for(secret)})
        assert resp.status_code == 401, attempt
    with services.db() as session:
        rows = session.scalars(select(OfficerAccount).where(OfficerAccount.name.in_([n for n, _ in victims]))).all()
    assert all(r.locked_until is None for r in rows)
    fresh, fresh_secret = officer(services, ["ra_officer"], password=True)
    token = login_csrf(client)
    refused = client.post("/console/login", environ_base=attacker,
                          data={"csrf_token": token, "name": fresh, "password": PASSWORD, "otp": code_for(fresh_secret)})
    assert refused.status_code == 429
    wait = int(refused.headers["Retry-After"])
    assert 0 < wait <= services.config.console.throttle_window
    assert "登录失败次数过多" in refused.get_data(as_text=True)
    # a spoofed X-Forwarded-For from an untrusted address changes nothing
    token = login_csrf(client)
    spoofed = client.post("/console/login", environ_base=attacker, headers={"X-Forwarded-For": "198.51.100.1"},
                          data={"csrf_token": token, "name": fresh, "password": PASSWORD, "otp": code_for(fresh_secret)})
    assert spoofed.status_code == 429
    # another client (here: forwarded by the trusted proxy) logs in as usual
    other = app.test_client()
    token = login_csrf(other)
    ok = other.post("/console/login", environ_base={"REMOTE_ADDR": PROXY},
                    headers={"X-Forwarded-For": "203.0.113.5"},
                    data={"csrf_token": token, "name": fresh, "password": PASSWORD, "otp": code_for(fresh_secret)})
    assert ok.status_code == 303
    with services.db() as session:
        throttled = list(session.scalars(select(AuditEvent.target_id).where(AuditEvent.action == "console.login_throttled")))
        remotes = list(session.scalars(select(AuditEvent.detail).where(AuditEvent.action == "console.login",
                                                                       AuditEvent.target_id == fresh)))
    assert throttled.count("192.0.2.77") == 1
    assert "203.0.113.5" in str(remotes)
    # once the window has passed the address may try again
    with transaction(services.db) as session:
        session.execute(update(ConsoleLoginFailure).where(ConsoleLoginFailure.remote == "192.0.2.77")
                        .values(at=utcnow() - dt.timedelta(seconds=services.config.console.throttle_window + 1)))
    name, secret = victims[0]
    token = login_csrf(client)
    again = client.post("/console/login", environ_base=attacker,
                        data={"csrf_token": token, "name": name, "password": PASSWORD, "otp": code_for(secret, 1)})
    assert again.status_code == 303


def test_a_certificate_naming_our_ca_but_signed_by_another_key_is_refused(app, services, tmp_path):
    """The path is validated (pkicore.validation), not matched by name: a certificate whose issuer name
    and key identifier copy our issuing CA's, signed by someone else's key, does not log in."""
    issued = _client_certificate(services, sm2=False)
    real = x509.Certificate.load(issued.certificate)
    forger = ec_key()
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes, serialization
    template = cx509.load_der_x509_certificate(issued.certificate)
    builder = (cx509.CertificateBuilder().subject_name(template.subject).issuer_name(template.issuer)
               .public_key(template.public_key()).serial_number(real.serial_number + 1)
               .not_valid_before(template.not_valid_before_utc).not_valid_after(template.not_valid_after_utc))
    for ext in template.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    forged = builder.sign(forger, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
    officer(services, ["auditor"], cert_der=forged)
    client = app.test_client()
    resp = client.post("/console/login/certificate", data={"csrf_token": login_csrf(client)},
                       environ_base={"REMOTE_ADDR": PROXY}, headers=_headers(forged))
    assert resp.status_code == 401
