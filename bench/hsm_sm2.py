"""SM2 sign/s and verify/s through python-pkcs11 on our software token, 1 and 2 threads, beside
`openssl speed sm2` measured in the same run. One figure per line.

    .venv/bin/python bench/hsm_sm2.py [--seconds 3]
"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import cpu_count, openssl_speed_sm2, rate, scratch_key_manager  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()

    ossl_sign, ossl_verify = openssl_speed_sm2(max(1, int(args.seconds)))
    print(f"openssl_speed_sm2_sign_per_s_1core {ossl_sign:.0f}")
    print(f"openssl_speed_sm2_verify_per_s_1core {ossl_verify:.0f}")

    km = scratch_key_manager(pool_size=4)
    key = km.generate_key_pair("bench-sm2", "sm2")
    message = b"x" * 64
    signature = km.sign("bench-sm2", message)
    for threads in (1, min(2, cpu_count())):
        s = rate(lambda: km.sign("bench-sm2", message), threads, args.seconds)
        v = rate(lambda: km.verify("bench-sm2", message, signature), threads, args.seconds)
        print(f"token_sm2_sign_per_s_{threads}thread {s:.0f}  # {100 * s / (threads * ossl_sign):.0f}% of "
              f"{threads} x openssl")
        print(f"token_sm2_verify_per_s_{threads}thread {v:.0f}  # {100 * v / (threads * ossl_verify):.0f}% of "
              f"{threads} x openssl")
    del key
    km.close()


if __name__ == "__main__":
    main()
