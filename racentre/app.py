"""The site's service app: which package's blueprint is served over which service of the composition
root (``racentre.services.Services``). ``racentre.web.create_app`` makes the bare Flask app (error table,
limits); ``build_app`` adds the packages ``racentre serve`` runs (all of them, or e.g. ``hsm,kms`` for a
stand-alone KMC), each service taken from ``Services`` — no package builds another's.
"""
from __future__ import annotations

import logging

from flask import Flask

from access.auth import require_roles

from ca_bridge import views as ca_views
from ca_bridge.cmp import views as cmp_views
from hsm import views as hsm_views
from kms import views as kms_views
from ra import views as ra_views
from racentre import fastpath, openapi
from racentre.console import views as console_views
from racentre.services import Services
from racentre.web import create_app, refusing
from seal import views as seal_views
from timestamp import views as tsa_views
from trust import views as trust_views
from trust.fastpath import TrustVerifyFastPath

log = logging.getLogger(__name__)


def _wire_hsm(app: Flask, services: Services) -> None:
    app.register_blueprint(hsm_views.bp)


def _wire_ca(app: Flask, services: Services) -> None:
    ca = app.extensions["racentre.ca"] = services.ca
    app.register_blueprint(ca_views.bp)
    fastpath.install(app, "ocsp", ca_views.OcspFastPath(ca))
    if not services.site.provisioned:
        log.warning("the CA hierarchy is not set up yet: run `racentre setup` (or `racentre ca init`)")


def _wire_cmp(app: Flask, services: Services) -> None:
    """The CMP server (RFC 9483 §6: /.well-known/cmp) over the embedded CA."""
    app.extensions[cmp_views.EXTENSION_KEY] = services.cmp
    app.register_blueprint(cmp_views.bp)


def _wire_ra(app: Flask, services: Services) -> None:
    app.extensions["racentre.ra"] = services.ra
    app.register_blueprint(ra_views.bp)


def _wire_timestamp(app: Flask, services: Services) -> None:
    tsa_views.install(app, services.tsa)
    fastpath.install(app, "tsa", tsa_views.TsaFastPath(services.tsa))


def _wire_kms(app: Flask, services: Services) -> None:
    """The embedded KMC's endpoints; none when ``[kmc] url`` names a stand-alone KMC (this app is then
    only its CA's side)."""
    if not services.config.kmc.remote:
        app.extensions["racentre.kms"] = services.kmc
        app.register_blueprint(kms_views.bp)


def _wire_seal(app: Flask, services: Services) -> None:
    seal_views.install(app, factory=lambda: services.seal)     # pyHanko and the seal maker: on first use


def _wire_trust(app: Flask, services: Services) -> None:
    trust_views.install(app, lambda: services.trust, require_roles)    # the CA and the TSA: on first use

    def dumps(obj) -> str:          # as jsonify writes it (flask.json.provider.DefaultJSONProvider.response)
        provider = app.json
        if (getattr(provider, "compact", None) is None and app.debug) or getattr(provider, "compact", None) is False:
            return provider.dumps(obj, indent=2)
        return provider.dumps(obj, separators=(",", ":"))

    fastpath.install(app, "api", TrustVerifyFastPath(
        lambda: trust_views.service_of(app), services.token_and_revocation_state,
        services.token_table.principal, dumps, refused=lambda: refusing(app)))


# What serving each package means: its service from the composition root (racentre.services.Services)
# into ``app.extensions`` and its blueprint into the app. Order: the console shows the others' services.
WIRING = {"hsm": _wire_hsm, "ca_bridge": _wire_ca, "ca_bridge.cmp": _wire_cmp, "ra": _wire_ra, "timestamp": _wire_timestamp,
          "kms": _wire_kms, "seal": _wire_seal, "trust": _wire_trust, "racentre.console": console_views.init_app}
DEFAULT_PACKAGES = tuple(WIRING)


def build_app(services: Services, packages: tuple[str, ...] = DEFAULT_PACKAGES) -> Flask:
    """The service app: the blueprints of ``packages``, each over its service from ``services``."""
    app = create_app(services.config, services.key_manager, services.db, blueprints=[])
    for name in DEFAULT_PACKAGES:
        if name in packages:
            WIRING[name](app, services)
    openapi.init_app(app)                 # /api/v1/openapi.json (every route above) and /api/v1/docs
    return app
