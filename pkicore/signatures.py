"""Signature encodings: DER SEQUENCE {r, s} (RFC 3279 §2.2.3, GB/T 35276 §7.2) <-> raw r || s (PKCS#11)."""
from __future__ import annotations

from asn1crypto.algos import DSASignature


def _der_integer(value: bytes) -> bytes:
    value = value.lstrip(b"\x00") or b"\x00"
    if value[0] & 0x80:
        value = b"\x00" + value
    return b"\x02" + bytes([len(value)]) + value


def raw_to_der(raw: bytes) -> bytes:
    """r || s (equal halves, as PKCS#11 returns for ECDSA and SM2) -> DER SEQUENCE {r, s}.

    Encoded by hand: it runs once per HSM signature, and asn1crypto's generic path costs more than
    the rest of our per-signature overhead. Halves up to 66 bytes (P-521) keep short-form lengths.
    """
    if not raw or len(raw) % 2 or len(raw) > 132:
        raise ValueError("raw signature must be r || s of equal lengths (at most 66 bytes each)")
    half = len(raw) // 2
    body = _der_integer(raw[:half]) + _der_integer(raw[half:])
    if len(body) < 0x80:
        return b"\x30" + bytes([len(body)]) + body
    return b"\x30\x81" + bytes([len(body)]) + body


def der_to_ints(der: bytes) -> tuple[int, int]:
    """Strict DER SEQUENCE {r, s}: BER forms, trailing bytes and non-positive integers are refused."""
    try:
        sig = DSASignature.load(der, strict=True)
        r, s = sig["r"].native, sig["s"].native
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(f"malformed signature encoding: {exc}") from exc
    if DSASignature({"r": r, "s": s}).dump() != der:
        raise ValueError("signature is not DER (non-minimal encoding)")
    if r <= 0 or s <= 0:
        raise ValueError("signature integers must be positive")
    return r, s


def der_to_raw(der: bytes, size: int = 32) -> bytes:
    """DER SEQUENCE {r, s} -> r || s with each half left-padded to ``size`` bytes."""
    r, s = der_to_ints(der)
    if r.bit_length() > size * 8 or s.bit_length() > size * 8:
        raise ValueError("signature integers out of range")
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")
