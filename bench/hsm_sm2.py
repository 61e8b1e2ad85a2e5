"""SM2 sign/s and verify/s through python-pkcs11 on our software token, 1 and 2 threads, beside
`openssl speed sm2` measured in the same run. One figure per line.

    .venv/bin/python bench/hsm_sm2.py [--seconds 2] [--rounds 3]

What is compared: `openssl speed sm2` times EVP_DigestSignInit + EVP_DigestSign (SM2 with SM3, Z of
the default ID recomputed each time) over 20 bytes; the token path is KeyManager.sign -> python-pkcs11
-> C_SignInit + C_Sign (CKM_SM2_SM3: Z cached per key, SM3, EVP_PKEY_sign) over 64 bytes, plus the
raw r||s <-> DER conversion. Verify likewise. The machine is shared, so each round measures openssl
right before the token (`openssl speed -multi 2` before the 2-thread figures, i.e. what two cores
give openssl at that moment) and the figures are medians of the rounds; the ratio in each comment is
the median of the per-round ratios (min..max after it).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import cpu_count, openssl_speed_sm2, rate, scratch_key_manager  # noqa: E402


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
    figures: dict[str, list[float]] = {}

    def note(name: str, value: float) -> None:
        figures.setdefault(name, []).append(value)

    for _ in range(max(1, args.rounds)):
        for threads in thread_counts:
            ossl_sign, ossl_verify = openssl_speed_sm2(max(1, round(args.seconds)), multi=threads)
            s = rate(lambda: km.sign("bench-sm2", message), threads, args.seconds)
            v = rate(lambda: km.verify("bench-sm2", message, signature), threads, args.seconds)
            ref = "1core" if threads == 1 else f"{threads}proc"
            note(f"openssl_speed_sm2_sign_per_s_{ref}", ossl_sign)
            note(f"openssl_speed_sm2_verify_per_s_{ref}", ossl_verify)
            note(f"token_sm2_sign_per_s_{threads}thread", s)
            note(f"token_sm2_verify_per_s_{threads}thread", v)
            note(f"sign_ratio_{threads}", s / ossl_sign)
            note(f"verify_ratio_{threads}", v / ossl_verify)

    med = {k: statistics.median(v) for k, v in figures.items()}
    print(f"openssl_speed_sm2_sign_per_s_1core {med['openssl_speed_sm2_sign_per_s_1core']:.0f}  "
          f"# median of {args.rounds} rounds")
    print(f"openssl_speed_sm2_verify_per_s_1core {med['openssl_speed_sm2_verify_per_s_1core']:.0f}")
    for threads in thread_counts:
        if threads > 1:
            print(f"openssl_speed_sm2_sign_per_s_{threads}proc {med[f'openssl_speed_sm2_sign_per_s_{threads}proc']:.0f}"
                  f"  # openssl speed -multi {threads}")
            print(f"openssl_speed_sm2_verify_per_s_{threads}proc "
                  f"{med[f'openssl_speed_sm2_verify_per_s_{threads}proc']:.0f}")
        ref = "openssl 1 core" if threads == 1 else f"openssl -multi {threads}"
        for op in ("sign", "verify"):
            ratios = figures[f"{op}_ratio_{threads}"]
            print(f"token_sm2_{op}_per_s_{threads}thread {med[f'token_sm2_{op}_per_s_{threads}thread']:.0f}  "
                  f"# {100 * statistics.median(ratios):.0f}% of {ref} "
                  f"({100 * min(ratios):.0f}..{100 * max(ratios):.0f}%)")
    del key
    km.close()


if __name__ == "__main__":
    main()
