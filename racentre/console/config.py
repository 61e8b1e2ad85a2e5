"""The ``[console]`` configuration section: sessions (RFC 6265 cookie attributes), lock-out, the
TLS-terminating proxy trusted for client-certificate headers, the job runner and the time zone pages show
times in; keys and types from
the fields (pkicore.settings).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pkicore.errors import ErrorCode
from pkicore.settings import ConfigError, Configurable, setting


class ConsoleConfigError(ConfigError):
    code = ErrorCode.CONFIGURATION


@dataclass(frozen=True)
class ConsoleConfig(Configurable):
    SECTION = "console"
    DOC = "The officers' web console: sessions, lock-out, the TLS proxy trusted for client certificates, jobs."
    trusted_proxies: str = setting("", doc='CIDRs whose X-SSL-Client-* headers are believed, comma-separated '
                                           '("" = none)', example="127.0.0.1/32")
    cert_header: str = setting("X-SSL-Client-Cert", doc="URL-encoded PEM ($ssl_client_escaped_cert)")
    verify_header: str = setting("X-SSL-Client-Verify", doc="must be SUCCESS ($ssl_client_verify)")
    secure_cookies: str = setting("auto", doc="auto (Secure when the request came over https) | always | never",
                                  example="always")
    idle_timeout: int = setting(900, doc="seconds without a request before a session ends")
    absolute_timeout: int = setting(28800, doc="seconds after login a session ends whatever happens")
    lockout_failures: int = setting(5, doc="failed logins within lockout_window lock the account ...")
    lockout_window: int = setting(900, doc="... (seconds) ...")
    lockout_duration: int = setting(900, doc="... for this many seconds")
    throttle_failures: int = setting(30, doc="failed password logins from one client address (any accounts) ...")
    throttle_window: int = setting(300, doc="... within this many seconds: further attempts get 429 + Retry-After")
    job_thread: bool = setting(True, doc="run console jobs in a background thread of each process")
    job_batch: int = setting(50, doc="rows per job chunk")
    timezone: str = setting("Asia/Shanghai", doc="the zone the console shows times in (IANA name; Beijing time)",
                            example="Asia/Urumqi")
    expiry_notice_days: int = setting(30, doc="即将过期: certificates ending within this many days are listed on the "
                                              "expiry page and announced on the officers' home page", example=60)

    def __post_init__(self):
        self.proxy_networks()
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConsoleConfigError(f"console.timezone: {self.timezone!r} is not an IANA time zone "
                                     "(e.g. Asia/Shanghai)") from None
        if self.secure_cookies not in ("auto", "always", "never"):
            raise ConsoleConfigError("console.secure_cookies is auto, always or never")
        if min(self.idle_timeout, self.absolute_timeout, self.lockout_failures, self.job_batch,
               self.throttle_failures, self.throttle_window) < 1 or not 1 <= self.expiry_notice_days <= 3660:
            raise ConsoleConfigError("console timeouts, lockout_failures, throttle_* and job_batch are positive; "
                                     "expiry_notice_days is from 1 to 3660")

    def proxy_networks(self) -> tuple:
        try:
            return tuple(ipaddress.ip_network(p.strip(), strict=False)
                         for p in self.trusted_proxies.split(",") if p.strip())
        except ValueError as exc:
            raise ConsoleConfigError("console.trusted_proxies: comma-separated addresses or CIDRs") from exc
