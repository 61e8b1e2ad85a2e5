"""KMC escrow throughput: encryption key pairs generated in the token + archived under the KEK +
enveloped (SM2EnvelopedKey and signed SignedAndEnvelopedData) per second, beside the raw token SM2
keygen and SM2 encrypt rates measured in the same run. One figure per line.

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

from bench.common import cpu_count, rate, scratch_key_manager  # noqa: E402
from kms.escrow import KeyEscrow  # noqa: E402
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

    labels = itertools.count(1)

    def one_keygen():
        label = f"bench-gen-{next(labels)}"
        km.generate_key_pair(label, "sm2", extractable=True)
        km.delete_key(label)

    threads = min(2, cpu_count())
    print(f"token_sm2_keygen_plus_destroy_per_s_1thread {rate(one_keygen, 1, args.seconds):.0f}")
    print(f"token_sm2_encrypt_to_per_s_1thread {rate(lambda: km.encrypt_to(subscriber, bytes(16)), 1, args.seconds):.0f}")
    print(f"token_sm2_encrypt_to_per_s_{threads}thread "
          f"{rate(lambda: km.encrypt_to(subscriber, bytes(16)), threads, args.seconds):.0f}")
    print(f"token_sm2_sign_per_s_1thread {rate(lambda: escrow.sign(bytes(32)), 1, args.seconds):.0f}")
    for n in sorted({1, threads}):
        print(f"kms_escrow_per_s_{n}thread {rate(one_escrow, n, args.seconds):.0f}  "
              f"# keygen + KEK wrap + envelope + KMC signature + MAC + DB row, goal >= 1000")
    km.close()
    engine.dispose()


if __name__ == "__main__":
    main()
