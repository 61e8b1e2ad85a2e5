"""The TSA against outside verifiers and clients, over a real HTTP server on 127.0.0.1 (waitress thread):
Bouncy Castle's TimeStampToken.validate (SM2, ECDSA, RSA), `openssl ts -verify` (ECDSA, RSA; OpenSSL 3.0
cannot check SM2 CMS), pyHanko's HTTPTimeStamper (PDF signature timestamp validated by pyHanko), abusive
requests on the socket, and the demo artefacts."""
from __future__ import annotations

import asyncio
import hashlib
import http.client
import io
import secrets
import socket
import threading
import types

import pytest
import waitress
from asn1crypto import pem, tsp

from tests.interop.bouncycastle import assert_bc_fails, assert_bc_ok, bc_available, bc_verify_many
from tests.interop.openssl_cli import openssl_available, run_openssl, ts_verify
from tests.unit.timestamp.test_views import make_app
from timestamp.services import TsaService
from timestamp.tsa import TimeStampResp

from tests.unit.timestamp.pki import tsa_pki  # noqa: F401 - the TSA test PKI fixture


@pytest.fixture(scope="module")
def server(tsa_pki):
    app = make_app(TsaService(tsa_pki.config, tsa_pki.km))
    srv = waitress.create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.effective_port}"
    srv.close()
    thread.join(5)


def post(url: str, path: str, body: bytes, ctype: str = "application/timestamp-query") -> tuple[int, dict, bytes]:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("POST", path, body=body, headers={"Content-Type": ctype})
    r = conn.getresponse()
    out = (r.status, dict(r.getheaders()), r.read())
    conn.close()
    return out


def query(data: bytes, digest: str, nonce: int | None = None) -> bytes:
    return tsp.TimeStampReq({"version": "v1", "message_imprint": {
        "hash_algorithm": {"algorithm": digest}, "hashed_message": hashlib.new(digest, data).digest()},
        "nonce": nonce if nonce is not None else secrets.randbits(64), "cert_req": True}).dump()


def test_openssl_ts_verify_ecdsa_and_rsa(server, tsa_pki, tmp_path):
    if not openssl_available():
        pytest.skip("openssl CLI not installed")
    data = tmp_path / "data.bin"
    data.write_bytes(b"openssl checks this " + secrets.token_bytes(16))
    for unit, digest in (("ecdsa", "sha256"), ("ecdsa", "sha512"), ("rsa", "sha256"), ("rsa", "sha384")):
        tsq = tmp_path / f"{unit}-{digest}.tsq"
        tsq.write_bytes(query(data.read_bytes(), digest))
        status, headers, body = post(server, f"/tsa/{unit}", tsq.read_bytes())
        assert status == 200 and headers["Content-Type"] == "application/timestamp-reply"
        tsr = tmp_path / f"{unit}-{digest}.tsr"
        tsr.write_bytes(body)
        ca = tsa_pki.ca_file(unit)
        assert ts_verify(tsr, ca, data=data).ok, ts_verify(tsr, ca, data=data).stderr
        assert ts_verify(tsr, ca, queryfile=tsq).ok               # nonce and imprint against the query
        text = run_openssl("ts", "-reply", "-in", tsr, "-text").stdout
        assert "Policy OID: tsa_policy1" in text and "Accuracy: 0x01 seconds" in text  # 1.2.3.4.1
        other = tmp_path / "other.bin"
        other.write_bytes(b"different")
        assert not ts_verify(tsr, ca, data=other).ok
        assert not ts_verify(tsr, tsa_pki.ca_file("default"), data=data).ok   # wrong anchor


def test_openssl_makes_queries_we_answer(server, tsa_pki, tmp_path):
    """A query made by `openssl ts -query` (SHA-256, nonce, certReq) answered by the SM2 unit."""
    if not openssl_available():
        pytest.skip("openssl CLI not installed")
    data = tmp_path / "d"
    data.write_bytes(b"from openssl")
    tsq = tmp_path / "q.tsq"
    run_openssl("ts", "-query", "-data", data, "-sha256", "-cert", "-out", tsq, check=True)
    status, _, body = post(server, "/tsa", tsq.read_bytes())
    assert status == 200 and TimeStampResp.load(body)["status"]["status"].native == "granted"
    (tmp_path / "r.tsr").write_bytes(body)
    if bc_available():
        assert_bc_ok(bc_verify_many([["tsp", tmp_path / "r.tsr", "--data", data, "--ca",
                                      tsa_pki.ca_file("default")]])[0])


def test_bouncy_castle_validates_http_replies(server, tsa_pki, tmp_path):
    if not bc_available():
        pytest.skip("Bouncy Castle not installed")
    data = tmp_path / "data.bin"
    data.write_bytes("国密时间戳 ".encode() * 20)
    (tmp_path / "other.bin").write_bytes(b"x")
    argvs = []
    for unit, digest in (("default", "sm3"), ("default", "sha384"), ("ecdsa", "sm3"), ("rsa", "sha256")):
        status, _, body = post(server, "/tsa" if unit == "default" else f"/tsa/{unit}", query(data.read_bytes(), digest))
        assert status == 200
        tsr = tmp_path / f"{unit}-{digest}.tsr"
        tsr.write_bytes(body)
        tsa_cert = tmp_path / f"{unit}-tsa.der"
        tsa_cert.write_bytes(tsa_pki.ca[unit].certificate)
        argvs += [["tsp", tsr, "--data", data, "--ca", tsa_pki.ca_file(unit)],
                  ["tsp", tsr, "--data", tmp_path / "other.bin"],
                  ["tsp", tsr, "--ca", tsa_pki.ca_file("ecdsa" if unit != "ecdsa" else "rsa")]]
    results = bc_verify_many(argvs)
    for i in range(0, len(results), 3):
        assert_bc_ok(results[i])
        assert_bc_fails(results[i + 1])
        assert results[i + 2].returncode != 0


def test_abusive_requests_on_the_socket(server):
    host, port = server.removeprefix("http://").split(":")
    # 10 MB body: refused with 413, not a 500
    status, _, body = post(server, "/tsa", b"\x30\x84" + b"\x00" * (10 * 1024 * 1024))
    assert status == 413
    assert post(server, "/tsa", query(b"x", "sm3"), "text/plain")[0] == 415
    assert post(server, "/tsa", b"\x30\x82\x01\x00\x02")[0] == 200          # truncated DER: rejection
    # a truncated HTTP body (Content-Length larger than what is sent), then the client hangs up
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"POST /tsa HTTP/1.1\r\nHost: x\r\nContent-Type: application/timestamp-query\r\n"
                  b"Content-Length: 500\r\n\r\n\x30\x82\x01\xf0")
    # garbage request line
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + secrets.token_bytes(64) + b"\r\n\r\n")
        s.recv(1024)
    status, _, body = post(server, "/tsa", query(b"still alive", "sm3"))
    assert status == 200 and TimeStampResp.load(body)["status"]["status"].native == "granted"


def test_pyhanko_timestamper(server, tsa_pki, tmp_path):
    pytest.importorskip("pyhanko")
    from pyhanko.sign.timestamps import HTTPTimeStamper

    async def run():
        sm2 = HTTPTimeStamper(f"{server}/tsa")
        digest = hashlib.sha256(b"pyhanko").digest()
        token = await sm2.async_timestamp(digest, "sha256")       # checks status and nonce
        dummy = await sm2.async_dummy_response("sha256")          # the size-estimation call
        return token, dummy

    token, dummy = asyncio.run(run())
    info = token["content"]["encap_content_info"]["content"].parsed
    assert info["message_imprint"]["hashed_message"].native == hashlib.sha256(b"pyhanko").digest()
    assert dummy["content"]["signer_infos"][0]["signature_algorithm"]["algorithm"].dotted == "1.2.156.10197.1.501"
    if bc_available():
        (tmp_path / "t.tst").write_bytes(token.dump())
        (tmp_path / "d").write_bytes(b"pyhanko")
        assert_bc_ok(bc_verify_many([["tsp", tmp_path / "t.tst", "--data", tmp_path / "d", "--ca",
                                      tsa_pki.ca_file("default")]])[0])


def test_pyhanko_signs_a_pdf_with_our_timestamp(server, tsa_pki, tmp_path):
    """A PDF signature (software ECDSA signer) timestamped by our ECDSA unit; pyHanko validates the
    signature timestamp against our TSA CA."""
    pytest.importorskip("pyhanko")
    import datetime as dt

    from asn1crypto import keys as asn1_keys, x509 as asn1_x509
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign import signers
    from pyhanko.sign.timestamps import HTTPTimeStamper
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "PDF signer")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.KeyUsage(True, True, False, False, False, False, False, False, False), True)
            .sign(key, hashes.SHA256()))
    signer = signers.SimpleSigner(
        signing_cert=asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
        signing_key=asn1_keys.PrivateKeyInfo.load(key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
        cert_registry=None)
    pdf = _minimal_pdf()
    out = io.BytesIO()
    signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), signers.PdfSignatureMetadata(field_name="Sig1"),
                     signer=signer, timestamper=HTTPTimeStamper(f"{server}/tsa/ecdsa"), output=out)
    reader = PdfFileReader(io.BytesIO(out.getvalue()))
    tsa_root = asn1_x509.Certificate.load(tsa_pki.ca["ecdsa"].certificate)
    status = validate_pdf_signature(
        reader.embedded_signatures[0],
        signer_validation_context=ValidationContext(trust_roots=[signer.signing_cert]),
        ts_validation_context=ValidationContext(trust_roots=[tsa_root]))
    assert status.intact and status.valid, status.pretty_print_details()
    assert status.timestamp_validity is not None
    assert status.timestamp_validity.intact and status.timestamp_validity.valid and status.timestamp_validity.trusted


def _minimal_pdf() -> bytes:
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>"]
    out = bytearray(b"%PDF-1.7\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)
