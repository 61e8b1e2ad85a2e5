"""Outside checks of a sealed PDF's international-family seal: the stock ``pyhanko sign validate`` CLI
(pyhanko-cli, in its own process and a clean environment, so pyHanko's default signature validator with no
SM2 code of ours) and OpenSSL 3.0 for the signature's timestamp token (``ts -verify``) and its CMS
(``cms -verify``), each with a failing twin.

    stock_pyhanko_validate(pdf, root, ...)   -> CompletedProcess (0 valid; stdout "<field>:<cert>:INTACT:TRUSTED,...")
    check_pdf_seal_with_openssl(pdf, root, workdir)   asserts, for the last signature of the PDF
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from asn1crypto import cms

from seal import pdf
from tests.interop.openssl_cli import cms_verify, require_openssl, ts_verify

SKIP_REASON = "pyhanko-cli not installed: pip install pyhanko-cli==0.6.0 (setup.cfg [test])"


def _pyhanko() -> str | None:
    beside = Path(sys.executable).with_name("pyhanko")
    return str(beside) if beside.is_file() else shutil.which("pyhanko")


def stock_pyhanko_validate(pdf_path: Path, *trust: Path) -> subprocess.CompletedProcess:
    """``pyhanko sign validate --trust-replace --no-revocation-check --trust T ...``: only ``trust`` as
    anchors, nothing fetched. Skips the calling test when (and only when) pyhanko-cli is absent."""
    exe = _pyhanko()
    if exe is None:
        import pytest  # noqa: PLC0415 - only when skipping

        pytest.skip(SKIP_REASON)
    argv = [exe, "sign", "validate", "--trust-replace", "--no-revocation-check"]
    for t in trust:
        argv += ["--trust", str(t)]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSTARTUP")}
    return subprocess.run(argv + [str(pdf_path)], capture_output=True, text=True, env=env, cwd=pdf_path.parent,
                          timeout=120)


def token_and_signature(sealed: bytes, index: int = -1) -> tuple[bytes, bytes]:
    """(TimeStampToken DER, signature value) of one signature of a sealed PDF."""
    count = len(pdf.reader(sealed).embedded_signatures)
    cms_der, _ = pdf.cms_and_signed_bytes(sealed, index % count)
    si = cms.ContentInfo.load(cms_der)["content"]["signer_infos"][0]
    return si["unsigned_attrs"][0]["values"][0].dump(), si["signature"].native


def check_pdf_seal_with_openssl(pdf_path: Path, root: Path, workdir: Path) -> None:
    """The last signature's timestamp token verifies with ``openssl ts -verify`` over the signature value
    and its CMS with ``openssl cms -verify`` over the ByteRange bytes, both against ``root`` alone; a
    changed signature value or document byte fails each."""
    require_openssl()
    sealed = pdf_path.read_bytes()
    token, signature = token_and_signature(sealed)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "token.der").write_bytes(token)
    (workdir / "signature.bin").write_bytes(signature)
    (workdir / "other.bin").write_bytes(signature[:-1] + bytes([signature[-1] ^ 1]))
    good = ts_verify(workdir / "token.der", root, data=workdir / "signature.bin", token=True)
    assert good.ok, good.stdout + good.stderr
    assert not ts_verify(workdir / "token.der", root, data=workdir / "other.bin", token=True).ok
    count = len(pdf.reader(sealed).embedded_signatures)
    cms_der, signed = pdf.cms_and_signed_bytes(sealed, count - 1)
    (workdir / "seal.p7s").write_bytes(cms_der)
    (workdir / "content.bin").write_bytes(signed)
    (workdir / "changed.bin").write_bytes(signed[:200] + bytes([signed[200] ^ 1]) + signed[201:])
    ok = cms_verify(workdir / "seal.p7s", root, content=workdir / "content.bin")
    assert ok.ok, ok.stdout + ok.stderr
    assert not cms_verify(workdir / "seal.p7s", root, content=workdir / "changed.bin").ok
