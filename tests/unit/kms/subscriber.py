"""The subscriber's side, written independently of our code: SM2 decryption with the C3 check
(GB/T 32918.4 §7), SM3 KDF, SM4-ECB via pyca/cryptography, and an OpenSSL-made signing key."""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from asn1crypto import core, keys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = P - 3
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
G = (0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7,
     0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0)


def _add(p1, p2):
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    if p1[0] == p2[0]:
        if (p1[1] + p2[1]) % P == 0:
            return None
        lam = (3 * p1[0] * p1[0] + A) * pow(2 * p1[1], -1, P) % P
    else:
        lam = (p2[1] - p1[1]) * pow(p2[0] - p1[0], -1, P) % P
    x = (lam * lam - p1[0] - p2[0]) % P
    return x, (lam * (p1[0] - x) - p1[1]) % P


def mul(k, pt=G):
    acc = None
    for bit in bin(k)[2:]:
        acc = _add(acc, acc)
        if bit == "1":
            acc = _add(acc, pt)
    return acc


def sm3(data: bytes) -> bytes:
    return hashlib.new("sm3", data).digest()


def _kdf(z: bytes, klen: int) -> bytes:
    out, ct = b"", 1
    while len(out) < klen:
        out += sm3(z + ct.to_bytes(4, "big"))
        ct += 1
    return out[:klen]


class C3Mismatch(ValueError):
    pass


def sm2_decrypt(d: int, sm2_cipher_der: bytes) -> bytes:
    """Decrypt a GM/T 0009 DER SM2Cipher; refuses points off the curve and a wrong C3."""
    seq = core.Sequence.load(sm2_cipher_der)
    x1, y1 = seq[0].native, seq[1].native
    c3, c2 = seq[2].native, seq[3].native
    if (y1 * y1 - x1 ** 3 - A * x1 - B) % P:
        raise ValueError("C1 not on the curve")
    x2, y2 = mul(d, (x1, y1))
    t = _kdf(x2.to_bytes(32, "big") + y2.to_bytes(32, "big"), len(c2))
    if not any(t):
        raise ValueError("KDF output is zero")
    m = bytes(a ^ b for a, b in zip(c2, t))
    if sm3(x2.to_bytes(32, "big") + m + y2.to_bytes(32, "big")) != c3:
        raise C3Mismatch("C3 check failed")
    return m


def sm4_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    dec = Cipher(algorithms.SM4(key), modes.ECB()).decryptor()
    return dec.update(data) + dec.finalize()


def openssl_sm2_key(path: Path) -> tuple[int, bytes]:
    """(d, SPKI DER) of a key made by `openssl genpkey` (as a subscriber's client would)."""
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2",
                    "-out", str(path)], check=True, capture_output=True)
    der = subprocess.run(["openssl", "pkey", "-in", str(path), "-outform", "DER"], check=True,
                         capture_output=True).stdout   # SEC 1 ECPrivateKey
    d = keys.ECPrivateKey.load(der)["private_key"].native
    spki = subprocess.run(["openssl", "pkey", "-in", str(path), "-pubout", "-outform", "DER"], check=True,
                          capture_output=True).stdout
    return d, spki


def public_point(spki: bytes) -> tuple[int, int]:
    pt = keys.PublicKeyInfo.load(spki)["public_key"].native
    return int.from_bytes(pt[1:33], "big"), int.from_bytes(pt[33:], "big")


def openssl_sm2_certificate(key_path: Path, cert_path: Path, cn: str) -> bytes:
    """A self-signed SM2 certificate (DER) for an OpenSSL key — a named recovery recipient."""
    subprocess.run(["openssl", "req", "-new", "-x509", "-key", str(key_path), "-subj", f"/CN={cn}", "-sm3",
                    "-sigopt", "distid:1234567812345678", "-days", "30", "-outform", "DER", "-out", str(cert_path)],
                   check=True, capture_output=True)
    return cert_path.read_bytes()
