"""KMC escrow throughput: encryption key pairs generated in the token + archived under the KEK +
enveloped (SM2EnvelopedKey and signed SignedAndEnvelopedData) per second, beside the raw token SM2
keygen and SM2 encrypt rates measured in the same run. One figure per line: calls per wall-clock
second, and after "cpu" calls per CPU-second of this process (stable on a shared machine; with two
threads it is per core busy, so the wall-clock rate is what two free cores would give at best).

The last figures are the deployment's shape: ``--processes`` (default 2, one per core) KMC worker
processes, each with its own PKCS#11 session pool on the same token and its own connection to the same
database (SQLite in WAL mode), escrowing batches of 20 for the same wall-clock window.

    .venv/bin/python bench/kms_escrow.py [--seconds 3] [--processes 2]
"""
from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import cpu_count, rate_and_cpu, run_workers, scratch_key_manager, scratch_key_manager_at  # noqa: E402,E501
from kms.escrow import EscrowRequest, KeyEscrow  # noqa: E402
from kms.identity import subject_name  # noqa: E402
from store.db import Base, make_engine, make_session_factory  # noqa: E402
from pkicore.envelope import Party  # noqa: E402
from racentre.migrate import import_models  # noqa: E402


BATCH = 20


def _requests(counter, subscriber: bytes, n: int, ca_id: str = "bench") -> list[EscrowRequest]:
    ca = subject_name((("common_name", "Bench CA"),))
    now = dt.datetime.now(dt.timezone.utc)
    serials = [next(counter) for _ in range(n)]
    return [EscrowRequest(ca_id=ca_id, ca_name="CN=Bench CA", user_cert_no=serial,
                          subscriber_public_key_info=subscriber, not_before=now,
                          not_after=now + dt.timedelta(days=365), recipient=Party(ca, serial))
            for serial in serials]


def worker(args) -> None:
    """One KMC worker process: own key manager (session pool) on the shared token, own connection to the
    shared database; batches of ``--batch`` from ``--start`` (a time.time() instant) for ``--seconds``."""
    km = scratch_key_manager_at(Path(args.token_dir), pool_size=4)
    engine = make_engine(args.db_url)
    escrow = KeyEscrow(km, make_session_factory(engine))
    subscriber = km.public_key_info("bench-subscriber")
    counter = itertools.count(1)
    ca_id = f"bench-p{args.worker}-b{args.batch}"
    for _ in range(2):                                    # warm: sessions, statements, caches
        escrow.escrow_new_keys(_requests(counter, subscriber, BATCH, ca_id))
    time.sleep(max(0.0, args.start - time.time()))
    cpu0, t0 = time.process_time(), time.perf_counter()
    stop, n = t0 + args.seconds, 0
    while time.perf_counter() < stop:
        n += len(escrow.escrow_new_keys(_requests(counter, subscriber, args.batch, ca_id)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    km.close()
    engine.dispose()
    print(json.dumps({"keys": n, "wall": wall, "cpu": cpu}))


def multiprocess(token_dir: Path, db_url: str, processes: int, seconds: float, batch: int) -> tuple[float, float]:
    """(keys per wall-clock second of all processes together, keys per CPU-second of the workers)."""
    results = run_workers(__file__, [["--worker", str(i), "--token-dir", str(token_dir), "--db-url", db_url,
                                      "--batch", str(batch)] for i in range(processes)], seconds)
    keys = sum(r["keys"] for r in results)
    return keys / max(r["wall"] for r in results), keys / sum(r["cpu"] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--token-dir", help=argparse.SUPPRESS)
    parser.add_argument("--db-url", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=BATCH, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args)
        return

    km = scratch_key_manager(pool_size=4)
    import_models()
    db_url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='racentre-bench-kms-')) / 'kms.db'}"
    engine = make_engine(db_url)
    Base.metadata.create_all(engine)
    escrow = KeyEscrow(km, make_session_factory(engine))
    escrow.setup()
    subscriber = km.generate_key_pair("bench-subscriber", "sm2").public_key_info
    counter = itertools.count(1)
    ca = subject_name((("common_name", "Bench CA"),))
    now = dt.datetime.now(dt.timezone.utc)

    def one_escrow():
        serial = next(counter)
        escrow.escrow_new_key(ca_id="bench", ca_name="CN=Bench CA", user_cert_no=serial,
                              subscriber_public_key_info=subscriber, not_before=now,
                              not_after=now + dt.timedelta(days=365), recipient=Party(ca, serial))

    batch = BATCH

    def batch_escrow():
        escrow.escrow_new_keys(_requests(counter, subscriber, batch))

    labels = itertools.count(1)

    def one_keygen(token: bool):
        label = f"bench-gen-{next(labels)}"
        km.generate_key_pair(label, "sm2", extractable=True, token=token)
        km.delete_key(label)

    def show(name, fn, n, note=""):
        wall, cpu = rate_and_cpu(fn, n, args.seconds)
        print(f"{name}_per_s_{n}thread {wall:.0f}  cpu {cpu:.0f}{note}")

    threads = min(2, cpu_count())
    show("token_sm2_keygen_plus_destroy", lambda: one_keygen(True), 1, "  # token object (written to disk)")
    show("token_sm2_session_keygen_plus_destroy", lambda: one_keygen(False), 1, "  # session object")
    for n in sorted({1, threads}):
        show("token_sm2_encrypt_to", lambda: km.encrypt_to(subscriber, bytes(16)), n)
    show("token_sm2_sign", lambda: escrow.sign(bytes(32)), 1)
    for n in sorted({1, threads}):
        show("kms_escrow", one_escrow, n,
             "  # keygen + KEK wrap + envelope + KMC signature + MAC + DB row, goal >= 1000")
    wall, cpu = rate_and_cpu(batch_escrow, 1, args.seconds)
    print(f"kms_escrow_batch{batch}_per_s_1thread {wall * batch:.0f}  cpu {cpu * batch:.0f}"
          f"  # escrow_new_keys, {batch} certificates per transaction")
    token_dir = km.config.softtoken.dir
    km.close()
    engine.dispose()
    if args.processes > 0:
        wall, cpu = multiprocess(Path(token_dir), db_url, args.processes, args.seconds, 1)
        print(f"kms_escrow_per_s_{args.processes}processes {wall:.0f}  cpu {cpu:.0f}"
              f"  # {args.processes} KMC worker processes, one token, one SQLite database, one key per transaction")
        wall, cpu = multiprocess(Path(token_dir), db_url, args.processes, args.seconds, batch)
        print(f"kms_escrow_batch{batch}_per_s_{args.processes}processes {wall:.0f}  cpu {cpu:.0f}"
              f"  # {args.processes} KMC worker processes, one token, one SQLite database, goal >= 1000")


if __name__ == "__main__":
    main()
