"""The KMC as a separate service (GM/T 0014 over HTTP): `racentre serve --packages hsm,kms` in its own
process over its own token directory, token and database (SQLite or PostgreSQL); the CA/RA app in this
process has `[kmc] url` and `certificate_file` and no KMC of its own.

Deployment as operators do it: the KMC writes a CSR for its HSM key (`racentre kms csr`), the CA site
issues it (`racentre ca issue --profile kmc`), the KMC installs it and trusts the issuing CA
(`racentre kms install-certificate`, `racentre kms trust-ca`). Then a civil servant's dual request is
approved by two officers, the encryption key comes from the remote KMC, the subscriber opens the
envelope with independent code, and revocation reaches the KMC's archive. Failures: the KMC down (clear
503, request still vetted, approvable once the KMC is back), a KMC certificate other than configured or
a wrong URL (clear 503, nothing written)."""
from __future__ import annotations

import dataclasses
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy
from asn1crypto import pem, x509
from click.testing import CliRunner
from sqlalchemy import func, select

from access.auth import create_token
from ca_bridge.models import EscrowReservation
from gmt0014.client import HttpTransport
from kms.models import EscrowedKey
from store.db import transaction
from pkicore.envelope import parse_signed_and_enveloped, verify_signed_and_enveloped
from racentre.app import build_app
from racentre.cli import cli
from racentre.config import load_config
from racentre.services import Services
from tests.cli_session import CliSession
from tests.conftest import SOFTTOKEN_DIR, USER_PIN
from tests.pgschema import POSTGRES_URL, postgres_unreachable, schema_engine
from tests.unit.kms.subscriber import mul, openssl_sm2_key, public_point, sm2_decrypt, sm4_ecb_decrypt
from tests.unit.ra import helpers
from tests.unit.ra.csr_tools import openssl_csr

RACENTRE = [sys.executable, "-m", "racentre.cli"]
ROLES = {"applicant": ["applicant"], "operator": ["ra_operator"], "officer_a": ["ra_officer"],
         "officer_b": ["ra_officer"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class KmcProcess:
    """A stand-alone KMC: its own directory, software token, database and `racentre serve` process."""

    def __init__(self, root: Path, database_url: str):
        self.root, self.database_url = root, database_url
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.commands: CliSession | None = None
        self.certificate: Path | None = None      # its signing certificate, issued by the CA site
        self.csr: Path | None = None              # the CSR it was issued from
        (root / "softtoken").mkdir(parents=True)
        (root / "softtoken" / "softtoken.conf").write_text("pbkdf2_iterations = 1000\n")
        (root / "racentre.toml").write_text(
            f'[hsm]\ntoken = "kmc-{secrets.token_hex(4)}"\n[softtoken]\ndir = "softtoken"\nauto_init = true\n'
            '[service]\npackages = "hsm,kms"\n')
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RACENTRE_")}
        self.env.update(RACENTRE_CONFIG=str(root / "racentre.toml"), RACENTRE_HSM_PIN="kmc-user-pin",
                        RACENTRE_SOFTTOKEN_SO_PIN="kmc-so-pin", RACENTRE_DATABASE_URL=database_url)

    def run(self, *args) -> str:
        """`racentre ARGS` for the KMC: the deployment's commands, one after another in one interpreter of
        the KMC's own (tests/cli_session.py; closed by ``end_commands`` before the KMC serves)."""
        if self.commands is None:
            self.commands = CliSession(self.env, self.root, timeout=120)
        done = self.commands.run(*args)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def end_commands(self) -> None:
        if self.commands is not None:
            self.commands.close()
            self.commands = None

    def start(self) -> None:
        # [service] packages = "hsm,kms" in its file: a plain `racentre serve` serves only the KMC
        self.proc = subprocess.Popen([*RACENTRE, "serve", "--port", str(self.port)], env=self.env, cwd=self.root,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/hsm/health", timeout=5) as resp:
                    if json.loads(resp.read())["status"] == "ok":
                        return
            except OSError:
                pass
            assert self.proc.poll() is None, self.proc.stdout.read().decode()
            assert time.monotonic() < deadline, "the KMC did not come up"
            time.sleep(0.2)

    def stop(self) -> str:
        if self.proc is None:
            return ""
        self.proc.terminate()
        out = self.proc.communicate(timeout=30)[0].decode()
        self.proc = None
        return out

    def archive_status(self, serial: int) -> str | None:
        engine = sqlalchemy.create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return conn.scalar(select(EscrowedKey.status).where(EscrowedKey.user_cert_no == str(serial)))
        finally:
            engine.dispose()


def _pg_url(engine) -> str:
    with engine.connect() as conn:
        schema = conn.exec_driver_sql("select current_schema()").scalar()
    return f"{POSTGRES_URL}?options={quote(f'-csearch_path={schema}')}"


@dataclasses.dataclass
class Site:
    """The CA/RA site in this process (one per module: every fresh token takes a slot of this process's
    software token directory, tests/conftest.py)."""
    root: Path
    services: Services
    tokens: dict
    env: dict
    issuing_ca: Path
    app: object = None

    def cli(self, *args) -> str:
        """`racentre --config <the CA site's file> ...`, in this process."""
        result = CliRunner().invoke(cli, ["--config", str(self.root / "racentre.toml"), *args], env=self.env,
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    def call(self, method, path, who=None, **kwargs):
        headers = kwargs.pop("headers", {})
        if who:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return self.app.test_client().open(path, method=method, headers=headers, **kwargs)

    def rebuild(self, **kmc_settings) -> None:
        """The services and the app again, after an operator changed [kmc] settings (as a restart would:
        the CA's link to the KMC is made once, by the composition root)."""
        config = self.services.config
        self.services.close()
        self.services = Services(dataclasses.replace(config, kmc=dataclasses.replace(config.kmc, **kmc_settings)))
        self.app = build_app(self.services)


@pytest.fixture(scope="module")
def ca_site(tmp_path_factory, softtoken_config):
    """`racentre setup` on a site with `[kmc] url` (no local KMC is made), then its services here."""
    root = tmp_path_factory.mktemp("ca")
    label = f"ca-{secrets.token_hex(4)}"      # this process's token directory is fixed (tests/conftest.py)
    (root / "racentre.toml").write_text(
        f'[hsm]\nmodule = "{softtoken_config.module}"\ntoken = "{label}"\n'
        f'[softtoken]\ndir = "{SOFTTOKEN_DIR}"\nauto_init = true\n'
        f'[database]\nurl = "sqlite:///{root / "ca.db"}"\n[service]\npublic_url = "http://ca.test"\n'
        '[kmc]\nurl = "http://127.0.0.1:9"\ncertificate_file = "kmc.pem"\ntimeout = 10\n'
        '[tsa]\npolicy = "1.2.3.4.1"\n')
    env = {"RACENTRE_HSM_PIN": USER_PIN, "RACENTRE_SOFTTOKEN_SO_PIN": "ca-so-pin"}
    site = Site(root, None, {}, env, root / "issuing-ca.pem")
    setup = site.cli("setup")
    assert "created CA" in setup and "KMC" not in setup     # no local KMC with [kmc] url
    site.services = Services(load_config(root / "racentre.toml", environ=env))
    tag = helpers.tag()
    with transaction(site.services.db) as session:
        site.tokens = {who: create_token(session, f"{who}-{tag}", roles) for who, roles in ROLES.items()}
    yield site
    site.services.close()


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def kmc_deployment(request, tmp_path_factory, softtoken_module, ca_site):
    """A stand-alone KMC certified by the CA site from its CSR, trusting the CA site's issuing CA, serving.
    One deployment per database for the module (each costs five `racentre` processes); ``kmc`` hands it
    to each test as the deployment left it."""
    tmp_path = tmp_path_factory.mktemp(f"kmc-{request.param}")
    if request.param == "sqlite":
        process = KmcProcess(tmp_path / "kmc", f"sqlite:///{tmp_path / 'kmc' / 'kmc.db'}")
        yield from _deploy(process, ca_site, tmp_path)
        return
    why = postgres_unreachable()
    if why:
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL} ({why})")
    with schema_engine("kmc") as engine:
        yield from _deploy(KmcProcess(tmp_path / "kmc", _pg_url(engine)), ca_site, tmp_path)


@pytest.fixture
def kmc(kmc_deployment, ca_site):
    """The module's KMC, serving, and the CA site's app reaching it by [kmc] url with its certificate (as
    after `_deploy`: a test may have stopped the KMC or pointed the CA site elsewhere)."""
    if kmc_deployment.proc is None:
        kmc_deployment.start()
    kmc_settings = ca_site.services.config.kmc
    if (kmc_settings.url, kmc_settings.certificate_file) != (kmc_deployment.url, str(kmc_deployment.certificate)):
        ca_site.rebuild(url=kmc_deployment.url, certificate_file=str(kmc_deployment.certificate))
    return kmc_deployment


def _deploy(kmc: KmcProcess, site: Site, tmp_path: Path):
    kmc.run("db", "upgrade")                       # its own database, its own schema step
    kmc.run("kms", "csr", "--out", str(tmp_path / "kmc.csr"))
    issued = site.cli("ca", "issue", "--profile", "kmc", "--csr", str(tmp_path / "kmc.csr"),
                      "--out", str(tmp_path / "kmc.pem"), "--ca-out", str(site.issuing_ca))
    assert "(kmc)" in issued
    kmc.run("kms", "install-certificate", str(tmp_path / "kmc.pem"))
    assert "trusted CA" in kmc.run("kms", "trust-ca", str(site.issuing_ca))
    kmc.end_commands()                             # what it serves, `racentre serve` reads from its files
    kmc.start()
    kmc.certificate, kmc.csr = tmp_path / "kmc.pem", tmp_path / "kmc.csr"
    site.rebuild(url=kmc.url, certificate_file=str(kmc.certificate))
    try:
        yield kmc
    finally:
        out = kmc.stop()
        assert "kmc-user-pin" not in out and "kmc-so-pin" not in out


def _vetted_dual_request(site: Site, tmp_path: Path) -> tuple[int, int]:
    """A civil servant's dual request with its signing CSR, vetted and approved by the first officer."""
    unit = site.call("POST", "/api/v1/ra/units", "operator",
                     json={"name": f"杭州市测试局-{helpers.tag()}", "uscc": helpers.uscc(), "legal_representative": "王五"})
    assert unit.status_code == 201, unit.json
    person = site.call("POST", "/api/v1/ra/civil-servants", "operator",
                       json={"name": "张三", "id_number": helpers.id_number(), "unit_id": unit.json["id"]})
    assert person.status_code == 201, person.json
    key = tmp_path / f"sign-{helpers.tag()}.key"
    d_sub, _ = openssl_sm2_key(key)
    csr = openssl_csr(tmp_path, f"sign-{helpers.tag()}", "/CN=张三", sm2=True, key=key)
    resp = site.call("POST", "/api/v1/ra/requests", "applicant",
                     json={"type": "civil-servant-dual", "subject_id": person.json["id"], "csr": csr.decode()})
    assert resp.status_code == 201, resp.json
    rid = resp.json["id"]
    assert site.call("POST", f"/api/v1/ra/requests/{rid}/vet", "operator",
                     json={"documents_checked": True}).json["state"] == "vetted"
    assert site.call("POST", f"/api/v1/ra/requests/{rid}/approve", "officer_a").json["state"] == "vetted"
    return rid, d_sub


def _reservations(site: Site) -> int:
    with site.services.db() as session:
        return session.scalar(select(func.count()).select_from(EscrowReservation))


def _refused_and_untouched(site: Site, rid: int, code: str, words: str) -> None:
    before = _reservations(site)
    resp = site.call("POST", f"/api/v1/ra/requests/{rid}/approve", "officer_b")
    assert resp.status_code == 503, resp.json
    assert resp.json["error"]["code"] == code and words in resp.json["error"]["message"], resp.json
    state = site.call("GET", f"/api/v1/ra/requests/{rid}", "officer_b").json
    assert state["state"] == "vetted" and len(state["approvals"]) == 1 and not state["certificates"], state
    assert _reservations(site) == before


def test_dual_certificate_from_a_standalone_kmc(ca_site, kmc, tmp_path):
    site = ca_site
    assert "racentre.kms" not in site.app.extensions          # no local KMC, no local /kmc endpoints
    assert isinstance(site.services.ca.kmc.transport, HttpTransport)
    assert site.call("GET", "/kmc/v1/certificate").status_code == 404
    rid, d_sub = _vetted_dual_request(site, tmp_path)
    done = site.call("POST", f"/api/v1/ra/requests/{rid}/approve", "officer_b")
    assert done.status_code == 200 and done.json["state"] == "issued", done.json
    enc = x509.Certificate.load(pem.unarmor(site.call("GET", f"/api/v1/ra/requests/{rid}/certificates/enc",
                                                      "applicant").data)[2])
    sign = x509.Certificate.load(pem.unarmor(site.call("GET", f"/api/v1/ra/requests/{rid}/certificates/sign",
                                                       "applicant").data)[2])
    assert enc.subject == sign.subject and enc.issuer == sign.issuer

    # the envelope was made and signed by the remote KMC, whose certificate our CA issued from its CSR
    kmc_der = pem.unarmor(kmc.certificate.read_bytes())[2]
    with urllib.request.urlopen(f"{kmc.url}/kmc/v1/certificate", timeout=5) as resp:
        assert pem.unarmor(resp.read())[2] == kmc_der
    kmc_cert = x509.Certificate.load(kmc_der)
    assert kmc_cert.issuer == sign.issuer and kmc_cert.self_signed == "no"
    envelope = site.call("GET", f"/api/v1/ra/requests/{rid}/certificates/enc/envelope", "applicant")
    assert envelope.status_code == 200
    check = verify_signed_and_enveloped(envelope.data, kmc_cert.public_key.dump(), kmc_der)
    assert check.ok, check.reasons
    sed = parse_signed_and_enveloped(envelope.data)
    d_enc = int.from_bytes(sm4_ecb_decrypt(sm2_decrypt(d_sub, sed.encrypted_key), sed.encrypted_content), "big")
    assert mul(d_enc) == public_point(enc.public_key.dump())

    # archived in the KMC's own database, not in the CA's
    assert kmc.archive_status(enc.serial_number) == "active"
    with site.services.db() as session:
        assert session.scalar(select(func.count()).select_from(EscrowedKey)) == 0

    # revocation reaches the remote KMC (RevokeKeyReq after the revocation committed)
    rev = site.call("POST", f"/api/v1/ra/requests/{rid}/revoke", "applicant", json={"reason": "key_compromise"})
    assert rev.status_code == 201, rev.json
    site.call("POST", f"/api/v1/ra/requests/{rev.json['id']}/vet", "operator", json={"documents_checked": True})
    site.call("POST", f"/api/v1/ra/requests/{rev.json['id']}/approve", "officer_a")
    final = site.call("POST", f"/api/v1/ra/requests/{rev.json['id']}/approve", "officer_b")
    assert final.status_code == 200 and final.json["state"] == "revoked", final.json
    assert kmc.archive_status(enc.serial_number) == "revoked"
    # the KMC certificate is issued once per key: asking again gives the same one
    site.cli("ca", "issue", "--profile", "kmc", "--csr", str(kmc.csr), "--out", str(tmp_path / "again.pem"))
    assert (tmp_path / "again.pem").read_bytes() == kmc.certificate.read_bytes()


@pytest.mark.parametrize("kmc_deployment", ["sqlite"], indirect=True)
def test_kmc_down_refuses_the_approval_until_it_is_back(ca_site, kmc, tmp_path):
    site = ca_site
    rid, _ = _vetted_dual_request(site, tmp_path)
    kmc.stop()
    _refused_and_untouched(site, rid, "upstream_unavailable", "key-management centre is unreachable")
    kmc.start()
    done = site.call("POST", f"/api/v1/ra/requests/{rid}/approve", "officer_b")
    assert done.status_code == 200 and done.json["state"] == "issued", done.json
    enc = next(c for c in done.json["certificates"] if c["usage"] == "enc")
    assert enc["key_escrowed"] is True
    assert kmc.archive_status(int(enc["serial"], 16)) == "active"


@pytest.mark.parametrize("kmc_deployment", ["sqlite"], indirect=True)
def test_kmc_with_another_certificate_or_url_is_refused(ca_site, kmc, tmp_path):
    site = ca_site
    rid, _ = _vetted_dual_request(site, tmp_path)
    # a KMC certificate from our CA, but for another key than the serving KMC's
    impostor = site.services.key_manager.ensure_key_pair(f"impostor-{secrets.token_hex(3)}", "sm2")
    other = site.services.site.certify("impostor-kmc", impostor, "kmc", "Impostor KMC")
    (site.root / "other-kmc.pem").write_bytes(pem.armor("CERTIFICATE", other.certificate))
    site.rebuild(certificate_file=str(site.root / "other-kmc.pem"))
    _refused_and_untouched(site, rid, "upstream_untrusted", "does not verify with the configured KMC certificate")
    # a URL where no KMC answers GM/T 0014 (the KMC's server answers 404)
    site.rebuild(url=f"{kmc.url}/not-the-kmc", certificate_file=str(kmc.certificate))
    _refused_and_untouched(site, rid, "upstream_unavailable", "answered HTTP 404")
    # configured right, the same request is approved
    site.rebuild(url=kmc.url)
    done = site.call("POST", f"/api/v1/ra/requests/{rid}/approve", "officer_b")
    assert done.status_code == 200 and done.json["state"] == "issued", done.json
