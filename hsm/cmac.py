"""CMAC (NIST SP 800-38B) over a 128-bit block cipher that the HSM runs: the MAC construction of
``KeyManager.mac`` (SM4-CMAC), kept apart so that it can be checked against an independent CMAC."""
from __future__ import annotations

from typing import Callable

BLOCK = 16
_RB = 0x87                       # SP 800-38B §5.3: R_128 = 0^120 || 10000111


def _dbl(block: bytes) -> bytes:
    """Doubling in GF(2^128) (SP 800-38B §6.1 steps 2-3)."""
    n = int.from_bytes(block, "big") << 1
    if n >> 128:
        n = (n & ((1 << 128) - 1)) ^ _RB
    return n.to_bytes(BLOCK, "big")


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


def cmac(ecb_zero: Callable[[], bytes], cbc_zero_iv: Callable[[bytes], bytes], message: bytes) -> bytes:
    """CMAC (SP 800-38B §6.2) over a 128-bit block cipher given as two calls: ``ecb_zero()`` = E_K(0^128)
    and ``cbc_zero_iv(data)`` = CBC-encryption of ``data`` (whole blocks) under K with a zero IV."""
    k1 = _dbl(ecb_zero())
    k2 = _dbl(k1)
    if message and len(message) % BLOCK == 0:
        last = _xor(message[-BLOCK:], k1)
        head = message[:-BLOCK]
    else:
        cut = len(message) - len(message) % BLOCK
        tail = message[cut:] + b"\x80" + b"\x00" * (BLOCK - 1 - len(message) % BLOCK)
        last, head = _xor(tail, k2), message[:cut]
    return cbc_zero_iv(head + last)[-BLOCK:]
