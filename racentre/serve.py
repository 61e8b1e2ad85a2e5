"""`racentre serve`: the service on a production WSGI server, never Flask's development one.

One worker: waitress (threads). Several workers: gunicorn pre-fork with threaded workers; each worker
builds its own service container after the fork, so every process has its own PKCS#11 module state
and database pool (neither survives a fork).
"""
from __future__ import annotations

import os
import time

import click
import waitress
from gunicorn import SERVER as GUNICORN_SERVER
from gunicorn import util as gunicorn_util
from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

from hsm import reinitialize_after_fork
from racentre.audit import start_periodic_checkpoints
from racentre.config import Config
from racentre.services import Services
from racentre.web import DEFAULT_PACKAGES, build_app


class _Gunicorn(BaseApplication):
    def __init__(self, config: Config, packages: tuple[str, ...], options: dict):
        self._config = config
        self._packages = packages
        self._options = options
        super().__init__()

    def load_config(self):
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self):  # runs in each worker, after the fork
        reinitialize_after_fork()
        return service_app(Services(self._config), self._packages)


class FastPathThreadWorker(ThreadWorker):
    """gunicorn's gthread worker, plus the TSA's hot path answered straight from gunicorn's parsed
    request: POST /tsa[/<unit>] that ``timestamp.views.FastPath`` takes skips building the WSGI
    environ, gunicorn's Response object and its two sends (status+headers, then body) — one
    ``sendall`` instead. The reply is the one the WSGI middleware gives (same bytes, same status line,
    Server/Date/Connection headers gunicorn writes, then Content-Type and Content-Length) and
    keep-alive follows gunicorn's rules (Connection: close, max_requests, keepalive = 0, a full
    keep-alive queue, a worker shutting down). Anything else — other paths, %-escaped paths,
    Expect/Transfer-Encoding/SCRIPT_NAME headers, an access log configured, a FastPath that is not the
    app's outermost WSGI layer — takes the ordinary gthread path unchanged."""

    _FALLBACK_HEADERS = frozenset({"TRANSFER-ENCODING", "EXPECT", "SCRIPT_NAME"})

    def load_wsgi(self):
        super().load_wsgi()
        from timestamp.views import FastPath
        fast = getattr(self.wsgi, "wsgi_app", None)
        usable = isinstance(fast, FastPath) and not os.environ.get("SCRIPT_NAME") and not self.cfg.accesslog
        self._fast = fast if usable else None
        self._date_second, self._date = -1, ""

    def _http_date(self) -> str:
        now = int(time.time())
        if now != self._date_second:
            self._date_second, self._date = now, gunicorn_util.http_date(now)
        return self._date

    def handle_request(self, req, conn):
        fast = self._fast
        if fast is None or "%" in req.path:
            return super().handle_request(req, conn)
        content_type = length = ""
        for name, value in req.headers:        # the last one wins, as in gunicorn's environ
            if name == "CONTENT-TYPE":
                content_type = value
            elif name == "CONTENT-LENGTH":
                length = value
            elif name in self._FALLBACK_HEADERS:
                return super().handle_request(req, conn)
        reply = fast.answer(req.method, req.path, content_type, length, req.body.read)
        if reply is None:
            return super().handle_request(req, conn)
        self.nr += 1
        if self.nr >= self.max_requests and self.alive:
            self.log.info("Autorestarting worker after current request.")
            self.alive = False
        close = (not self.alive or not self.cfg.keepalive or len(self.keepalived_conns) >= self.max_keepalived
                 or req.should_close())
        head = (f"HTTP/{req.version[0]}.{req.version[1]} 200 OK\r\nServer: {GUNICORN_SERVER}\r\n"
                f"Date: {self._http_date()}\r\nConnection: {'close' if close else 'keep-alive'}\r\n"
                f"Content-Type: application/timestamp-reply\r\nContent-Length: {len(reply)}\r\n\r\n")
        conn.sock.sendall(head.encode("latin-1") + reply)
        return not close


def service_app(services: Services, packages: tuple[str, ...]):
    """The app of one serving process, plus its background duties: periodic audit checkpoints when
    ``[audit] checkpoint_interval`` is set (each worker signs; checkpoints are idempotent over heads)."""
    app = build_app(services, packages)
    interval = services.config.audit.checkpoint_interval
    if interval > 0:
        start_periodic_checkpoints(services.db, services.key_manager, interval,
                                   key_label=services.config.audit.key_label)
    return app


def serve(config: Config, *, host: str, port: int, workers: int = 1, threads: int | None = None,
          packages: tuple[str, ...] = DEFAULT_PACKAGES) -> None:
    threads = threads or config.service.threads
    if workers <= 1:
        services = Services(config)
        waitress.serve(service_app(services, packages), host=host, port=port, threads=threads, ident="racentre")
        return
    _Gunicorn(config, packages, {"bind": f"{host}:{port}", "workers": workers, "threads": threads,
                                 "worker_class": "racentre.serve.FastPathThreadWorker", "preload_app": False, "accesslog": None,
                                 "timeout": 60, "graceful_timeout": 10}).run()


def parse_packages(text: str) -> tuple[str, ...]:
    """``"hsm,kms"`` -> the packages to serve, in build order; "" -> all of them."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        return DEFAULT_PACKAGES
    unknown = sorted(set(names) - set(DEFAULT_PACKAGES))
    if unknown:
        raise click.BadParameter(f"unknown package(s) {', '.join(unknown)}; choose from {', '.join(DEFAULT_PACKAGES)}",
                                 param_hint="--packages")
    return tuple(p for p in DEFAULT_PACKAGES if p in names)


@click.command("serve")
@click.option("--host", default=None, help="listen address (default [service] host)")
@click.option("--port", type=int, default=None, help="listen port (default [service] port)")
@click.option("--workers", type=int, default=None, help="worker processes (default [service] workers)")
@click.option("--packages", "packages_text", default=None,
              help="comma-separated packages to serve (default [service] packages, else all); "
                   "a stand-alone KMC: hsm,kms")
@click.pass_context
def serve_command(ctx, host, port, workers, packages_text):
    """Run the RA centre service (or a part of it, e.g. a stand-alone KMC)."""
    config = ctx.obj["config"]
    packages = parse_packages(config.service.packages if packages_text is None else packages_text)
    # Make sure the token exists (auto-initialised in the demo) before workers fork.
    ctx.obj["services"].key_manager.info()
    ctx.obj["services"].close()
    host = host or config.service.host
    port = port or config.service.port
    workers = workers or config.service.workers
    click.echo(f"RA centre listening on http://{host}:{port}/ (HSM token {config.hsm.token!r}, "
               f"{workers} worker{'s' if workers > 1 else ''}"
               + ("" if packages == DEFAULT_PACKAGES else f", packages {','.join(packages)}") + ")")
    serve(config, host=host, port=port, workers=workers, packages=packages)
