"""The token's own SM2 code with its portable carry/borrow primitives (hsm/softtoken/src/sm2p256_field.h,
used on every 64-bit target but x86-64, e.g. the aarch64 servers of Kunpeng and Phytium): the C self-test
against OpenSSL and the valgrind constant-time check with the portable code forced on this machine
(make selftest-portable / ctgrind-portable, built in build/portable/), the same self-test cross-built for
aarch64 and run under qemu-user when scripts/setup.sh could install the cross tools, and the #error that
stops a target without unsigned __int128."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess

import pytest

from softtoken_helpers import SOFTTOKEN_DIR

AARCH64_SYSROOT = SOFTTOKEN_DIR / "build" / "aarch64-sysroot"


def _make(*args, timeout=300):
    return subprocess.run(["make", "-s", "-C", str(SOFTTOKEN_DIR), *args], capture_output=True, text=True,
                          timeout=timeout)


def _assert_selftest_ok(r, n):
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "arithmetic: portable C" in r.stdout, out
    assert f"scalar multiplication: {n} random scalars (k*G and k*P) and 33 edge scalars: ok" in r.stdout, out
    for check in ("known answer GB/T 32918.5 / GM/T 0003.5: ok", "ours <-> OpenSSL both ways, corrupted r/s rejected: ok",
                  "ours <-> OpenSSL both ways, tampered C1/C3/C2 rejected: ok", "ALL OK"):
        assert check in r.stdout, out
    assert "FAIL" not in out


def test_portable_selftest_cross_checks_openssl():
    """k*G and k*P for 5 000 random and the edge scalars, the GB/T 32918.5 known answer, signatures
    and ciphertexts both ways against OpenSSL, all on the portable primitives (the intrinsics build
    runs 20 000 in test_sm2_own.py; what differs here is only the carry/borrow code, which every
    field operation of every scalar multiplication goes through)."""
    r = _make("selftest-portable", "SELFTEST_N=5000")
    _assert_selftest_ok(r, 5000)


@pytest.mark.skipif(not shutil.which("valgrind"), reason="valgrind not installed (scripts/setup.sh installs it)")
def test_portable_constant_time_under_valgrind():
    """the comparisons that recover carries and borrows must not become secret-dependent branches"""
    r = _make("ctgrind-portable")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "arithmetic: portable C" in r.stdout
    assert "ctgrind run: keygen, sign, encrypt, decrypt" in r.stdout
    assert "canary detected (ok)" in r.stdout
    assert "uninitialised" not in r.stderr, r.stderr


@pytest.mark.skipif(platform.machine() != "x86_64", reason="the intrinsics path exists on x86-64 only")
def test_default_build_keeps_the_x86_64_intrinsics():
    r = _make("selftest", "SELFTEST_N=1")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "arithmetic: x86-64 intrinsics" in r.stdout
    assert "ALL OK" in r.stdout


@pytest.mark.skipif(not (shutil.which("aarch64-linux-gnu-gcc") and shutil.which("qemu-aarch64")
                         and (AARCH64_SYSROOT / "usr" / "include" / "openssl" / "evp.h").is_file()),
                    reason="no aarch64 cross toolchain, qemu-user or OpenSSL arm64 sysroot (scripts/setup.sh)")
def test_aarch64_selftest_under_qemu():
    """cross-built for aarch64 (GCC), run under qemu-aarch64 against OpenSSL for aarch64"""
    if platform.machine() == "aarch64":
        pytest.skip("native aarch64: the normal selftest already runs the portable code")
    r = _make("selftest-aarch64", "SELFTEST_N=300")
    _assert_selftest_ok(r, 300)


def test_target_without_int128_stops_with_a_clear_error():
    """a 32-bit target (no unsigned __int128) must not build the SM2 code"""
    cc = os.environ.get("CC", "gcc")
    r = subprocess.run([cc, "-fsyntax-only", "-U__SIZEOF_INT128__", "-I", str(SOFTTOKEN_DIR / "src"),
                        str(SOFTTOKEN_DIR / "src" / "sm2p256_field.c")], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "sm2p256: needs GCC or Clang on a 64-bit target with unsigned __int128" in r.stderr, r.stderr
