"""SM2 time-stamps per second over HTTP: `racentre.serve.serve(workers=2)` in a subprocess (gunicorn gthread,
the TSA package only) against 64 concurrent keep-alive clients in another process (asyncio), beside
`openssl speed sm2` (sign/s, one core) measured in the same run. One figure per line.

Goal: tokens/s >= 65 % of 2 x openssl's single-core SM2 sign rate, p99 latency <= 20 ms.

    .venv/bin/python bench/tsa_http.py [--seconds 10] [--clients 64] [--workers 2]
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asn1crypto import tsp  # noqa: E402

from bench.common import (BenchServer, free_port, http_load, load_average, openssl_speed_sm2,  # noqa: E402
                          prepare_tsa_site, run_load_client, server_command, tree_cpu_seconds)

prepare = prepare_tsa_site          # the scratch site (token, `racentre setup`, racentre.toml)
GRANTED = b"\x30\x03\x02\x01\x00"   # PKIStatusInfo { granted } at the start of a TimeStampResp


# ------------------------------------------------------------------------------------------- client
def make_requests(n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        body = tsp.TimeStampReq({"version": "v1", "message_imprint": {
            "hash_algorithm": {"algorithm": "sm3"},
            "hashed_message": hashlib.new("sm3", secrets.token_bytes(32)).digest()},
            "nonce": secrets.randbits(63), "cert_req": True}).dump()
        out.append(b"POST /tsa HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/timestamp-query\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(body) + body)
    return out


def granted(body: bytes) -> bool:
    return body[4:9] == GRANTED


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="gthread threads per worker (1 measured best)")
    parser.add_argument("--client", nargs=2, metavar=("PORT", "CLIENTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:   # the load generator, in its own process
        print(json.dumps(asyncio.run(http_load(int(args.client[0]), make_requests(512), granted,
                                               int(args.client[1]), args.seconds, args.warmup))))
        return

    ossl_sign, _ = openssl_speed_sm2(3)
    print(f"openssl_speed_sm2_sign_per_s_1core {ossl_sign:.0f}")
    directory = Path(tempfile.mkdtemp(prefix="racentre-bench-tsa-"))
    config_path = prepare(directory, args.threads)
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), RACENTRE_SOFTTOKEN_DIR=str(directory / "softtoken"))
    with BenchServer(server_command(config_path, port, args.workers, args.threads), port,
                     directory / "server.log", env=env) as server:
        server_cpu0 = tree_cpu_seconds(server.pid)
        result = run_load_client(__file__, port, args.clients, args.seconds, args.warmup)
        server_cpu = tree_cpu_seconds(server.pid) - server_cpu0
    goal = 0.65 * args.workers * ossl_sign
    print(f"tsa_http_sm2_tokens_per_s_{args.workers}workers_{args.clients}clients {result['rate']:.0f}  "
          f"# {100 * result['rate'] / (args.workers * ossl_sign):.0f}% of {args.workers} x openssl (goal >= 65%, "
          f"{goal:.0f}/s)")
    print(f"tsa_http_latency_p50_ms {result['p50_ms']:.1f}")
    print(f"tsa_http_latency_p99_ms {result['p99_ms']:.1f}  # goal <= 20")
    print(f"tsa_http_latency_max_ms {result['max_ms']:.1f}")
    print(f"tsa_http_tokens {result['done']}")
    print(f"tsa_http_server_cpu_us_per_token {1e6 * server_cpu / max(1, result['requests']):.0f}  "
          f"# openssl's SM2 sign alone: {1e6 / ossl_sign:.0f}")
    print(f"tsa_http_client_cpu_us_per_token {result['client_cpu_us']:.0f}")
    print(f"tsa_http_errors {result['errors']}" + (f"  # first: {result['first_error']}" if result['errors'] else ""))
    print(f"load_average {load_average()}  # 1/5/15 min, after the run")


if __name__ == "__main__":
    main()
