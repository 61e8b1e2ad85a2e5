"""PDF sealing throughput: a 1 MB PDF, one visible SM2 seal (key in our software token) with an SM2
timestamp from our in-process TSA, documents per second on 1 and 2 threads, beside pyHanko signing the
same PDF with a plain in-memory ECDSA P-256 key (SimpleSigner, no timestamp) in the same run.
The last figure is the deployment's shape: ``--processes`` (default 2, as ``racentre serve`` runs 2
workers) processes on the same token, each with its own key manager, TSA and signer, sealing for the
same wall-clock window. One figure per line.

    .venv/bin/python bench/seal_pdf.py [--seconds 5] [--processes 2]
"""
from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from asn1crypto import keys as asn1_keys  # noqa: E402
from asn1crypto import x509  # noqa: E402
from cryptography import x509 as cx509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter  # noqa: E402
from pyhanko.sign import signers  # noqa: E402
from pyhanko_certvalidator.registry import SimpleCertificateStore  # noqa: E402

from bench.common import cpu_count, rate, run_workers, scratch_key_manager, scratch_key_manager_at  # noqa: E402
from pkicore.algorithms import algorithm  # noqa: E402
from seal import pdf  # noqa: E402
from racentre.demo.flows import demo_picture  # noqa: E402
from tests.localca import LocalIssuer, ensure_key, make_signer  # noqa: E402
from racentre.demo.samples import make_pdf  # noqa: E402
from seal.validation import SealPolicy  # noqa: E402
from timestamp.tsa import TimeStampAuthority, TsaUnit  # noqa: E402


def plain_signer() -> signers.SimpleSigner:
    key = ec.generate_private_key(ec.SECP256R1())
    name = cx509.Name([cx509.NameAttribute(cx509.oid.NameOID.COMMON_NAME, "bench in-memory")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (cx509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    key_der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return signers.SimpleSigner(signing_cert=x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
                                signing_key=asn1_keys.PrivateKeyInfo.load(key_der),
                                cert_registry=SimpleCertificateStore())


def tsa_for(km, tsa_cert: bytes, ca_cert: bytes) -> TimeStampAuthority:
    unit = TsaUnit("default", key_manager=km, key_label="bench-tsa", algorithm_name="sm2-sm3",
                   certificate=tsa_cert, chain=(ca_cert,), policy="1.3.6.1.4.1.58011.1.1")
    return TimeStampAuthority({"default": unit}, digests=["sm3", "sha256"])


def sealer(km, unit_cert: bytes, ca_cert: bytes, tsa_cert: bytes):
    """One document sealed as SealService does it: a signer per document (its asn1crypto certificate
    objects fill lazy caches while signing and must not be shared between threads), B-T."""
    doc = make_pdf(1, pad_to=1024 * 1024)
    picture = demo_picture()
    stamper = pdf.InProcessTimeStamper(tsa_for(km, tsa_cert, ca_cert).respond)
    alg = algorithm("sm2-sm3")

    def ours():
        signer = pdf.HsmSigner(km, "bench-seal-unit", unit_cert, alg, chain=[ca_cert])
        return pdf.seal_pdf(doc, signer=signer, picture=picture, width_mm=40, height_mm=40, timestamper=stamper)
    return doc, ours


def worker(args) -> None:
    """One worker process: own key manager (session pool) on the shared token, own TSA and signer; seals
    from ``--start`` (a time.time() instant) for ``--seconds``."""
    km = scratch_key_manager_at(Path(args.token_dir), pool_size=4)
    certs = json.loads(Path(args.certs).read_text())
    _, ours = sealer(km, *(bytes.fromhex(certs[k]) for k in ("unit", "ca", "tsa")))
    for _ in range(3):                                    # warm: sessions, template, sizing token
        ours()
    time.sleep(max(0.0, args.start - time.time()))
    t0 = time.perf_counter()
    stop, n = t0 + args.seconds, 0
    while time.perf_counter() < stop:
        ours()
        n += 1
    wall = time.perf_counter() - t0
    km.close()
    print(json.dumps({"docs": n, "wall": wall}))


def multiprocess(token_dir: str, certs: Path, processes: int, seconds: float) -> float:
    """Documents per wall-clock second of all processes together."""
    results = run_workers(__file__, [["--worker", "--token-dir", token_dir, "--certs", str(certs)]] * processes,
                          seconds)
    return sum(r["docs"] for r in results) / max(r["wall"] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--token-dir", help=argparse.SUPPRESS)
    parser.add_argument("--certs", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    km = scratch_key_manager(pool_size=4)
    ca = LocalIssuer.create(km, "bench-seal-ca")
    unit = make_signer(km, ca, "bench-seal-unit", "Bench Unit")
    tsa_spki = ensure_key(km, "bench-tsa", algorithm("sm2-sm3"))
    tsa_cert = ca.issue(tsa_spki, "Bench TSA", timestamping=True)
    doc, ours = sealer(km, unit.certificate, ca.certificate, tsa_cert)
    print(f"pdf_input_bytes {len(doc)}")
    sealed = ours()
    report = pdf.verify_pdf(sealed, SealPolicy.anchored([ca.certificate]))
    assert report.ok and report.seals[0].timestamp_time, report.to_text()
    plain = plain_signer()

    def theirs():
        meta = signers.PdfSignatureMetadata(field_name="Sig1")
        w = IncrementalPdfFileWriter(io.BytesIO(doc))
        out = io.BytesIO()
        signers.PdfSigner(meta, plain).sign_pdf(w, output=out)
        return out.getvalue()

    theirs()
    for threads in sorted({1, min(2, cpu_count())}):
        a = rate(ours, threads, args.seconds)
        b = rate(theirs, threads, args.seconds)
        print(f"seal_pdf_sm2_visible_timestamped_per_s_{threads}thread {a:.1f}")
        print(f"pyhanko_plain_inmemory_ecdsa_per_s_{threads}thread {b:.1f}  # ours = {100 * a / b:.0f}%")
    if args.processes > 1:
        certs = Path(tempfile.mkdtemp(prefix="racentre-bench-seal-")) / "certs.json"
        certs.write_text(json.dumps({"unit": unit.certificate.hex(), "ca": ca.certificate.hex(),
                                     "tsa": tsa_cert.hex()}))
        token_dir = km.config.softtoken.dir
        rate_p = multiprocess(token_dir, certs, args.processes, args.seconds)
        print(f"seal_pdf_sm2_visible_timestamped_per_s_{args.processes}process {rate_p:.1f}"
              f"  # {cpu_count()} cores")
    km.close()


if __name__ == "__main__":
    main()
