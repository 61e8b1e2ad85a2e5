"""A thread-safe pool of logged-in PKCS#11 sessions with recovery (PKCS#11 v2.40 §5.6, §11.6).

PKCS#11 sessions must not be used by two threads at once, and login state is shared by all sessions of
the application and lost when the last one closes. The pool keeps up to ``size`` sessions, logs in once,
reopens sessions that the module reports lost, and reinitialises the module when the device went away.
A module that is not thread-safe under ``C_Initialize(NULL)`` (python-pkcs11's call) gets every call
serialised through one lock.
"""
from __future__ import annotations

import contextlib
import logging
import threading

import pkcs11
import pkcs11.exceptions as p11e

from hsm.errors import SESSION_LOST, HsmUnavailable, wrap_pkcs11_error
from pkicore.secret import Secret

log = logging.getLogger(__name__)

_STALE_HANDLE = (p11e.ObjectHandleInvalid, p11e.KeyHandleInvalid)


class PooledSession:
    """A session plus the key objects already looked up in it (handles are per session object)."""

    __slots__ = ("session", "objects", "generation")

    def __init__(self, session, generation: int):
        self.session = session
        self.objects: dict = {}
        self.generation = generation


class SessionPool:
    def __init__(self, module: str, token_label: str, pin: Secret | None, size: int, thread_safe: bool):
        self._module = module
        self._token_label = token_label
        self._pin = pin
        self._size = max(1, size)
        self._idle: list[PooledSession] = []   # LIFO, guarded by self._lock (no second lock per call)
        self._all: set[PooledSession] = set()  # idle and in use, for forget_objects
        self._opened = 0
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._serial = contextlib.nullcontext() if thread_safe else threading.RLock()
        self._logged_in = False
        self._generation = 0          # bumped on module reinitialisation and key deletion
        try:
            self.lib = pkcs11.lib(module)
        except (p11e.PKCS11Error, OSError) as exc:
            raise HsmUnavailable(f"cannot load PKCS#11 module {module}: {exc}") from exc
        self.token = self._find_token()

    @property
    def serial(self):
        """Context manager that serialises calls into modules that are not thread-safe."""
        return self._serial

    def _find_token(self):
        try:
            return self.lib.get_token(token_label=self._token_label)
        except p11e.NoSuchToken as exc:
            raise HsmUnavailable(f"no HSM token labelled {self._token_label!r} in {self._module}") from exc
        except p11e.MultipleTokensReturned as exc:
            raise HsmUnavailable(f"several HSM tokens labelled {self._token_label!r}") from exc
        except p11e.PKCS11Error as exc:
            raise wrap_pkcs11_error(exc, "opening the HSM token") from exc

    def _open(self) -> PooledSession:
        with self._serial:
            if not self._logged_in and self._pin is not None:
                try:
                    session = self.token.open(rw=True, user_pin=self._pin.reveal())
                except p11e.UserAlreadyLoggedIn:
                    session = self.token.open(rw=True)
                except p11e.PKCS11Error as exc:
                    raise wrap_pkcs11_error(exc, "logging in to the HSM") from exc
                self._logged_in = True
            else:
                try:
                    session = self.token.open(rw=True)
                except p11e.PKCS11Error as exc:
                    raise wrap_pkcs11_error(exc, "opening an HSM session") from exc
        pooled = PooledSession(session, self._generation)
        with self._cond:
            self._all.add(pooled)
        return pooled

    def acquire(self) -> PooledSession:
        with self._cond:
            while True:
                if self._idle:
                    pooled = self._idle.pop()
                    if pooled.generation != self._generation:
                        pooled.objects.clear()
                        pooled.generation = self._generation
                    return pooled
                if self._opened < self._size:
                    self._opened += 1
                    break
                self._cond.wait()
        try:
            return self._open()
        except BaseException:
            with self._cond:
                self._opened -= 1
                self._cond.notify()
            raise

    def release(self, pooled: PooledSession) -> None:
        with self._cond:
            self._idle.append(pooled)
            self._cond.notify()

    def discard(self, pooled: PooledSession) -> None:
        """Drop a session the module reported lost; close it quietly."""
        with contextlib.suppress(Exception), self._serial:
            pooled.session.close()
        with self._cond:
            self._opened -= 1
            self._all.discard(pooled)
            self._cond.notify()

    def forget_objects(self, labels: set, ids: set) -> None:
        """Forget, in every session, the cached handles of objects that were just destroyed, named by
        their CKA_LABEL and CKA_ID values. A cache entry is keyed by the reference it was found with,
        and an object matches a reference only when the reference's label or id is the object's, so
        entries naming neither cannot point at a destroyed object and stay (no re-lookup of the
        centre's long-lived keys after each temporary key is destroyed)."""
        with self._cond:
            sessions = list(self._all)
        for pooled in sessions:
            for key in list(pooled.objects):
                ref = key[0]
                if (ref.label and ref.label in labels) or (ref.key_id and ref.key_id in ids):
                    pooled.objects.pop(key, None)

    def invalidate_objects(self) -> None:
        """Forget cached object handles in every session (after a key was deleted or replaced)."""
        with self._cond:
            self._generation += 1

    def recover(self) -> None:
        """After a lost device: close everything, reinitialise the module, find the token again."""
        with self._cond:
            self._drain_idle()
            self._generation += 1
        log.warning("HSM session lost; reinitialising module %s", self._module)
        with self._serial:
            try:
                self.lib.reinitialize()
            except p11e.PKCS11Error as exc:
                raise wrap_pkcs11_error(exc, "reinitialising the HSM module") from exc
        self.token = self._find_token()

    def run(self, action: str, fn):
        """Run ``fn(pooled)`` on a pooled session, retrying once on a lost session or device."""
        for attempt in (1, 2):
            pooled = self.acquire()
            try:
                with self._serial:
                    result = fn(pooled)
            except SESSION_LOST as exc:
                self.discard(pooled)
                if isinstance(exc, p11e.UserNotLoggedIn):
                    self._logged_in = False
                if attempt == 2:
                    raise wrap_pkcs11_error(exc, action) from exc
                log.warning("%s: %s; retrying on a fresh session", action, type(exc).__name__)
                if not isinstance(exc, p11e.UserNotLoggedIn):
                    self.recover()
                continue
            except _STALE_HANDLE as exc:
                if attempt == 1 and pooled.objects:
                    # a cached handle outlived its object (a session object dies with the session that
                    # made it, possibly another pool's): forget this session's handles and look again
                    pooled.objects.clear()
                    self.release(pooled)
                    log.debug("%s: %s on a cached handle; retrying with fresh look-ups", action,
                              type(exc).__name__)
                    continue
                self.release(pooled)
                raise wrap_pkcs11_error(exc, action) from exc
            except p11e.PKCS11Error as exc:
                self.release(pooled)
                raise wrap_pkcs11_error(exc, action) from exc
            except BaseException:
                self.release(pooled)
                raise
            self.release(pooled)
            return result
        raise AssertionError("unreachable")

    def _drain_idle(self) -> None:
        """Close every idle session (caller holds the condition); login state goes with the last one."""
        while self._idle:
            pooled = self._idle.pop()
            with contextlib.suppress(Exception), self._serial:
                pooled.session.close()
            self._opened -= 1
            self._all.discard(pooled)
        self._logged_in = False

    def close(self) -> None:
        with self._cond:
            self._drain_idle()
