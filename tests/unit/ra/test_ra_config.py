"""``[ra]`` in racentre.toml reaches the RA the service runs: ``racentre.services.Services.ra`` builds the RA
service from ``config.ra`` (and its CA from ``config.ca``), so ``approvals = { server = 2 }`` makes a server
request wait for a second officer (four-eyes), and the profile map chooses the CA profile it is issued on."""
from __future__ import annotations

import dataclasses

from ra.services import build_ra_service
from ra.workflow import Actor
from racentre.config import load_config
from racentre.services import Services
from tests.pgschema import migrated
from tests.unit.ra import helpers
from tests.unit.ra.csr_tools import cryptography_csr, ec_key
from tests.unit.ra.fake_ca import FakeCA

ADMIN = Actor("admin-1", "ra_admin")
APPLICANT = Actor("applicant-1", "applicant")
OPERATOR = Actor("operator-1", "ra_operator")
CONFIGURED = ('[ra]\napprovals = { server = 2 }\nprofiles = { server = { sign = "unit" } }\n'
              '[ca]\norganization = "配置测试中心"\n')


def _config(tmp_path, text: str):
    path = tmp_path / "racentre.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, environ={})


def _vetted_server_request(ra):
    unit = ra.add_unit(ADMIN, name=f"配置局-{helpers.tag()}", uscc=helpers.uscc(), legal_representative="钱七")[0]
    host = helpers.host()
    server = ra.add_server(ADMIN, host_name=host, unit_id=unit["id"])[0]
    req = ra.submit(APPLICANT, type="server", subject_id=server["id"], sign_csr=cryptography_csr(ec_key(), host))
    ra.vet(OPERATOR, req["id"], documents_checked=True)
    return req


def test_services_build_the_ra_and_ca_from_their_sections(softtoken_config, tmp_path):
    config = _config(tmp_path, CONFIGURED)
    config = dataclasses.replace(config, hsm=softtoken_config,
                                 database=dataclasses.replace(config.database,
                                                              url=migrated(f"sqlite:///{tmp_path / 'ra.db'}")))
    services = Services(config)
    try:
        assert services.ra.policy == config.ra.policy()
        assert services.ra.policy.approvals["server"] == 2 and services.ra.policy.profiles["server"] == {"sign": "unit"}
        assert services.ca.config.organization == "配置测试中心"
    finally:
        services.close()


def test_configured_server_threshold_and_profile_are_applied(db, tmp_path):
    ca = FakeCA()
    ra = build_ra_service(db, ca, _config(tmp_path, CONFIGURED).ra)      # as Services.ra does
    req = _vetted_server_request(ra)
    assert req["approvals_required"] == 2
    first = ra.approve(Actor("officer-a", "ra_officer"), req["id"])
    assert first["state"] == "vetted" and ca.issuance_count == 0      # one officer is not enough any more
    done = ra.approve(Actor("officer-b", "ra_officer"), req["id"])
    assert done["state"] == "issued" and ca.issuance_count == 1
    assert [c["profile"] for c in done["certificates"]] == ["unit"]


def test_default_server_threshold_is_one(db, tmp_path):
    ra = build_ra_service(db, FakeCA(), _config(tmp_path, "").ra)
    req = _vetted_server_request(ra)
    assert req["approvals_required"] == 1
    assert ra.approve(Actor("officer-a", "ra_officer"), req["id"])["state"] == "issued"
    assert [c["profile"] for c in ra.get_request(req["id"])["certificates"]] == ["server"]
