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

from racentre.demo import walk
from tests.e2e.console_day_checks import check_console_day
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


def run(site: Path, *args, env=None, input=None, timeout=120) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RACENTRE_")}
    full_env.update({"RACENTRE_CONFIG": str(site / "racentre.toml"),
                     "RACENTRE_TSA_REQUIRE_SYNC": "false"}, **(env or {}))   # this box's clock is unsynchronised
    return subprocess.run([*RACENTRE, *args], capture_output=True, env=full_env, input=input, timeout=timeout,
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


@pytest.fixture(scope="module")
def demo_run(site, tmp_path_factory):
    """`racentre setup` (SM2, then ECDSA added later), then `racentre demo --out`: (the output folder, the
    demo's completed process). The demo includes the team's day in the console (racentre.demo.walk)."""
    setup = run(site, "setup")
    assert setup.returncode == 0, setup.stderr
    assert b"created CA issuing-sm2" in setup.stdout and b"KMC: signing certificate issued by our CA" in setup.stdout
    assert b"ecdsa" not in setup.stdout.split(b"TSA unit")[0]
    more = run(site, "setup", "--with-ecdsa")        # a hierarchy added later; the SM2 one is kept
    assert more.returncode == 0 and b"created CA issuing-ecdsa" in more.stdout and b"sm2" not in more.stdout
    again = run(site, "setup", "--with-ecdsa")
    assert again.returncode == 0 and b"already set up" in again.stdout
    out = tmp_path_factory.mktemp("demo") / "out"
    demo = run(site, "demo", "--out", str(out), env={"SE_OFFLINE": "1"}, timeout=600)
    return out, demo


def test_demo_writes_artefacts_that_outside_verifiers_accept(demo_run):
    out, demo = demo_run
    assert demo.returncode == 0, demo.stderr[-5000:]
    check_demo_artefacts(out)


@pytest.mark.browser
@pytest.mark.slow
def test_the_demo_team_runs_its_day_in_the_console(site, demo_run):
    """`racentre demo`'s walk in headless Chromium (issue 17 "Must show"): each step's outcome is in the
    database and the downloads (requests issued / suspended / resumed / renewed / revoked with the right
    officers, certificate revoked in the CA too, key recovery used and its envelope opening with the court's
    key, the seal applied by the authorised officer, the filtered audit CSV and its own audit row), and each
    step's screenshot is a 1366×768 PNG of its own. Without Chromium the demo says so and still finishes."""
    out, demo = demo_run
    assert demo.returncode == 0, demo.stderr[-5000:]
    if walk.browser_missing():
        assert b"NO console screenshots" in demo.stderr and not (out / "screenshots").exists()
        return
    assert b"FAILED" not in demo.stderr, demo.stderr.decode(errors="replace")[-3000:]
    check_console_day(out, site / "var" / "racentre.db")


def test_cli_seals_like_the_service_once_the_site_is_set_up(site, tmp_path):
    """After `racentre setup` (the demo test above ran it) `racentre seal sign` uses the service's seal
    maker, TSA and revocation info: the CLI's PDF seal is timestamped and PAdES B-LT, and validates long
    term against our root with only what the document carries."""
    from seal.pdf import verify_pdf
    from seal.validation import SealPolicy
    from racentre.demo.samples import make_pdf
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


# ------------------------------------------------------------------------ issue 17: the demo ends at a login

def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _login(url: str, name: str, password: str, code: str):
    """The console's login form over HTTP, as a browser sends it; returns (status, Location)."""
    import http.cookiejar
    import re
    import urllib.parse
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    form = opener.open(f"{url}/console/login", timeout=30).read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    body = urllib.parse.urlencode({"csrf_token": csrf, "next": "", "name": name, "password": password,
                                   "otp": code}).encode()
    try:
        reply = opener.open(urllib.request.Request(f"{url}/console/login", data=body), timeout=30)
        return reply.status, reply.headers.get("Location")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location")


def test_demo_sh_ends_at_a_login(tmp_path):
    """scripts/demo.sh (set-up step skipped: the box is prepared, and the shared virtualenv must not be
    reinstalled) ends printing the console URL, the demo officers with their roles, the password and how to
    get the one-time code; with those, each officer logs in; `/` leads to the console; the operator CLI run
    from the directory holding var/demo/ finds the demo's configuration (and says so) and acts as a demo
    officer with `--as`; no CLI call prints a deprecation warning, and nothing was created in the working
    directory of a CLI call without configuration."""
    import signal
    root = Path(__file__).resolve().parents[2]
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RACENTRE_")}
    env.update(RACENTRE_DEMO_SETUP="0", RACENTRE_DEMO_DIR=str(tmp_path / "var" / "demo"),
               RACENTRE_DEMO_OUT=str(tmp_path / "demo-out"), RACENTRE_SERVICE_PORT=str(port),
               PYTHONPATH=str(root))
    proc = subprocess.Popen(["scripts/demo.sh"], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    lines = []
    try:
        for line in proc.stdout:                          # until the demo is ready (or the script ends)
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        text = "".join(lines)
        assert lines and lines[-1].startswith("Press Ctrl-C"), text + proc.stderr.read()
        url = f"http://127.0.0.1:{port}"
        assert f"控制台 console:   {url}/console/" in text
        password = next(ln.split()[2] for ln in lines if ln.strip().startswith("口令 password:"))
        team = {ln.split()[0]: ln.split()[2] for ln in lines if ln.startswith("    ") and len(ln.split()) >= 3}
        assert {"zhao", "qian", "sun", "wang", "zhou", "wu", "zheng", "feng", "chen"} <= set(team), text
        roles = sorted(team.values())
        # one per role, and enough people for every four-eyes rule: submitter ≠ vetter (two operators),
        # two approvers, and 2 of 3 key-recovery officers besides the requester
        assert roles.count("ra_operator") == 2 and roles.count("ra_officer") == 2
        assert roles.count("key_recovery_officer") == 3 and {"ra_admin", "auditor"} <= set(roles)
        assert "racentre console user totp NAME" in text and "deprecat" not in text.lower()
        # the team's day ran against the served console (its outcomes: test_the_demo_team_runs_its_day_...)
        day = tmp_path / "demo-out" / "screenshots"
        assert f"{day}/index.html" in text and len(list(day.glob("[0-9][0-9]-*-by-*.png"))) == 23, text
        assert not list(day.glob("*-failed-by-*")), text
        assert (tmp_path / "var" / "demo" / "officers.tsv").stat().st_mode & 0o077 == 0

        front = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", f"{url}/"],
                               capture_output=True, text=True, timeout=30)
        assert front.stdout == f"302 {url}/console/", front.stdout
        cli_env = {k: v for k, v in env.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(root)}
        cli = [str(root / ".venv" / "bin" / "racentre")]
        for name in ("sun", "wu"):
            code = subprocess.run([*cli, "console", "user", "totp", name], cwd=tmp_path, env=cli_env,
                                  capture_output=True, text=True, timeout=120)
            assert code.returncode == 0, code.stderr
            assert f"using the demo's configuration (scripts/demo.sh): {tmp_path / 'var' / 'demo' / 'racentre.toml'}" \
                in code.stderr and "Warning" not in code.stderr
            status, location = _login(url, name, password, code.stdout.strip())
            assert status == 303 and location.endswith("/console/"), (name, status, location)
        wrong = _login(url, "qian", password, "000000")
        assert wrong[0] == 401
        from tests.unit.ra.helpers import uscc
        unit = subprocess.run([*cli, "ra", "subject", "add-unit", "--name", "演示测试局", "--uscc", uscc(),
                               "--legal-representative", "李四", "--as", "zhao"], cwd=tmp_path, env=cli_env,
                              capture_output=True, text=True, timeout=120)
        assert unit.returncode == 0, unit.stderr        # zhao: the demo's operator, by console name
        not_operator = subprocess.run([*cli, "ra", "subject", "add-unit", "--name", "演示测试局二", "--uscc", uscc(),
                                       "--legal-representative", "李四", "--as", "wu"], cwd=tmp_path, env=cli_env,
                                      capture_output=True, text=True, timeout=120)
        assert not_operator.returncode == 2 and "does not hold the role ra_operator" in not_operator.stderr
        # a CLI call with no configuration anywhere says what it used and creates no database
        bare = tmp_path / "elsewhere"
        bare.mkdir()
        refused = subprocess.run([*cli, "console", "user", "list"], cwd=bare, env=cli_env, capture_output=True,
                                 text=True, timeout=120)
        assert refused.returncode == 2 and "no configuration file" in refused.stderr
        assert f"the database {bare / 'var' / 'racentre.db'} does not exist" in refused.stderr
        assert "export RACENTRE_CONFIG=" in refused.stderr and not (bare / "var" / "racentre.db").exists()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def test_ca_revoke_of_an_ra_certificate_goes_through_the_ra(site):
    """Issue 17, one path, one truth: `racentre ca revoke` of a certificate the RA requested is refused
    without an officer and a justification (nothing revoked); with them it is an RA revocation (a request
    of its own, audited), and the RA's records show the certificate revoked, as the CA's do."""
    with sqlite3.connect(site / "var" / "racentre.db") as conn:
        ca_name, serial, rid = conn.execute(
            "select a.name, c.serial, r.request_id from ra_certificate r join ca_issued_cert c "
            "on c.request_id = r.ca_request_id join ca_authority a on a.id = c.ca_id "
            "where r.status = 'good' and r.usage = 'sign' order by r.id limit 1").fetchone()
    refused = run(site, "ca", "revoke", serial, "--ca", ca_name, "--reason", "key_compromise")
    assert refused.returncode == 2 and f"issued through RA request {rid}" in refused.stderr.decode()
    with sqlite3.connect(site / "var" / "racentre.db") as conn:
        assert conn.execute("select status from ra_certificate where request_id = ? and usage = 'sign'",
                            (rid,)).fetchone() == ("good",)
    assert run(site, "ra", "token", "create", "duty-officer", "--role", "ra_officer").returncode == 0
    done = run(site, "ca", "revoke", serial, "--ca", ca_name, "--reason", "key_compromise", "--as", "duty-officer",
               "--justification", "持有人报告 USB key 遗失")
    assert done.returncode == 0, done.stderr
    assert b"through RA revocation request" in done.stdout
    with sqlite3.connect(site / "var" / "racentre.db") as conn:
        assert {s for (s,) in conn.execute("select status from ra_certificate where request_id = ?", (rid,))} \
            == {"revoked"}
        assert conn.execute("select status from ca_issued_cert c join ca_authority a on a.id = c.ca_id "
                            "where a.name = ? and c.serial = ?", (ca_name, serial)).fetchone() == ("revoked",)
        assert conn.execute("select count(*) from audit_event where action = 'ra.request.emergency_revoke' "
                            "and actor = 'duty-officer'").fetchone() == (1,)
