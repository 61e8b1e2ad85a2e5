"""CMP enrolments per second end to end, RA node -> CA node, beside the bulk REST issuance rate measured in
the same run. One figure per line.

    .venv/bin/python bench/cmp_enrol.py [--count 300] [--clients 8] [--workers 2] [--ra-count 40]
                                        [--bulk-count 2000]

* CA node: a fresh site (`racentre setup --with-ecdsa`, its own software token, SQLite) served by
  `racentre serve` (gunicorn, ``workers``); an RA identity certified there under ``cmp-ra``
  (id-kp-cmcRA: RA mode, its approval stands).
* ``cmp_p10cr_per_s``: ``clients`` threads, keep-alive HTTP, each enrolment = p10cr (a P-256 CSR with a
  subjectAltName, made beforehand, untimed) signed by the RA + certConf, both answers checked
  (protection signed by the CA node's CMP identity, chained to its root); ``count`` enrolments timed
  after a warm-up.
* ``cmp_ra_node_cr_per_s``: an RA node (own token, own SQLite, ``[ca] backend = "cmp"``) approving server
  requests one after another through the RA workflow; each approval = cr (raVerified) + certConf over
  HTTP to the CA node, the RA key in the RA node's token (``tests/e2e/cmp_node.py enrol-servers``).
* the bulk REST issuance rate: ``bench/ra_issuance.py --databases sqlite`` run in this same invocation
  (its own figures, printed as it prints them).
"""
from __future__ import annotations

import argparse
import http.client
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from asn1crypto import csr as asn1_csr, pem, x509  # noqa: E402
from cryptography import x509 as cx509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from ca_bridge.cmp import asn1  # noqa: E402
from ca_bridge.cmp.client import SignatureCredentials, build_message, check_answer  # noqa: E402
from ca_bridge.cmp.server import cert_hash  # noqa: E402
from pkicore.algorithms import algorithm  # noqa: E402
from tests.e2e.test_cmp_two_nodes import _node, _run, _serve, _step  # noqa: E402


def _csr(host: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return (cx509.CertificateSigningRequestBuilder()
            .subject_name(cx509.Name([cx509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                                      cx509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .add_extension(cx509.SubjectAlternativeName([cx509.DNSName(host)]), critical=False)
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))


class Enroller:
    def __init__(self, port: int, credentials: SignatureCredentials, roots: list[bytes]):
        self.port, self.credentials = port, credentials
        self.roots = [x509.Certificate.load(r) for r in roots]

    def trusted(self, signer, pool) -> bool:
        issuer = next((c for c in pool if c.subject == signer.issuer), None)
        return issuer is not None and any(r.subject == issuer.issuer for r in self.roots)

    def enrol(self, conn: http.client.HTTPConnection, csr: bytes) -> None:
        request = build_message("p10cr", asn1_csr.CertificationRequest.load(csr), self.credentials)
        answer = self._post(conn, request)
        response = answer["body"].chosen["response"][0]
        assert response["status"]["status"].native == 0, response["status"].native
        cert = response["certified_key_pair"]["cert_or_enc_cert"].chosen.untag().dump()
        conf = build_message("cert_conf", asn1.CertConfirmContent([{"cert_hash": cert_hash(cert),
                                                                    "cert_req_id": response["cert_req_id"].native}]),
                             self.credentials, transaction_id=request["header"]["transaction_id"].native,
                             recip_nonce=answer["header"]["sender_nonce"].native)
        assert self._post(conn, conf)["body"].name == "pkiconf"

    def _post(self, conn, message):
        conn.request("POST", "/.well-known/cmp/p/server", body=message.dump(),
                     headers={"Content-Type": "application/pkixcmp"})
        response = conn.getresponse()
        return check_answer(response.read(), message, trusted_signer=self.trusted)


def p10cr_rate(enroller: Enroller, csrs: list[bytes], clients: int) -> float:
    work = list(csrs)
    lock = threading.Lock()
    errors: list[BaseException] = []

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", enroller.port, timeout=60)
        while True:
            with lock:
                if not work:
                    return
                csr = work.pop()
            try:
                enroller.enrol(conn, csr)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return len(csrs) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ra-count", type=int, default=40)
    parser.add_argument("--bulk-count", type=int, default=2000)
    args = parser.parse_args()
    module = str(REPO / "hsm" / "softtoken" / "build" / "libracentre-softtoken.so")
    with tempfile.TemporaryDirectory(prefix="racentre-bench-cmp-") as tmp:
        tmp = Path(tmp)
        ca = _node(tmp, "ca-node", module)
        _run(ca, "-m", "racentre.cli", "setup", "--with-ecdsa")
        ra = _node(tmp, "ra-node", module)
        _run(ra, "-m", "racentre.cli", "db", "upgrade")
        spki = _step(ra, "ra-key", "ra-cmp")
        _step(ca, "certify-ra", spki, str(ra["home"] / "ra-cert.pem"), str(ra["home"] / "roots.pem"))
        with open(ra["home"] / "racentre.toml", "a") as f:
            f.write(f'[ca]\nbackend = "cmp"\nupstream_url = "http://127.0.0.1:{ca["port"]}/.well-known/cmp"\n'
                    'trust_anchors_file = "roots.pem"\nra_key_label = "ra-cmp"\nra_certificate_file = "ra-cert.pem"\n')
        # a software RA identity for the p10cr clients (certified by the CA node the same way)
        key = ec.generate_private_key(ec.SECP256R1())
        soft_spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)
        _step(ca, "certify-ra", soft_spki.hex(), str(tmp / "soft-ra.pem"), str(tmp / "roots.pem"))
        credentials = SignatureCredentials(pem.unarmor((tmp / "soft-ra.pem").read_bytes())[2], algorithm("ecdsa-sha256"),
                                           lambda data: key.sign(data, ec.ECDSA(hashes.SHA256())))
        roots = [der for _, _, der in pem.unarmor((tmp / "roots.pem").read_bytes(), multiple=True)]
        ca["env"]["RACENTRE_SERVICE_WORKERS"] = str(args.workers)
        proc, _ = _serve(ca)
        try:
            enroller = Enroller(ca["port"], credentials, roots)
            stamp = int(time.time())
            warm = [_csr(f"warm{stamp}-{i}.zj.gov.cn") for i in range(max(10, args.count // 10))]
            csrs = [_csr(f"p10-{stamp}-{i}.zj.gov.cn") for i in range(args.count)]
            p10cr_rate(enroller, warm, args.clients)
            rate = p10cr_rate(enroller, csrs, args.clients)
            print(f"cmp_p10cr_per_s {rate:.1f}  # p10cr + certConf, RA-signed (P-256), {args.clients} clients, "
                  f"CA node: {args.workers} gunicorn workers, SQLite, softtoken")
            result = json.loads(_step(ra, "enrol-servers", str(args.ra_count)))
            print(f"cmp_ra_node_cr_per_s {result['per_second']:.1f}  # RA node approvals one after another, each "
                  f"cr (raVerified) + certConf to the CA node, RA key in the RA node's token")
        finally:
            proc.terminate()
            proc.communicate(timeout=30)
    print("# bulk REST issuance, same run (bench/ra_issuance.py):", flush=True)
    subprocess.run([sys.executable, str(REPO / "bench" / "ra_issuance.py"), "--databases", "sqlite", "--count",
                    str(max(200, args.bulk_count // 10)), "--bulk-count", str(args.bulk_count),
                    "--openssl-seconds", "1"], check=True)


if __name__ == "__main__":
    main()
