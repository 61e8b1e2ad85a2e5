"""``[ra]`` in racentre.toml reaches the RA the service runs: ``ra.views.init_app`` builds the RA service
from ``services.config.ra``, so ``approvals = { server = 2 }`` makes a server request wait for a second
officer (four-eyes), and the profile map chooses the CA profile it is issued on."""
from __future__ import annotations

from types import SimpleNamespace

from flask import Flask

from ra.views import CA_EXTENSION, EXTENSION, init_app
from ra.workflow import Actor
from racentre.config import load_config
from tests.unit.ra import helpers
from tests.unit.ra.csr_tools import cryptography_csr, ec_key
from tests.unit.ra.fake_ca import FakeCA

ADMIN = Actor("admin-1", "ra_admin")
APPLICANT = Actor("applicant-1", "applicant")
OPERATOR = Actor("operator-1", "ra_operator")


def _ra_from(text: str, tmp_path, db):
    path = tmp_path / "racentre.toml"
    path.write_text(text, encoding="utf-8")
    services = SimpleNamespace(config=load_config(path, environ={}), db=db)
    app = Flask("ra-config")
    ca = app.extensions[CA_EXTENSION] = FakeCA()
    init_app(app, services)
    return app.extensions[EXTENSION], ca


def _vetted_server_request(ra):
    unit = ra.add_unit(ADMIN, name=f"配置局-{helpers.tag()}", uscc=helpers.uscc(), legal_representative="钱七")[0]
    host = helpers.host()
    server = ra.add_server(ADMIN, host_name=host, unit_id=unit["id"])[0]
    req = ra.submit(APPLICANT, type="server", subject_id=server["id"], sign_csr=cryptography_csr(ec_key(), host))
    ra.vet(OPERATOR, req["id"], documents_checked=True)
    return req


def test_configured_server_threshold_and_profile_are_applied(db, tmp_path):
    ra, ca = _ra_from('[ra]\napprovals = { server = 2 }\nprofiles = { server = { sign = "unit" } }\n', tmp_path, db)
    req = _vetted_server_request(ra)
    assert req["approvals_required"] == 2
    first = ra.approve(Actor("officer-a", "ra_officer"), req["id"])
    assert first["state"] == "vetted" and ca.issuance_count == 0      # one officer is not enough any more
    done = ra.approve(Actor("officer-b", "ra_officer"), req["id"])
    assert done["state"] == "issued" and ca.issuance_count == 1
    assert [c["profile"] for c in done["certificates"]] == ["unit"]


def test_default_server_threshold_is_one(db, tmp_path):
    ra, ca = _ra_from("", tmp_path, db)
    req = _vetted_server_request(ra)
    assert req["approvals_required"] == 1
    assert ra.approve(Actor("officer-a", "ra_officer"), req["id"])["state"] == "issued"
    assert [c["profile"] for c in ra.get_request(req["id"])["certificates"]] == ["server"]
