"""`racentre serve`: the service on a production WSGI server, never Flask's development one.

One worker: waitress (threads). Several workers: gunicorn pre-fork with threaded workers, run by a small
arbiter process (``racentre.arbiter``: this process execs it); each worker builds its own service
container after the fork (``worker_app``), so every process has its own PKCS#11 module state and
database pool (neither survives a fork).
"""
from __future__ import annotations

import gc
import logging
import threading
import time

import click
import waitress

from hsm import reinitialize_after_fork
from racentre.app import DEFAULT_PACKAGES, build_app
from racentre.arbiter import WORKER_CLASS, exec_arbiter
from racentre.audit import site_checkpointer, start_periodic_checkpoints
from racentre.config import Config
from racentre.schema import SchemaError, require_current
from racentre.services import Services
from racentre.web import MAX_ANY_BODY, REFUSAL_KEY
from timestamp.errors import TsaError

log = logging.getLogger(__name__)


def watch_schema(app, engine, interval: float) -> None:
    """Every ``interval`` seconds, check that the database is still at this code's schema. Once another
    node's `racentre db upgrade` (a newer version) changed it under this running node, every request
    through the app is refused (503, SchemaError's message: install the same version) instead of
    reading and writing tables this code does not know; the check clears when the schema is this
    code's again. The TSA's fast path, which needs no table, keeps answering."""
    state: dict = {"error": None}

    def check() -> None:
        while True:
            time.sleep(interval)
            try:
                require_current(engine)
                state["error"] = None
            except SchemaError as exc:
                if state["error"] is None:
                    log.error("this node no longer serves: %s", exc)
                state["error"] = exc.public_message
            except Exception as exc:  # noqa: BLE001 - the database away for a moment is not a schema change
                log.warning("schema check failed: %s", exc)

    threading.Thread(target=check, name="racentre-schema-watch", daemon=True).start()
    app.extensions[REFUSAL_KEY] = lambda: state["error"]        # the trust fast path asks (racentre.web.refusing)

    @app.before_request
    def _refuse_on_another_schema():
        if state["error"] is not None:
            raise SchemaError(state["error"])


def service_app(services: Services, packages: tuple[str, ...]):
    """The app of one serving process, plus its background duties: periodic audit checkpoints (``[audit]
    checkpoint_interval`` seconds / ``checkpoint_rows`` rows, on by default; every worker looks, one at a
    time signs under a lock of the database, and only when the chains moved),
    sweeps of the CA's KMC outbox every ``[service] kmc_retry_interval`` seconds when a KMC is
    attached (workers claim rows, so none is sent twice at once), sweeps of the RA requests awaiting an
    upstream CA every ``[service] cmp_sweep_interval`` seconds with ``[ca] backend = "cmp"`` (rows are
    leased, so two workers never carry one request on at once), and the schema watch every
    ``[service] schema_check_interval`` seconds (``watch_schema``)."""
    app = build_app(services, packages)
    if services.config.service.schema_check_interval > 0:
        watch_schema(app, services.engine, services.config.service.schema_check_interval)
    audit = services.config.audit
    if audit.checkpoint_interval > 0 or audit.checkpoint_rows > 0:
        app.extensions["racentre.audit_checkpoints"] = start_periodic_checkpoints(site_checkpointer(services))
    if "racentre.ca" in app.extensions and services.config.service.kmc_retry_interval > 0:
        app.extensions["racentre.kmc_outbox_sweep"] = services.ca.kmc.start_retry_sweep(
            services.config.service.kmc_retry_interval)
    if "racentre.ra" in app.extensions and services.config.ca.backend == "cmp" \
            and services.config.service.cmp_sweep_interval > 0:
        app.extensions["racentre.cmp_awaiting_sweep"] = services.ra.start_collect_sweep(
            services.config.service.cmp_sweep_interval)
    return app


def worker_app(config: Config, packages: tuple[str, ...]):
    """The app of one gunicorn worker, built after the fork. Everything allocated while building it is
    moved out of the cyclic garbage collector's generations (``gc.freeze``): later full collections then
    walk only what requests allocate, not the hundreds of thousands of objects of the imported packages
    (a pause each of which was a latency spike under load)."""
    reinitialize_after_fork()
    app = service_app(Services(config), packages)
    ca = app.extensions.get("racentre.ca")
    if ca is not None:               # the OCSP fast path asks the CA directory on the main thread
        ca.directory.watch.watch_in_background()
    gc.collect()
    gc.freeze()
    return app


def serve(config: Config, *, host: str, port: int, workers: int = 1, threads: int | None = None,
          packages: tuple[str, ...] = DEFAULT_PACKAGES) -> None:
    threads = threads or config.service.threads
    if workers <= 1:
        services = Services(config)
        waitress.serve(service_app(services, packages), host=host, port=port, threads=threads, ident="racentre",
                       max_request_body_size=MAX_ANY_BODY)      # waitress's own 413, before BodyLimit's
        return
    exec_arbiter(config, packages, {"bind": f"{host}:{port}", "workers": workers, "threads": threads,
                                    "worker_class": WORKER_CLASS, "preload_app": False, "accesslog": None,
                                    "timeout": 60, "graceful_timeout": 10,
                                    # gunicorn >= 25.1 opens a control socket in $HOME or $XDG_RUNTIME_DIR:
                                    # one per host, shared by every instance there; a node keeps no such file
                                    "control_socket_disable": True})


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
    # Make sure the token exists (auto-initialised in the demo) and the database is at this version's
    # schema (else refuse, saying why) before workers fork.
    ctx.obj["services"].key_manager.info()
    ctx.obj["services"].engine  # noqa: B018
    ctx.obj["services"].close()
    host = host or config.service.host
    port = port or config.service.port
    workers = workers or config.service.workers
    click.echo(f"RA centre listening on http://{host}:{port}/ (HSM token {config.hsm.token!r}, "
               f"{workers} worker{'s' if workers > 1 else ''}"
               + ("" if packages == DEFAULT_PACKAGES else f", packages {','.join(packages)}") + ")")
    serve(config, host=host, port=port, workers=workers, packages=packages)


@click.command("serve")
@click.option("--host", default=None, help="listen address (default [service] host)")
@click.option("--port", type=int, default=None, help="listen port (default [service] port)")
@click.option("--workers", type=int, default=None, help="worker processes (default [service] workers)")
@click.pass_context
def tsa_serve_command(ctx, host, port, workers):
    """Run the TSA alone (POST /tsa, /tsa/<unit>, /tsa/verify; GET /hsm/health)."""
    config = ctx.obj["config"]
    services = ctx.obj["services"]
    services.key_manager.info()   # the token exists (auto-initialised in the demo) before workers fork
    services.engine               # noqa: B018 - refuses a database at another schema revision
    units = config.tsa.unit_configs()
    try:
        services.tsa.authority     # noqa: B018 - only to warn early
    except TsaError as exc:
        click.echo(f"warning: {exc} (until then /tsa answers systemFailure; the service takes the "
                   "certificates up once they are issued)", err=True)
    services.close()
    host = host or config.service.host
    port = port or config.service.port
    workers = workers or config.service.workers
    click.echo(f"TSA listening on http://{host}:{port}/tsa (units: {', '.join(units)}; clock "
               f"synchronisation {'required' if config.tsa.require_sync else 'not required'})")
    serve(config, host=host, port=port, workers=workers, packages=("hsm", "timestamp"))
