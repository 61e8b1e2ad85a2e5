"""Shared helpers for the benchmarks: a throw-away software token and the OpenSSL reference figures."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from hsm import HsmConfig, KeyManager, SoftTokenConfig, init_token
from hsm.token import build_softtoken
from pkicore.secret import Secret


def _scratch_config(directory: Path, pool_size: int) -> HsmConfig:
    return HsmConfig(module=str(build_softtoken()), token="bench", pin=Secret("bench-pin"),
                     pool_size=pool_size, softtoken=SoftTokenConfig(dir=str(directory)))


def scratch_key_manager(pool_size: int = 4) -> KeyManager:
    """A fresh software token in a temp directory (set before the module is loaded)."""
    directory = Path(tempfile.mkdtemp(prefix="racentre-bench-"))
    (directory / "softtoken.conf").write_text("pbkdf2_iterations = 10000\n")
    config = _scratch_config(directory, pool_size)
    init_token(config, Secret("bench-so-pin"), Secret("bench-pin"))
    return KeyManager(config)


def scratch_key_manager_at(directory: Path, pool_size: int = 4) -> KeyManager:
    """Another process's key manager on the token ``scratch_key_manager`` made in ``directory``."""
    return KeyManager(_scratch_config(directory, pool_size))


def openssl_speed_sm2(seconds: int = 3, multi: int = 1, elapsed: bool = False) -> tuple[float, float]:
    """(sign/s, verify/s) from `openssl speed sm2`: one core, or the total of ``multi`` processes
    (`-multi N`). Note that openssl speed divides by its *user CPU time* unless ``elapsed`` (-elapsed:
    wall-clock time, what a wall-clock rate of ours must be compared with on a machine others share)."""
    cmd = ["openssl", "speed", "-seconds", str(seconds)] + (["-multi", str(multi)] if multi > 1 else []) \
        + (["-elapsed"] if elapsed else []) + ["sm2"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if "SM2" in line and "bits" in line:
            nums = re.findall(r"[\d.]+", line)
            return float(nums[-2]), float(nums[-1])
    raise RuntimeError("could not parse `openssl speed sm2` output")


def rate(fn, threads: int, seconds: float) -> float:
    """Calls per second of ``fn`` from ``threads`` threads over about ``seconds``."""
    return rate_and_cpu(fn, threads, seconds)[0]


def cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def rate_and_cpu(fn, threads: int, seconds: float) -> tuple[float, float]:
    """(calls per wall-clock second, calls per CPU-second of this process) of ``fn`` from ``threads``
    threads; the second is comparable with `openssl speed` without -elapsed even on a busy machine."""
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def worker(i):
        n = 0
        while time.perf_counter() < stop:
            fn()
            n += 1
        counts[i] = n

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return sum(counts) / wall, sum(counts) / max(cpu, 1e-9)


def run_workers(script: str, worker_args: list[list[str]], seconds: float, warm_up: float = 8.0) -> list[dict]:
    """One ``python script <args> --start T --seconds S`` process per entry of ``worker_args``, all timing
    the same wall-clock window from T (by then each has started and warmed up); the JSON each prints last."""
    start = time.time() + warm_up
    procs = [subprocess.Popen([sys.executable, script, *args, "--start", repr(start), "--seconds", str(seconds)],
                              stdout=subprocess.PIPE, text=True) for args in worker_args]
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=120 + warm_up + seconds)
        if p.returncode:
            raise RuntimeError(f"{os.path.basename(script)} worker failed (exit {p.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


# ------------------------------------------------------------------------------------------- bench servers
# The serving benchmarks (tsa_http, ocsp_http, trust_verify) and the e2e tests that start a real `racentre
# serve --workers N` (tests/e2e/test_serve_slow_clients.py, test_tsa_serve_fastpath.py,
# test_serve_ocsp_slow_database.py) start, wait for and stop their server here, and drive load alike.

ROOT = Path(__file__).resolve().parent.parent

SERVER = """
import sys
from racentre.config import load_config
from racentre.serve import serve
serve(load_config(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), workers=int(sys.argv[3]),
      threads=int(sys.argv[4]), packages=tuple(sys.argv[5].split(",")))
"""


def server_command(config_path, port: int, workers: int, threads: int, packages=("timestamp",)) -> list[str]:
    """argv of `racentre.serve.serve` over ``packages`` on 127.0.0.1:``port`` (a child interpreter)."""
    return [sys.executable, "-c", SERVER, str(config_path), str(port), str(workers), str(threads), ",".join(packages)]


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_pids(pid: int) -> list[int]:
    """A process and all its descendants (Linux /proc)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found, frontier = [pid], [pid]
    while frontier:
        p = frontier.pop()
        for child, parent in parents.items():
            if parent == p and child not in found:
                found.append(child)
                frontier.append(child)
    return found


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of a process and all its descendants (Linux /proc), in seconds: the service's CPU
    (arbiter and workers), load-independent where wall-clock rates are not (a shared box)."""
    total = 0
    for p in tree_pids(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def wait_ready(port: int, timeout: float = 60.0) -> None:
    """Until something listens on ``port``."""
    import socket
    stop = time.monotonic() + timeout
    while time.monotonic() < stop:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not start")


def wait_loaded(port: int, path: str = "/tsa/health", timeout: float = 90.0) -> None:
    """Until the workers answer ``path`` (gunicorn listens before its workers have loaded the service)."""
    import urllib.request
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


class BenchServer:
    """A server started from ``argv`` (``server_command`` or `racentre serve`), its output in ``log_path``;
    ``with`` waits until it listens and its workers answer ``health``, and stops it after (SIGTERM, then
    SIGKILL after 20 s). ``log()`` is what it wrote; ``tracebacks`` whether that holds one."""

    def __init__(self, argv: list[str], port: int, log_path: Path, *, env: dict, cwd=ROOT,
                 health: str = "/tsa/health"):
        self.argv, self.port, self.log_path, self.env, self.cwd, self.health = argv, port, Path(log_path), env, cwd, health
        self.proc = None

    def __enter__(self) -> "BenchServer":
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=log, stderr=log)
        try:
            wait_ready(self.port)
            wait_loaded(self.port, self.health)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __exit__(self, *exc) -> None:
        self.stop()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def tracebacks(self) -> bool:
        return "Traceback" in self.log()


def prepare_tsa_site(directory: Path, threads: int) -> Path:
    """A scratch token with the site made by `racentre setup` (CAs with OCSP responders, the TSA unit and its
    certificate), SQLite beside it, and a racentre.toml pointing at both; -> that file."""
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


def prepare_tsa_site_in_child(directory: Path, threads: int, env: dict) -> Path:
    """``prepare_tsa_site`` in a child interpreter (a test process's PKCS#11 module serves another token)."""
    done = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                           "from bench.common import prepare_tsa_site; "
                           "print(prepare_tsa_site(Path(sys.argv[1]), int(sys.argv[2])))", str(directory), str(threads)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    if done.returncode != 0:
        raise RuntimeError(f"preparing the site failed: {done.stderr[-2000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------- load: asyncio
async def _one_client(port: int, requests: list[bytes], ok, stop_at: float, measure_from: float,
                      latencies: list[float], errors: list[str], total: list[int]) -> int:
    import asyncio
    import secrets
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
            if not head.startswith(b"HTTP/1.1 200") or not ok(body):
                errors.append(head.split(b"\r\n", 1)[0].decode() + " " + body[:200].decode(errors="replace"))
                continue
            total[0] += 1
            if t0 >= measure_from:
                latencies.append(t1 - t0)
                done += 1
    finally:
        writer.close()
    return done


async def http_load(port: int, requests: list[bytes], ok, clients: int, seconds: float, warmup: float) -> dict:
    """``clients`` keep-alive connections sending ``requests`` (raw HTTP/1.1, in turn) for ``warmup`` +
    ``seconds``, each answer checked by ``ok(body)``: the rate, p50/p99/max latency (ms) over the measured
    ``seconds``, errors, and this client's CPU per request. Run it in a process of its own."""
    import asyncio
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    latencies: list[float] = []
    errors: list[str] = []
    total = [0]
    cpu0 = time.process_time()
    counts = await asyncio.gather(*(_one_client(port, requests, ok, stop_at, measure_from, latencies, errors, total)
                                    for _ in range(clients)))
    client_cpu = time.process_time() - cpu0
    elapsed = time.perf_counter() - measure_from
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")

    return {"done": sum(counts), "seconds": elapsed, "rate": sum(counts) / elapsed, "p50_ms": pct(0.50),
            "p99_ms": pct(0.99), "max_ms": latencies[-1] * 1000 if latencies else float("nan"),
            "errors": len(errors), "first_error": errors[0] if errors else None, "requests": total[0],
            "client_cpu_us": 1e6 * client_cpu / max(1, total[0])}


def run_load_client(script: str, port: int, clients: int, seconds: float, warmup: float, *extra: str) -> dict:
    """``python script --client PORT CLIENTS [extra] --seconds S --warmup W`` (the bench's own load process,
    which prints ``http_load``'s JSON last) -> that JSON."""
    client = subprocess.run([sys.executable, script, "--client", str(port), str(clients), *extra,
                             "--seconds", str(seconds), "--warmup", str(warmup)],
                            capture_output=True, text=True, cwd=ROOT, timeout=seconds + warmup + 120)
    if client.returncode != 0:
        raise RuntimeError(f"client failed: {client.stderr}")
    return json.loads(client.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------- load: wrk
def lua_script(requests: list[bytes]) -> str:
    """A wrk script sending ``requests`` (raw HTTP/1.1) in turn from a random start."""
    def lua(data: bytes) -> str:
        return '"' + "".join(f"\\{b}" for b in data) + '"'
    return ("local reqs = {" + ",\n".join(lua(r) for r in requests) + "}\n"
            "local n = #reqs\nlocal i = math.random(n)\n"
            "request = function()\n  i = i % n + 1\n  return reqs[i]\nend\n")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def run_wrk(port: int, script: Path, seconds: float, connections: int, threads: int) -> dict:
    """One wrk run (`apt-get install wrk`): requests/s, p50/p99 (ms), non-2xx/3xx answers, socket errors."""
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s",
                          "--latency", "-s", str(script), f"http://127.0.0.1:{port}/"],
                         capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0 or "Requests/sec" not in out.stdout:
        raise RuntimeError(f"wrk failed: {out.stdout[-1000:]} {out.stderr[-1000:]}")
    out = out.stdout
    result = {"rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}
    done = re.search(r"^\s*(\d+) requests in", out, re.M)
    result["requests"] = int(done.group(1)) if done else 0
    for pct, value, unit in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        result[f"p{pct}_ms"] = float(value) * _UNITS[unit]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    result["non_2xx"] = int(bad.group(1)) if bad else 0
    result["socket_errors"] = errors.group(0) if errors else ""
    return result


def combine(runs: list[dict]) -> dict:
    """Several rounds of one workload: the mean rate, the median of the rounds' p50 and p99."""
    def median(key):
        values = sorted(r.get(key, float("nan")) for r in runs)
        return values[len(values) // 2]
    return {"rate": sum(r["rate"] for r in runs) / len(runs), "p50_ms": median("p50_ms"), "p99_ms": median("p99_ms"),
            "non_2xx": sum(r["non_2xx"] for r in runs),
            "socket_errors": " ".join(r["socket_errors"] for r in runs).strip(),
            "rates": [round(r["rate"]) for r in runs],
            "requests": sum(r.get("requests", 0) for r in runs),
            "cpu_s": sum(r.get("cpu_s", 0.0) for r in runs)}


def load_average() -> str:
    """The machine's 1/5/15-minute load average (a shared box: figures are judged beside it)."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])
