"""Unique, valid test subjects (identity numbers and credit codes computed here, not by ra.id_numbers)."""
from __future__ import annotations

import random
import secrets

_rng = random.SystemRandom()
_USCC_SET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def id_number() -> str:
    body = "330106" + f"{_rng.randint(1950, 2004)}{_rng.randint(1, 12):02d}{_rng.randint(1, 28):02d}" \
        + f"{_rng.randint(0, 999):03d}"
    total = sum(int(d) * (2 ** (17 - i) % 11) for i, d in enumerate(body))
    return body + "10X98765432"[total % 11]


def uscc() -> str:
    while True:
        org8 = "".join(_rng.choice(_USCC_SET) for _ in range(8))
        c = 11 - sum((int(ch) if ch.isdigit() else ord(ch) - 55) * w
                     for ch, w in zip(org8, (3, 7, 9, 10, 5, 8, 4, 2))) % 11
        first17 = "11330100" + org8 + {10: "X", 11: "0"}.get(c, str(c))
        weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
        c = 31 - sum(_USCC_SET.index(ch) * w for ch, w in zip(first17, weights)) % 31
        return first17 + _USCC_SET[0 if c == 31 else c]


def host() -> str:
    return f"app-{secrets.token_hex(4)}.zj.gov.cn"


def ipv4() -> str:
    return f"10.{_rng.randint(0, 255)}.{_rng.randint(0, 255)}.{_rng.randint(1, 254)}"


def tag() -> str:
    return secrets.token_hex(3)
