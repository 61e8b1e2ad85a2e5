"""The ``[console]`` configuration section: sessions (RFC 6265 cookie attributes), lock-out, the
TLS-terminating proxy trusted for client-certificate headers, and the job runner.

    [console]
    trusted_proxies = "127.0.0.1/32"     # CIDRs whose X-SSL-Client-* headers are believed ("" = none)
    cert_header = "X-SSL-Client-Cert"    # URL-encoded PEM ($ssl_client_escaped_cert)
    verify_header = "X-SSL-Client-Verify"   # must be SUCCESS ($ssl_client_verify)
    secure_cookies = "auto"              # auto (Secure when the request came over https) | always | never
    idle_timeout = 900                   # seconds without a request before a session ends
    absolute_timeout = 28800             # seconds after login a session ends whatever happens
    lockout_failures = 5                 # failed logins within lockout_window lock the account ...
    lockout_window = 900
    lockout_duration = 900               # ... for this many seconds
    throttle_failures = 30               # failed password logins from one client address (any accounts) ...
    throttle_window = 300                # ... within this many seconds: further attempts get 429 + Retry-After
    job_thread = true                    # run console jobs in a background thread of each process
    job_batch = 50                       # rows per job chunk
    timezone = "Asia/Shanghai"           # the zone times are shown in (IANA name; Beijing time by default)
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pkicore.errors import ErrorCode, PkiError


class ConsoleConfigError(PkiError):
    code = ErrorCode.CONFIGURATION


@dataclass(frozen=True)
class ConsoleConfig:
    trusted_proxies: str = ""
    cert_header: str = "X-SSL-Client-Cert"
    verify_header: str = "X-SSL-Client-Verify"
    secure_cookies: str = "auto"
    idle_timeout: int = 900
    absolute_timeout: int = 28800
    lockout_failures: int = 5
    lockout_window: int = 900
    lockout_duration: int = 900
    throttle_failures: int = 30
    throttle_window: int = 300
    job_thread: bool = True
    job_batch: int = 50
    timezone: str = "Asia/Shanghai"

    @classmethod
    def from_values(cls, values: dict) -> "ConsoleConfig":
        config = cls(**values)
        config.proxy_networks()
        try:
            ZoneInfo(config.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConsoleConfigError(f"console.timezone: {config.timezone!r} is not an IANA time zone "
                                     "(e.g. Asia/Shanghai)") from None
        if config.secure_cookies not in ("auto", "always", "never"):
            raise ConsoleConfigError("console.secure_cookies is auto, always or never")
        if min(config.idle_timeout, config.absolute_timeout, config.lockout_failures, config.job_batch,
               config.throttle_failures, config.throttle_window) < 1:
            raise ConsoleConfigError("console timeouts, lockout_failures, throttle_* and job_batch are positive")
        return config

    def proxy_networks(self) -> tuple:
        try:
            return tuple(ipaddress.ip_network(p.strip(), strict=False)
                         for p in self.trusted_proxies.split(",") if p.strip())
        except ValueError as exc:
            raise ConsoleConfigError("console.trusted_proxies: comma-separated addresses or CIDRs") from exc


# racentre.config.SCHEMA["console"]: key -> type
SCHEMA = {"trusted_proxies": "str", "cert_header": "str", "verify_header": "str", "secure_cookies": "str",
          "idle_timeout": "int", "absolute_timeout": "int", "lockout_failures": "int", "lockout_window": "int",
          "lockout_duration": "int", "throttle_failures": "int", "throttle_window": "int", "job_thread": "bool",
          "job_batch": "int", "timezone": "str"}
