"""Console pages for logging in and out and the dashboard; ``init_app`` wires the console into the app
(racentre.app.build_app): blueprint, principal sources (console session; client certificates for the
API) and the job runner. The other pages live in ``pages_ra``, ``pages_lifecycle`` and ``pages_ops``."""
from __future__ import annotations

import datetime as dt
from urllib.parse import urlparse

from flask import current_app, g, redirect, request, url_for

from access.auth import add_principal_source, public, require_roles
from pkicore.errors import PkiError
from racentre import accounts, certauth
from racentre.console import pages_desk, pages_lifecycle, pages_ops, pages_ra, queries, sessions, throttle  # noqa: F401 - pages register routes on bp
from racentre.console.blueprint import (STAFF, bp, config, db, login_page, render, session_cookie_name,
                                        session_principal, set_cookie, t)
from racentre.console.charts import bar_chart
from racentre.console.jobs import JobRunner

JOBS_KEY = "racentre.console.jobs"
TOTP_BOX_KEY = "racentre.console.totp_box"


def _policy() -> accounts.LockoutPolicy:
    cfg = config()
    return accounts.LockoutPolicy(cfg.lockout_failures, dt.timedelta(seconds=cfg.lockout_window),
                                  dt.timedelta(seconds=cfg.lockout_duration))


def _next_url() -> str:
    target = request.args.get("next") or request.form.get("next") or ""
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/console") or "\\" in target:
        return url_for("console.index")
    return target


def _logged_in(principal):
    token = sessions.create(db(), principal, request.remote_addr or "")
    response = redirect(_next_url(), code=303)
    set_cookie(response, session_cookie_name(), token)
    return response


@bp.route("/login", methods=["GET", "POST"])
@public("the login form")
def login():
    if request.method == "GET":
        return login_page()
    remote = throttle.client_address(request.remote_addr, request.headers, config())
    limits = throttle.ThrottlePolicy.from_config(config())
    wait = throttle.retry_after(db(), remote, limits)
    if wait is not None:                       # per address, across accounts (RFC 6585 §4)
        response = login_page(429, t("login_throttled"))
        response.headers["Retry-After"] = str(wait)
        return response
    try:
        principal = accounts.password_login(db(), request.form.get("name", ""), request.form.get("password", ""),
                                            request.form.get("otp", ""), box=current_app.extensions[TOTP_BOX_KEY],
                                            policy=_policy(), remote=remote)
    except accounts.LoginFailed:
        throttle.note_failure(db(), remote, limits)
        return login_page(401, t("login_failed"))
    return _logged_in(principal)


@bp.post("/login/certificate")
@public("login with a client certificate the trusted TLS proxy verified")
def login_certificate():
    der = certauth.presented_certificate(request.headers, request.remote_addr, config())
    if der is None:
        return login_page(401, t("login_failed"))
    certauth.verify_client_certificate(current_app.extensions["racentre.ca"], der)
    return _logged_in(accounts.certificate_account(db(), der, audit_login=True, remote=request.remote_addr or ""))


@bp.post("/logout")
@require_roles(*STAFF)
def logout():
    sessions.end(db(), g.console_session.id, "logout")
    response = redirect(url_for("console.login"), code=303)
    response.delete_cookie(session_cookie_name(), path="/")
    return response


def _health() -> list[dict]:
    checks = []
    try:
        cas = current_app.extensions["racentre.ca"].authorities()
        now = dt.datetime.now(dt.timezone.utc)
        ok = bool(cas) and all(info.not_after > now for info in cas.values())
        checks.append({"name": "CA", "ok": ok, "detail": ", ".join(f"{n} ({i.algorithm.name})" for n, i in cas.items())})
    except (PkiError, KeyError) as exc:
        checks.append({"name": "CA", "ok": False, "detail": getattr(exc, "public_message", t("unavailable"))})
    try:
        authority = current_app.extensions["racentre.timestamp"].authority
        clock = authority.clock.report()
        checks.append({"name": t("tsa"), "ok": True,
                       "detail": f"{len(authority.units)} unit(s); clock synchronised={clock.get('synchronised')}"})
    except (PkiError, KeyError) as exc:
        checks.append({"name": t("tsa"), "ok": False, "detail": getattr(exc, "public_message", t("unavailable"))})
    try:
        km = current_app.extensions["racentre.key_manager"]
        info = km.info()
        km.random(8)
        checks.append({"name": t("hsm"), "ok": True, "detail": f"{info.token} ({info.manufacturer})"})
    except (PkiError, AttributeError) as exc:
        checks.append({"name": t("hsm"), "ok": False, "detail": getattr(exc, "public_message", t("unavailable"))})
    return checks


@bp.get("/")
@require_roles(*STAFF)
def index():
    series = queries.issuance_per_day(db())
    return render("dashboard.html", counts=queries.pending_counts(db()), health=_health(),
                  chart=bar_chart(series, title=t("issuance_per_day")), expiry=pages_lifecycle.expiry_notice())


@public("the site's front page sends browsers to the officers' console (its own login guards it)")
def front_page():
    return redirect(url_for("console.index"), code=302)


def init_app(app, services) -> None:
    """Wire the console into the service app (after the packages whose services it shows); ``/`` leads to it."""
    app.register_blueprint(bp)
    app.add_url_rule("/", "front_page", front_page)
    add_principal_source(app, session_principal, blueprint=bp.name)
    add_principal_source(app, certauth.api_principal)
    app.extensions[TOTP_BOX_KEY] = accounts.totp_box(app.extensions["racentre.key_manager"])
    app.extensions[JOBS_KEY] = JobRunner(services.db, app.extensions, services.config.console.job_batch)
