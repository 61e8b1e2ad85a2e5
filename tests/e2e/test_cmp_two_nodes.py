"""An RA node and a CA node of ours — two processes, two databases, two software tokens — joined by CMP:
the CA node serves ``/.well-known/cmp`` (``racentre serve``); the RA node has ``[ca] backend = "cmp"``
with its protection key in its own token and a certificate the CA node issued under ``cmp-ra``
(id-kp-cmcRA, RA mode). Server requests vetted and approved at the RA node are issued by the CA node;
a revocation at the RA node reaches the CA node's CRL; a civil servant's dual pair gets its encryption key
from the CA node's KMC (central key generation, RFC 9483 §4.1.6) and the subscriber opens its envelope.
On SQLite (a file per node) and PostgreSQL (a schema per node)."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from asn1crypto import crl as asn1_crl, x509

from pkicore.envelope import parse_signed_and_enveloped, verify_signed_and_enveloped
from tests.pgschema import empty_engine, url_of
from tests.unit.kms.subscriber import mul, openssl_sm2_key, public_point, sm2_decrypt, sm4_ecb_decrypt

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node(tmp: Path, name: str, softtoken_module, extra: str = "", database_url: str | None = None) -> dict:
    """A node's folder, token and configuration; its database ``database_url`` (a SQLite file of its own
    when None)."""
    home = tmp / name
    (home / "softtoken").mkdir(parents=True)
    (home / "softtoken" / "softtoken.conf").write_text("pbkdf2_iterations = 1000\n")
    port = _free_port()
    url = database_url or f"sqlite:///{home}/{name}.db"
    (home / "racentre.toml").write_text(
        f'[hsm]\ntoken = "{name}"\nmodule = "{softtoken_module}"\n[softtoken]\ndir = "softtoken"\nauto_init = true\n'
        f'[database]\nurl = "{url}"\n[service]\npublic_url = "http://127.0.0.1:{port}"\n' + extra)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RACENTRE_")}
    env.update(RACENTRE_CONFIG=str(home / "racentre.toml"), RACENTRE_HSM_PIN=f"{name}-pin",
               RACENTRE_SOFTTOKEN_SO_PIN=f"{name}-so-pin", PYTHONPATH=str(ROOT))
    return {"home": home, "port": port, "env": env}


def _run(node, *args, timeout=300) -> str:
    proc = subprocess.run([sys.executable, *args], env=node["env"], cwd=node["home"], capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def _step(node, *args) -> str:
    return _run(node, "-m", "tests.e2e.cmp_node", *args).strip().splitlines()[-1]


def _serve(node):
    proc = subprocess.Popen([sys.executable, "-m", "racentre.cli", "serve", "--port", str(node["port"])],
                            env=node["env"], cwd=node["home"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{node['port']}/ca", timeout=5) as resp:
                return proc, json.loads(resp.read())["authorities"]
        except OSError:
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.3)
    proc.kill()
    raise AssertionError("the CA node did not start")


def two_nodes(tmp_path, softtoken_module, ca_url: str | None = None, ra_url: str | None = None):
    ca = _node(tmp_path, "ca-node", softtoken_module, database_url=ca_url)
    _run(ca, "-m", "racentre.cli", "setup", "--with-ecdsa")
    ra = _node(tmp_path, "ra-node", softtoken_module, database_url=ra_url)
    _run(ra, "-m", "racentre.cli", "db", "upgrade")
    spki = _step(ra, "ra-key", "ra-cmp")
    _step(ca, "certify-ra", spki, str(ra["home"] / "ra-cert.pem"), str(ra["home"] / "roots.pem"))
    with open(ra["home"] / "racentre.toml", "a") as f:
        f.write(f'[ca]\nbackend = "cmp"\nupstream_url = "http://127.0.0.1:{ca["port"]}/.well-known/cmp"\n'
                'trust_anchors_file = "roots.pem"\nra_key_label = "ra-cmp"\nra_certificate_file = "ra-cert.pem"\n')
    return ca, ra


@pytest.fixture(params=["sqlite", "postgresql"])
def databases(request, tmp_path):
    """The two nodes' databases: two SQLite files, or two PostgreSQL schemas (``tests.pgschema``)."""
    if request.param == "sqlite":
        yield None, None
        return
    with empty_engine("postgresql", tmp_path, "cmpca") as ca_engine, \
            empty_engine("postgresql", tmp_path, "cmpra") as ra_engine:
        yield url_of(ca_engine), url_of(ra_engine)


@pytest.mark.timeout(900)          # two sites set up from scratch, two tokens, a served CA node: minutes on 2 cores
def test_ra_node_enrols_and_revokes_through_the_ca_node(tmp_path, softtoken_module, databases):
    ca, ra = two_nodes(tmp_path, softtoken_module, *databases)
    proc, authorities = _serve(ca)
    try:
        result = json.loads(_step(ra, "enrol-servers", "2"))
        assert len(result["issued"]) == 2 and all(i["ca"] == "upstream" for i in result["issued"])
        first = result["issued"][0]
        assert json.loads(_step(ra, "revoke", str(first["request"]))) == "revoked"
        serial = int(first["serial"], 16)
        revoked = set()
        for authority in authorities:
            with urllib.request.urlopen(f"http://127.0.0.1:{ca['port']}/ca/{authority['name']}/crl", timeout=10) as r:
                listed = asn1_crl.CertificateList.load(r.read())
            revoked |= {e["user_certificate"].native for e in listed["tbs_cert_list"]["revoked_certificates"]}
        assert serial in revoked
        assert int(result["issued"][1]["serial"], 16) not in revoked
        # a civil servant's dual pair: the encryption key from the CA node's KMC (central key generation over
        # CMP), opened by the subscriber with independent code, archived at the CA node's KMC
        d_sub, spki_sub = openssl_sm2_key(ra["home"] / "subscriber.key")
        dual = json.loads(_step(ra, "enrol-dual", str(ra["home"] / "subscriber.key")))
        assert dual["state"] == "issued", dual
        sign, enc = (x509.Certificate.load(bytes.fromhex(dual[u])) for u in ("sign", "enc"))
        assert sign.public_key.dump() == spki_sub and enc.public_key.dump() != spki_sub
        envelope = bytes.fromhex(dual["envelope"])
        kept = json.loads(_step(ca, "escrowed", str(enc.serial_number)))
        assert kept["key"] == ["active", enc.public_key.dump().hex()]
        kmc_cert = bytes.fromhex(kept["kmc_certificate"])
        assert verify_signed_and_enveloped(envelope, x509.Certificate.load(kmc_cert).public_key.dump(), kmc_cert).ok
        sed = parse_signed_and_enveloped(envelope)
        d_enc = int.from_bytes(sm4_ecb_decrypt(sm2_decrypt(d_sub, sed.encrypted_key), sed.encrypted_content), "big")
        assert mul(d_enc) == public_point(enc.public_key.dump())
        # an officer's one-time secret from the CLI, used by openssl cmp against the served CA node
        out = _run(ca, "-m", "racentre.cli", "ca", "cmp-secret", "--as", "officer-a", "--profile", "server",
                   "--rdn", "country_name=CN", "--rdn", "common_name=cli.zj.gov.cn", "--dns", "cli.zj.gov.cn")
        fields = dict(line.split(" ", 1) for line in out.strip().splitlines()[-2:])
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
                        "cli.pem"], cwd=ca["home"], check=True, capture_output=True)
        ossl = subprocess.run(["openssl", "cmp", "-cmd", "ir", "-server", f"127.0.0.1:{ca['port']}", "-path",
                               ".well-known/cmp", "-ref", fields["reference"], "-secret", f"pass:{fields['secret']}",
                               "-newkey", "cli.pem", "-subject", "/C=CN/CN=cli.zj.gov.cn", "-recipient", "/CN=x",
                               "-certout", "cli-cert.pem"], cwd=ca["home"], capture_output=True, text=True)
        assert ossl.returncode == 0, ossl.stdout + ossl.stderr
        assert "issued" in _run(ra, "-m", "racentre.cli", "ca", "cmp-retry")
    finally:
        proc.terminate()
        out = proc.communicate(timeout=30)[0].decode("utf-8", "replace")
    assert "Traceback" not in out, out[-3000:]
