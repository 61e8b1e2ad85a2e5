"""KMC escrow throughput: encryption key pairs generated in the token + archived under the KEK +
enveloped (SM2EnvelopedKey and signed SignedAndEnvelopedData) per second, beside the raw token SM2
keygen and SM2 encrypt rates measured in the same run. One figure per line: calls per wall-clock
second, and after "cpu" calls per CPU-second of this process (stable on a shared machine; with two
threads it is per core busy, so the wall-clock rate is what two free cores would give at best).

    .venv/bin/python bench/kms_escrow.py [--seconds 3]
"""
from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import cpu_count, rate_and_cpu, scratch_key_manager  # noqa: E402
from kms.escrow import EscrowRequest, KeyEscrow  # noqa: E402
from kms.identity import subject_name  # noqa: E402
from pkicore.db import Base, make_engine, make_session_factory  # noqa: E402
from pkicore.envelope import Party  # noqa: E402
from racentre.migrate import import_models  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    km = scratch_key_manager(pool_size=4)
    import_models()
    engine = make_engine(f"sqlite:///{Path(tempfile.mkdtemp(prefix='racentre-bench-kms-')) / 'kms.db'}")
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

    batch = 20

    def batch_escrow():
        serials = [next(counter) for _ in range(batch)]
        escrow.escrow_new_keys([EscrowRequest(ca_id="bench", ca_name="CN=Bench CA", user_cert_no=serial,
                                              subscriber_public_key_info=subscriber, not_before=now,
                                              not_after=now + dt.timedelta(days=365), recipient=Party(ca, serial))
                                for serial in serials])

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
    km.close()
    engine.dispose()


if __name__ == "__main__":
    main()
