"""The gunicorn arbiter of `racentre serve --workers N` (N > 1), kept small: `racentre serve` execs a fresh
interpreter on this module (``exec_arbiter``), which loads only gunicorn, the configuration and the hot-path
worker below, and each worker loads the service itself after the fork (``racentre.serve.worker_app``). So
the arbiter is not an image of everything the CLI imported (the service's RSS is the arbiter's ~25 MiB plus
the workers', instead of a third full copy), and no PKCS#11 module or database pool ever lives in it. The
configuration travels in an anonymous memory file (memfd), never on disk or in argv; the arbiter keeps it
pickled and only each worker unpickles it, so the arbiter never imports the configuration's classes (and
with them SQLAlchemy and every package's settings: ~40 MiB it would hold for nothing).

``FastPathThreadWorker``: gunicorn's gthread worker plus the hot paths of ``racentre.fastpath``.
"""
from __future__ import annotations

import errno
import functools
import importlib
import os
import pickle
import re
import select
import selectors
import socket
import sys
import threading
import time
from concurrent import futures
from functools import partial
from pathlib import Path

from gunicorn import SERVER as GUNICORN_SERVER
from gunicorn import util as gunicorn_util
from gunicorn.app.base import BaseApplication
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers.gthread import TConn, ThreadWorker

from racentre import httpgate
from racentre.fastpath import FastPaths

WORKER_CLASS = "racentre.arbiter.FastPathThreadWorker"


class _Gunicorn(BaseApplication):
    def __init__(self, config: bytes, packages: tuple[str, ...], options: dict):
        self._pickled_config = config           # a pickled racentre.config.Config, unpickled in the workers
        self._config = None
        self._packages = packages
        self._options = options
        super().__init__()

    def load_config(self):
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self):  # runs in each worker, after the fork: the service is imported here, not in the arbiter
        self._config = pickle.loads(self._pickled_config)
        return importlib.import_module("racentre.serve").worker_app(self._config, self._packages)


def exec_arbiter(config, packages: tuple[str, ...], options: dict) -> None:
    """Replace this process (same pid, signals, stdout/stderr) by a fresh interpreter running gunicorn with
    ``options`` over ``packages``; ``config`` (a ``racentre.config.Config``, secrets included) is handed
    over in a memfd that the new process reads and closes. Never returns."""
    fd = os.memfd_create("racentre-serve", 0)            # no MFD_CLOEXEC: the exec'd interpreter inherits it
    os.write(fd, pickle.dumps((pickle.dumps(config), packages, options)))
    os.lseek(fd, 0, os.SEEK_SET)
    env = dict(os.environ)
    # glibc gives each thread that allocates its own malloc arena (up to 8 x cores): with 8 threads per
    # worker that is RSS the service keeps after every burst; two arenas per process serve it as well
    env.setdefault("MALLOC_ARENA_MAX", "2")
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
_POST_TARGET = re.compile(rb"/(?:tsa(?:/[0-9A-Za-z.-]*)?|ocsp(?:/[0-9A-Za-z._-]+)?|api/v1/trust/verify)\Z")
_GET_TARGET = re.compile(rb"/ocsp/[0-9A-Za-z._-]+/[0-9A-Za-z+/=%._-]+\Z")
_FALLBACK_FIELDS = frozenset({b"TRANSFER-ENCODING", b"EXPECT", b"SCRIPT_NAME", b"UPGRADE", b"HTTP2-SETTINGS",
                             b"IF-NONE-MATCH", b"IF-MODIFIED-SINCE"})


def simple_request(data: bytes):
    """A complete, plain HTTP/1.x request for a fast path that is all of ``data`` (one read) — POST
    /tsa[/<unit>], POST /ocsp[/<ca>], POST /api/v1/trust/verify with a body, GET /ocsp/<ca>/<request> without
    one — -> (method, path, (major, minor), content type, content length, connection header or None, body,
    Authorization header or None); anything else (incomplete,
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
    ctype = length = connection = authorization = None
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
        elif name == b"AUTHORIZATION":
            if authorization is not None:
                return None
            authorization = value
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
            (length or b"").decode("ascii"), connection, data[end + 4:],
            authorization.decode("latin-1") if authorization is not None else None)


def _path_info(target: str) -> str:
    """PATH_INFO of a fast-path target (``simple_request``'s: ASCII, no query), percent-decoded as gunicorn
    does; most have no escape to decode, and the GET targets that do (an OCSP request in base64) are mostly
    the same few asked again and again (``_unquoted``)."""
    return target if "%" not in target else _unquoted(target)


@functools.lru_cache(maxsize=1024)
def _unquoted(target: str) -> str:
    return gunicorn_util.unquote_to_wsgi_str(target)


class _BoundedSocket(socket.socket):
    """A client socket whose "blocking" mode has a timeout: gunicorn's thread-side code switches sockets to
    blocking (``setblocking(True)``) to read and write; here every such read or write gives up after
    ``io_timeout`` seconds (a client that stops reading its answer frees the thread)."""

    io_timeout = 30.0

    def setblocking(self, flag: bool) -> None:
        if flag:
            self.settimeout(self.io_timeout)
        else:
            super().setblocking(False)


class _GateConn(TConn):
    """A connection accepted by the request gate: a graceful close (RFC 9112 §9.6: FIN, then drain what the
    peer still sends, then close) lingers on the worker's poller instead of blocking the main thread for up
    to 2 s per connection (gunicorn's ``util.close_graceful``)."""

    def __init__(self, worker, *args):
        super().__init__(*args)
        self.worker = worker

    def close(self, graceful=False):
        if graceful and threading.current_thread() is threading.main_thread():
            self.worker._linger(self)
        else:
            super().close(graceful)


class _PrereadUnreader(SocketUnreader):
    """gunicorn's socket reader, first giving the request the main thread already read into a temporary
    file (``racentre.httpgate``: a body larger than what a connection may keep in memory)."""

    def __init__(self, sock, spool):
        super().__init__(sock)
        self._spool = spool

    def chunk(self, size_hint=None):
        if self._spool is not None:
            data = self._spool.read(max(size_hint or 0, 65536))
            if data:
                return data
            self._spool.close()
            self._spool = None
        return super().chunk(size_hint)


class FastPathThreadWorker(ThreadWorker):
    """gunicorn's gthread worker with two changes.

    The request gate (``racentre.httpgate``): the main thread reads every HTTP/1.x request — new and
    kept-alive connections — from its non-blocking socket until the whole request is in (header block and
    body), and only then gives it to a thread, with the bytes already in gunicorn's parser. A slow client
    (slowloris: slow headers, slow bodies) therefore holds a bounded buffer, never a thread; it gets 408
    at ``[service] header_timeout`` / ``request_timeout``, 431 for an oversized header block, 413 for an
    oversized body. Thread-side socket reads and writes time out (``_BoundedSocket``).

    The hot paths of ``racentre.fastpath`` (the TSA, the OCSP responder): a complete request that is
    exactly one plain POST /tsa, POST /ocsp or GET /ocsp request is answered without the thread pool's
    hand-off, gunicorn's parser, the WSGI environ and gunicorn's Response object — one ``send`` from the
    main thread. The TSA's are answered by the main thread itself, all those of one poll together
    (``_answer_batch``); the OCSP responder's read the database, so they are answered by one batch thread
    per worker, all those that arrived while the previous batch was read together (one status read), and
    the main thread goes on reading requests meanwhile, then signs and sends them (``_dispatch_waiting``).
    The reply is the one the WSGI middleware gives (same bytes, same status line, Server/Date/Connection
    headers gunicorn writes, then Content-Type and Content-Length) and keep-alive follows gunicorn's rules (Connection: close,
    max_requests, keepalive = 0, a full keep-alive queue, a worker shutting down). Handlers see the path
    percent-decoded as in PATH_INFO. Anything else — other paths, Expect/Transfer-Encoding/SCRIPT_NAME
    headers, conditional requests (If-None-Match, If-Modified-Since: Flask may answer 304), an access log
    configured, FastPaths that is not the app's outermost WSGI layer — takes the ordinary gthread path.
    TLS or HTTP/2 prior-knowledge listeners skip the gate (gunicorn as it is). It relies on gthread
    internals: gunicorn is pinned to one version (setup.cfg) and tests/unit/test_library_contracts.py
    checks each internal used here."""

    _FALLBACK_HEADERS = frozenset({"TRANSFER-ENCODING", "EXPECT", "SCRIPT_NAME", "IF-NONE-MATCH",
                                   "IF-MODIFIED-SINCE"})       # conditional requests: Flask may answer 304
    _READ = 65536
    _SEND_TIMEOUT = 5.0          # the main thread never blocks longer on one peer's reply
    _NOWAIT_BLOCK = 0.002        # how long the main thread waits for a read without waiting, at most (s)
    _NOWAIT_TIMEOUT = 1.0        # a read waited for on the poller longer than this goes to the batch thread

    def load_wsgi(self):
        super().load_wsgi()
        fast = getattr(self.wsgi, "wsgi_app", None)
        usable = isinstance(fast, FastPaths) and not os.environ.get("SCRIPT_NAME") and not self.cfg.accesslog
        self._fast = fast if usable else None
        self._limits = fast if isinstance(fast, FastPaths) else None
        service = getattr(getattr(self.app, "_config", None), "service", None)
        self._header_timeout = float(getattr(service, "header_timeout", httpgate.HEADER_TIMEOUT))
        self._request_timeout = float(getattr(service, "request_timeout", httpgate.REQUEST_TIMEOUT))
        _BoundedSocket.io_timeout = float(getattr(service, "io_timeout", _BoundedSocket.io_timeout))
        # the gate needs plain TCP HTTP/1.x and a gthread worker with wait_for_and_dispatch_events (27.0 has)
        self._gate = not self.cfg.is_ssl and \
            callable(getattr(ThreadWorker, "wait_for_and_dispatch_events", None)) and \
            str(getattr(self.cfg, "proxy_protocol", "off") or "off").lower() in ("off", "false") and \
            str(getattr(self.cfg, "http2_cleartext", "off") or "off").lower() not in ("prior-knowledge", "both")
        self._inline = self._fast is not None and self._gate
        self._date_second, self._date, self._heads = -1, "", {}
        self._batch: list = []
        self._waiting: list = []            # requests of ``blocking`` fast paths not yet handed to the batch thread
        self._in_flight = False             # the batch thread is reading the status of a batch of them
        self._batch_pool = None             # that thread (made on first use, after the fork)
        self._pending = None                # (read, batch, staged, deadline): a read waited for on the poller
        self._reading: dict = {}            # conn -> IncomingRequest, connections the main thread reads
        self._lingering: dict = {}          # socket -> [deadline, bytes drained], closing gracefully

    _HEARTBEAT = 1.0             # seconds between two heartbeats at most (gunicorn's worker timeout is 60 s)

    def notify(self):
        """gunicorn's heartbeat — a utime() of the worker's temporary file, which the arbiter compares with
        the worker timeout — at most once a second instead of on every pass of the event loop: under load a
        pass serves a few requests, and the system call was ~8% of a busy worker's samples (py-spy, pre-produced OCSP)."""
        now = time.monotonic()
        if now - getattr(self, "_heartbeat", float("-inf")) >= self._HEARTBEAT:
            self._heartbeat = now
            super().notify()

    def handle_quit(self, sig, frame):
        pool = getattr(self, "_batch_pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        super().handle_quit(sig, frame)

    def _http_date(self) -> str:
        now = int(time.time())
        if now != self._date_second:
            self._date_second, self._date = now, gunicorn_util.http_date(now)
            self._heads = {}                   # their Date is this second's
        return self._date

    def _head(self, version, close: bool, content_type: str, length: int, extra=()) -> bytes:
        """The status line and headers of a 200 reply; the same ones within one second (same Date) are made
        once (pre-produced OCSP answers and their GET headers repeat)."""
        date = self._http_date()
        key = (date, version, close, content_type, length, extra)
        try:
            head = self._heads.get(key)
        except TypeError:                      # unhashable extra headers (a list): made each time
            head, key = None, None
        if head is None:
            head = (f"HTTP/{version[0]}.{version[1]} 200 OK\r\nServer: {GUNICORN_SERVER}\r\n"
                    f"Date: {date}\r\nConnection: {'close' if close else 'keep-alive'}\r\n"
                    f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n"
                    + "".join(f"{name}: {value}\r\n" for name, value in extra) + "\r\n").encode("latin-1")
            if key is not None and len(self._heads) < 256:
                self._heads[key] = head
        return head

    # ------------------------------------------------------------------ the request gate (main thread)
    def accept(self, listener):
        if not self._gate:
            return super().accept(listener)
        try:
            client_sock, client_addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        sock = _BoundedSocket(client_sock.family, client_sock.type, client_sock.proto, fileno=client_sock.detach())
        conn = _GateConn(self, self.cfg, sock, client_addr, listener.getsockname())     # non-blocking
        self._start_reading(conn)

    def _incoming(self) -> httpgate.IncomingRequest:
        return httpgate.IncomingRequest(header_timeout=self._header_timeout, request_timeout=self._request_timeout,
                                        body_limit=self._body_limit if self._limits is not None else None)

    def _body_limit(self, target: bytes) -> int | None:
        try:
            # the limit is the handler's of the first path segment: percent-decoding the rest changes nothing
            end = target.find(b"/", 1)
            first = target if end < 0 else target[:end]
            if b"%" not in first:
                return self._limits.body_limit(first.decode("latin-1"))
            return self._limits.body_limit(gunicorn_util.unquote_to_wsgi_str(target.decode("latin-1")))
        except Exception:  # noqa: BLE001 - an odd target: gunicorn's parser and the app judge it
            return None

    def _start_reading(self, conn) -> None:
        self._reading[conn] = self._incoming()
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_gate_readable, conn))

    def on_client_socket_readable(self, conn, client):
        """A kept-alive connection has data: the gate reads its next request like a new connection's."""
        if not self._gate:
            return super().on_client_socket_readable(conn, client)
        self.keepalived_conns.remove(conn)
        self._reading[conn] = self._incoming()
        self.poller.modify(client, selectors.EVENT_READ, partial(self._on_gate_readable, conn))
        self._on_gate_readable(conn, client)

    def _drop(self, conn, reply: bytes = b"") -> None:
        """Close a connection the gate holds (after ``reply``, best effort: never blocking)."""
        incoming = self._reading.pop(conn, None)
        if incoming is not None:
            incoming.close()
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        self.nr_conns -= 1
        if reply:
            try:
                conn.sock.send(reply)
            except OSError:
                pass
            self._linger(conn)                         # FIN after the answer; unread input drained, not reset
        else:
            conn.close()

    def _on_gate_readable(self, conn, client):
        incoming = self._reading.get(conn)
        if incoming is None:
            return
        try:
            data = client.recv(self._READ)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:                                   # the peer closed (or reset)
            self._drop(conn)
            return
        self._gate_feed(conn, client, incoming, data)

    def _gate_feed(self, conn, client, incoming, data: bytes) -> None:
        try:
            if not incoming.feed(data):
                if incoming.expect_continue and not incoming.continue_sent:
                    incoming.continue_sent = True      # RFC 9110 §10.1.1: the body is wanted
                    try:
                        client.send(b"HTTP/1.1 100 Continue\r\n\r\n")
                    except OSError:
                        pass
                return
        except httpgate.GateRefusal as refusal:
            self.log.debug("request refused by the gate: %s", refusal.message)
            self._drop(conn, refusal.response())
            return
        del self._reading[conn]
        self.poller.unregister(client)
        request = incoming.take()
        if self._inline and isinstance(request, bytes) and not incoming.expect_continue:
            simple = simple_request(request)
            if simple is not None:
                self._batch.append((conn, client, request, simple))
                return
        self._to_thread(conn, request, incoming.continue_sent)

    def finish_request(self, conn, fs):
        """gunicorn's, then: bytes a thread read past its request (a pipelined next one) go back to the gate."""
        left = getattr(conn, "racentre_leftover", b"")
        super().finish_request(conn, fs)
        if not left:
            return
        conn.racentre_leftover = b""
        try:
            self.poller.get_key(conn.sock)             # still open and kept alive?
        except (KeyError, ValueError, OSError):
            return
        self.keepalived_conns.remove(conn)
        incoming = self._incoming()
        self._reading[conn] = incoming
        self.poller.modify(conn.sock, selectors.EVENT_READ, partial(self._on_gate_readable, conn))
        self._gate_feed(conn, conn.sock, incoming, left)

    def _linger(self, conn) -> None:
        """Graceful close without blocking: FIN now; what the peer still sends is read and dropped from the
        poller until it closes, 64 KiB or 2 s, then the socket is closed."""
        sock = conn.sock
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
            self.poller.register(sock, selectors.EVENT_READ, partial(self._on_linger_readable, sock))
        except (OSError, ValueError, KeyError):
            gunicorn_util.close(sock)
            return
        self._lingering[sock] = [time.monotonic() + 2.0, 0]

    def _on_linger_readable(self, sock, _fileobj=None):
        state = self._lingering.get(sock)
        try:
            data = sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if state is not None and data:
            state[1] += len(data)
            if state[1] < 65536:
                return
        self._end_linger(sock)

    def _end_linger(self, sock) -> None:
        self._lingering.pop(sock, None)
        try:
            self.poller.unregister(sock)
        except (KeyError, ValueError, OSError):
            pass
        gunicorn_util.close(sock)

    def _to_thread(self, conn, request, continued: bool = False) -> None:
        conn.racentre_request = request
        conn.racentre_continued = continued
        conn.data_ready = True
        self.enqueue_req(conn)

    def _expire_reading(self) -> None:
        now = time.monotonic()
        for sock, (deadline, _) in list(self._lingering.items()):
            if now >= deadline:
                self._end_linger(sock)
        if not self._reading:
            return
        for conn, incoming in list(self._reading.items()):
            if incoming.expired(now) or (not self.alive and not incoming.received):
                refusal = httpgate.GateRefusal(408, "the request was not received in time")
                self._drop(conn, refusal.response() if incoming.received else b"")

    def murder_keepalived(self, force=False):
        super().murder_keepalived(force)
        if force:
            for conn in list(self._reading):
                self._drop(conn)
            for sock in list(self._lingering):
                self._end_linger(sock)
        else:
            self._expire_reading()

    def handle(self, conn):
        """Thread side: a request the gate read is put into gunicorn's parser before gunicorn handles it."""
        request = getattr(conn, "racentre_request", None)
        if request is not None:
            conn.racentre_request = None
            try:
                conn.sock.setblocking(True)
                conn.init()
                if isinstance(request, bytes):
                    conn.parser.unreader.unread(request)
                else:
                    conn.parser.unreader = _PrereadUnreader(conn.sock, request)
            except Exception as e:  # noqa: BLE001 - as gunicorn's own handle: an error answer, then close
                self.handle_error(None, conn.sock, conn.client, e)
                return False
        keepalive = super().handle(conn)
        if keepalive is True and self._gate and conn.parser is not None:
            # what was read past this request goes back to the gate (finish_request), never to a thread
            unreader = conn.parser.unreader
            left = unreader.take_buffered()
            if isinstance(unreader, _PrereadUnreader) and unreader._spool is not None:
                left += unreader._spool.read()
                unreader._spool.close()
                unreader._spool = None
            conn.racentre_leftover = left
        return keepalive

    # ------------------------------------------------------------------ hot paths (main thread)
    def wait_for_and_dispatch_events(self, timeout):
        super().wait_for_and_dispatch_events(timeout)
        if self._batch:
            batch, self._batch = self._batch, []
            self._answer_batch(batch)
        if self._pending is not None and time.monotonic() > self._pending[3]:
            self._pending_to_thread()

    def _answer_batch(self, batch) -> None:
        """The requests of one poll, answered by the fast paths in one call (``FastPaths.answer_many``:
        the OCSP responder reads the status of all of them in one statement). Those of ``blocking`` paths
        (the OCSP responder reads the database) wait for the batch thread's database read, so a slow
        database never stalls this thread's reading of other clients' requests (``_dispatch_waiting``);
        the rest (the TSA: an HSM signature) are answered at once. Those the fast paths leave, or all of
        them if the call fails, go to the thread pool."""
        inline = []
        for item in batch:
            (self._waiting if self._fast.blocking(item[3][1]) else inline).append(item)
        if inline:
            self._send_replies(inline, self._fast_answers(inline))
        if self._waiting and not self._in_flight:
            self._dispatch_waiting()

    def _fast_answers(self, batch) -> list:
        try:
            return self._fast.answer_many([
                (method, _path_info(path), ctype, length, body, authorization)
                for _, _, _, (method, path, _, ctype, length, _, body, authorization) in batch])
        except Exception:  # noqa: BLE001 - nothing answered yet: the gthread path answers them the usual way
            self.log.exception("fast path failed; handing the requests to the thread pool")
            return [None] * len(batch)

    def _send_replies(self, batch, replies) -> None:
        for (conn, client, data, request), reply in zip(batch, replies):
            if reply is None:
                self._to_thread(conn, data)
            else:
                self._send_inline(conn, client, request, reply)

    def _dispatch_waiting(self) -> None:
        """The waiting requests of blocking fast paths as one batch (``FastPaths.stage_many``): parsed here,
        their database read done by the batch thread, one batch at a time — what arrives meanwhile waits
        for the next one, so a batch grows with the database's latency (one status read for all of them)
        and a slow database holds one thread, never this one nor the pool the Flask app's requests use —
        then signed and sent here (``_batch_read``, through gunicorn's method queue), and new pre-produced
        responses written by the batch thread after."""
        batch, self._waiting = self._waiting, []
        try:
            staged = self._fast.stage_many([
                (method, _path_info(path), ctype, length, body, authorization)
                for _, _, _, (method, path, _, ctype, length, _, body, authorization) in batch])
        except Exception:  # noqa: BLE001 - nothing answered yet: the gthread path answers them the usual way
            self.log.exception("fast path failed; handing the requests to the thread pool")
            self._send_replies(batch, [None] * len(batch))
            return
        if not self._read_nowait(batch, staged):
            self._to_batch_thread(batch, staged)

    def _read_nowait(self, batch, staged) -> bool:
        """The batch's read without the batch thread, when the read needs no waiting (``Staged.read_nowait``:
        a batch of the OCSP fast path's remembered answers reads only the revocation counters, sent now —
        after all its requests arrived — on a non-blocking PostgreSQL connection). Its answer is waited
        for here ``_NOWAIT_BLOCK`` at most (a healthy database answers in a fraction of that, and the
        requests that arrive meanwhile make the next batch larger), then on the poller
        (``_on_pending_readable``), and after ``_NOWAIT_TIMEOUT`` the batch thread reads the batch instead.
        Handing a batch to the batch thread and back costs a worker more than such a read (measured with
        bench/ocsp_http.py on PostgreSQL). True when taken so."""
        try:
            read = staged.read_nowait()
        except Exception:  # noqa: BLE001 - the batch thread reads it the usual way
            self.log.exception("fast path: a read without waiting failed")
            return False
        if read is False:
            return False
        self._in_flight = True
        if read is True:
            self._batch_read(batch, staged, None)
            return True
        self._pending = (read, batch, staged, time.monotonic() + self._NOWAIT_TIMEOUT)
        arrived = False
        try:
            waiter = select.poll()
            waiter.register(read.fileno(), select.POLLIN)
            deadline = time.monotonic() + self._NOWAIT_BLOCK
            while not arrived and (left := deadline - time.monotonic()) > 0 and waiter.poll(left * 1000):
                arrived = read.ready()
            if not arrived:
                self.poller.register(read.fileno(), selectors.EVENT_READ, self._on_pending_readable)
        except Exception as exc:  # noqa: BLE001 - the connection failed: the batch thread reads it the usual way
            self.log.warning("fast path: a read without waiting failed (%s); the batch thread reads it", exc)
            self._pending = None
            read.abandon()
            self._to_batch_thread(batch, staged)
            return True
        if arrived:
            self._pending = None
            self._read_done(batch, staged)
        return True

    def _on_pending_readable(self, _fd) -> None:
        read, batch, staged, _ = self._pending
        try:
            if not read.ready():
                return
        except Exception as exc:  # noqa: BLE001 - the connection failed: the batch thread reads it the usual way
            self.log.warning("fast path: a read without waiting failed (%s); the batch thread reads it", exc)
            self._pending_to_thread()
            return
        self._unregister_pending()
        self._read_done(batch, staged)

    def _read_done(self, batch, staged) -> None:
        """The read without waiting is in: the batch answered, or (a counter moved: statuses to read) read
        by the batch thread."""
        try:
            done = staged.read_nowait()
        except Exception:  # noqa: BLE001 - the batch thread reads it the usual way
            self.log.exception("fast path: a read without waiting failed")
            done = False
        if done is True:
            self._batch_read(batch, staged, None)
            return
        if done is not False:
            done.abandon()
        self._to_batch_thread(batch, staged)

    def _unregister_pending(self) -> None:
        read, self._pending = self._pending[0], None
        try:
            self.poller.unregister(read.fileno())
        except (OSError, ValueError, KeyError):
            pass

    def _pending_to_thread(self) -> None:
        """A read waited for on the poller given up (too slow, or its connection failed): its connection is
        closed and the batch thread reads the batch the usual way (the counters again, then statuses)."""
        read, batch, staged, _ = self._pending
        self._unregister_pending()
        read.abandon()
        self._to_batch_thread(batch, staged)

    def _to_batch_thread(self, batch, staged) -> None:
        if self._batch_pool is None:
            self._batch_pool = futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="racentre-batch")
        try:
            future = self._batch_pool.submit(staged.read)
        except RuntimeError:                   # the pool is shut down: the thread pool answers them
            self._in_flight = False
            self._send_replies(batch, [None] * len(batch))
            return
        self._in_flight = True
        future.add_done_callback(lambda fut: self.method_queue.defer(self._batch_read, batch, staged, fut))

    def _batch_read(self, batch, staged, future) -> None:
        self._in_flight = False
        try:
            try:
                if future is not None:          # None: read on this thread (``_read_nowait``)
                    future.result()
                replies = staged.answers()
            except Exception:  # noqa: BLE001 - cancelled or failed: the thread pool answers them
                self.log.exception("fast path failed; handing the requests to the thread pool")
                replies = [None] * len(batch)
            else:
                if staged.writes():            # new pre-produced responses: kept before they are sent, so a
                    try:                       # client asking again (or revalidating) gets the same one
                        write = self._batch_pool.submit(self._write_batch, staged)
                    except RuntimeError:
                        pass                   # shutting down: they are signed again on demand
                    else:
                        write.add_done_callback(
                            lambda fut: self.method_queue.defer(self._send_replies, batch, replies))
                        return
            self._send_replies(batch, replies)
        finally:
            if self._waiting:
                self._dispatch_waiting()

    def _write_batch(self, staged) -> None:
        try:
            staged.write()
        except Exception:  # noqa: BLE001 - a kept response not written is signed again when asked for
            self.log.exception("fast path: writing after a batch failed")

    def _send_inline(self, conn, client, request, reply: tuple[str, bytes]) -> None:
        _, _, version, _, _, connection, _, _ = request
        content_type, extra, reply = reply[0], reply[2] if len(reply) > 2 else (), reply[1]
        self.nr += 1
        if self.nr >= self.max_requests and self.alive:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False
        should_close = connection == b"close" or (connection is None and version <= (1, 0))
        close = (should_close or not self.alive or not self.cfg.keepalive
                 or len(self.keepalived_conns) >= self.max_keepalived)
        out = self._head(version, close, content_type, len(reply), extra) + reply
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
            self.nr_conns -= 1
            try:
                conn.close(graceful=True)
            except OSError:
                pass
        else:                                   # kept alive: back on the poller, at the back of the queue
            conn.set_timeout()
            self.keepalived_conns.append(conn)
            self.poller.register(client, selectors.EVENT_READ, partial(self.on_client_socket_readable, conn))

    def handle_request(self, req, conn):
        if getattr(conn, "racentre_continued", False):       # the gate sent 100 Continue already
            conn.racentre_continued = False
            req._expected_100_continue = False
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
        content_type, extra, reply = reply[0], reply[2] if len(reply) > 2 else (), reply[1]
        self.nr += 1
        if self.nr >= self.max_requests and self.alive:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False
        close = (not self.alive or not self.cfg.keepalive or len(self.keepalived_conns) >= self.max_keepalived
                 or req.should_close())
        conn.sock.sendall(self._head(req.version, close, content_type, len(reply), extra) + reply)
        return not close


if __name__ == "__main__":
    main(sys.argv)
