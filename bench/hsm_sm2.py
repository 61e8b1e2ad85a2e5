"""SM2 sign/s and verify/s through python-pkcs11 on our software token, 1 and 2 threads, beside
`openssl speed sm2` measured in the same run. One figure per line.

    .venv/bin/python bench/hsm_sm2.py [--seconds 2] [--rounds 3]

What is compared: `openssl speed sm2` times EVP_DigestSignInit + EVP_DigestSign (SM2 with SM3, Z of
the default ID recomputed each time) over 20 bytes; the token path is KeyManager.sign -> python-pkcs11
-> C_SignInit + C_Sign (CKM_SM2_SM3: Z cached per key, SM3, EVP_PKEY_sign) over 64 bytes, plus the
raw r||s <-> DER conversion. Verify likewise.

The machine is shared, and `openssl speed` divides by its user CPU time unless -elapsed. So each round
measures, right before the token figures, openssl twice: -elapsed (wall clock, what the token's
wall-clock rate is compared with; -multi 2 before the 2-thread figures) and plain (ops per CPU-second,
compared with the token's ops per CPU-second of this process, which other jobs on the box do not
disturb). Figures are medians of the rounds; the comment gives both ratios (median, min..max).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import cpu_count, openssl_speed_sm2, rate_and_cpu, scratch_key_manager  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each measurement slice")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    km = scratch_key_manager(pool_size=4)
    key = km.generate_key_pair("bench-sm2", "sm2")
    message = b"x" * 64
    signature = km.sign("bench-sm2", message)
    assert km.verify("bench-sm2", message, signature)
    thread_counts = sorted({1, min(2, cpu_count())})
    ops = {"sign": lambda: km.sign("bench-sm2", message),
           "verify": lambda: km.verify("bench-sm2", message, signature)}
    figures: dict[str, list[float]] = {}

    def note(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)

    secs = max(1, round(args.seconds))
    for _ in range(max(1, args.rounds)):
        cpu_ref = dict(zip(ops, openssl_speed_sm2(secs)))        # one core, per user-CPU second
        for op in ops:
            note(f"openssl_speed_sm2_{op}_per_s_1core", cpu_ref[op])
        for threads in thread_counts:
            wall_ref = dict(zip(ops, openssl_speed_sm2(secs, multi=threads, elapsed=True)))
            ref = "1core" if threads == 1 else f"{threads}proc"
            for op, fn in ops.items():
                wall, per_cpu = rate_and_cpu(fn, threads, args.seconds)
                note(f"openssl_speed_sm2_{op}_per_s_{ref}_elapsed", wall_ref[op])
                note(f"token_sm2_{op}_per_s_{threads}thread", wall)
                note(f"token_sm2_{op}_per_cpu_s_{threads}thread", per_cpu)
                note(f"{op}_wall_ratio_{threads}", wall / wall_ref[op])
                note(f"{op}_cpu_ratio_{threads}", per_cpu / cpu_ref[op])

    med = {k: statistics.median(v) for k, v in figures.items()}

    def ratio(name: str) -> str:
        r = figures[name]
        return f"{100 * statistics.median(r):.0f}% ({100 * min(r):.0f}..{100 * max(r):.0f}%)"

    for threads in thread_counts:
        ref = "1core" if threads == 1 else f"{threads}proc"
        how = "" if threads == 1 else f" -multi {threads}"
        for op in ops:
            if threads == 1:
                print(f"openssl_speed_sm2_{op}_per_s_1core {med[f'openssl_speed_sm2_{op}_per_s_1core']:.0f}  "
                      f"# openssl speed (per user-CPU second), median of {args.rounds} rounds")
            print(f"openssl_speed_sm2_{op}_per_s_{ref}_elapsed {med[f'openssl_speed_sm2_{op}_per_s_{ref}_elapsed']:.0f}"
                  f"  # openssl speed{how} -elapsed (wall clock)")
        for op in ops:
            print(f"token_sm2_{op}_per_s_{threads}thread {med[f'token_sm2_{op}_per_s_{threads}thread']:.0f}  "
                  f"# wall clock: {ratio(f'{op}_wall_ratio_{threads}')} of openssl{how} -elapsed")
            print(f"token_sm2_{op}_per_cpu_s_{threads}thread {med[f'token_sm2_{op}_per_cpu_s_{threads}thread']:.0f}"
                  f"  # per CPU-second of this process: {ratio(f'{op}_cpu_ratio_{threads}')} of openssl per core")
    del key
    km.close()


if __name__ == "__main__":
    main()
