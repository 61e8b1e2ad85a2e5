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
