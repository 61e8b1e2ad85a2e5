"""The composition root (issue 16 §1): ``racentre.services.Services`` builds each service once, the KMC is
attached to the CA once (the embedded one in process, set up only when first used; the stand-alone one
of ``[kmc] url`` over HTTP, its certificate file read only when first needed), and ``racentre.app``
puts exactly those objects into the app — no package builds another package's service."""
from __future__ import annotations

import dataclasses
import secrets

from gmt0014.client import HttpTransport, InProcessTransport
from hsm import init_token
from kms.config import KmsConfig
from pkicore.secret import Secret
from racentre.app import build_app
from racentre.config import Config, DatabaseConfig, ServiceConfig
from racentre.services import Services
from tests.pgschema import migrated


def _services(softtoken_config, tmp_path, **sections) -> Services:
    hsm = dataclasses.replace(softtoken_config, token=f"compose-{secrets.token_hex(3)}")
    init_token(hsm, Secret(secrets.token_hex(8)), hsm.pin)
    url = migrated(f"sqlite:///{tmp_path / 'site.db'}")
    return Services(Config(hsm=hsm, database=DatabaseConfig(url=url),
                           service=ServiceConfig(public_url="http://compose.test"), **sections))


def test_one_of_each_service_and_the_app_takes_them(softtoken_config, tmp_path):
    services = _services(softtoken_config, tmp_path)
    try:
        assert services.ca is services.ca and services.ra.ca is services.ca and services.site.ca is services.ca
        link = services.ca.kmc
        assert isinstance(link.transport, InProcessTransport)
        assert "kmc" not in services.__dict__          # the embedded KMC is set up on first use only
        app = build_app(services)
        assert app.extensions["racentre.ca"] is services.ca and app.extensions["racentre.ra"] is services.ra
        assert app.extensions["racentre.timestamp"] is services.tsa
        assert app.extensions["racentre.kms"] is services.kmc                    # built by the kms package's wiring
        assert services.ca.kmc is link                                            # attached once, not again
        assert "racentre.seal" not in app.extensions      # pyHanko and the seal maker: on the first seal request
        only_kmc = build_app(services, ("hsm", "kms"))
        assert set(only_kmc.blueprints) == {"hsm", "kms"} and "racentre.ca" not in only_kmc.extensions
    finally:
        services.close()


def test_a_standalone_kmc_is_reached_over_http_and_its_certificate_read_when_needed(softtoken_config, tmp_path):
    missing = tmp_path / "kmc.pem"                     # not issued yet: `racentre setup` runs before `ca issue`
    services = _services(softtoken_config, tmp_path,
                         kmc=KmsConfig(url="http://127.0.0.1:9", certificate_file=str(missing)))
    try:
        assert isinstance(services.ca.kmc.transport, HttpTransport)
        assert services.ca.kmc.transport.url == "http://127.0.0.1:9/kmc/v1/request"
        app = build_app(services)
        assert "racentre.kms" not in app.extensions and "kms" not in app.blueprints
    finally:
        services.close()
