"""The operator CLI and `racentre demo` end to end, in fresh processes on a fresh token directory:
auto-initialised software token, keys generated and used through `racentre hsm ...`, artefacts checked
by Bouncy Castle and OpenSSL."""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.demo_checks import check_demo_artefacts
from tests.interop.openssl_cli import sm2_verify as openssl_sm2_verify
from tests.pgschema import migrated

RACENTRE = [sys.executable, "-m", "racentre.cli"]


@pytest.fixture(scope="module")
def site(tmp_path_factory, softtoken_module):
    """A site directory with racentre.toml, PIN files (0600) and an empty token directory."""
    root = tmp_path_factory.mktemp("site")
    (root / "user.pin").write_text("site-user-pin\n")
    (root / "so.pin").write_text("site-so-pin\n")
    (root / "softtoken").mkdir()
    (root / "softtoken" / "softtoken.conf").write_text("pbkdf2_iterations = 1000\nmax_pin_failures = 3\n")
    (root / "racentre.toml").write_text(
        '[hsm]\ntoken = "site-token"\npin_file = "user.pin"\n'
        '[softtoken]\ndir = "softtoken"\nauto_init = true\nso_pin_file = "so.pin"\n'
        '[tsa]\nunits = "ecdsa=tsa-ecdsa:ecdsa-sha256"\npolicy = "1.2.3.4.1"\n'
        '[service]\npublic_url = "http://cli.test"\n')
    (root / "var").mkdir()
    migrated(f"sqlite:///{root / 'var' / 'racentre.db'}")     # the default [database] url, from cwd = root
    return root


def run(site: Path, *args, env=None, input=None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RACENTRE_")}
    full_env.update({"RACENTRE_CONFIG": str(site / "racentre.toml"),
                     "RACENTRE_TSA_REQUIRE_SYNC": "false"}, **(env or {}))   # this box's clock is unsynchronised
    return subprocess.run([*RACENTRE, *args], capture_output=True, env=full_env, input=input, timeout=120,
                          cwd=site)


def test_info_keygen_list_sign_pubkey(site, tmp_path):
    info = run(site, "hsm", "info", "--json")
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert data["token"] == "site-token" and data["vendor_profile"] == "racentre-softtoken"
    assert {"sm2-keygen", "sm2-sign-sm3", "sm2-encrypt", "sm4-ecb"} <= set(data["mechanisms"])

    gen = run(site, "hsm", "keygen", "ca-sign", "--algorithm", "sm2")
    assert gen.returncode == 0, gen.stderr
    assert json.loads(gen.stdout)["extractable"] is False
    listing = run(site, "hsm", "list", "--json")
    assert "ca-sign" in {k["label"] for k in json.loads(listing.stdout)}

    (tmp_path / "msg").write_bytes(b"signed by the operator CLI")
    sign = run(site, "hsm", "sign", "ca-sign", "--in", str(tmp_path / "msg"), "--out", str(tmp_path / "sig"))
    assert sign.returncode == 0, sign.stderr
    pub = run(site, "hsm", "pubkey", "ca-sign", "--out", str(tmp_path / "pub.pem"))
    assert pub.returncode == 0, pub.stderr
    assert openssl_sm2_verify(tmp_path / "pub.pem", tmp_path / "msg", tmp_path / "sig")
    # the operator's key generation and signature are in the audit trail, which verifies
    with sqlite3.connect(site / "var" / "racentre.db") as conn:
        rows = conn.execute("select action, actor, detail from audit_event where target_id = 'ca-sign' "
                            "order by id").fetchall()
    assert [r[0] for r in rows] == ["hsm.key.generate", "hsm.key.sign"] and rows[0][1].startswith("os:")
    assert hashlib.sha256(b"signed by the operator CLI").hexdigest() in rows[1][2]
    verify = run(site, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_errors_are_clear_and_keep_secrets(site):
    missing = run(site, "hsm", "sign", "no-such-key", input=b"x")
    assert missing.returncode == 2
    assert b"no private key" in missing.stderr and b"Traceback" not in missing.stderr

    # the [hsm] pin from the environment overrides the file: a wrong PIN is refused without echoing it
    wrong = run(site, "hsm", "list", env={"RACENTRE_HSM_PIN": "wrong-pin-value"})
    assert wrong.returncode == 2 and b"PIN incorrect" in wrong.stderr
    assert b"wrong-pin-value" not in wrong.stderr + wrong.stdout
    ok = run(site, "hsm", "list")  # one failure is below the lock-out threshold; the right PIN works
    assert ok.returncode == 0, ok.stderr

    dup = run(site, "hsm", "keygen", "dup-key")
    assert dup.returncode == 0
    again = run(site, "hsm", "keygen", "dup-key")
    assert again.returncode == 2 and b"already exists" in again.stderr


def test_pin_lockout_after_repeated_failures(tmp_path, softtoken_module):
    """A separate token: three wrong PINs lock it, and then even the right PIN is refused."""
    (tmp_path / "softtoken").mkdir()
    (tmp_path / "softtoken" / "softtoken.conf").write_text("pbkdf2_iterations = 1000\nmax_pin_failures = 3\n")
    (tmp_path / "so.pin").write_text("so-pin-for-lockout")
    (tmp_path / "racentre.toml").write_text(
        '[hsm]\ntoken = "lock-me"\n[softtoken]\ndir = "softtoken"\nauto_init = true\nso_pin_file = "so.pin"\n')
    assert run(tmp_path, "hsm", "info", env={"RACENTRE_HSM_PIN": "right-pin"}).returncode == 0
    for _ in range(2):
        assert b"PIN incorrect" in run(tmp_path, "hsm", "list", env={"RACENTRE_HSM_PIN": "bad"}).stderr
    # the attempt that exhausts the counter may report either (PKCS#11 v2.40 C_Login)
    third = run(tmp_path, "hsm", "list", env={"RACENTRE_HSM_PIN": "bad"}).stderr
    assert b"PIN incorrect" in third or b"PIN locked" in third
    locked = run(tmp_path, "hsm", "list", env={"RACENTRE_HSM_PIN": "right-pin"})
    assert locked.returncode == 2 and b"PIN locked" in locked.stderr


def test_demo_writes_artefacts_that_outside_verifiers_accept(site, tmp_path):
    setup = run(site, "setup")
    assert setup.returncode == 0, setup.stderr
    assert b"created CA issuing-sm2" in setup.stdout and b"KMC: signing certificate issued by our CA" in setup.stdout
    assert b"ecdsa" not in setup.stdout.split(b"TSA unit")[0]
    more = run(site, "setup", "--with-ecdsa")        # a hierarchy added later; the SM2 one is kept
    assert more.returncode == 0 and b"created CA issuing-ecdsa" in more.stdout and b"sm2" not in more.stdout
    again = run(site, "setup", "--with-ecdsa")
    assert again.returncode == 0 and b"already set up" in again.stdout
    out = tmp_path / "demo"
    demo = run(site, "demo", "--out", str(out))
    assert demo.returncode == 0, demo.stderr
    check_demo_artefacts(out)


def test_cli_seals_like_the_service_once_the_site_is_set_up(site, tmp_path):
    """After `racentre setup` (the demo test above ran it) `racentre seal sign` uses the service's seal
    maker, TSA and revocation info: the CLI's PDF seal is timestamped and PAdES B-LT, and validates long
    term against our root with only what the document carries."""
    from seal.pdf import verify_pdf
    from seal.validation import SealPolicy
    from seal.samplepdf import make_pdf
    with sqlite3.connect(site / "var" / "racentre.db") as conn:
        seal_id, principal = conn.execute("select seal_id, principal from seal_user order by id desc").fetchone()
        roots = [row[0] for row in conn.execute("select certificate from ca_authority where parent_id is null")]
    (tmp_path / "in.pdf").write_bytes(make_pdf(1, title="sealed from the CLI"))
    signed = run(site, "seal", "sign", str(seal_id), str(tmp_path / "in.pdf"), "--out", str(tmp_path / "out.pdf"),
                 "--as", principal)
    assert signed.returncode == 0, signed.stderr
    report = verify_pdf((tmp_path / "out.pdf").read_bytes(), SealPolicy.anchored(roots))
    assert report.ok, report.to_text()
    (verdict,) = report.seals
    ltv = verdict.details["ltv"]
    assert verdict.timestamp_time and ltv["dss"] and ltv["crls"] and ltv["validated"], verdict.details
    refused = run(site, "seal", "sign", str(seal_id), str(tmp_path / "in.pdf"), "--out", str(tmp_path / "no.pdf"),
                  "--as", "someone-else")
    assert refused.returncode != 0 and not (tmp_path / "no.pdf").exists()
