"""Approved request -> issued certificate through the REST API: `racentre serve` with 2 gunicorn workers
on a fresh software token, SQLite and PostgreSQL, beside the in-process EmbeddedCA.issue rate and
`openssl speed sm2` measured in the same run. One figure per line.

    .venv/bin/python bench/ra_issuance.py [--count 2000] [--clients 32] [--bulk-count 6000] [--batch 100]
                                          [--bulk-clients 4] [--databases sqlite,postgresql]

Per database: a fresh site (`racentre db upgrade`, `racentre setup` on a new token), then server
requests (SM2 CSRs made with tongsuopy) are submitted and vetted in process (untimed); with the
default policy a server request needs one officer's approval, so that approval is the final one and
issues the certificate. Two timed parts, each after a warm-up that is not counted:

* one request per call: ``clients`` threads with keep-alive connections POST
  /api/v1/ra/requests/<id>/approve until ``count`` requests are issued; each answer must say "issued";
* bulk approval: ``bulk-clients`` threads POST /api/v1/ra/requests/approve with ``batch`` ids per call
  until ``bulk-count`` requests are issued; every item of every answer must say "issued".

CPU per certificate is the workers' user+system time over the timed window; the client threads run on
the same two cores and their CPU is reported too.
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import http.client
import json
import os
import random
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import openssl_speed_sm2  # noqa: E402
from ra.id_numbers import USCC_CHARSET, org_code_check_character, uscc_check_character  # noqa: E402

RACENTRE = [sys.executable, "-m", "racentre.cli"]
POSTGRES_URL = os.environ.get("RACENTRE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_rng = random.SystemRandom()


# ------------------------------------------------------------------------------------------ subjects

def uscc() -> str:
    """A valid 统一社会信用代码 (GB 32100 check character over a GB 11714 organization code)."""
    org8 = "".join(_rng.choice(USCC_CHARSET) for _ in range(8))
    first17 = "11330100" + org8 + org_code_check_character(org8)
    return first17 + uscc_check_character(first17)


def sm2_csr(common_name: str) -> bytes:
    """DER PKCS#10 with a fresh SM2 key, signed by Tongsuo (SM3withSM2, default ID)."""
    from asn1crypto import csr as asn1_csr, keys as asn1_keys, x509 as asn1_x509
    from tongsuopy.crypto import hashes as ts_hashes, serialization as ts_ser
    from tongsuopy.crypto.asymciphers import ec as ts_ec
    key = ts_ec.generate_private_key(ts_ec.SM2())
    spki = key.public_key().public_bytes(ts_ser.Encoding.DER, ts_ser.PublicFormat.SubjectPublicKeyInfo)
    info = asn1_csr.CertificationRequestInfo({
        "version": "v1", "subject": asn1_x509.Name.build({"common_name": common_name}, use_printable=False),
        "subject_pk_info": asn1_keys.PublicKeyInfo.load(spki), "attributes": []})
    signature = key.sign(info.dump(), ts_ec.ECDSA(ts_hashes.SM3()))
    return asn1_csr.CertificationRequest({"certification_request_info": info,
                                          "signature_algorithm": {"algorithm": "1.2.156.10197.1.501"},
                                          "signature": signature}).dump()


# ------------------------------------------------------------------------------------------ the site

class Site:
    """A throw-away deployment: config file, token directory, database (SQLite file or PG schema)."""

    def __init__(self, kind: str, workdir: Path, create: bool = True):
        self.kind = kind
        self.dir = workdir / kind
        self.schema = None
        self._env()
        if not create:
            return
        (self.dir / "softtoken").mkdir(parents=True)
        (self.dir / "softtoken" / "softtoken.conf").write_text("pbkdf2_iterations = 1000\n")
        if kind == "sqlite":
            self.url = f"sqlite:///{self.dir / 'racentre.db'}"
        else:
            self.schema = f"bench_{os.getpid()}_{secrets.token_hex(3)}"
            self._admin(f'CREATE SCHEMA "{self.schema}"')
            self.url = f"{POSTGRES_URL}?options={quote(f'-csearch_path={self.schema}')}"
        (self.dir / "racentre.toml").write_text(
            f'[hsm]\ntoken = "bench-{kind}"\npool_size = 8\n[softtoken]\ndir = "softtoken"\nauto_init = true\n'
            f'[database]\nurl = "{self.url}"\n[service]\npublic_url = "http://bench.test"\n'
            '[tsa]\npolicy = "1.2.3.4.1"\n')

    @classmethod
    def existing(cls, kind: str, directory: Path) -> "Site":
        return cls(kind, directory.parent, create=False)

    def _env(self) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("RACENTRE_")}
        self.env.update(RACENTRE_CONFIG=str(self.dir / "racentre.toml"), RACENTRE_HSM_PIN="bench-pin",
                        RACENTRE_SOFTTOKEN_SO_PIN="bench-so-pin", PYTHONPATH=str(REPO))

    @staticmethod
    def _admin(sql: str) -> None:
        import sqlalchemy
        engine = sqlalchemy.create_engine(POSTGRES_URL)
        with engine.begin() as conn:
            conn.exec_driver_sql(sql)
        engine.dispose()

    def cli(self, *args: str) -> str:
        done = subprocess.run(RACENTRE + list(args), env=self.env, cwd=self.dir, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"racentre {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    @contextlib.contextmanager
    def services(self):
        """An in-process Services container on this site (own PKCS#11 module state in this process)."""
        saved = dict(os.environ)
        os.environ.update({k: v for k, v in self.env.items() if k.startswith("RACENTRE_")})
        cwd = os.getcwd()
        os.chdir(self.dir)
        try:
            from racentre.config import load_config
            from racentre.services import Services
            services = Services(load_config(self.dir / "racentre.toml"))
            try:
                yield services
            finally:
                services.close()
        finally:
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(saved)

    def drop(self) -> None:
        if self.schema:
            self._admin(f'DROP SCHEMA "{self.schema}" CASCADE')


def prepare(services, count: int) -> tuple[list[int], dict[str, str]]:
    """``count`` vetted server requests (one final approval away from issuance) and API tokens."""
    from store.db import transaction
    from ra.workflow import Actor
    from access.auth import create_token
    ra = services.ra
    tag = secrets.token_hex(3)
    operator, applicant = Actor(f"operator-{tag}", "ra_operator"), Actor(f"client-{tag}", "api_client")
    unit, _ = ra.add_unit(operator, name=f"基准测试单位-{tag}", uscc=uscc(), legal_representative="王五")
    ids = []
    for i in range(count):
        host = f"app{i}-{tag}.bench.gov.cn"
        server, _ = ra.add_server(operator, host_name=host, unit_id=unit["id"], dns_names=[], ip_addresses=[])
        req = ra.submit(applicant, type="server", subject_id=server["id"],
                        sign_csr=base64.b64encode(sm2_csr(host)).decode())
        vetted = ra.vet(operator, req["id"], documents_checked=True)
        assert vetted["state"] == "vetted", vetted
        ids.append(req["id"])
    with transaction(services.db) as session:
        tokens = {"officer": create_token(session, f"officer-{tag}", ["ra_officer"])}
    return ids, tokens


# ------------------------------------------------------------------------------------------ the service

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            out += [int(c) for c in (task / "children").read_text().split()]
    return out


@contextlib.contextmanager
def serve(site: Site, workers: int, threads: int):
    port = _free_port()
    env = dict(site.env, RACENTRE_SERVICE_THREADS=str(threads))
    log = open(site.dir / "serve.log", "wb")
    proc = subprocess.Popen(RACENTRE + ["serve", "--port", str(port), "--workers", str(workers)], env=env,
                            cwd=site.dir, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"racentre serve exited:\n{(site.dir / 'serve.log').read_text()[-3000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/hsm/health")
                if conn.getresponse().status == 200 and len(_children(proc.pid)) >= workers:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("racentre serve did not come up within 60 s")
            time.sleep(0.2)
        yield port, proc
    except BaseException:
        log.flush()
        print(f"# racentre serve log (tail):\n{(site.dir / 'serve.log').read_text(errors='replace')[-4000:]}",
              file=sys.stderr)
        raise
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def approve_all(port: int, token: str, ids: list[int], clients: int, batch: int = 0) -> tuple[float, list[float]]:
    """Final approvals of ``ids`` from ``clients`` keep-alive connections: (elapsed s, latencies s per
    call). ``batch`` 0: one POST /requests/<id>/approve per request; N: POST /requests/approve with up
    to N ids per call (the bulk approval)."""
    queue = list(reversed(ids))
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json", "Connection": "keep-alive"}
    start_gate = threading.Barrier(clients + 1)

    def take() -> list[int]:
        with lock:
            n = min(len(queue), max(batch, 1))
            return [queue.pop() for _ in range(n)]

    def check(rids, status, body) -> None:
        if status != 200:
            errors.append(f"requests {rids[:3]}...: HTTP {status} {body[:200]!r}")
            return
        if not batch:
            if json.loads(body).get("state") != "issued":
                errors.append(f"request {rids[0]}: {body[:200]!r}")
            return
        items = json.loads(body)["items"]
        if [i["id"] for i in items] != rids or any(i["result"] != "issued" for i in items):
            bad = next((i for i in items if i["result"] != "issued"), items[:1])
            errors.append(f"bulk call for {len(rids)} requests: {bad!r}"[:300])

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        mine = []
        start_gate.wait()
        while True:
            rids = take()
            if not rids:
                break
            if batch:
                path, payload = "/api/v1/ra/requests/approve", json.dumps({"request_ids": rids}).encode()
            else:
                path, payload = f"/api/v1/ra/requests/{rids[0]}/approve", b"{}"
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body=payload, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
            except OSError as exc:
                errors.append(f"requests {rids[:3]}: {exc!r}")
                conn.close()
                continue
            mine.append(time.perf_counter() - t0)
            check(rids, resp.status, body)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    start_gate.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} calls did not issue, e.g. {errors[0]}")
    return elapsed, latencies


# ------------------------------------------------------------------------------------------ in process

def inprocess_issue_rate(services, count: int) -> float:
    """EmbeddedCA.issue per second, one thread, each in its own transaction (certificate + audit row)."""
    from ca_bridge.api import IssueRequest
    ca = services.ca
    tag = secrets.token_hex(3)
    csrs = [sm2_csr(f"ref{i}-{tag}.bench.gov.cn") for i in range(count + 5)]
    from asn1crypto import csr as asn1_csr
    spkis = [asn1_csr.CertificationRequest.load(c)["certification_request_info"]["subject_pk_info"].dump()
             for c in csrs]

    def issue(i):
        host = f"ref{i}-{tag}.bench.gov.cn"
        ca.issue(IssueRequest(request_id=f"bench-{tag}-{i}", profile="server",
                              subject=(("country_name", "CN"), ("organization_name", "基准测试单位"),
                                       ("common_name", host)),
                              public_key_info=spkis[i], dns_names=(host,)))

    for i in range(5):                       # warm: templates, sessions, statements
        issue(count + i)
    t0 = time.perf_counter()
    for i in range(count):
        issue(i)
    return count / (time.perf_counter() - t0)


# ------------------------------------------------------------------------------------------ main

# Where a worker's time goes: each py-spy sample (a non-idle thread's stack) is put in the first
# category whose pattern matches any of its frames.
SPLIT = (
    ("hsm_sign", r"KeyManager\.sign \("),                       # C_SignInit/C_Sign through python-pkcs11
    ("der_building", r"CertificateTemplate\.build|certbuilder\.py"),
    ("audit_rows", r"audit/trail\.py"),                     # audit INSERTs, chaining hooks
    ("db_begin_commit", r"do_commit|_sqlite_begin|Connection\.commit|SessionTransaction\.commit"),
    ("auth_token_lookup", r"\bauthenticate \(|current_principal \("),
    ("ca_issue_sql", r"EmbeddedCA\.(_?issue|issue_groups) \("),   # idempotency SELECT, certificate INSERT
    ("ra_bulk_sql", r"ra/bulk\.py"),                          # the RA's Core statements (ra.bulk)
    ("ra_workflow_orm", r"ra/workflow\.py|ra/services\.py"),   # ORM: the answer's request record
    ("json", r"json/|jsonify|get_json|_body \(ra/views"),
    ("http_gunicorn_flask", r"."),
)


def split_samples(paths: list[Path]) -> dict[str, int]:
    import re
    counts = dict.fromkeys((name for name, _ in SPLIT), 0)
    patterns = [(name, re.compile(rx)) for name, rx in SPLIT]
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            if not stack or not n.isdigit():
                continue
            counts[next(name for name, rx in patterns if rx.search(stack))] += int(n)
    return counts


@contextlib.contextmanager
def sampling(py_spy: str | None, pids: list[int], outdir: Path):
    """py-spy record on each worker (wall-clock samples of non-idle threads) while the block runs."""
    if not py_spy:
        yield []
        return
    files = [outdir / f"py-spy-{pid}.txt" for pid in pids]
    procs = [subprocess.Popen([py_spy, "record", "--nonblocking", "-r", "250", "-f", "raw", "-p", str(pid),
                               "-o", str(f)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for pid, f in zip(pids, files)]
    time.sleep(1.0)                                   # py-spy attaches
    try:
        yield files
    finally:
        for p in procs:
            p.send_signal(2)
        for p in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=30)


def _phase(site: Site, phase: str, count: int) -> dict:
    """Run an in-process phase in a child interpreter: PKCS#11 module state (the token directory is read
    at C_Initialize) and the database pool then belong to one site only."""
    done = subprocess.run([sys.executable, __file__, "--phase", phase, "--site-dir", str(site.dir),
                           "--site-kind", site.kind, "--count", str(count)],
                          env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"phase {phase} failed:\n{done.stdout[-2000:]}{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_phase(args) -> None:
    site = Site.existing(args.site_kind, Path(args.site_dir))
    with site.services() as services:
        if args.phase == "prepare":
            ids, tokens = prepare(services, args.count)
            print(json.dumps({"ids": ids, "tokens": tokens}))
        else:
            print(json.dumps({"rate": inprocess_issue_rate(services, args.count)}))


def _timed(port: int, token: str, ids: list[int], clients: int, batch: int, workers: list[int],
           py_spy: str | None, outdir: Path) -> dict:
    cpu0 = sum(_cpu_seconds(p) for p in workers)
    own0 = time.process_time()
    with sampling(py_spy, workers, outdir) as files:
        elapsed, latencies = approve_all(port, token, ids, clients, batch)
        cpu = sum(_cpu_seconds(p) for p in workers) - cpu0
        own = time.process_time() - own0
    split = split_samples([f for f in files if f.exists()]) if files else {}
    n, lat = len(ids), sorted(latencies)
    return {"rate": n / elapsed, "p50": statistics.median(lat) * 1e3, "p99": lat[int(0.99 * (len(lat) - 1))] * 1e3,
            "cpu_us": 1e6 * cpu / n, "client_cpu_us": 1e6 * own / n, "n": n, "calls": len(lat), "split": split}


def run_database(kind: str, workdir: Path, args) -> dict[str, dict]:
    """One site: the one-request figure, then the bulk one, then the in-process reference."""
    site = Site(kind, workdir)
    try:
        site.cli("db", "upgrade")
        site.cli("setup")           # CA hierarchy, TSA, KMC and seal-maker keys once, before workers fork
        warm = 4 * args.clients
        bulk_clients = max(1, min(args.bulk_clients, args.bulk_count // max(args.batch, 1)))
        bulk_warm = 2 * bulk_clients * args.batch if args.bulk_count else 0
        total = args.count + warm + args.bulk_count + bulk_warm
        prepared = _phase(site, "prepare", total)
        ids, token = prepared["ids"], prepared["tokens"]["officer"]
        single, bulk_ids = ids[:args.count + warm], ids[args.count + warm:]
        out = {}
        with serve(site, args.workers, args.threads) as (port, proc):
            workers = _children(proc.pid)
            if args.count:
                approve_all(port, token, single[:warm], args.clients)
                out["single"] = _timed(port, token, single[warm:], args.clients, 0, workers, args.py_spy, site.dir)
            if args.bulk_count:
                approve_all(port, token, bulk_ids[:bulk_warm], bulk_clients, args.batch)
                out["bulk"] = _timed(port, token, bulk_ids[bulk_warm:], bulk_clients, args.batch, workers,
                                     args.py_spy, site.dir)
                out["bulk"]["clients"] = bulk_clients
        out["inproc"] = _phase(site, "inprocess", args.inprocess_count)["rate"]
    finally:
        site.drop()
    return out


def report(kind: str, name: str, r: dict, args) -> None:
    prefix = "ra_issue" if name == "single" else "ra_bulk_issue"
    if name == "single":
        label = f"{prefix}_per_s_{kind}_{args.workers}workers"
        how = f"{r['n']} final approvals, one per call, {args.clients} keep-alive clients"
    else:
        label = f"{prefix}_per_s_{kind}_{args.workers}workers_batch{args.batch}"
        how = (f"{r['n']} final approvals in {r['calls']} bulk calls of up to {args.batch}, "
               f"{r['clients']} keep-alive clients")
    print(f"{label} {r['rate']:.0f}  # {how}, latency per call p50 {r['p50']:.0f} ms, p99 {r['p99']:.0f} ms")
    print(f"{prefix}_cpu_us_per_cert_{kind} {r['cpu_us']:.0f}  # service workers' CPU per certificate "
          f"(clients on the same cores: {r['client_cpu_us']:.0f} us each)")
    total = sum(r["split"].values())
    for part, samples in r["split"].items():
        print(f"{prefix}_split_us_{kind}_{part} {r['cpu_us'] * samples / total:.0f}  "
              f"# {100 * samples / total:.1f}% of the workers' busy samples, scaled to CPU per certificate")


def postgres_unreachable() -> str | None:
    import sqlalchemy
    try:
        engine = sqlalchemy.create_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.exec_driver_sql("select 1")
        engine.dispose()
        return None
    except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000, help="timed final approvals per database")
    parser.add_argument("--clients", type=int, default=32, help="client threads (keep-alive connections)")
    parser.add_argument("--bulk-count", type=int, default=6000,
                        help="timed final approvals per database through the bulk approval (0: none)")
    parser.add_argument("--batch", type=int, default=100, help="requests per bulk approval call")
    parser.add_argument("--bulk-clients", type=int, default=4, help="client threads for the bulk calls")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--openssl-seconds", type=int, default=2, help="0: no openssl reference (smoke test)")
    parser.add_argument("--py-spy", default=None, metavar="PATH",
                        help="sample the workers with py-spy during the timed window and print where the time goes")
    parser.add_argument("--inprocess-count", type=int, default=None,
                        help="EmbeddedCA.issue calls for the in-process reference (default: count / 2)")
    parser.add_argument("--phase", choices=("prepare", "inprocess"), help=argparse.SUPPRESS)
    parser.add_argument("--site-dir", help=argparse.SUPPRESS)
    parser.add_argument("--site-kind", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        run_phase(args)
        return
    args.inprocess_count = args.inprocess_count or max(10, args.count // 2)
    if not 1 <= args.batch <= 500:
        parser.error("--batch must be 1..500 (the bulk approval takes at most 500 requests per call)")
    kinds = [k.strip() for k in args.databases.split(",") if k.strip()]
    if "postgresql" in kinds:
        why = postgres_unreachable()
        if why:
            print(f"# postgresql skipped: not reachable at {POSTGRES_URL} ({why})")
            kinds.remove("postgresql")

    if args.openssl_seconds:
        ossl_sign, _ = openssl_speed_sm2(args.openssl_seconds)
        print(f"openssl_speed_sm2_sign_per_s_1core {ossl_sign:.0f}")
    with tempfile.TemporaryDirectory(prefix="racentre-bench-ra-") as tmp:
        for kind in kinds:
            r = run_database(kind, Path(tmp), args)
            for name in ("single", "bulk"):
                if name in r:
                    report(kind, name, r[name], args)
            suffix = "" if kind == "sqlite" else f"_{kind}"
            print(f"ca_issue_per_s_inprocess_1thread{suffix} {r['inproc']:.0f}  # EmbeddedCA.issue, own "
                  f"transaction, {kind}")
    if args.openssl_seconds:
        ossl_after, _ = openssl_speed_sm2(args.openssl_seconds)
        print(f"openssl_speed_sm2_sign_per_s_1core_after {ossl_after:.0f}  # the same, after the REST runs")


if __name__ == "__main__":
    main()
