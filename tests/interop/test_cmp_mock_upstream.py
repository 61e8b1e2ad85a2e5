"""``CmpCA`` against OpenSSL 3.0's mock CMP server (``openssl cmp -port ...``, code nobody here wrote) as
the upstream CA: MAC protection both ways (-srv_ref/-srv_secret), signature protection both ways
(-srv_cert/-srv_key, -srv_trusted for our RA's certificate), certConf, polling (-poll_count), a rejection
(-pkistatus 2 -failure ... -statusstring), an unprotected answer (-send_unprotected) and a malformed one.
The mock answers every request with -rsp_cert, so each test makes -rsp_cert for the key it asks for."""
from __future__ import annotations

import secrets
import socket
import socketserver
import subprocess
import threading
import time

import pytest
from asn1crypto import pem, x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from ca_bridge.api import IssueRequest
from ca_bridge.cmp.asn1 import PKIMessage
from ca_bridge.cmp.client import MacCredentials, SignatureCredentials
from ca_bridge.cmp.models import CmpOutbox
from ca_bridge.cmp.upstream import CmpCA, HttpTransport, UpstreamRefused, UpstreamUnavailable
from pkicore.algorithms import algorithm
from store.db import Base
from racentre.migrate import import_models
from tests.cmp_support import EcKey
from tests.interop.openssl_cli import require_openssl

SUBJECT = (("country_name", "CN"), ("common_name", "app.zj.gov.cn"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ossl(work, *args):
    subprocess.run(["openssl", *map(str, args)], cwd=work, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A small upstream PKI made by OpenSSL: its CA, the mock server's protection identity, our RA's."""
    require_openssl()
    work = tmp_path_factory.mktemp("cmp-mock")
    (work / "ext.cnf").write_text("[ee]\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:FALSE\n")
    _ossl(work, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
          "-subj", "/CN=Upstream Test CA", "-days", "30", "-out", "ca.pem")
    for name in ("srv", "ra"):
        _ossl(work, "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
              f"{name}.key", "-subj", f"/CN=Upstream {name}", "-out", f"{name}.csr")
        _ossl(work, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
              "-days", "30", "-extfile", "ext.cnf", "-extensions", "ee", "-out", f"{name}.pem")
    import_models()
    engine = create_engine(f"sqlite:///{work / 'ra.db'}")
    Base.metadata.create_all(engine, tables=[CmpOutbox.__table__])

    class Pki:
        pass
    p = Pki()
    p.work, p.db = work, sessionmaker(engine, expire_on_commit=False)
    p.ca = pem.unarmor((work / "ca.pem").read_bytes())[2]
    yield p
    engine.dispose()


def _subscriber(pki):
    """A subscriber key and the certificate the mock will return for it."""
    key = EcKey()
    name = secrets.token_hex(4)
    (pki.work / f"{name}.key").write_bytes(key.pem())
    _ossl(pki.work, "req", "-new", "-key", f"{name}.key", "-subj", "/C=CN/CN=app.zj.gov.cn", "-out", f"{name}.csr")
    _ossl(pki.work, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
          "-days", "30", "-extfile", "ext.cnf", "-extensions", "ee", "-out", f"{name}.pem")
    return key, f"{name}.pem"


class Mock:
    def __init__(self, pki, rsp_cert, *args):
        self.port = _free_port()
        self.proc = subprocess.Popen(["openssl", "cmp", "-port", str(self.port), "-rsp_cert", rsp_cert,
                                      "-rsp_capubs", "ca.pem", "-accept_raverified", *map(str, args)],
                                     cwd=pki.work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                assert self.proc.poll() is None, self.proc.stdout.read().decode()
                time.sleep(0.1)
        raise AssertionError("the mock CMP server did not start")

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/pkix/"

    def close(self):
        self.proc.terminate()
        return self.proc.communicate(timeout=10)[0].decode("utf-8", "replace")


def _mac():
    return MacCredentials(b"ra-node-1", b"mock-shared-secret")


def _ra_signer(pki):
    key = serialization.load_pem_private_key((pki.work / "ra.key").read_bytes(), None)
    cert = pem.unarmor((pki.work / "ra.pem").read_bytes())[2]
    return SignatureCredentials(cert, algorithm("ecdsa-sha256"), lambda data: key.sign(data, ec.ECDSA(hashes.SHA256())))


def _issue(pki, credentials, mock_args, poll_timeout=10.0):
    key, rsp = _subscriber(pki)
    mock = Mock(pki, rsp, *mock_args)
    try:
        cmp_ca = CmpCA(pki.db, HttpTransport(mock.url, timeout=10), credentials, [pki.ca], poll_timeout=poll_timeout)
        request = IssueRequest(request_id=f"ra-{secrets.token_hex(6)}-sign", profile="server", subject=SUBJECT,
                               public_key_info=key.spki, dns_names=("app.zj.gov.cn",))
        try:
            return cmp_ca, request, cmp_ca.issue(request), rsp
        except Exception as exc:                                # noqa: BLE001 - the caller asserts on it
            return cmp_ca, request, exc, rsp
    finally:
        log = mock.close()
        pki.last_log = log


def test_mac_both_ways_with_certconf(pki):
    _, request, issued, rsp = _issue(pki, _mac(), ("-srv_ref", "ra-node-1", "-srv_secret", "pass:mock-shared-secret"))
    assert not isinstance(issued, Exception), f"{issued}\n{pki.last_log}"
    assert issued.certificate == pem.unarmor((pki.work / rsp).read_bytes())[2]
    with pki.db() as s:
        assert s.get(CmpOutbox, request.request_id).state == "issued"
    assert pki.last_log.count("Received request") == 2               # cr, then certConf (answered pkiConf)


def test_p10cr_with_the_subscribers_csr(pki):
    """A CSR asking for exactly the queued certificate goes out as a p10cr (its POP passed through); the
    mock takes it, answers (certReqId -1) and the certConf for it is accepted."""
    key, rsp = _subscriber(pki)
    csr = pem.unarmor((pki.work / rsp.replace(".pem", ".csr")).read_bytes())[2]
    mock = Mock(pki, rsp, "-srv_ref", "ra-node-1", "-srv_secret", "pass:mock-shared-secret")
    try:
        http, sent = HttpTransport(mock.url, timeout=10), []

        def recording(der, profile=None):
            sent.append(PKIMessage.load(der)["body"].name)
            return http(der, profile)

        cmp_ca = CmpCA(pki.db, recording, _mac(), [pki.ca])
        request = IssueRequest(request_id=f"ra-{secrets.token_hex(6)}-sign", profile="server", subject=SUBJECT,
                               public_key_info=key.spki, csr=csr)
        issued = cmp_ca.issue(request)
    finally:
        log = mock.close()
    assert issued.certificate == pem.unarmor((pki.work / rsp).read_bytes())[2], log
    with pki.db() as s:
        row = s.get(CmpOutbox, request.request_id)
        assert row.kind == "p10cr" and row.state == "issued"
    assert sent == ["p10cr", "cert_conf"] and log.count("Received request") == 2, log


def test_signature_both_ways(pki):
    _, _, issued, _ = _issue(pki, _ra_signer(pki), ("-srv_cert", "srv.pem", "-srv_key", "srv.key",
                                                     "-srv_trusted", "ca.pem"))
    assert not isinstance(issued, Exception), f"{issued}\n{pki.last_log}"
    assert x509.Certificate.load(issued.certificate).subject.native["common_name"] == "app.zj.gov.cn"


def test_polling_until_the_mock_answers(pki):
    _, _, issued, _ = _issue(pki, _mac(), ("-srv_ref", "ra-node-1", "-srv_secret", "pass:mock-shared-secret",
                                           "-poll_count", "2", "-check_after", "1"))
    assert not isinstance(issued, Exception), f"{issued}\n{pki.last_log}"
    assert pki.last_log.count("Received request") == 4                # cr, pollReq, pollReq, certConf


def test_rejection_is_recorded_with_the_reason(pki):
    _, request, result, _ = _issue(pki, _mac(), ("-srv_ref", "ra-node-1", "-srv_secret", "pass:mock-shared-secret",
                                                 "-pkistatus", "2", "-failure", "9", "-statusstring",
                                                 "refused by upstream policy"))
    assert isinstance(result, UpstreamRefused), f"{result}\n{pki.last_log}"
    assert "refused by upstream policy" in str(result) and "bad_pop" in str(result)
    with pki.db() as s:
        row = s.get(CmpOutbox, request.request_id)
        assert row.state == "failed" and "refused by upstream policy" in row.reason


def test_unprotected_answer_is_refused_and_the_request_kept(pki):
    _, request, result, _ = _issue(pki, _mac(), ("-srv_ref", "ra-node-1", "-srv_secret", "pass:mock-shared-secret",
                                                 "-send_unprotected"))
    assert isinstance(result, UpstreamUnavailable) and "not protected" in str(result), result
    with pki.db() as s:
        assert s.get(CmpOutbox, request.request_id).state == "sent"


def test_malformed_answer_is_refused_and_the_request_kept(pki):
    class Garbage(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.recv(65536)
            body = b"\x30\x82\xff\xff" + secrets.token_bytes(40)
            self.request.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: application/pkixcmp\r\nContent-Length: "
                                 + str(len(body)).encode() + b"\r\n\r\n" + body)

    server = socketserver.TCPServer(("127.0.0.1", 0), Garbage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        cmp_ca = CmpCA(pki.db, HttpTransport(f"http://127.0.0.1:{server.server_address[1]}/", timeout=5), _mac(),
                       [pki.ca])
        request = IssueRequest(request_id=f"ra-{secrets.token_hex(6)}-sign", profile="server", subject=SUBJECT,
                               public_key_info=EcKey().spki)
        with pytest.raises(UpstreamUnavailable, match="not a DER PKIMessage"):
            cmp_ca.issue(request)
    finally:
        server.shutdown()
        server.server_close()
    with pki.db() as s:
        assert s.get(CmpOutbox, request.request_id).state == "sent"
