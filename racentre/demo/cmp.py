"""The CMP part of ``racentre demo``: OpenSSL 3.0's ``openssl cmp`` client against the served
CA — an ir protected by a one-time secret an officer issued for a vetted server subject, then an rr
signed with the certificate it got — keeping what went over the wire (``-reqout``/``-rspout``):
``cmp/ir.der``, ``cmp/ip.der``, ``cmp/certconf.der``, ``cmp/pkiconf.der``, ``cmp/rr.der``, ``cmp/rp.der``,
and the certificate, ``cmp/cert.pem`` (with its key ``cmp/cert-key.pem``, the subscriber's own, and
``cmp/ip-chain.pem``, the CA certificates the ip carried)."""
from __future__ import annotations

import contextlib
import subprocess
import threading
import urllib.parse
from pathlib import Path

from asn1crypto import pem
from werkzeug.serving import make_server

from ca_bridge.cmp.asn1 import PKIMessage

SUBJECT = (("country_name", "CN"), ("organization_name", "Demo City Finance Bureau"),
           ("common_name", "cmp-demo.zj.gov.cn"))
SUBJECT_TEXT = "/C=CN/O=Demo City Finance Bureau/CN=cmp-demo.zj.gov.cn"


@contextlib.contextmanager
def _address(app, url: str | None):
    """host:port of the service: the running one (``--url``), else ``app`` served here on a free port."""
    if url:
        parts = urllib.parse.urlsplit(url)
        yield parts.netloc, (parts.path.strip("/") + "/" if parts.path.strip("/") else "")
        return
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{http.server_port}", ""
    finally:
        http.shutdown()
        thread.join(5)


def _cmp(work: Path, address: str, prefix: str, *args: str) -> None:
    proc = subprocess.run(["openssl", "cmp", "-server", address, "-path", f"{prefix}.well-known/cmp", *args],
                          cwd=work, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl cmp {args[1]} failed: {(proc.stdout + proc.stderr)[-1500:]}")


def demo_cmp(services, app, out: Path, url: str | None = None) -> list[str]:
    work = out / "cmp"
    work.mkdir(parents=True, exist_ok=True)
    roots = b"".join(pem.armor("CERTIFICATE", i.certificate) for i in services.ca.authorities().values() if i.is_root)
    (work / "roots.pem").write_bytes(roots)
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", "cert-key.pem"], cwd=work, check=True, capture_output=True)
    (work / "cert-key.pem").chmod(0o600)
    # the officer's part: the subject was vetted; a one-time secret goes to the subscriber out of band
    reference, secret = services.cmp.issue_secret("demo-officer", profile="server", subject=SUBJECT,
                                                  dns_names=("cmp-demo.zj.gov.cn",))
    with _address(app, url) as (address, prefix):
        _cmp(work, address, prefix, "-cmd", "ir", "-ref", reference, "-secret", f"pass:{secret}",
             "-newkey", "cert-key.pem", "-subject", SUBJECT_TEXT, "-recipient", "/CN=RA Centre",
             "-reqout", "ir.der,certconf.der", "-rspout", "ip.der,pkiconf.der", "-certout", "cert.pem")
        _cmp(work, address, prefix, "-cmd", "rr", "-cert", "cert.pem", "-key", "cert-key.pem", "-oldcert", "cert.pem",
             "-revreason", "5", "-trusted", "roots.pem", "-reqout", "rr.der", "-rspout", "rp.der")
    ip = PKIMessage.load((work / "ip.der").read_bytes())
    (work / "ip-chain.pem").write_bytes(b"".join(pem.armor("CERTIFICATE", c.dump()) for c in ip["extra_certs"] if c.ca))
    return [f"cmp/{name}" for name in ("ir.der", "ip.der", "certconf.der", "pkiconf.der", "rr.der", "rp.der",
                                       "cert.pem", "cert-key.pem", "roots.pem", "ip-chain.pem")]
