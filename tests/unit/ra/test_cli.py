"""`racentre ra ...` through click's runner over the test database and the in-memory CA."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from asn1crypto import pem
from click.testing import CliRunner

from access.auth import Forbidden
from ra.errors import DutiesNotSeparated
from ra import cli as ra_cli
from ra.services import build_ra_service
from racentre.config import Config
from tests.unit.ra import helpers
from tests.unit.ra.csr_tools import cryptography_csr, ec_key
from tests.unit.ra.fake_ca import FakeCA


@pytest.fixture
def run(db):
    ca = FakeCA()
    services = SimpleNamespace(db=db, config=Config(), key_manager=None, ra=build_ra_service(db, ca))

    def invoke(*args):
        result = CliRunner().invoke(ra_cli.ra_group, [str(a) for a in args], obj={"services": services})
        return result

    invoke.ca = ca
    return invoke


def _json(result):
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.output)


def test_cli_server_flow(run, tmp_path):
    tag = helpers.tag()
    names = {"op": f"op-{tag}", "off": f"off-{tag}", "app": f"app-{tag}"}
    for who, role in (("op", "ra_operator"), ("off", "ra_officer"), ("app", "applicant")):
        result = run("token", "create", names[who], "--role", role)
        assert result.exit_code == 0 and result.output.startswith("rac_")
    unit = _json(run("subject", "add-unit", "--name", f"测试局-{tag}", "--uscc", helpers.uscc(),
                     "--legal-representative", "王五", "--as", names["op"]))
    person = _json(run("subject", "add-civil-servant", "--name", "张三", "--id-number", helpers.id_number(),
                       "--unit-id", unit["id"], "--as", names["op"]))
    assert person["unit_id"] == unit["id"]
    host = helpers.host()
    server = _json(run("subject", "add-server", "--host", host, "--unit-id", unit["id"], "--ip", helpers.ipv4(),
                       "--as", names["op"]))
    csr = tmp_path / "server.csr"
    csr.write_bytes(pem.armor("CERTIFICATE REQUEST", cryptography_csr(ec_key(), host)))
    req = _json(run("request", "submit", "--type", "server", "--subject-id", server["id"], "--csr", csr,
                    "--as", names["app"]))
    assert req["state"] == "submitted"
    result = run("request", "approve", req["id"], "--as", names["app"])      # not an officer
    assert isinstance(result.exception, Forbidden)
    assert _json(run("request", "vet", req["id"], "--documents-checked", "--as", names["op"]))["state"] == "vetted"
    done = _json(run("request", "approve", req["id"], "--as", names["off"]))
    assert done["state"] == "issued" and run.ca.issuance_count == 1
    assert _json(run("request", "show", req["id"]))["certificates"][0]["profile"] == "server"
    listed = _json(run("request", "list", "--state", "issued", "--unit-id", unit["id"]))
    assert [r["id"] for r in listed] == [req["id"]]
    other = _json(run("request", "submit", "--type", "server", "--kind", "revocation", "--target", req["id"],
                      "--reason", "superseded", "--as", names["app"]))
    assert _json(run("request", "reject", other["id"], "--reason", "不需要", "--as", names["off"]))["state"] == "rejected"


def test_cli_refuses_unknown_principals(run):
    result = run("subject", "add-unit", "--name", "x", "--uscc", helpers.uscc(), "--legal-representative", "y",
                 "--as", f"nobody-{helpers.tag()}")
    assert isinstance(result.exception, Forbidden) and "no active principal" in str(result.exception)
    assert run("token", "create", f"x-{helpers.tag()}", "--role", "wizard").exit_code == 2


def test_cli_approves_several_requests_in_one_call(run, tmp_path):
    tag = helpers.tag()
    names = {"op": f"op-{tag}", "off": f"off-{tag}", "app": f"app-{tag}"}
    for who, role in (("op", "ra_operator"), ("off", "ra_officer"), ("app", "applicant")):
        assert run("token", "create", names[who], "--role", role).exit_code == 0
    unit = _json(run("subject", "add-unit", "--name", f"批量局-{tag}", "--uscc", helpers.uscc(),
                     "--legal-representative", "王五", "--as", names["op"]))
    ids = []
    for i in range(3):
        host = helpers.host()
        server = _json(run("subject", "add-server", "--host", host, "--unit-id", unit["id"], "--as", names["op"]))
        csr = tmp_path / f"{i}.csr"
        csr.write_bytes(pem.armor("CERTIFICATE REQUEST", cryptography_csr(ec_key(), host)))
        req = _json(run("request", "submit", "--type", "server", "--subject-id", server["id"], "--csr", csr,
                        "--as", names["app"]))
        if i < 2:
            _json(run("request", "vet", req["id"], "--documents-checked", "--as", names["op"]))
        ids.append(req["id"])
    items = _json(run("request", "approve", *ids, "--as", names["off"]))["items"]
    assert [(i["id"], i["result"]) for i in items] == [(ids[0], "issued"), (ids[1], "issued"), (ids[2], "failed")]
    assert items[2]["error"]["code"] == "conflict" and run.ca.issuance_count == 2
    assert run("request", "approve", "--as", names["off"]).exit_code == 2          # no id at all


def test_token_list_disable_enable_expire(run, db):
    """Issue 15: an operator can see, disable, enable and expire API tokens from the CLI; each change is
    audited and takes effect on the next request."""
    from audit import trail as audit
    from access.auth import AuthError, authenticate
    tag = helpers.tag()
    name = f"tok-{tag}"
    token = run("token", "create", name, "--role", "ra_officer", "--expires-in-days", "30").output.strip()
    listed = {r["name"]: r for r in _json(run("token", "list", "--json"))}
    assert listed[name]["state"] == "active" and listed[name]["roles"] == ["ra_officer"] and listed[name]["expires_at"]
    assert "rac_" not in run("token", "list").output                 # tokens are never shown again
    with db() as s:
        assert authenticate(s, token).name == name
    assert run("token", "disable", name).exit_code == 0
    with db() as s, pytest.raises(AuthError, match="disabled"):
        authenticate(s, token)
    assert {r["name"]: r for r in _json(run("token", "list", "--json"))}[name]["state"] == "disabled"
    assert run("token", "enable", name).exit_code == 0
    assert run("token", "expire", name).exit_code == 0
    with db() as s, pytest.raises(AuthError, match="expired"):
        authenticate(s, token)
    assert run("token", "expire", name, "--never").exit_code == 0
    with db() as s:
        assert authenticate(s, token).name == name
        actions = [e.action for e in audit.events_for(s, "api_token", name)]
    assert actions == ["auth.token.create", "auth.token.disable", "auth.token.enable", "auth.token.expire",
                       "auth.token.expire"]
    missing = run("token", "disable", f"nobody-{tag}")
    assert missing.exit_code != 0 and "no API token named" in str(missing.exception)


def test_as_names_the_officer_across_console_account_and_tokens(db, tmp_path):
    """Issue 17: `--as wang` works for wang's console account (no token of that name) and for a token that
    acts for officer wang (`ra token create wang-api --officer wang`); either way the actor is the person
    wang, so wang cannot approve through the CLI what wang vetted, and a role wang lacks is refused."""
    from store.db import transaction
    from racentre import accounts
    ca = FakeCA()
    services = SimpleNamespace(db=db, config=Config(), key_manager=None, ra=build_ra_service(db, ca))
    obj = {"services": services, "officer_principal": lambda name: accounts.enabled_principal(db, name, "cli")}

    def run(*args):
        return CliRunner().invoke(ra_cli.ra_group, [str(a) for a in args], obj=obj)

    tag = helpers.tag()
    wang, li, app = f"wang-{tag}", f"li-{tag}", f"app-{tag}"
    with transaction(db) as session:     # console accounts (certificate login: no TOTP box needed here)
        accounts.add_account(session, name=wang, roles=["ra_operator", "ra_officer"], actor="test", box=None,
                             cert_der=b"wang-cert-" + tag.encode())
        accounts.add_account(session, name=li, roles=["ra_officer"], actor="test", box=None,
                             cert_der=b"li-cert-" + tag.encode())
    assert run("token", "create", f"{li}-api", "--role", "ra_officer", "--officer", li).exit_code == 0
    assert run("token", "create", app, "--role", "applicant").exit_code == 0
    unit = _json(run("subject", "add-unit", "--name", f"一体局-{tag}", "--uscc", helpers.uscc(),
                     "--legal-representative", "王五", "--as", wang))
    host = helpers.host()
    server = _json(run("subject", "add-server", "--host", host, "--unit-id", unit["id"], "--as", wang))
    csr = tmp_path / "server.csr"
    csr.write_bytes(pem.armor("CERTIFICATE REQUEST", cryptography_csr(ec_key(), host)))
    req = _json(run("request", "submit", "--type", "server", "--subject-id", server["id"], "--csr", csr, "--as", app))
    assert _json(run("request", "vet", req["id"], "--documents-checked", "--as", wang))["state"] == "vetted"
    refused = run("request", "approve", req["id"], "--as", wang)        # the vetter, whatever credential
    assert isinstance(refused.exception, DutiesNotSeparated) and "vetted" in str(refused.exception)
    no_role = run("request", "vet", req["id"], "--documents-checked", "--as", li)   # li is no operator
    assert isinstance(no_role.exception, Forbidden) and "does not hold the role ra_operator" in str(no_role.exception)
    with transaction(db) as session:
        accounts.set_disabled(session, li, True, actor="test")       # li's console account off: li's token still acts for li
    done = _json(run("request", "approve", req["id"], "--as", li))
    assert done["state"] == "issued" and [a["officer"] for a in done["approvals"]] == [li]
