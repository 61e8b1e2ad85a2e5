"""The TSA's time source and its guards (RFC 3161 §2.1 (1): a trustworthy source of time; ETSI EN 319 421
§7.7.2): the kernel's NTP discipline state read with adjtimex(2), and a per-unit monotonic check.

``ClockMonitor.now(unit)`` returns the genTime to put in a token or raises ``TsaRejection``
(timeNotAvailable) when the clock is required to be synchronised (``[tsa] require_sync``, on by default)
and the kernel says it is not (STA_UNSYNC) or bounds its error above the accuracy tokens claim, or when it
went backwards past the last genTime this process issued for that unit. The wall clock and the kernel
status reader are injected, so tests drive both.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import datetime as dt
import threading
import time
from dataclasses import dataclass
from typing import Callable

from timestamp.errors import FailureInfo, TsaRejection

STA_UNSYNC = 0x0040
TIME_ERROR = 5


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """struct timex (linux/timex.h); natural alignment gives the kernel's padding on LP64 and ILP32."""

    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time", _Timeval), ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long),
                ("jitter", ctypes.c_long), ("shift", ctypes.c_int), ("stabil", ctypes.c_long),
                ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long),
                ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int), ("_reserved", ctypes.c_int * 11)]


@dataclass(frozen=True)
class ClockStatus:
    synchronised: bool
    max_error_us: int | None = None
    est_error_us: int | None = None
    state: int | None = None
    detail: str = ""


_libc = None


def kernel_clock_status() -> ClockStatus:
    """The kernel's view (adjtimex with modes = 0: read only, no privilege needed)."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        tx = _Timex()
        state = _libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError) as exc:
        return ClockStatus(False, detail=f"adjtimex unavailable: {exc}")
    if state < 0:
        return ClockStatus(False, detail=f"adjtimex failed (errno {ctypes.get_errno()})")
    unsync = bool(tx.status & STA_UNSYNC) or state == TIME_ERROR
    return ClockStatus(not unsync, int(tx.maxerror), int(tx.esterror), state,
                       "kernel reports the clock unsynchronised" if unsync else "kernel clock synchronised")


class ClockMonitor:
    """genTime source with the synchronisation requirement and the monotonic guard."""

    def __init__(self, *, require_sync: bool = False, max_error_ms: int = 1000,
                 clock: Callable[[], float] = time.time,
                 status: Callable[[], ClockStatus] = kernel_clock_status, status_ttl: float = 1.0):
        self.require_sync = require_sync
        self.max_error_us = max_error_ms * 1000
        self._clock = clock
        self._status = status
        self._ttl = status_ttl
        self._cached: tuple[float, ClockStatus] | None = None
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def status(self) -> ClockStatus:
        now = time.monotonic()
        cached = self._cached
        if cached is None or now - cached[0] > self._ttl:
            cached = (now, self._status())
            self._cached = cached
        return cached[1]

    def problem(self) -> str | None:
        """Why tokens cannot be granted now (with ``require_sync``), or None: the kernel reports the clock
        unsynchronised (STA_UNSYNC / TIME_ERROR), or its maximum error is above the accuracy tokens claim."""
        if not self.require_sync:
            return None
        st = self.status()
        if not st.synchronised:
            return f"the TSA's clock is not synchronised ({st.detail})"
        if st.max_error_us is not None and st.max_error_us > self.max_error_us:
            return (f"the TSA's clock error bound ({st.max_error_us // 1000} ms) exceeds the accuracy tokens "
                    f"claim ({self.max_error_us // 1000} ms)")
        return None

    def check_sync(self) -> None:
        problem = self.problem()
        if problem is not None:
            raise TsaRejection(FailureInfo.TIME_NOT_AVAILABLE, problem)

    def now(self, unit: str = "") -> dt.datetime:
        """The genTime for the next token of ``unit`` (millisecond resolution, UTC)."""
        self.check_sync()
        with self._lock:
            t = self._clock()
            t = int(t * 1000) / 1000.0
            last = self._last.get(unit)
            if last is not None and t < last:
                raise TsaRejection(FailureInfo.TIME_NOT_AVAILABLE,
                                   "the clock went backwards; refusing to stamp until it passes the last genTime")
            self._last[unit] = t
        return dt.datetime.fromtimestamp(t, dt.timezone.utc)

    def report(self) -> dict:
        st = self.status()
        return {"require_sync": self.require_sync, "synchronised": st.synchronised,
                "max_error_us": st.max_error_us, "est_error_us": st.est_error_us, "state": st.state,
                "detail": st.detail, "max_error_allowed_us": self.max_error_us, "problem": self.problem()}
