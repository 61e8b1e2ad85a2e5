"""The gunicorn arbiter of `racentre serve --workers N` (N > 1), kept small: `racentre serve` execs a fresh
interpreter on this module (``exec_arbiter``), which loads only gunicorn, the configuration and the hot-path
worker below, and each worker loads the service itself after the fork (``racentre.serve.worker_app``). So
the arbiter is not an image of everything the CLI imported (the service's RSS is the arbiter's ~35 MiB plus
the workers', instead of a third full copy), and no PKCS#11 module or database pool ever lives in it. The
configuration travels in an anonymous memory file (memfd), never on disk or in argv.

``FastPathThreadWorker``: gunicorn's gthread worker plus the hot paths of ``racentre.fastpath``.
"""
from __future__ import annotations

import importlib
import os
import pickle
import re
import sys
import time
from pathlib import Path

from gunicorn import SERVER as GUNICORN_SERVER
from gunicorn import util as gunicorn_util
from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

from racentre.fastpath import FastPaths

WORKER_CLASS = "racentre.arbiter.FastPathThreadWorker"


class _Gunicorn(BaseApplication):
    def __init__(self, config, packages: tuple[str, ...], options: dict):
        self._config = config
        self._packages = packages
        self._options = options
        super().__init__()

    def load_config(self):
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self):  # runs in each worker, after the fork: the service is imported here, not in the arbiter
        return importlib.import_module("racentre.serve").worker_app(self._config, self._packages)


def exec_arbiter(config, packages: tuple[str, ...], options: dict) -> None:
    """Replace this process (same pid, signals, stdout/stderr) by a fresh interpreter running gunicorn with
    ``options`` over ``packages``; ``config`` (a ``racentre.config.Config``, secrets included) is handed
    over in a memfd that the new process reads and closes. Never returns."""
    fd = os.memfd_create("racentre-serve", 0)            # no MFD_CLOEXEC: the exec'd interpreter inherits it
    os.write(fd, pickle.dumps((config, packages, options)))
    os.lseek(fd, 0, os.SEEK_SET)
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)   # where racentre is imported from now
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "racentre.arbiter", str(fd)], env)


def main(argv: list[str]) -> None:
    fd = int(argv[1])
    with os.fdopen(fd, "rb") as spec:
        config, packages, options = pickle.loads(spec.read())
    _Gunicorn(config, packages, options).run()


_TOKEN = re.compile(rb"[!#$%&'*+\-.^`|~0-9A-Za-z]+\Z")          # RFC 9110 token, no underscore
_POST_TARGET = re.compile(rb"/(?:tsa(?:/[0-9A-Za-z.-]*)?|ocsp(?:/[0-9A-Za-z._-]+)?)\Z")
_GET_TARGET = re.compile(rb"/ocsp/[0-9A-Za-z._-]+/[0-9A-Za-z+/=%._-]+\Z")
_FALLBACK_FIELDS = frozenset({b"TRANSFER-ENCODING", b"EXPECT", b"SCRIPT_NAME", b"UPGRADE", b"HTTP2-SETTINGS"})


def simple_request(data: bytes):
    """A complete, plain HTTP/1.x request for a fast path that is all of ``data`` (one read) — POST
    /tsa[/<unit>], POST /ocsp[/<ca>] with a body, GET /ocsp/<ca>/<request> without one — -> (method, path, (major,
    minor), content type, content length, connection header or None, body); anything else (incomplete,
    a pipelined next request, odd syntax, obs-fold, duplicate or unusual fields, a query target) ->
    None, and gunicorn's own parser takes it. The path is as sent (not yet percent-decoded)."""
    if data.startswith(b"POST /"):
        method, target = "POST", _POST_TARGET
    elif data.startswith(b"GET /ocsp/"):
        method, target = "GET", _GET_TARGET
    else:
        return None
    end = data.find(b"\r\n\r\n")
    if end < 0 or end > 8190:
        return None
    lines = data[:end].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[2] not in (b"HTTP/1.1", b"HTTP/1.0") or not target.match(parts[1]) \
            or len(lines) > 101:
        return None
    ctype = length = connection = None
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name) or b"\n" in value or b"\r" in value or b"\x00" in value:
            return None
        value = value.strip(b" \t")
        name = name.upper()
        if name == b"CONTENT-TYPE":
            if ctype is not None:
                return None
            ctype = value
        elif name == b"CONTENT-LENGTH":
            if length is not None or not value.isdigit() or len(value) > 9:
                return None
            length = value
        elif name == b"CONNECTION":
            connection = value.lower()
            if connection not in (b"close", b"keep-alive"):
                return None
        elif name in _FALLBACK_FIELDS:
            return None
    if (ctype is None or length is None) if method == "POST" else length not in (None, b"0"):
        return None
    if len(data) != end + 4 + int(length or 0):
        return None
    version = (1, 1) if parts[2] == b"HTTP/1.1" else (1, 0)
    return (method, parts[1].decode("ascii"), version, (ctype or b"").decode("latin-1"),
            (length or b"").decode("ascii"), connection, data[end + 4:])


class FastPathThreadWorker(ThreadWorker):
    """gunicorn's gthread worker, plus the hot paths (``racentre.fastpath``: the TSA, the OCSP
    responder) answered straight from gunicorn's parsed request: a request a registered handler takes
    skips building the WSGI environ, gunicorn's Response object and its two sends (status+headers, then
    body) — one ``sendall`` instead. On kept-alive connections the main thread reads and answers such
    requests itself, all those of one poll together. The reply is the one the WSGI middleware gives
    (same bytes, same status line, Server/Date/Connection headers gunicorn writes, then Content-Type and
    Content-Length) and keep-alive follows gunicorn's rules (Connection: close, max_requests, keepalive = 0, a full
    keep-alive queue, a worker shutting down). Handlers see the path percent-decoded as in PATH_INFO.
    Anything else — other paths, Expect/Transfer-Encoding/SCRIPT_NAME headers, an access log
    configured, FastPaths that is not the app's outermost WSGI layer — takes the ordinary gthread path
    unchanged. It relies on gthread internals: gunicorn is pinned to one version (setup.cfg) and
    tests/unit/test_library_contracts.py checks each internal used here."""

    _FALLBACK_HEADERS = frozenset({"TRANSFER-ENCODING", "EXPECT", "SCRIPT_NAME"})
    _READ = 16384
    _SEND_TIMEOUT = 5.0          # the main thread never blocks longer on one peer's reply

    def load_wsgi(self):
        super().load_wsgi()
        fast = getattr(self.wsgi, "wsgi_app", None)
        usable = isinstance(fast, FastPaths) and not os.environ.get("SCRIPT_NAME") and not self.cfg.accesslog
        self._fast = fast if usable else None
        # the main thread answers kept-alive plain-TCP connections itself (no thread-pool hand-off)
        # (batched per poll: needs a gthread worker with wait_for_and_dispatch_events, as 27.0 has)
        self._inline = self._fast is not None and not self.cfg.is_ssl and \
            callable(getattr(ThreadWorker, "wait_for_and_dispatch_events", None)) and \
            str(getattr(self.cfg, "proxy_protocol", "off") or "off").lower() in ("off", "false")
        self._date_second, self._date = -1, ""
        self._batch: list = []

    def _http_date(self) -> str:
        now = int(time.time())
        if now != self._date_second:
            self._date_second, self._date = now, gunicorn_util.http_date(now)
        return self._date

    def _head(self, version, close: bool, content_type: str, length: int) -> bytes:
        return (f"HTTP/{version[0]}.{version[1]} 200 OK\r\nServer: {GUNICORN_SERVER}\r\n"
                f"Date: {self._http_date()}\r\nConnection: {'close' if close else 'keep-alive'}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n\r\n"
                ).encode("latin-1")

    def on_client_socket_readable(self, conn, client):
        """A kept-alive connection has data. When it is exactly one plain request a fast path may take,
        it waits for the others that became readable in the same poll, and the main thread answers them
        together (``_answer_batch``) without the thread pool's hand-off, gunicorn's parser and two poller
        re-registrations; everything else goes the gthread way, with what was read handed back to
        gunicorn's parser (its unreader) first."""
        if self._inline and self.alive and conn.initialized and not conn.is_http2 and conn.parser is not None \
                and not conn.parser.unreader.buf.getvalue():
            try:
                data = client.recv(self._READ)
            except OSError:
                data = b""
            if data:
                request = simple_request(data)
                if request is not None:
                    self._batch.append((conn, client, data, request))
                    return
                conn.parser.unreader.unread(data)
        super().on_client_socket_readable(conn, client)

    def wait_for_and_dispatch_events(self, timeout):
        super().wait_for_and_dispatch_events(timeout)
        if self._batch:
            batch, self._batch = self._batch, []
            self._answer_batch(batch)

    def _answer_batch(self, batch) -> None:
        """The requests of one poll, answered by the fast paths in one call (``FastPaths.answer_many``:
        the OCSP responder reads the status of all of them in one statement); those the fast paths leave,
        or all of them if the call fails, go the gthread way."""
        try:
            replies = self._fast.answer_many([
                (method, gunicorn_util.unquote_to_wsgi_str(path), ctype, length, body)
                for _, _, _, (method, path, _, ctype, length, _, body) in batch])
        except Exception:  # noqa: BLE001 - nothing answered yet: the gthread path answers them the usual way
            self.log.exception("fast path failed; handing the requests to the thread pool")
            replies = [None] * len(batch)
        for (conn, client, data, request), reply in zip(batch, replies):
            if reply is None:
                conn.parser.unreader.unread(data)
                super().on_client_socket_readable(conn, client)
            else:
                self._send_inline(conn, client, request, reply)

    def _send_inline(self, conn, client, request, reply: tuple[str, bytes]) -> None:
        _, _, version, _, _, connection, _ = request
        content_type, reply = reply
        self.nr += 1
        if self.nr >= self.max_requests and self.alive:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False
        should_close = connection == b"close" or (connection is None and version <= (1, 0))
        close = (should_close or not self.alive or not self.cfg.keepalive
                 or len(self.keepalived_conns) - 1 >= self.max_keepalived)
        out = self._head(version, close, content_type, len(reply)) + reply
        try:
            try:
                sent = client.send(out)
            except BlockingIOError:
                sent = 0
            if sent < len(out):                 # a peer not reading: bounded wait, then dropped
                client.settimeout(self._SEND_TIMEOUT)
                try:
                    client.sendall(out[sent:])
                finally:
                    client.setblocking(False)
        except OSError:
            close = True
        if close:
            self.poller.unregister(client)
            self.keepalived_conns.remove(conn)
            self.nr_conns -= 1
            try:
                conn.close(graceful=True)
            except OSError:
                pass
        else:                                   # stays on the poller; moves to the back of the queue
            self.keepalived_conns.remove(conn)
            conn.set_timeout()
            self.keepalived_conns.append(conn)

    def handle_request(self, req, conn):
        fast = self._fast
        if fast is None:
            return super().handle_request(req, conn)
        content_type = length = ""
        for name, value in req.headers:        # the last one wins, as in gunicorn's environ
            if name == "CONTENT-TYPE":
                content_type = value
            elif name == "CONTENT-LENGTH":
                length = value
            elif name in self._FALLBACK_HEADERS:
                return super().handle_request(req, conn)
        reply = fast.answer(req.method, gunicorn_util.unquote_to_wsgi_str(req.path), content_type, length,
                            req.body.read)
        if reply is None:
            return super().handle_request(req, conn)
        content_type, reply = reply
        self.nr += 1
        if self.nr >= self.max_requests and self.alive:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False
        close = (not self.alive or not self.cfg.keepalive or len(self.keepalived_conns) >= self.max_keepalived
                 or req.should_close())
        conn.sock.sendall(self._head(req.version, close, content_type, len(reply)) + reply)
        return not close


if __name__ == "__main__":
    main(sys.argv)
