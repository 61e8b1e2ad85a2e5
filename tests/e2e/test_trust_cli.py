"""`racentre trust ...` in child interpreters on a site of its own (`racentre setup` on SQLite, its own token
directory): key create/list/certificate, sign (CMS with timestamp, raw), verify (exit codes 0 / 1 by the
indication), validate (SOF_ValidateCert exit code), cert-info (GM/T 0015 identity), encrypt/decrypt to the
application's own key, and the refusals a bad input gets (exit 2 with the reason, no traceback).
`setup` and the key creations run in processes of their own; the commands after them run one after another
in one more interpreter (tests/cli_session.py), which finds the keys only on the token's files."""
from __future__ import annotations

import json
import subprocess
import sys

from asn1crypto import cms, x509

from tests.cli_session import CliSession, child_env
from tests.pgschema import migrated


def _site(tmp_path):
    (tmp_path / "softtoken").mkdir()
    (tmp_path / "softtoken" / "softtoken.conf").write_text("pbkdf2_iterations = 1000\n")
    (tmp_path / "pin").write_text("trust-cli-pin\n")
    (tmp_path / "so.pin").write_text("trust-cli-so-pin\n")
    config = tmp_path / "racentre.toml"
    config.write_text('[hsm]\ntoken = "trust-cli"\npin_file = "pin"\n[softtoken]\ndir = "softtoken"\n'
                      'auto_init = true\nso_pin_file = "so.pin"\n'
                      f'[database]\nurl = "{migrated(f"sqlite:///{tmp_path}/db.sqlite")}"\n'
                      '[service]\npublic_url = "http://trust-cli.test"\n[tsa]\npolicy = "1.2.3.4.1"\nrequire_sync = false\n')
    env = child_env()
    session: list[CliSession] = []

    def run(*args, ok=True, own_process=False):
        if own_process:
            proc = subprocess.run([sys.executable, "-m", "racentre.cli", "--config", str(config), *map(str, args)],
                                  capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
        else:
            if not session:
                session.append(CliSession(env, tmp_path))
            proc = session[0].run("--config", config, *args)
        if ok:
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc
    return run, session


def test_trust_commands(tmp_path):
    run, session = _site(tmp_path)
    try:
        _trust_commands(run, tmp_path)
    finally:
        for s in session:
            s.close()


def _trust_commands(run, tmp_path):
    run("setup", own_process=True)
    created = run("trust", "key", "create", "cli-app", "--cn", "cli.gov.test", "--dns", "cli.gov.test", own_process=True)
    assert "已创建密钥" in created.stdout
    run("trust", "key", "create", "cli-app", "--purpose", "encrypt", "--cn", "cli.gov.test", own_process=True)
    keys = json.loads(run("trust", "key", "list", "--json").stdout)
    assert [k["purpose"] for k in keys] == ["sign", "encrypt"] and keys[0]["application"] == "cli-app"
    content = tmp_path / "content.txt"
    content.write_text("命令行签名\n" * 5)
    run("trust", "sign", "--app", "cli-app", "--in", content, "--out", tmp_path / "s.p7s", "--timestamp",
        "--signing-time")
    signed = cms.ContentInfo.load((tmp_path / "s.p7s").read_bytes())
    assert signed["content"]["signer_infos"][0]["unsigned_attrs"][0]["type"].dotted == "1.2.840.113549.1.9.16.2.14"
    good = run("trust", "verify", "--in", tmp_path / "s.p7s", "--json")
    report = json.loads(good.stdout)
    assert report["valid"] and report["certificate_code"] == 1 and report["signers"][0]["timestamp"]["proven"]
    run("trust", "sign", "--app", "cli-app", "--in", content, "--out", tmp_path / "d.p7s", "--detached")
    other = tmp_path / "other.txt"
    other.write_text("别的内容")
    bad = run("trust", "verify", "--in", tmp_path / "d.p7s", "--data", other, ok=False)
    assert bad.returncode == 1 and "HASH_FAILURE" in bad.stdout
    run("trust", "sign", "--app", "cli-app", "--in", content, "--out", tmp_path / "raw.sig", "--raw")
    run("trust", "key", "certificate", str(keys[0]["id"]), "--out", tmp_path / "app.der")
    raw = run("trust", "verify", "--raw", "--in", tmp_path / "raw.sig", "--data", content, "--cert", tmp_path / "app.der")
    assert raw.stdout.startswith("TOTAL_PASSED")
    assert run("trust", "validate", tmp_path / "app.der").stdout.startswith("1 ")
    info = json.loads(run("trust", "cert-info", tmp_path / "app.der").stdout)
    assert info["subject_fields"]["CN"] == ["cli.gov.test"]
    assert info["serial"] == format(x509.Certificate.load((tmp_path / "app.der").read_bytes()).serial_number, "X")
    run("trust", "key", "certificate", str(keys[1]["id"]), "--out", tmp_path / "enc.der")
    run("trust", "encrypt", "--to", tmp_path / "enc.der", "--in", content, "--out", tmp_path / "env.der")
    run("trust", "decrypt", "--app", "cli-app", "--in", tmp_path / "env.der", "--out", tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_bytes() == content.read_bytes()
    # refusals: another application has no key; a file that is no certificate
    nokey = run("trust", "sign", "--app", "nobody", "--in", content, "--out", tmp_path / "x", ok=False)
    assert nokey.returncode == 2 and "no sign key" in nokey.stderr and "Traceback" not in nokey.stderr
    notcert = run("trust", "cert-info", content, ok=False)
    assert notcert.returncode == 2 and "not an X.509 certificate" in notcert.stderr
