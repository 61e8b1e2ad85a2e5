"""Several nodes on one database and one token (issue 14), as operators run them: node A is a real
`racentre serve` process; node B is the operator CLI in other processes: one interpreter that runs its
commands one after another (tests/cli_session.py) and, with its clock two hours behind (libfaketime), a
process per command. On SQLite and PostgreSQL:

* a certificate revoked on the late node is on the CRL node A serves next (freshness comes from the
  database's revocation counter, not from comparing the late node's revocation time with thisUpdate);
  a CRL the late node signs does not move thisUpdate back;
* a hierarchy added and a KMC certificate installed by the CLI are served by the running node A
  without a restart (``store.generation``).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from asn1crypto import crl as asn1_crl, pem, x509

from tests.cli_session import CliSession
from tests.pgschema import database_url
from tests.unit.ra.csr_tools import openssl_csr

RACENTRE = [sys.executable, "-m", "racentre.cli"]
BEHIND = "-2h"
FAKETIME = shutil.which("faketime")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def site(request, tmp_path_factory, softtoken_module):
    root = tmp_path_factory.mktemp("nodes")
    (root / "softtoken").mkdir()
    (root / "softtoken" / "softtoken.conf").write_text("pbkdf2_iterations = 1000\n")
    (root / "user.pin").write_text("nodes-user-pin\n")
    (root / "so.pin").write_text("nodes-so-pin\n")
    with database_url(request.param, root, "nodes") as url:
        port = _free_port()
        (root / "racentre.toml").write_text(
            '[hsm]\ntoken = "nodes"\npin_file = "user.pin"\n'
            '[softtoken]\ndir = "softtoken"\nauto_init = true\nso_pin_file = "so.pin"\n'
            f'[database]\nurl = "{url}"\n[service]\npublic_url = "http://127.0.0.1:{port}"\n'
            '[tsa]\npolicy = "1.2.3.4.1"\n')
        setup = run(root, "setup")
        assert setup.returncode == 0, setup.stdout + setup.stderr
        node_a = subprocess.Popen([*RACENTRE, "serve", "--port", str(port)], env=_env(root), cwd=root,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    get(base, "/hsm/health")
                    break
                except OSError:
                    assert node_a.poll() is None and time.monotonic() < deadline, node_a.stdout.read().decode()
                    time.sleep(0.3)
            with CliSession(_env(root), root, timeout=180) as node_b:
                yield root, base, node_b
        finally:
            node_a.terminate()
            node_a.communicate(timeout=30)


def _env(root: Path, extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RACENTRE_")}
    env.update(RACENTRE_CONFIG=str(root / "racentre.toml"), PYTHONPATH=str(Path(__file__).resolve().parents[2]),
               RACENTRE_TSA_REQUIRE_SYNC="false",      # this box's kernel clock is unsynchronised
               **(extra or {}))
    return env


def run(root: Path, *args, behind: bool = False) -> subprocess.CompletedProcess:
    """The CLI in a process of its own; ``behind``: its clock two hours slow (libfaketime; monotonic clocks
    untouched)."""
    prefix, extra = [], {}
    if behind:
        prefix, extra = [FAKETIME, "-f", BEHIND], {"DONT_FAKE_MONOTONIC": "1"}
    return subprocess.run([*prefix, *RACENTRE, *args], capture_output=True, text=True, env=_env(root, extra),
                          cwd=root, timeout=180)


def get(base: str, path: str) -> bytes:
    with urllib.request.urlopen(base + path, timeout=20) as resp:
        return resp.read()


def crl_of(base: str) -> asn1_crl.CertificateList:
    return asn1_crl.CertificateList.load(get(base, "/ca/issuing-sm2/crl"))


def listed(crl: asn1_crl.CertificateList) -> set[int]:
    return {item["user_certificate"].native for item in crl["tbs_cert_list"]["revoked_certificates"]}


def eventually(check, seconds: float = 10.0):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


@pytest.mark.skipif(FAKETIME is None, reason="libfaketime not installed (Debian package faketime)")
def test_a_revocation_on_a_node_whose_clock_is_behind_is_on_the_crl_another_node_serves(site, tmp_path):
    root, base, node_b = site
    csr = openssl_csr(tmp_path, "tsa", "/C=CN/O=RA Centre/CN=Node TSA", sm2=True)
    (tmp_path / "tsa.csr").write_bytes(csr)
    issued = node_b.run("ca", "issue", "--profile", "tsa", "--csr", str(tmp_path / "tsa.csr"),
                 "--out", str(tmp_path / "tsa.pem"))
    assert issued.returncode == 0, issued.stderr
    serial = x509.Certificate.load(pem.unarmor((tmp_path / "tsa.pem").read_bytes())[2]).serial_number
    before = crl_of(base)                                   # node A signs (or serves) a CRL now
    assert serial not in listed(before)

    revoked = run(root, "ca", "revoke", format(serial, "x"), "--ca", "issuing-sm2", "--reason", "key_compromise",
                  behind=True)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout, revoked.stderr
    after = crl_of(base)
    assert serial in listed(after), "node A served a CRL without the revocation made on the late node"
    entry = next(i for i in after["tbs_cert_list"]["revoked_certificates"] if i["user_certificate"].native == serial)
    assert entry["revocation_date"].native < before["tbs_cert_list"]["this_update"].native   # the late clock
    assert after.crl_number_value.native > before.crl_number_value.native

    signed = run(root, "ca", "crl", "issuing-sm2", "--new", "--out", str(tmp_path / "late.der"), behind=True)
    assert signed.returncode == 0, signed.stderr
    late = asn1_crl.CertificateList.load((tmp_path / "late.der").read_bytes())
    served = crl_of(base)
    sequence = [before, after, late, served]
    numbers = [c.crl_number_value.native for c in sequence]
    assert numbers[0] < numbers[1] < numbers[2] <= numbers[3], numbers
    updates = [c["tbs_cert_list"]["this_update"].native for c in sequence]
    assert updates == sorted(updates), updates                      # thisUpdate never goes back
    assert serial in listed(late) and serial in listed(served)


def test_a_hierarchy_and_a_kmc_certificate_changed_by_the_cli_are_served_without_restart(site, tmp_path):
    root, base, node_b = site
    names = {a["name"] for a in json.loads(get(base, "/ca"))["authorities"]}
    assert "issuing-sm2" in names and "issuing-ecdsa" not in names
    added = node_b.run("setup", "--with-ecdsa")
    assert added.returncode == 0, added.stderr
    assert eventually(lambda: "issuing-ecdsa" in {a["name"] for a in json.loads(get(base, "/ca"))["authorities"]}), \
        "node A still lists the CAs it loaded at start"

    old = get(base, "/kmc/v1/certificate")
    csr = node_b.run("kms", "csr", "--out", str(tmp_path / "kmc.csr"))
    assert csr.returncode == 0, csr.stderr
    issued = node_b.run("ca", "issue", "--profile", "kmc", "--csr", str(tmp_path / "kmc.csr"),
                 "--out", str(tmp_path / "kmc.pem"))
    assert issued.returncode == 0, issued.stderr
    installed = node_b.run("kms", "install-certificate", str(tmp_path / "kmc.pem"))
    assert installed.returncode == 0, installed.stderr
    new = pem.unarmor((tmp_path / "kmc.pem").read_bytes())[2]
    assert new != pem.unarmor(old)[2]
    assert eventually(lambda: pem.unarmor(get(base, "/kmc/v1/certificate"))[2] == new), \
        "node A's KMC still presents the certificate it loaded at start"
