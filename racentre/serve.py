"""`racentre serve`: the service on waitress (a production WSGI server, not Flask's development one)."""
from __future__ import annotations

import click
import waitress

from hsm import open_key_manager
from racentre.web import create_app


@click.command("serve")
@click.option("--host", default=None, help="listen address (default [service] host)")
@click.option("--port", type=int, default=None, help="listen port (default [service] port)")
@click.pass_context
def serve_command(ctx, host, port):
    """Run the RA centre service."""
    config = ctx.obj["config"]
    km = open_key_manager(config.hsm)
    app = create_app(config, km)
    host = host or config.service.host
    port = port or config.service.port
    click.echo(f"RA centre listening on http://{host}:{port}/ (HSM token {config.hsm.token!r})")
    waitress.serve(app, host=host, port=port, threads=config.service.threads, ident="racentre")
