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
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asn1crypto import tsp  # noqa: E402

from bench.common import openssl_speed_sm2  # noqa: E402
from hsm import HsmConfig, SoftTokenConfig, init_token  # noqa: E402
from hsm.token import build_softtoken  # noqa: E402
from pkicore.secret import Secret  # noqa: E402

SERVER = """
import sys
from racentre.config import load_config
from racentre.serve import serve
serve(load_config(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), workers=int(sys.argv[3]),
      threads=int(sys.argv[4]), packages=("timestamp",))
"""


def prepare(directory: Path, threads: int) -> Path:
    """A scratch token with the TSA key and certificate, and a racentre.toml pointing at both."""
    token_dir = directory / "softtoken"
    token_dir.mkdir()
    (token_dir / "softtoken.conf").write_text("pbkdf2_iterations = 10000\n")
    (directory / "pin").write_text("bench-pin\n")
    module = str(build_softtoken())
    hsm = HsmConfig(module=module, token="bench", pin=Secret("bench-pin"), pool_size=threads,
                    softtoken=SoftTokenConfig(dir=str(token_dir)))
    init_token(hsm, Secret("bench-so-pin"), Secret("bench-pin"))
    config_path = directory / "racentre.toml"
    config_path.write_text(
        f'[hsm]\nmodule = "{module}"\ntoken = "bench"\npin_file = "pin"\npool_size = {threads}\n'
        f'[softtoken]\ndir = "{token_dir}"\n[database]\nurl = "sqlite:///{directory}/db.sqlite"\n'
        f'[service]\npublic_url = "http://tsa-bench.test"\n[tsa]\nkey = "bench-tsa-sm2"\nalgorithm = "sm2-sm3"\npolicy = "1.2.3.4.1"\n'
        # a bench box's kernel clock may be unsynchronised: the TSA must grant anyway here (never in production)
        'require_sync = false\n')
    # `racentre setup` in a child (the unit certificate from the site's CA, in the database): this
    # process must not load the PKCS#11 module before the server forks
    subprocess.run([sys.executable, "-m", "racentre.cli", "--config", str(config_path), "setup"], check=True,
                   cwd=ROOT, stdout=subprocess.DEVNULL,
                   env=dict(os.environ, PYTHONPATH=str(ROOT), RACENTRE_SOFTTOKEN_DIR=str(token_dir)))
    return config_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of a process and all its descendants (Linux /proc), in seconds."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, _) in stats.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(stats[p][1] for p in tree if p in stats) / os.sysconf("SC_CLK_TCK")


def wait_ready(port: int, timeout: float = 60.0) -> None:
    stop = time.monotonic() + timeout
    while time.monotonic() < stop:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the TSA server did not start")


def wait_loaded(port: int, path: str = "/tsa/health", timeout: float = 90.0) -> None:
    """Until the workers answer ``path`` (gunicorn listens before its workers have loaded the service)."""
    stop, answered = time.monotonic() + timeout, 0
    while answered < 4:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10):
                answered += 1
        except OSError:
            if time.monotonic() > stop:
                raise RuntimeError("the service did not load") from None
            time.sleep(0.2)
    time.sleep(1.0)


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


async def one_client(port: int, requests: list[bytes], stop_at: float, measure_from: float,
                     latencies: list[float], errors: list[str], total: list[int]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    done = 0
    i = secrets.randbelow(len(requests))
    try:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            t1 = time.perf_counter()
            if not head.startswith(b"HTTP/1.1 200") or body[4:9] != b"\x30\x03\x02\x01\x00":
                errors.append(head.split(b"\r\n", 1)[0].decode() + " " + body[:16].hex())
                continue
            total[0] += 1
            if t0 >= measure_from:
                latencies.append(t1 - t0)
                done += 1
    finally:
        writer.close()
    return done


async def client_main(port: int, clients: int, seconds: float, warmup: float) -> dict:
    requests = make_requests(512)
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    latencies: list[float] = []
    errors: list[str] = []
    total = [0]
    cpu0 = time.process_time()
    counts = await asyncio.gather(*(one_client(port, requests, stop_at, measure_from, latencies, errors, total)
                                    for _ in range(clients)))
    client_cpu = time.process_time() - cpu0
    elapsed = time.perf_counter() - measure_from
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")

    return {"tokens": sum(counts), "seconds": elapsed, "rate": sum(counts) / elapsed, "p50_ms": pct(0.50),
            "p99_ms": pct(0.99), "max_ms": latencies[-1] * 1000 if latencies else float("nan"),
            "errors": len(errors), "first_error": errors[0] if errors else None, "requests": total[0],
            "client_cpu_us": 1e6 * client_cpu / max(1, total[0])}


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
        print(json.dumps(asyncio.run(client_main(int(args.client[0]), int(args.client[1]), args.seconds,
                                                 args.warmup))))
        return

    ossl_sign, _ = openssl_speed_sm2(3)
    print(f"openssl_speed_sm2_sign_per_s_1core {ossl_sign:.0f}")
    directory = Path(tempfile.mkdtemp(prefix="racentre-bench-tsa-"))
    config_path = prepare(directory, args.threads)
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), RACENTRE_SOFTTOKEN_DIR=str(directory / "softtoken"))
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(config_path), str(port), str(args.workers),
                               str(args.threads)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=open(directory / "server.log", "wb"))
    try:
        wait_ready(port)
        wait_loaded(port)
        server_cpu0 = tree_cpu_seconds(server.pid)
        client = subprocess.run([sys.executable, __file__, "--client", str(port), str(args.clients),
                                 "--seconds", str(args.seconds), "--warmup", str(args.warmup)],
                                capture_output=True, text=True, cwd=ROOT, timeout=args.seconds + args.warmup + 120)
        if client.returncode != 0:
            raise RuntimeError(f"client failed: {client.stderr}")
        result = json.loads(client.stdout.strip().splitlines()[-1])
        server_cpu = tree_cpu_seconds(server.pid) - server_cpu0
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
    goal = 0.65 * args.workers * ossl_sign
    print(f"tsa_http_sm2_tokens_per_s_{args.workers}workers_{args.clients}clients {result['rate']:.0f}  "
          f"# {100 * result['rate'] / (args.workers * ossl_sign):.0f}% of {args.workers} x openssl (goal >= 65%, "
          f"{goal:.0f}/s)")
    print(f"tsa_http_latency_p50_ms {result['p50_ms']:.1f}")
    print(f"tsa_http_latency_p99_ms {result['p99_ms']:.1f}  # goal <= 20")
    print(f"tsa_http_latency_max_ms {result['max_ms']:.1f}")
    print(f"tsa_http_tokens {result['tokens']}")
    print(f"tsa_http_server_cpu_us_per_token {1e6 * server_cpu / max(1, result['requests']):.0f}  "
          f"# openssl's SM2 sign alone: {1e6 / ossl_sign:.0f}")
    print(f"tsa_http_client_cpu_us_per_token {result['client_cpu_us']:.0f}")
    print(f"tsa_http_errors {result['errors']}" + (f"  # first: {result['first_error']}" if result['errors'] else ""))


if __name__ == "__main__":
    main()
