"""SM2 sign/s and verify/s through python-pkcs11 on our software token, 1 and 2 threads, beside
`openssl speed sm2` measured in the same run; SM2 key generation, encryption and decryption (32-byte
message, python-pkcs11 session objects, one thread) beside the same token run with
RACENTRE_SOFTTOKEN_SM2_IMPL=openssl (OpenSSL's generic SM2 code, in a child process; `openssl speed`
has no figures for these), and that child's sign/verify too. One figure per line.

    .venv/bin/python bench/hsm_sm2.py [--seconds 2] [--rounds 3] [--no-openssl-impl]

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
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import cpu_count, openssl_speed_sm2, rate_and_cpu, scratch_key_manager  # noqa: E402

IMPL_ENV = "RACENTRE_SOFTTOKEN_SM2_IMPL"
CKK_SM2, CKM_SM2_KEY_PAIR_GEN, CKM_SM2_ENCRYPT = 0x80000004, 0x80008001, 0x80008200
SM2_OID_DER = bytes.fromhex("06082A811CCF5501822D")


def pkcs11_ops(km, seconds: float) -> dict[str, float]:
    """keygen/encrypt/decrypt per second through python-pkcs11 on the key manager's token (session
    objects; each generated pair is destroyed again, as an escrow KMC does)."""
    import pkcs11
    from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag
    lib = pkcs11.lib(km.config.module)            # python-pkcs11 keeps one instance per process
    token = lib.get_token(token_label=km.config.token)
    caps = MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT
    out = {}
    with token.open(rw=True) as s:                 # the key manager has logged the token in
        def keygen():
            return s.generate_keypair(KeyType(CKK_SM2), 256, mechanism=Mechanism(CKM_SM2_KEY_PAIR_GEN),
                                      store=False, capabilities=caps,
                                      public_template={Attribute.EC_PARAMS: SM2_OID_DER})

        def keygen_destroy():
            pub, priv = keygen()
            pub.destroy()
            priv.destroy()
        pub, priv = keygen()
        msg = os.urandom(32)
        ct = pub.encrypt(msg, mechanism=Mechanism(CKM_SM2_ENCRYPT))
        assert priv.decrypt(ct, mechanism=Mechanism(CKM_SM2_ENCRYPT)) == msg
        out["keygen"] = rate_and_cpu(keygen_destroy, 1, seconds)[0]
        out["encrypt"] = rate_and_cpu(lambda: pub.encrypt(msg, mechanism=Mechanism(CKM_SM2_ENCRYPT)), 1, seconds)[0]
        out["decrypt"] = rate_and_cpu(lambda: priv.decrypt(ct, mechanism=Mechanism(CKM_SM2_ENCRYPT)), 1,
                                      seconds)[0]
    return out


def token_only(seconds: float, rounds: int) -> None:
    """--token-only (the child run under RACENTRE_SOFTTOKEN_SM2_IMPL=openssl): token figures only."""
    km = scratch_key_manager(pool_size=2)
    km.generate_key_pair("bench-sm2", "sm2")
    message = b"x" * 64
    signature = km.sign("bench-sm2", message)
    figures: dict[str, list[float]] = {}
    for _ in range(max(1, rounds)):
        figures.setdefault("sign", []).append(rate_and_cpu(lambda: km.sign("bench-sm2", message), 1, seconds)[0])
        figures.setdefault("verify", []).append(
            rate_and_cpu(lambda: km.verify("bench-sm2", message, signature), 1, seconds)[0])
        for op, v in pkcs11_ops(km, seconds).items():
            figures.setdefault(op, []).append(v)
    for op, v in figures.items():
        print(f"token_sm2_{op}_per_s_1thread {statistics.median(v):.0f}")
    km.close()


def openssl_impl_figures(seconds: float, rounds: int) -> dict[str, float]:
    env = {**os.environ, IMPL_ENV: "openssl"}
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--token-only", "--seconds", str(seconds),
                          "--rounds", str(rounds)], env=env, capture_output=True, text=True, check=True).stdout
    figs = {}
    for line in out.splitlines():
        name, value = line.split()[:2]
        figs[name.removeprefix("token_sm2_").removesuffix("_per_s_1thread")] = float(value)
    return figs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each measurement slice")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--token-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--no-openssl-impl", action="store_true",
                        help=f"skip the child run with {IMPL_ENV}=openssl")
    args = parser.parse_args()
    if args.token_only:
        token_only(args.seconds, args.rounds)
        return
    impl = os.environ.get(IMPL_ENV, "own")

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

    # keygen / encrypt / decrypt: no `openssl speed` figure exists; compare with the token itself
    # on OpenSSL's SM2 code (child process, same machine, right after)
    ours: dict[str, list[float]] = {}
    for _ in range(max(1, args.rounds)):
        for op, v in pkcs11_ops(km, args.seconds).items():
            ours.setdefault(op, []).append(v)
    other = {} if args.no_openssl_impl or impl == "openssl" else openssl_impl_figures(args.seconds, args.rounds)
    for op in ("sign", "verify"):
        if op in other:
            print(f"token_openssl_impl_sm2_{op}_per_s_1thread {other[op]:.0f}  # {IMPL_ENV}=openssl, "
                  f"wall clock; ours: {med[f'token_sm2_{op}_per_s_1thread'] / other[op]:.1f}x")
    for op, v in ours.items():
        mine = statistics.median(v)
        print(f"token_sm2_{op}_per_s_1thread {mine:.0f}  # python-pkcs11, SM2 impl {impl}, wall clock"
              + (f"; {mine / other[op]:.1f}x the openssl impl" if op in other else ""))
        if op in other:
            print(f"token_openssl_impl_sm2_{op}_per_s_1thread {other[op]:.0f}  # {IMPL_ENV}=openssl, wall clock")
    del key
    km.close()


if __name__ == "__main__":
    main()
