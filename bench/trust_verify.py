"""CMS SignedData verifications per second over HTTP with full certificate validation:
`racentre.serve.serve(workers=2)` in a subprocess (the timestamp and trust packages) on a fresh site (`racentre
setup`, an application key made by `racentre trust key create`), 64 keep-alive clients in another process
posting `POST /api/v1/trust/verify` with an attached SM2 SignedData (the application's signature, its
certificate and issuing CA inside), beside `openssl speed sm2` verify (one core, wall clock) from the same run.

Each answer is checked: HTTP 200 and "valid": true (SM2 signature, path to our root, the issuing CA's CRL — the
CA's cached current CRL —, validity, key usage). One figure per line.

Goal: verifications/s >= 50 % of 2 x openssl's single-core SM2 verify rate.

    .venv/bin/python bench/trust_verify.py [--seconds 10] [--clients 64] [--workers 2]
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (BenchServer, free_port, http_load, load_average, openssl_speed_sm2,  # noqa: E402
                          prepare_tsa_site, run_load_client, server_command, tree_cpu_seconds)


IN_PROCESS = """
import sys, time
from pathlib import Path
from racentre.config import load_config
from racentre.services import Services
services = Services(load_config(sys.argv[1]))
trust = services.trust
signed = Path(sys.argv[2]).read_bytes()
assert trust.verify_report(signed).valid
stop, n = time.perf_counter() + float(sys.argv[3]), 0
t0 = time.perf_counter()
while time.perf_counter() < stop:
    assert trust.verify_report(signed).valid
    n += 1
print(n / (time.perf_counter() - t0))
"""


def racentre(config_path: Path, env: dict, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "racentre.cli", "--config", str(config_path), *args], check=True,
                         cwd=ROOT, capture_output=True, text=True, env=env)
    return out.stdout


def prepare_trust(directory: Path, config_path: Path, env: dict) -> tuple[str, bytes]:
    """An application token, its SM2 key certified by our CA, and one attached SignedData it made."""
    app = f"bench-app-{secrets.token_hex(3)}"
    token = racentre(config_path, env, "ra", "token", "create", app, "--role", "application").strip().splitlines()[-1]
    racentre(config_path, env, "trust", "key", "create", app, "--cn", "bench.gov.test", "--dns", "bench.gov.test")
    (directory / "content.bin").write_bytes("bench 验签 content\n".encode() * 32)
    racentre(config_path, env, "trust", "sign", "--app", app, "--in", str(directory / "content.bin"),
             "--out", str(directory / "signed.p7s"))
    return token, (directory / "signed.p7s").read_bytes()


def make_request(token: str, signed: bytes) -> bytes:
    body = json.dumps({"signature": base64.b64encode(signed).decode()}).encode()
    return (b"POST /api/v1/trust/verify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def valid(body: bytes) -> bool:
    return b'"valid":true' in body.replace(b" ", b"")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="gthread threads per worker")
    parser.add_argument("--client", nargs=3, metavar=("PORT", "CLIENTS", "REQUEST_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:   # the load generator, in its own process
        request = Path(args.client[2]).read_bytes()
        print(json.dumps(asyncio.run(http_load(int(args.client[0]), [request], valid, int(args.client[1]),
                                               args.seconds, args.warmup))))
        return

    _, ossl_verify = openssl_speed_sm2(3, elapsed=True)
    print(f"openssl_speed_sm2_verify_per_s_1core {ossl_verify:.0f}")
    directory = Path(tempfile.mkdtemp(prefix="racentre-bench-trust-"))
    config_path = prepare_tsa_site(directory, args.threads)
    env = dict(os.environ, PYTHONPATH=str(ROOT), RACENTRE_SOFTTOKEN_DIR=str(directory / "softtoken"))
    token, signed = prepare_trust(directory, config_path, env)
    (directory / "request.http").write_bytes(make_request(token, signed))
    port = free_port()
    with BenchServer(server_command(config_path, port, args.workers, args.threads, ("timestamp", "trust")), port,
                     directory / "server.log", env=env) as server:
        server_cpu0 = tree_cpu_seconds(server.pid)
        result = run_load_client(__file__, port, args.clients, args.seconds, args.warmup,
                                 str(directory / "request.http"))
        server_cpu = tree_cpu_seconds(server.pid) - server_cpu0
    in_process = float(subprocess.run([sys.executable, "-c", IN_PROCESS, str(config_path), str(directory / "signed.p7s"),
                                       str(min(args.seconds, 5))], cwd=ROOT, env=env, capture_output=True,
                                      text=True, check=True).stdout.strip().splitlines()[-1])
    goal = 0.5 * args.workers * ossl_verify
    print(f"trust_verify_cms_sm2_per_s_{args.workers}workers_{args.clients}clients {result['rate']:.0f}  "
          f"# {100 * result['rate'] / (args.workers * ossl_verify):.0f}% of {args.workers} x openssl verify "
          f"(goal >= 50%, {goal:.0f}/s)")
    print(f"trust_verify_in_process_per_s_1thread {in_process:.0f}  # TrustService.verify_report, no HTTP, no auth")
    print(f"trust_verify_latency_p50_ms {result['p50_ms']:.1f}")
    print(f"trust_verify_latency_p99_ms {result['p99_ms']:.1f}")
    print(f"trust_verify_done {result['done']}")
    print(f"trust_verify_server_cpu_us_per_verification {1e6 * server_cpu / max(1, result['requests']):.0f}  "
          f"# openssl's SM2 verify alone: {1e6 / ossl_verify:.0f}")
    print(f"trust_verify_errors {result['errors']}" + (f"  # first: {result['first_error']}" if result['errors']
                                                        else ""))
    print(f"load_average {load_average()}  # 1/5/15 min, after the run")


if __name__ == "__main__":
    main()
