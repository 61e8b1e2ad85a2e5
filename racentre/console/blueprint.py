"""The console blueprint and what every page shares: language, security headers (CSP Level 3, X-Frame-Options
per RFC 7034, no-store per RFC 9111 §5.2.2.5), CSRF checks on every state-changing request, the session
as the console's only principal source, and HTML error pages."""
from __future__ import annotations

import datetime as dt
import secrets

from flask import Blueprint, current_app, g, render_template, request
from werkzeug.exceptions import HTTPException

from access.auth import Principal
from pkicore.errors import ErrorCode, PkiError
from racentre import accounts, certauth
from racentre.console import formats, i18n, sessions
from racentre.console.config import ConsoleConfig
from racentre.web import DATABASE_ERRORS, DB_RETRY_AFTER, STATUS

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates", static_folder="static")

STAFF = ("ra_operator", "ra_officer", "ra_admin", "auditor", "key_recovery_officer")
LOGIN_CSRF_COOKIE = "racentre_login_csrf"
LANG_COOKIE = "racentre_lang"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


class CsrfError(PkiError):
    code = ErrorCode.FORBIDDEN


def config() -> ConsoleConfig:
    return current_app.extensions["racentre.config"].console


def db():
    return current_app.extensions["racentre.db"]


def secure_request() -> bool:
    mode = config().secure_cookies
    if mode != "auto":
        return mode == "always"
    forwarded = request.headers.get("X-Forwarded-Proto", "") == "https" and \
        certauth._from_trusted_proxy(request.remote_addr, config())
    return request.is_secure or forwarded


def session_cookie_name() -> str:
    return sessions.SECURE_COOKIE if secure_request() else sessions.PLAIN_COOKIE


def set_cookie(response, name: str, value: str, *, max_age: int | None = None) -> None:
    """RFC 6265 §4.1: HttpOnly, SameSite=Strict, Path=/, Secure over https."""
    response.set_cookie(name, value, max_age=max_age, path="/", secure=secure_request(), httponly=True,
                        samesite="Strict")


def session_principal() -> Principal | None:
    """The console's principal source (access.auth.add_principal_source for this blueprint)."""
    if "console_session" not in g:
        cfg = config()
        g.console_session = sessions.load(db(), request.cookies.get(session_cookie_name()),
                                          idle=dt.timedelta(seconds=cfg.idle_timeout),
                                          absolute=dt.timedelta(seconds=cfg.absolute_timeout))
    info = g.console_session
    if info is None:
        return None
    principal = accounts.enabled_principal(db(), info.account, info.via)
    if principal is None:
        sessions.end(db(), info.id, "disabled")
        g.console_session = None
    return principal


def t(key: str) -> str:
    return i18n.translate(key, g.get("lang", i18n.DEFAULT))


def render(template: str, code: int = 200, **context):
    return render_template(template, **context), code


@bp.before_request
def _before():
    g.lang = i18n.pick(request.args.get("lang"), request.cookies.get(LANG_COOKIE))
    runner = current_app.extensions.get("racentre.console.jobs")
    if runner is not None and config().job_thread:
        runner.start()
    if request.method in SAFE_METHODS or request.endpoint == "console.static":
        return None
    origin = request.headers.get("Origin")
    if origin and origin != request.host_url.rstrip("/"):
        raise CsrfError("cross-origin form refused")
    presented = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token")
    if request.endpoint in ("console.login", "console.login_certificate"):
        if not sessions.csrf_ok(request.cookies.get(LOGIN_CSRF_COOKIE, ""), presented):
            raise CsrfError("login form expired")
        return None
    if session_principal() is not None and not sessions.csrf_ok(g.console_session.csrf, presented):
        raise CsrfError("missing or wrong CSRF token")
    return None


@bp.after_request
def _headers(response):
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"   # no-referrer would make Chrome send Origin: null
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"
    if request.args.get("lang") in i18n.LANGUAGES:
        set_cookie(response, LANG_COOKIE, request.args["lang"], max_age=365 * 86400)
    if secure_request():
        response.headers["Strict-Transport-Security"] = "max-age=31536000"
    return response


@bp.app_template_filter("localtime")
def _localtime(value):
    return formats.local_time(value, formats.zone(config().timezone))


@bp.app_template_filter("localdate")
def _localdate(value):
    return formats.local_time(value, formats.zone(config().timezone), date_only=True)


@bp.app_template_filter("dn")
def _dn(value):
    return formats.dn(value)


@bp.app_context_processor
def _context():
    if request.blueprint != "console":
        return {}
    info = g.get("console_session")
    principal = g.get("principal")
    return {"_": t, "lang": g.get("lang", i18n.DEFAULT), "csrf_token": info.csrf if info else "",
            "me": principal, "roles": principal.roles if principal else frozenset(),
            "has": lambda *wanted: bool(principal and principal.roles & set(wanted))}


def login_page(status: int = 200, message: str | None = None):
    token = secrets.token_urlsafe(32)
    response = current_app.make_response(render("login.html", status, login_csrf=token, message=message))
    set_cookie(response, LOGIN_CSRF_COOKIE, token, max_age=3600)
    return response


def _error(exc):
    if isinstance(exc, HTTPException):             # werkzeug's own words are English: the status in Chinese
        status = exc.code or 500
        message = t(f"http_{status}") if f"http_{status}" in i18n.MESSAGES["zh"] else exc.description
    else:
        status = STATUS.get(exc.code, 500)
        message = i18n.message(exc.public_message, g.get("lang", i18n.DEFAULT))
    if status == 401:
        return login_page(401, t("session_expired"))
    if status >= 500:
        current_app.logger.error("console request failed", exc_info=exc)
        message = t("error")
    if isinstance(exc, CsrfError):
        message = t("csrf_failed")
    return render("error.html", status, status=status, message=message)


def _database_unavailable(exc):
    current_app.logger.error("console: database unavailable (%s)", exc.__class__.__name__, exc_info=exc)
    body, status = render("error.html", 503, status=503, message=t("database_unavailable"))
    return body, status, {"Retry-After": str(DB_RETRY_AFTER)}


bp.register_error_handler(PkiError, _error)
bp.register_error_handler(HTTPException, _error)
for _db_error in DATABASE_ERRORS:
    bp.register_error_handler(_db_error, _database_unavailable)
