"""Small wrapper around the ``openssl`` (3.0) command line for interop tests.

Verifiers return an :class:`OpensslResult` whose ``ok`` is decided from what openssl prints as well
as its exit status (``req -verify`` and ``crl -CAfile`` exit 0 even when the signature is bad).

SM2: OpenSSL's CLI uses an *empty* user ID unless told otherwise (REFERENCES.md §2), so every SM2
helper here passes ``distid:1234567812345678`` by default. ``openssl verify`` cannot check SM2
certificates signed with the default ID; use Bouncy Castle (``bouncycastle.py``) for those.

``make_reference_pki(dir)`` builds a set of OpenSSL-made artefacts (SM2 keys/signatures/CSRs/certs,
an ECDSA+RSA chain, CRLs, OCSP responses, CMS SignedData, RFC 3161 replies) for tests that need
artefacts nobody here wrote.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

SM2_DEFAULT_ID = "1234567812345678"
SKIP_REASON = "openssl CLI not installed"

@dataclass
class OpensslResult:
    ok: bool
    returncode: int
    stdout: str
    stderr: str
    args: list[str]
    status: str | None = None  # OCSP: good / revoked / unknown

    def __bool__(self) -> bool:  # pragma: no cover - convenience
        return self.ok


def openssl_available() -> bool:
    return shutil.which("openssl") is not None


def require_openssl() -> None:
    if not openssl_available():
        import pytest

        pytest.skip(SKIP_REASON)


def run_openssl(*args: object, input: bytes | None = None, check: bool = False,
                timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run ``openssl args...``; stdout/stderr decoded as text (errors replaced)."""
    argv = ["openssl", *(os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in args)]
    proc = subprocess.run(argv, input=input, capture_output=True, timeout=timeout)
    res = subprocess.CompletedProcess(argv, proc.returncode, proc.stdout.decode("utf-8", "replace"),
                                      proc.stderr.decode("utf-8", "replace"))
    if check and res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def _result(proc: subprocess.CompletedProcess, ok: bool, status: str | None = None) -> OpensslResult:
    return OpensslResult(ok, proc.returncode, proc.stdout, proc.stderr, list(proc.args), status)


def _inform(path: object) -> str:
    with open(path, "rb") as f:
        return "PEM" if b"-----BEGIN" in f.read(4096) else "DER"


# ---------------------------------------------------------------- verifiers

def sm2_verify(public_key: object, message: object, signature: object, distid: str | None = SM2_DEFAULT_ID,
               raw: bool = False, workdir: object | None = None) -> OpensslResult:
    """SM3withSM2 over ``message`` (file); ``signature`` is DER, or 64-byte r||s with ``raw=True``.

    ``public_key`` is a PEM/DER SubjectPublicKeyInfo. ``distid=None`` uses OpenSSL's empty ID.
    """
    sig = Path(signature)
    if raw:
        data = sig.read_bytes()
        if len(data) != 64:
            return OpensslResult(False, 1, "", f"raw signature must be 64 bytes, got {len(data)}", [])
        tmp = Path(workdir) if workdir else sig.parent
        sig = tmp / (sig.name + ".der")
        sig.write_bytes(sm2_raw_to_der(data))
    args = ["pkeyutl", "-verify", "-pubin", "-inkey", public_key, "-keyform", _inform(public_key),
            "-rawin", "-digest", "sm3", "-in", message, "-sigfile", sig]
    if distid is not None:
        args += ["-pkeyopt", f"distid:{distid}"]
    proc = run_openssl(*args)
    return _result(proc, proc.returncode == 0 and "Signature Verified Successfully" in proc.stdout)


def req_verify(csr: object, distid: str | None = SM2_DEFAULT_ID) -> OpensslResult:
    """PKCS#10 self-signature. ``distid`` only matters for SM2 CSRs (pass None for RSA/ECDSA)."""
    args = ["req", "-verify", "-noout", "-in", csr, "-inform", _inform(csr)]
    if distid is not None:
        args += ["-vfyopt", f"distid:{distid}"]
    proc = run_openssl(*args)
    out = proc.stdout + proc.stderr
    return _result(proc, proc.returncode == 0 and "verify OK" in out and "verify failure" not in out)


def verify_chain(cert: object, cafile: object, untrusted: Iterable[object] = (), crls: Iterable[object] = (),
                 crl_check_all: bool = False, attime: int | None = None, purpose: str | None = None,
                 partial_chain: bool = False) -> OpensslResult:
    """``openssl verify`` (RSA/ECDSA chains; SM2 certificates signed with the default ID fail here)."""
    args: list[object] = ["verify", "-CAfile", cafile]
    for u in untrusted:
        args += ["-untrusted", u]
    crls = list(crls)
    for c in crls:
        args += ["-CRLfile", c]
    if crls:
        args.append("-crl_check_all" if crl_check_all else "-crl_check")
    if attime is not None:
        args += ["-attime", str(attime)]
    if purpose:
        args += ["-purpose", purpose]
    if partial_chain:
        args.append("-partial_chain")
    args.append(cert)
    proc = run_openssl(*args)
    return _result(proc, proc.returncode == 0 and proc.stdout.rstrip().endswith(": OK"))


def crl_verify(crl: object, issuer: object) -> OpensslResult:
    proc = run_openssl("crl", "-noout", "-in", crl, "-inform", _inform(crl), "-CAfile", issuer)
    out = proc.stdout + proc.stderr
    return _result(proc, proc.returncode == 0 and "verify OK" in out and "verify fail" not in out)


def ocsp_verify(response: object, issuer: object, cafile: object, serial: int | str | None = None,
                verify_other: object | None = None, trust_responder: object | None = None,
                request: object | None = None) -> OpensslResult:
    """Check a DER OCSP response: signature, responder chain to ``cafile`` (``verify_other``: untrusted
    intermediates; ``trust_responder``: -VAfile). With ``serial`` (int or hex string) ``status`` is
    that certificate's good/revoked/unknown; with ``request`` (the DER request) the nonce is
    checked against it instead (openssl then prints no status)."""
    args: list[object] = ["ocsp", "-respin", response, "-issuer", issuer, "-CAfile", cafile]
    if request is not None:
        args += ["-reqin", request]
    else:
        args.append("-no_nonce")
        if serial is not None:
            args += ["-serial", serial if isinstance(serial, str) else hex(serial)]
    if verify_other is not None:
        args += ["-verify_other", verify_other]
    if trust_responder is not None:
        args += ["-VAfile", trust_responder]
    proc = run_openssl(*args)
    m = re.search(r"^\S+: (good|revoked|unknown)\s*$", proc.stdout, re.M)
    out = proc.stdout + proc.stderr
    ok = proc.returncode == 0 and "Response verify OK" in out and "Verify error" not in out
    return _result(proc, ok, m.group(1) if m else None)


def ts_verify(reply: object, cafile: object, data: object | None = None, digest: str | None = None,
              queryfile: object | None = None, untrusted: object | None = None,
              token: bool = False) -> OpensslResult:
    """``openssl ts -verify`` against data, a hex digest or the original query."""
    args: list[object] = ["ts", "-verify", "-in", reply, "-CAfile", cafile]
    if token:
        args.append("-token_in")
    if data is not None:
        args += ["-data", data]
    elif digest is not None:
        args += ["-digest", digest]
    elif queryfile is not None:
        args += ["-queryfile", queryfile]
    if untrusted is not None:
        args += ["-untrusted", untrusted]
    proc = run_openssl(*args)
    return _result(proc, proc.returncode == 0 and "Verification: OK" in proc.stdout)


def cms_verify(cms: object, cafile: object, content: object | None = None, purpose: str = "any") -> OpensslResult:
    """``openssl cms -verify`` (RSA/ECDSA only; OpenSSL 3.0 cannot check SM2 CMS).

    Intermediates must be inside the SignedData or in ``cafile`` (3.0's ``cms`` has no -untrusted).
    """
    args: list[object] = ["cms", "-verify", "-binary", "-in", cms, "-inform", _inform(cms),
                          "-CAfile", cafile, "-purpose", purpose, "-out", os.devnull]
    if content is not None:
        args += ["-content", content]
    proc = run_openssl(*args)
    return _result(proc, proc.returncode == 0 and "Verification successful" in proc.stderr)


# ---------------------------------------------------------------- small helpers

def sm2_raw_to_der(raw: bytes) -> bytes:
    def integer(b: bytes) -> bytes:
        b = b.lstrip(b"\0") or b"\0"
        if b[0] & 0x80:
            b = b"\0" + b
        return b"\x02" + bytes([len(b)]) + b

    body = integer(raw[:32]) + integer(raw[32:])
    return b"\x30" + bytes([len(body)]) + body


def sm2_der_to_raw(der: bytes) -> bytes:
    assert der[0] == 0x30
    i = 2 if der[1] < 0x80 else 3
    out = b""
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        out += int.from_bytes(der[i + 2:i + 2 + n], "big").to_bytes(32, "big")
        i += 2 + n
    return out


SM2_P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
SM2_A = SM2_P - 3
SM2_N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
SM2_G = (0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7,
         0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0)
_SM2_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a811ccf5501822d03420004")


def sm2_public_from_private(d: int) -> tuple[int, int]:
    """d*G on sm2p256v1 (plain affine double-and-add; for test vectors only, not constant time)."""
    def add(p1, p2):
        if p1 is None:
            return p2
        if p2 is None:
            return p1
        (x1, y1), (x2, y2) = p1, p2
        if x1 == x2 and (y1 + y2) % SM2_P == 0:
            return None
        if p1 == p2:
            lam = (3 * x1 * x1 + SM2_A) * pow(2 * y1, -1, SM2_P) % SM2_P
        else:
            lam = (y2 - y1) * pow(x2 - x1, -1, SM2_P) % SM2_P
        x3 = (lam * lam - x1 - x2) % SM2_P
        return x3, (lam * (x1 - x3) - y1) % SM2_P

    result, addend = None, SM2_G
    while d:
        if d & 1:
            result = add(result, addend)
        addend = add(addend, addend)
        d >>= 1
    assert result is not None
    return result


def sm2_spki_der(x: int, y: int) -> bytes:
    """SubjectPublicKeyInfo (id-ecPublicKey, sm2p256v1) for an uncompressed SM2 point."""
    return _SM2_SPKI_PREFIX + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def flip_byte(data: bytes, index: int, mask: int = 0x01) -> bytes:
    b = bytearray(data)
    b[index] ^= mask
    return bytes(b)


def flip_in(data: bytes, needle: bytes, offset: int = -1, occurrence: int | None = None) -> bytes:
    """Flip one bit of ``needle`` (at ``offset`` within it) inside ``data``.

    ``occurrence=None`` insists that ``needle`` occurs exactly once; otherwise pick that occurrence
    (0 = first, -1 = last).
    """
    starts = [m.start() for m in re.finditer(re.escape(needle), data)]
    if occurrence is None:
        assert len(starts) == 1, f"{needle!r} occurs {len(starts)} times"
        occurrence = 0
    return flip_byte(data, starts[occurrence] + (offset % len(needle)))


def pem_to_der(path: object) -> bytes:
    import base64

    text = Path(path).read_text()
    body = text.split("-----", 2)[2].split("-----END", 1)[0]
    return base64.b64decode("".join(line for line in body.splitlines() if ":" not in line))


# ---------------------------------------------------------------- reference artefacts made by OpenSSL

@dataclass
class ReferencePki:
    dir: Path
    files: dict[str, Path] = field(default_factory=dict)
    serials: dict[str, int] = field(default_factory=dict)
    values: dict[str, bytes] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Path:
        return self.files[name]

    def write(self, name: str, data: bytes) -> Path:
        p = self.dir / name
        p.write_bytes(data)
        self.files[name] = p
        return p

    def tampered(self, name: str, needle: bytes | None = None, offset: int = -1,
                 occurrence: int | None = None, out: str | None = None) -> Path:
        """A copy of artefact ``name`` (as DER if it was PEM) with one bit of ``needle`` flipped,
        or with its last byte flipped when ``needle`` is None. Stored as ``<name>.flip``."""
        src = self.files[name]
        data = src.read_bytes()
        if data.lstrip().startswith(b"-----BEGIN"):
            data = pem_to_der(src)
        data = flip_byte(data, len(data) - 1) if needle is None else flip_in(data, needle, offset, occurrence)
        return self.write(out or f"{name}.flip", data)


SERIALS = {
    "int": 0x1A7E,
    "leaf": 0x1234ABCD,          # good
    "leaf_rsa": 0x5EED0001,      # revoked
    "ocsp": 0x0C5B,
    "tsa": 0x75A0,
    "sm2_leaf": 0x5A2001,
    "sm2_leaf_emptyid": 0x5A2002,
    "unknown": 0x777777,
}

_EXT = """
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[leaf_ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ocsp_ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = OCSPSigning
[tsa_ext]
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

_CA_CNF = """
[ca]
default_ca = ca_section
[ca_section]
dir = {dir}
database = {dir}/index.txt
crlnumber = {dir}/crlnumber
certificate = {cert}
private_key = {key}
default_md = sha256
default_crl_days = 7
"""

_TS_CNF = """
[tsa]
default_tsa = tsa_config1
[tsa_config1]
serial = {dir}/tsaserial
crypto_device = builtin
signer_cert = {dir}/tsa.pem
signer_key = {dir}/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.5
digests = sha256, sha384, sha512
accuracy = secs:1, millisecs:500
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def make_reference_pki(workdir: object) -> ReferencePki:
    """Build OpenSSL-made artefacts in ``workdir`` (about 50 openssl runs, well under 2 s)."""
    d = Path(workdir)
    d.mkdir(parents=True, exist_ok=True)
    pki = ReferencePki(d, serials=dict(SERIALS))
    f = pki.files

    def o(*args: object) -> subprocess.CompletedProcess:
        return run_openssl(*args, check=True)

    def path(name: str) -> Path:
        f[name] = d / name
        return f[name]

    (d / "ext.cnf").write_text(_EXT)
    ext = d / "ext.cnf"
    distid = f"distid:{SM2_DEFAULT_ID}"

    # --- SM2 key, raw signatures
    o("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2", "-out", path("sm2.key"))
    o("pkey", "-in", f["sm2.key"], "-pubout", "-out", path("sm2.pub"))
    o("pkey", "-in", f["sm2.key"], "-pubout", "-outform", "DER", "-out", path("sm2.pub.der"))
    pki.write("msg", b"Interop message signed by OpenSSL with SM3withSM2\n")
    o("pkeyutl", "-sign", "-inkey", f["sm2.key"], "-rawin", "-digest", "sm3", "-pkeyopt", distid,
      "-in", f["msg"], "-out", path("sm2.sig"))
    pki.write("sm2.sig.raw", sm2_der_to_raw(f["sm2.sig"].read_bytes()))
    o("pkeyutl", "-sign", "-inkey", f["sm2.key"], "-rawin", "-digest", "sm3", "-pkeyopt", "distid:ALICE123@YAHOO.COM",
      "-in", f["msg"], "-out", path("sm2.sig.alice"))

    # --- SM2 CSRs and certificates
    o("req", "-new", "-key", f["sm2.key"], "-sm3", "-sigopt", distid, "-subj", "/CN=SM2 CSR FlipTarget/O=Interop",
      "-out", path("sm2.csr"))
    o("req", "-new", "-key", f["sm2.key"], "-sm3", "-subj", "/CN=SM2 CSR empty id", "-out", path("sm2_emptyid.csr"))
    o("req", "-x509", "-new", "-key", f["sm2.key"], "-sm3", "-sigopt", distid, "-days", "30",
      "-subj", "/CN=SM2 Root FlipTarget/O=Interop", "-addext", "basicConstraints=critical,CA:TRUE",
      "-addext", "keyUsage=critical,keyCertSign,cRLSign,digitalSignature", "-out", path("sm2_root.pem"))
    o("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2", "-out", path("sm2_leaf.key"))
    o("req", "-new", "-key", f["sm2_leaf.key"], "-sm3", "-sigopt", distid, "-subj", "/CN=SM2 Leaf/O=Interop",
      "-out", path("sm2_leaf.csr"))
    o("x509", "-req", "-in", f["sm2_leaf.csr"], "-CA", f["sm2_root.pem"], "-CAkey", f["sm2.key"], "-sm3",
      "-sigopt", distid, "-vfyopt", distid, "-set_serial", hex(SERIALS["sm2_leaf"]), "-days", "10",
      "-extfile", ext, "-extensions", "leaf_ext", "-out", path("sm2_leaf.pem"))
    o("x509", "-req", "-in", f["sm2_leaf.csr"], "-CA", f["sm2_root.pem"], "-CAkey", f["sm2.key"], "-sm3",
      "-vfyopt", distid, "-set_serial", hex(SERIALS["sm2_leaf_emptyid"]), "-days", "10",
      "-extfile", ext, "-extensions", "leaf_ext", "-out", path("sm2_leaf_emptyid.pem"))

    # --- ECDSA root -> ECDSA intermediate -> ECDSA leaf / RSA leaf; OCSP responder; TSA
    o("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path("root.key"))
    o("req", "-x509", "-new", "-key", f["root.key"], "-sha256", "-days", "30", "-subj", "/CN=Interop ECDSA Root",
      "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
      "-out", path("root.pem"))

    def issue(name: str, keyalg: list[str], subj: str, ca: str, extsect: str, md: str = "-sha256") -> None:
        o("genpkey", *keyalg, "-out", path(f"{name}.key"))
        o("req", "-new", "-key", f[f"{name}.key"], "-subj", subj, "-out", path(f"{name}.csr"))
        o("x509", "-req", "-in", f[f"{name}.csr"], "-CA", f[f"{ca}.pem"], "-CAkey", f[f"{ca}.key"], md,
          "-set_serial", hex(SERIALS[name]), "-days", "10", "-extfile", ext, "-extensions", extsect,
          "-out", path(f"{name}.pem"))

    ec384 = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]
    ec256 = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    rsa = ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
    issue("int", ec384, "/CN=Interop ECDSA Intermediate", "root", "ca_ext", "-sha384")
    issue("leaf", ec256, "/CN=Interop ECDSA Leaf FlipTarget", "int", "leaf_ext")
    issue("leaf_rsa", rsa, "/CN=Interop RSA Leaf", "int", "leaf_ext")
    issue("ocsp", ec256, "/CN=Interop OCSP Responder", "int", "ocsp_ext")
    issue("tsa", ec256, "/CN=Interop TSA", "root", "tsa_ext")
    # an RSA-signed certificate: the RSA leaf signs a self-issued cert for the RSA path
    o("req", "-x509", "-new", "-key", f["leaf_rsa.key"], "-sha256", "-days", "5", "-subj", "/CN=Interop RSA Self",
      "-out", path("rsa_self.pem"))
    o("req", "-new", "-key", f["leaf.key"], "-subj", "/CN=ECDSA CSR FlipTarget", "-out", path("ec.csr"))
    path("chain.pem").write_text(f["int.pem"].read_text() + f["root.pem"].read_text())

    # --- CRLs (openssl ca -gencrl): the intermediate revokes the RSA leaf; the root's is empty
    for ca in ("int", "root"):
        cadir = d / f"ca_{ca}"
        cadir.mkdir(exist_ok=True)
        (cadir / "index.txt").write_text("")
        (cadir / "crlnumber").write_text("1000\n")
        (cadir / "ca.cnf").write_text(_CA_CNF.format(dir=cadir, cert=f[f"{ca}.pem"], key=f[f"{ca}.key"]))
    icnf = d / "ca_int" / "ca.cnf"
    o("ca", "-config", icnf, "-revoke", f["leaf_rsa.pem"], "-crl_reason", "keyCompromise")
    # the good leaf (and the responder) are in the database as valid
    lines = (d / "ca_int" / "index.txt").read_text()
    for name in ("leaf", "ocsp"):
        h = f"{SERIALS[name]:X}"
        lines += f"V\t391231235959Z\t\t{h.zfill(len(h) + len(h) % 2)}\tunknown\t/CN={name}\n"
    (d / "ca_int" / "index.txt").write_text(lines)
    o("ca", "-config", icnf, "-gencrl", "-out", path("int.crl.pem"))
    o("crl", "-in", f["int.crl.pem"], "-outform", "DER", "-out", path("int.crl"))
    o("ca", "-config", d / "ca_root" / "ca.cnf", "-gencrl", "-out", path("root.crl.pem"))
    o("crl", "-in", f["root.crl.pem"], "-outform", "DER", "-out", path("root.crl"))

    # --- OCSP: request with a nonce for good/revoked/unknown serials; delegated and CA-signed responses
    o("ocsp", "-issuer", f["int.pem"], "-cert", f["leaf.pem"], "-cert", f["leaf_rsa.pem"],
      "-serial", hex(SERIALS["unknown"]), "-reqout", path("ocsp.req"))
    index = d / "ca_int" / "index.txt"
    o("ocsp", "-index", index, "-rsigner", f["ocsp.pem"], "-rkey", f["ocsp.key"], "-CA", f["int.pem"],
      "-reqin", f["ocsp.req"], "-respout", path("ocsp.resp"), "-ndays", "1")
    o("ocsp", "-index", index, "-rsigner", f["int.pem"], "-rkey", f["int.key"], "-CA", f["int.pem"],
      "-reqin", f["ocsp.req"], "-respout", path("ocsp_ca.resp"), "-ndays", "1", "-resp_no_certs")
    pki.values["ocsp_nonce"] = _ocsp_request_nonce(f["ocsp.req"].read_bytes())

    # --- CMS SignedData (ECDSA leaf): attached and detached
    pki.write("content", b"CMS content signed by OpenSSL: FlipTarget\n")
    o("cms", "-sign", "-binary", "-in", f["content"], "-signer", f["leaf.pem"], "-inkey", f["leaf.key"],
      "-certfile", f["int.pem"], "-nodetach", "-outform", "DER", "-out", path("cms.der"))
    o("cms", "-sign", "-binary", "-in", f["content"], "-signer", f["leaf.pem"], "-inkey", f["leaf.key"],
      "-outform", "PEM", "-out", path("cms_detached.pem"))  # leaf certificate only

    # --- RFC 3161 (ECDSA TSA, critical timeStamping EKU)
    (d / "tsaserial").write_text("2A01\n")
    (d / "ts.cnf").write_text(_TS_CNF.format(dir=d))
    pki.write("ts.data", b"data to be timestamped by OpenSSL\n")
    pki.values["ts.sha256"] = hashlib.sha256(f["ts.data"].read_bytes()).digest()
    o("ts", "-query", "-data", f["ts.data"], "-sha256", "-cert", "-out", path("ts.tsq"))
    o("ts", "-query", "-data", f["ts.data"], "-sha256", "-no_nonce", "-out", path("ts_nocert.tsq"))
    o("ts", "-reply", "-config", d / "ts.cnf", "-queryfile", f["ts.tsq"], "-out", path("ts.tsr"))
    o("ts", "-reply", "-config", d / "ts.cnf", "-queryfile", f["ts.tsq"], "-token_out", "-out", path("ts.token"))
    o("ts", "-reply", "-config", d / "ts.cnf", "-queryfile", f["ts_nocert.tsq"], "-out", path("ts_nocert.tsr"))
    return pki


def _ocsp_request_nonce(req_der: bytes) -> bytes:
    from asn1crypto import ocsp

    req = ocsp.OCSPRequest.load(req_der)
    for ext in req["tbs_request"]["request_extensions"]:
        if ext["extn_id"].native == "nonce":
            return ext["extn_value"].parsed.native
    raise ValueError("no nonce in OCSP request")
