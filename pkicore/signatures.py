"""Signature encodings: DER SEQUENCE {r, s} (RFC 3279 §2.2.3, GB/T 35276 §7.2) <-> raw r || s (PKCS#11)."""
from __future__ import annotations


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


def _der_length(der: bytes, pos: int) -> tuple[int, int]:
    """(length, position after it) of a DER length octet string (X.690 §10.1: minimal, definite)."""
    if pos >= len(der):
        raise ValueError("malformed signature encoding: truncated")
    first = der[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    count = first & 0x7F
    if count == 0 or count > 4 or pos + count > len(der) or der[pos] == 0:
        raise ValueError("signature is not DER (indefinite or non-minimal length)")
    length = int.from_bytes(der[pos:pos + count], "big")
    if length < 0x80:
        raise ValueError("signature is not DER (non-minimal encoding)")
    return length, pos + count


def _der_positive_integer(der: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(der) or der[pos] != 0x02:
        raise ValueError("malformed signature encoding: expected an INTEGER")
    length, pos = _der_length(der, pos + 1)
    end = pos + length
    if length == 0 or end > len(der):
        raise ValueError("malformed signature encoding: bad INTEGER length")
    if der[pos] & 0x80:
        raise ValueError("signature integers must be positive")
    if length > 1 and der[pos] == 0 and not der[pos + 1] & 0x80:
        raise ValueError("signature is not DER (non-minimal encoding)")
    value = int.from_bytes(der[pos:end], "big")
    if value == 0:
        raise ValueError("signature integers must be positive")
    return value, end


def der_to_ints(der: bytes) -> tuple[int, int]:
    """Strict DER SEQUENCE {r, s}: BER forms, trailing bytes and non-positive integers are refused.

    Parsed by hand (X.690 §8.3, §10.1): it runs on every signature the HSM verifies, and the
    asn1crypto load-and-re-encode check cost about as much as the rest of the call.
    """
    der = bytes(der)
    if len(der) < 2 or der[0] != 0x30:
        raise ValueError("malformed signature encoding: expected a SEQUENCE")
    length, pos = _der_length(der, 1)
    if pos + length != len(der):
        raise ValueError("malformed signature encoding: length does not match the data")
    r, pos = _der_positive_integer(der, pos)
    s, pos = _der_positive_integer(der, pos)
    if pos != len(der):
        raise ValueError("malformed signature encoding: trailing data inside the SEQUENCE")
    return r, s


def der_to_raw(der: bytes, size: int = 32) -> bytes:
    """DER SEQUENCE {r, s} -> r || s with each half left-padded to ``size`` bytes."""
    r, s = der_to_ints(der)
    if r.bit_length() > size * 8 or s.bit_length() > size * 8:
        raise ValueError("signature integers out of range")
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")
