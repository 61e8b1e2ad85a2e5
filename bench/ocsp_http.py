"""OCSP responses per second over HTTP beside the TSA's tokens per second, both from one `racentre serve
--workers 2` (all packages, a site made by `racentre setup --with-ecdsa`, SQLite or PostgreSQL) under the
same load (wrk, 64 keep-alive connections on loopback), and `openssl speed sm2` from the same run.
One figure per line.

The OCSP request is the demo's (``racentre.demo.flows``: one SHA-1 CertID for a revoked certificate of the
SM2 issuing CA, a 16-octet nonce). Fresh: every request a new nonce, so every answer is read and signed.
Pre-produced: the same request without a nonce (RFC 5019), answered from ``ca_ocsp_response``. Each over
POST and GET (RFC 6960 Appendix A.1). The service's resident memory (all its processes; RSS and PSS) is
sampled while the load runs, and the machine's load average before and after each round is printed (on a
shared machine only the same-run ratios mean anything). Server start-up and wrk come from ``bench.common``.

The workloads take turns for ``--rounds`` rounds (each figure is the mean over its rounds, latencies the
median of the rounds'), so a busy neighbour on a shared machine weighs on the OCSP figures and the TSA's
reference alike.

Each figure comes with the service's CPU time (user + system, all its processes) per request over the
same runs: on a shared machine the CPU a request costs is comparable between runs where rates are not.

Goals: fresh >= 0.8 x the TSA's rate with p99 <= 20 ms; pre-produced >= 2 x the TSA's rate;
RSS of the service <= 300 MiB.

    apt-get install wrk
    .venv/bin/python bench/ocsp_http.py [--seconds 10] [--connections 64] [--postgresql]
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from asn1crypto import ocsp, tsp, x509  # noqa: E402

from bench.common import (BenchServer, combine, free_port, load_average,  # noqa: E402
                          lua_script, openssl_speed_sm2, run_wrk, tree_cpu_seconds, tree_pids)

MIB = 1024 * 1024

ISSUE = """
import json, sys
from asn1crypto import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tongsuopy.crypto.asymciphers import ec as ts_ec
from tongsuopy.crypto import serialization as ts_serialization
from ca_bridge.api import IssueRequest, RevocationReason
from racentre.config import load_config
from racentre.services import Services

services = Services(load_config(sys.argv[1]))
ca = services.ca
sm2 = ts_ec.generate_private_key(ts_ec.SM2()).public_key().public_bytes(
    ts_serialization.Encoding.DER, ts_serialization.PublicFormat.SubjectPublicKeyInfo)
p256 = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
out = {}
for kind, spki in (("sm2", sm2), ("ecdsa", p256)):
    subject = (("country_name", "CN"), ("organization_name", "Bench"), ("common_name", f"ocsp-{kind}.bench"))
    cert = ca.issue(IssueRequest(request_id=f"bench-ocsp-{kind}", profile="server", public_key_info=spki,
                                 subject=subject, dns_names=(f"ocsp-{kind}.bench",)))
    ca.revoke(cert.ca, cert.serial, RevocationReason.key_compromise)
    out[kind] = {"ca": cert.ca, "serial": cert.serial, "issuer": ca.directory.get(cert.ca).certificate.hex(),
                 "responder": ca.directory.get(cert.ca).ocsp_certificate.hex()}
services.close()
print(json.dumps(out))
"""


def racentre(site: Path, *args: str, env: dict) -> str:
    done = subprocess.run([sys.executable, "-m", "racentre.cli", *args], cwd=site, env=env, capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"racentre {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def prepare(site: Path, database_url: str, port: int) -> tuple[dict, dict]:
    """A site as an operator makes one (token, racentre.toml, `racentre setup --with-ecdsa`), plus a revoked
    SM2 and a revoked ECDSA server certificate; -> (environment for racentre, the certificates)."""
    (site / "softtoken").mkdir(parents=True)
    (site / "softtoken" / "softtoken.conf").write_text("pbkdf2_iterations = 10000\n")
    (site / "user.pin").write_text(secrets.token_hex(8) + "\n")
    (site / "so.pin").write_text(secrets.token_hex(8) + "\n")
    (site / "racentre.toml").write_text(
        f'[database]\nurl = "{database_url}"\n[hsm]\ntoken = "bench"\npin_file = "user.pin"\n'
        '[softtoken]\ndir = "softtoken"\nauto_init = true\nso_pin_file = "so.pin"\n'
        '[tsa]\nunits = "ecdsa=tsa-ecdsa:ecdsa-sha256"\npolicy = "1.2.3.4.1"\n'
        'require_sync = false\n'            # a bench box's clock may be unsynchronised (never in production)
        f'[service]\nhost = "127.0.0.1"\nport = {port}\npublic_url = "http://127.0.0.1:{port}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("RACENTRE_")}
    env.update(PYTHONPATH=str(ROOT), RACENTRE_CONFIG=str(site / "racentre.toml"))
    racentre(site, "setup", "--with-ecdsa", env=env)
    done = subprocess.run([sys.executable, "-c", ISSUE, str(site / "racentre.toml")], cwd=site, env=env,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"issuing the bench certificates failed: {done.stderr[-2000:]}")
    return env, json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------- requests
def ocsp_request(issuer_der: bytes, serial: int, nonce: bytes | None) -> bytes:
    """The demo's request (racentre.demo.flows._ocsp_request), with the nonce given (or none)."""
    issuer = x509.Certificate.load(issuer_der)
    tbs = {"request_list": [{"req_cert": {
        "hash_algorithm": {"algorithm": "sha1"},
        "issuer_name_hash": hashlib.sha1(issuer.subject.dump()).digest(),
        "issuer_key_hash": hashlib.sha1(issuer.public_key["public_key"].contents[1:]).digest(),
        "serial_number": serial}}]}
    if nonce is not None:
        tbs["request_extensions"] = [{"extn_id": "nonce", "critical": False, "extn_value": nonce}]
    return ocsp.OCSPRequest({"tbs_request": tbs}).dump()


def http_post(path: str, ctype: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def get_path(ca: str, body: bytes) -> str:
    """RFC 5019 §5: the base64 request, URL-encoded, after the responder's URL."""
    return f"/ocsp/{ca}/" + urllib.parse.quote(base64.b64encode(body).decode(), safe="")


def http_get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()


def tsa_requests(n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        body = tsp.TimeStampReq({"version": "v1", "message_imprint": {
            "hash_algorithm": {"algorithm": "sm3"},
            "hashed_message": hashlib.new("sm3", secrets.token_bytes(32)).digest()},
            "nonce": secrets.randbits(63), "cert_req": True}).dump()
        out.append(http_post("/tsa", "application/timestamp-query", body))
    return out


def workloads(certs: dict) -> dict[str, list[bytes]]:
    sm2, ecdsa = certs["sm2"], certs["ecdsa"]
    issuer, ca, serial = bytes.fromhex(sm2["issuer"]), sm2["ca"], sm2["serial"]
    fresh = [ocsp_request(issuer, serial, secrets.token_bytes(16)) for _ in range(512)]
    plain = ocsp_request(issuer, serial, None)
    post = f"/ocsp/{ca}"
    return {
        "tsa_sm2": tsa_requests(512),
        "ocsp_sm2_fresh_post": [http_post(post, "application/ocsp-request", b) for b in fresh],
        "ocsp_sm2_fresh_get": [http_get(get_path(ca, b)) for b in fresh],
        "ocsp_sm2_preproduced_post": [http_post(post, "application/ocsp-request", plain)],
        "ocsp_sm2_preproduced_get": [http_get(get_path(ca, plain))],
        "ocsp_ecdsa_fresh_post": [
            http_post(f"/ocsp/{ecdsa['ca']}", "application/ocsp-request",
                      ocsp_request(bytes.fromhex(ecdsa["issuer"]), ecdsa["serial"], secrets.token_bytes(16)))
            for _ in range(512)],
    }


# ------------------------------------------------------------------------------------------- checks
def check_answers(port: int, certs: dict, loads: dict[str, list[bytes]]) -> None:
    """One answer of each OCSP workload, parsed: successful, the certificate revoked, the nonce echoed (fresh)
    or absent (pre-produced), signed by the CA's delegated responder."""
    from pkicore.algorithms import algorithm
    from pkicore.keys import verify_signature
    for name, requests in loads.items():
        if not name.startswith("ocsp_"):
            continue
        raw = requests[0]
        head, _, body = raw.partition(b"\r\n\r\n")
        method, path = head.split(b" ")[:2]
        call = urllib.request.Request(f"http://127.0.0.1:{port}{path.decode()}", method=method.decode(),
                                      data=body if method == b"POST" else None,
                                      headers={"Content-Type": "application/ocsp-request"} if method == b"POST" else {})
        with urllib.request.urlopen(call, timeout=10) as resp:
            answer = ocsp.OCSPResponse.load(resp.read())
        basic = answer.basic_ocsp_response
        data = basic["tbs_response_data"]
        kind = "ecdsa" if "ecdsa" in name else "sm2"
        signer = x509.Certificate.load(bytes.fromhex(certs[kind]["responder"]))
        alg = algorithm(basic["signature_algorithm"]["algorithm"].dotted)
        single = data["responses"][0]
        nonce = [e for e in data["response_extensions"] or () if e["extn_id"].native == "nonce"]
        if answer["response_status"].native != "successful" or single["cert_status"].name != "revoked" \
                or not verify_signature(signer.public_key.dump(), alg, data.dump(), basic["signature"].native) \
                or bool(nonce) != ("fresh" in name):
            raise RuntimeError(f"{name}: unexpected answer {answer.native}")


def memory(pid: int) -> tuple[int, int, int]:
    """(processes, RSS, PSS) in bytes of a process tree (the service: arbiter and workers)."""
    procs, rss, pss = 0, 0, 0
    for p in tree_pids(pid):
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
            procs += 1
        except OSError:
            continue
    return procs, rss, pss


class MemorySampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self._done = pid, (0, 0, 0), threading.Event()

    def run(self):
        while not self._done.wait(0.5):
            sample = memory(self.pid)
            if sample[1] > self.peak[1]:
                self.peak = sample

    def stop(self):
        self._done.set()
        self.join()


def cpu_per_request(result: dict) -> float:
    """The service's CPU (user + system, all its processes) per answered request, in microseconds: what a
    request costs the server whatever else the machine runs (the same-run rates share the load)."""
    return result["cpu_s"] / result["requests"] * 1e6 if result.get("requests") else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=12.0, help="per workload, over all rounds")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--wrk-threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--postgresql", action="store_true", help="the site on PostgreSQL (a throw-away schema)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")

    ossl_sign, _ = openssl_speed_sm2(3)
    print(f"openssl_speed_sm2_sign_per_s_1core {ossl_sign:.0f}")
    site = Path(tempfile.mkdtemp(prefix="racentre-bench-ocsp-"))
    port = free_port()
    schema = None
    if args.postgresql:
        from tests.pgschema import POSTGRES_URL
        import sqlalchemy
        schema = f"bench_ocsp_{secrets.token_hex(4)}"
        admin = sqlalchemy.create_engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        database_url = f"{POSTGRES_URL}?options={urllib.parse.quote(f'-csearch_path={schema}')}"
    else:
        database_url = f"sqlite:///{site}/racentre.db"
    try:
        env, certs = prepare(site, database_url, port)
        loads = workloads(certs)
        results, idle, loads_seen = {}, (0, 0, 0), [load_average()]
        with BenchServer([sys.executable, "-m", "racentre.cli", "serve", "--workers", str(args.workers)], port,
                         site / "server.log", env=env, cwd=site, health="/hsm/health") as server:
            check_answers(port, certs, loads)
            idle = memory(server.pid)
            sampler = MemorySampler(server.pid)
            sampler.start()
            scripts = {}
            for name, requests in loads.items():
                scripts[name] = site / f"{name}.lua"
                scripts[name].write_text(lua_script(requests))
                run_wrk(port, scripts[name], args.warmup, args.connections, args.wrk_threads)
            # rounds: every workload in turn, so each figure and the TSA's share the machine's load of the moment
            runs = {name: [] for name in loads}
            for _ in range(args.rounds):
                for name in loads:
                    cpu = tree_cpu_seconds(server.pid)
                    run = run_wrk(port, scripts[name], args.seconds / args.rounds, args.connections, args.wrk_threads)
                    run["cpu_s"] = tree_cpu_seconds(server.pid) - cpu
                    runs[name].append(run)
                loads_seen.append(load_average())
            results = {name: combine(r) for name, r in runs.items()}
            sampler.stop()
            check_answers(port, certs, loads)
        if server.tracebacks:
            print(server.log()[-3000:], file=sys.stderr)
    finally:
        if schema is not None:
            with admin.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
            admin.dispose()

    tsa = results["tsa_sm2"]["rate"]
    db = "postgresql" if args.postgresql else "sqlite"
    tag = f"{args.workers}workers_{args.connections}conns_{db}"
    print(f"tsa_http_sm2_tokens_per_s_{tag} {tsa:.0f}  # same server, same load, rounds {results['tsa_sm2']['rates']}")
    print(f"tsa_http_sm2_latency_p99_ms {results['tsa_sm2'].get('p99_ms', float('nan')):.1f}")
    tsa_cpu = cpu_per_request(results["tsa_sm2"])
    print(f"tsa_http_sm2_service_cpu_us_per_request {tsa_cpu:.0f}  # user+sys of all service processes / requests")
    goals = {"fresh": (0.8, "goal >= 0.8 x TSA"), "preproduced": (2.0, "goal >= 2 x TSA")}
    for name, r in results.items():
        if not name.startswith("ocsp_"):
            continue
        factor, goal = goals["fresh" if "fresh" in name else "preproduced"]
        print(f"{name}_per_s_{tag} {r['rate']:.0f}  # {r['rate'] / tsa:.2f} x TSA ({goal}, {factor * tsa:.0f}/s), "
              f"rounds {r['rates']}")
        print(f"{name}_latency_p50_ms {r.get('p50_ms', float('nan')):.1f}")
        print(f"{name}_latency_p99_ms {r.get('p99_ms', float('nan')):.1f}  # goal <= 20")
        print(f"{name}_service_cpu_us_per_request {cpu_per_request(r):.0f}  # {cpu_per_request(r) / tsa_cpu:.2f} x TSA's")
    for name, r in results.items():
        if r["non_2xx"] or r["socket_errors"]:
            print(f"{name}_errors non-2xx {r['non_2xx']} {r['socket_errors']}")
    print(f"ocsp_sm2_fresh_vs_openssl_sign {results['ocsp_sm2_fresh_post']['rate'] / (args.workers * ossl_sign):.2f}"
          f"  # x ({args.workers} x openssl speed sm2 sign/s = {args.workers * ossl_sign:.0f})")
    print(f"service_processes {sampler.peak[0]}")
    print(f"service_rss_mib_idle {idle[1] / MIB:.0f}")
    print(f"service_rss_mib_peak_under_load {sampler.peak[1] / MIB:.0f}  # goal <= 300 (sum over processes)")
    print(f"service_pss_mib_peak_under_load {sampler.peak[2] / MIB:.0f}  # shared pages counted once")
    print(f"load_average {' | '.join(loads_seen)}  # 1/5/15 min: before, after each round (a shared box)")


if __name__ == "__main__":
    main()
