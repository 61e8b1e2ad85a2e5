"""OpenSSL 3.0's ``openssl cmp`` client (code nobody here wrote) against our CMP server served over HTTP
(RFC 6712) on a free port: ir with a one-time MAC secret, cr from an end entity that waits for two
officers and is polled, cr and p10cr from a registered RA (id-kp-cmcRA, "RA mode"), kur signed with the
old certificate, rr, genm; P-256 keys, and SM2 keys as far as OpenSSL 3.0 goes (see the SM2 test).
Replayed requests (the bytes openssl sent, posted again) are refused with a CMP error, never a 500."""
from __future__ import annotations

import subprocess
import threading
import time
import urllib.request
from types import SimpleNamespace

import pytest
from asn1crypto import pem, x509

from ca_bridge.api import IssueRequest
from ca_bridge.cmp import asn1
from ca_bridge.cmp.views import bp as cmp_bp
from pkicore.algorithms import algorithm
from pkicore.keys import verify_signature
from racentre.config import Config, ServiceConfig
from racentre.demo.cmp import demo_cmp
from racentre.web import create_app
from tests.e2e.demo_checks import check_cmp_artefacts
from tests.cmp_support import EcKey, cmp_server, served
from tests.interop.openssl_cli import require_openssl

SUBJECT = (("country_name", "CN"), ("organization_name", "Hangzhou Finance"), ("common_name", "cmp.zj.gov.cn"))
SUBJECT_TEXT = "/C=CN/O=Hangzhou Finance/CN=cmp.zj.gov.cn"


@pytest.fixture(scope="module")
def cmp(embedded_ca, softtoken_km, tmp_path_factory):
    require_openssl()
    server = cmp_server(embedded_ca, ee_approvals=2)
    work = tmp_path_factory.mktemp("cmp-openssl")
    root = next(i for i in embedded_ca.authorities().values() if i.parent is None and "ecdsa" in i.name)
    (work / "root.pem").write_bytes(pem.armor("CERTIFICATE", root.certificate))
    (work / "roots.pem").write_bytes(b"".join(pem.armor("CERTIFICATE", i.certificate)
                                             for i in embedded_ca.authorities().values() if i.parent is None))
    with served(server, softtoken_km, embedded_ca.db) as address:
        server.address, server.work = address, work
        yield server


def _run(cmp, *args, path=".well-known/cmp", check=True, timeout=90):
    argv = ["openssl", "cmp", "-server", cmp.address, "-path", path, *map(str, args)]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cmp.work,
                          timeout=timeout)
    proc.stderr = proc.stdout
    if check:
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc


def _key(cmp, name, algorithm="EC", opt="ec_paramgen_curve:P-256"):
    subprocess.run(["openssl", "genpkey", "-algorithm", algorithm, "-pkeyopt", opt, "-out", name], check=True,
                   cwd=cmp.work, capture_output=True)
    return name


def _cert(cmp, name) -> x509.Certificate:
    return x509.Certificate.load(pem.unarmor((cmp.work / name).read_bytes())[2])


def _ir(cmp, key, out, subject=SUBJECT, dns=("cmp.zj.gov.cn",), prefix="ir", extra=()):
    ref, secret = cmp.issue_secret("officer-a", profile="server", subject=subject, dns_names=dns)
    _run(cmp, *extra, "-cmd", "ir", "-ref", ref, "-secret", f"pass:{secret}", "-newkey", key, "-subject", SUBJECT_TEXT,
         "-recipient", "/CN=RA Centre", "-reqout", f"{prefix}.der,{prefix}-certconf.der",
         "-rspout", f"{prefix}-ip.der,{prefix}-pkiconf.der", "-certout", out)
    return _cert(cmp, out)


def test_ir_with_mac_p256_and_certconf(cmp):
    cert = _ir(cmp, _key(cmp, "ee.pem"), "ee-cert.pem")
    assert cert.subject.native["common_name"] == "cmp.zj.gov.cn"
    assert cert.subject_alt_name_value.native == ["cmp.zj.gov.cn"]
    assert asn1.PKIMessage.load((cmp.work / "ir.der").read_bytes())["body"].name == "ir"
    assert asn1.PKIMessage.load((cmp.work / "ir-certconf.der").read_bytes())["body"].name == "cert_conf"
    assert asn1.PKIMessage.load((cmp.work / "ir-pkiconf.der").read_bytes())["body"].name == "pkiconf"


def test_replayed_ir_bytes_are_refused_with_a_cmp_error(cmp):
    _ir(cmp, _key(cmp, "replay.pem"), "replay-cert.pem", prefix="replay")
    for name in ("replay.der", "replay-certconf.der"):
        request = urllib.request.Request(f"http://{cmp.address}/.well-known/cmp", data=(cmp.work / name).read_bytes(),
                                         headers={"Content-Type": "application/pkixcmp"})
        with urllib.request.urlopen(request, timeout=10) as resp:
            assert resp.status == 200 and resp.headers["Content-Type"] == "application/pkixcmp"
            answer = asn1.PKIMessage.load(resp.read())
        assert answer["body"].name == "error"
        assert "bad_sender_nonce" in answer["body"].chosen["pki_status_info"]["fail_info"].native


def test_cr_from_an_end_entity_waits_for_two_officers_and_openssl_polls(cmp):
    cert = _ir(cmp, _key(cmp, "poll.pem"), "poll-cert.pem", prefix="poll")
    _key(cmp, "poll2.pem")
    done = threading.Event()

    def officers():
        while not done.is_set():
            waiting = [w for w in cmp.waiting() if "cmp.zj.gov.cn" in w["sender"]]
            if waiting:
                time.sleep(1)
                cmp.approve("officer-b", waiting[0]["transaction_id"])
                cmp.approve("officer-c", waiting[0]["transaction_id"])
                return
            time.sleep(0.2)

    thread = threading.Thread(target=officers)
    thread.start()
    try:
        proc = _run(cmp, "-cmd", "cr", "-cert", "poll-cert.pem", "-key", "poll.pem", "-newkey", "poll2.pem",
                    "-trusted", "roots.pem", "-certout", "poll-cr.pem", "-verbosity", "8")
    finally:
        done.set()
        thread.join(10)
    assert "POLLREP" in proc.stderr or "pollRep" in proc.stderr or "polling" in proc.stderr.lower()
    new = _cert(cmp, "poll-cr.pem")
    assert new.subject == cert.subject and new.serial_number != cert.serial_number


def _ra(cmp):
    key = EcKey()
    (cmp.work / "ra.pem").write_bytes(key.pem())
    issued = cmp.ca.issue(IssueRequest(request_id=f"ra-{time.monotonic_ns()}", profile="cmp-ra",
                                       subject=(("country_name", "CN"), ("common_name", "RA node 1")),
                                       public_key_info=key.spki))
    (cmp.work / "ra-cert.pem").write_bytes(pem.armor("CERTIFICATE", issued.certificate))
    return "ra-cert.pem", "ra.pem"


def test_cr_and_p10cr_from_a_registered_ra_are_issued_at_once(cmp):
    cert, key = _ra(cmp)
    _key(cmp, "byra.pem")
    _run(cmp, "-cmd", "cr", "-cert", cert, "-key", key, "-newkey", "byra.pem", "-subject",
         "/C=CN/O=Hangzhou Finance/CN=app.zj.gov.cn", "-sans", "app.zj.gov.cn", "-trusted", "roots.pem",
         "-certout", "byra-cert.pem", path=".well-known/cmp/p/server")
    issued = _cert(cmp, "byra-cert.pem")
    assert issued.subject.native["common_name"] == "app.zj.gov.cn"
    assert issued.subject_alt_name_value.native == ["app.zj.gov.cn"]
    _key(cmp, "p10.pem")
    subprocess.run(["openssl", "req", "-new", "-key", "p10.pem", "-subj", "/C=CN/CN=api.zj.gov.cn",
                    "-addext", "subjectAltName=DNS:api.zj.gov.cn", "-out", "p10.csr"],
                   cwd=cmp.work, check=True, capture_output=True)
    _run(cmp, "-cmd", "p10cr", "-cert", cert, "-key", key, "-csr", "p10.csr", "-trusted", "roots.pem",
         "-certout", "p10-cert.pem", path=".well-known/cmp/p/server")
    assert _cert(cmp, "p10-cert.pem").subject_alt_name_value.native == ["api.zj.gov.cn"]


def test_kur_with_the_old_key_then_rr(cmp):
    old = _ir(cmp, _key(cmp, "kur-old.pem"), "kur-old-cert.pem", prefix="kur")
    _key(cmp, "kur-new.pem")
    _run(cmp, "-cmd", "kur", "-cert", "kur-old-cert.pem", "-key", "kur-old.pem", "-newkey", "kur-new.pem",
         "-trusted", "roots.pem", "-certout", "kur-new-cert.pem")
    new = _cert(cmp, "kur-new-cert.pem")
    assert new.subject == old.subject and new.public_key != old.public_key
    _run(cmp, "-cmd", "rr", "-cert", "kur-new-cert.pem", "-key", "kur-new.pem", "-oldcert", "kur-new-cert.pem",
         "-revreason", "1", "-trusted", "roots.pem", "-reqout", "rr.der", "-rspout", "rp.der")
    issuer = next(i.name for i in cmp.ca.authorities().values() if i.subject_der == new.issuer.dump())
    status = cmp.ca.status(issuer, new.serial_number)
    assert status.status == "revoked" and status.reason.value == "key_compromise"
    # a second rr of the same certificate: refused, and OpenSSL reports the CA's reason
    proc = _run(cmp, "-cmd", "rr", "-cert", "kur-old-cert.pem", "-key", "kur-old.pem", "-oldcert",
                "kur-new-cert.pem", "-trusted", "roots.pem", check=False)
    assert proc.returncode != 0 and "only the certificate that signs" in proc.stderr


def test_genm_sign_key_pair_types(cmp):
    _ir(cmp, _key(cmp, "genm.pem"), "genm-cert.pem", prefix="genm")
    proc = _run(cmp, "-cmd", "genm", "-cert", "genm-cert.pem", "-key", "genm.pem", "-trusted", "roots.pem",
                "-infotype", "signKeyPairTypes", "-rspout", "genp.der", "-verbosity", "7")
    answer = asn1.PKIMessage.load((cmp.work / "genp.der").read_bytes())
    assert answer["body"].name == "genp"
    types = {a["algorithm"].dotted for a in answer["body"].chosen[0]["info_value"]}
    assert "1.2.840.10045.4.3.2" in types and "1.2.156.10197.1.501" in types
    assert "genp" in proc.stderr.lower()


def test_sm2_openssl_30_signs_with_an_empty_id_and_is_refused_saying_why(cmp):
    """What OpenSSL 3.0's CMP client cannot do: it signs an SM2 proof of possession (and SM2 message
    protection) with an *empty* SM2 user ID — ``openssl cmp`` has no option to set the distinguishing ID
    (no -sigopt distid:...), unlike ``openssl req``/``x509``. GB/T 35276 §7 and GM/T 0009 fix the default
    ID 1234567812345678, which we check, so the request is refused with badPOP and a reason; the test
    proves the cause: the very POP openssl sent verifies with the empty ID and not with the standard one."""
    ref, secret = cmp.issue_secret("officer-a", profile="server", subject=SUBJECT, dns_names=("cmp.zj.gov.cn",))
    _key(cmp, "sm2.pem", "EC", "ec_paramgen_curve:SM2")
    proc = _run(cmp, "-digest", "sm3", "-cmd", "ir", "-ref", ref, "-secret", f"pass:{secret}", "-newkey", "sm2.pem",
                "-subject", SUBJECT_TEXT, "-recipient", "/CN=RA Centre", "-reqout", "sm2-ir.der",
                "-certout", "sm2-cert.pem", check=False)
    assert proc.returncode != 0 and "badPOP" in proc.stderr and "proof-of-possession" in proc.stderr
    request = asn1.PKIMessage.load((cmp.work / "sm2-ir.der").read_bytes())
    msg = request["body"].chosen[0]
    spki = msg["cert_req"]["cert_template"]["public_key"].untag().dump()
    pop = msg["popo"].chosen["signature"].native
    data = msg["cert_req"].dump()
    assert msg["popo"].chosen["algorithm_identifier"]["algorithm"].dotted == "1.2.156.10197.1.501"
    assert verify_signature(spki, algorithm("sm2-sm3"), data, pop, user_id=b"")
    assert not verify_signature(spki, algorithm("sm2-sm3"), data, pop)


def test_demo_cmp_artefacts(embedded_ca, softtoken_km, tmp_path):
    """``racentre demo``'s CMP step (racentre.demo.cmp) on this CA, checked as demo_checks checks it."""
    require_openssl()
    services = SimpleNamespace(ca=embedded_ca, cmp=cmp_server(embedded_ca))
    app = create_app(Config(service=ServiceConfig(public_url="http://ca.test")), softtoken_km, embedded_ca.db,
                     services={"cmp": services.cmp}, blueprints=[cmp_bp])
    written = demo_cmp(services, app, tmp_path)
    assert "cmp/ir.der" in written and "cmp/cert.pem" in written
    check_cmp_artefacts(tmp_path / "cmp")
