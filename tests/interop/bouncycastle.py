"""Independent verification of our artefacts with Bouncy Castle (Java).

``tests/interop/bc/BcVerify.java`` is compiled once per source version into
``build/bc-harness/<hash>/`` (under a file lock, so parallel pytest workers do not race), packed
into a jar and given an application class-data-sharing archive trained by its ``selftest``
subcommand, which cuts JVM start-up by about a third.

    bc_verify("csr", "req.pem")                       -> CompletedProcess (0 ok, 1 failed, 2 usage/parse)
    bc_verify_many([["cert", c, ca], ["crl", crl, ca]]) -> [CompletedProcess, ...] in ONE JVM

Subcommands (see the header of BcVerify.java): sm2-sig, cert, cert-path, csr, crl, ocsp, cms,
tsp, seal, ses-sig, selftest.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
from pathlib import Path
from typing import Iterable, Sequence

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "bc" / "BcVerify.java"
REPO_ROOT = HERE.parents[1]
BUILD_ROOT = Path(os.environ.get("BC_HARNESS_BUILD_DIR", REPO_ROOT / "build" / "bc-harness"))
JAR_DIR = Path(os.environ.get("BC_JAR_DIR", "/usr/share/java"))
BC_JARS = tuple(JAR_DIR / name for name in ("bcprov.jar", "bcpkix.jar", "bcutil.jar"))
SKIP_REASON = "Bouncy Castle not installed: apt-get install libbcprov-java libbcpkix-java libbcutil-java"

JVM_FLAGS = (
    "-Xshare:auto",
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseSerialGC",
    "-XX:-UsePerfData",
    "-Xlog:disable",
)
DEFAULT_TIMEOUT = 60.0

_built: Path | None = None


class BcHarnessError(RuntimeError):
    """The harness itself could not be built or run (not a verification failure)."""


def bc_available() -> bool:
    """True when java, javac and the three Bouncy Castle jars are present."""
    return (
        shutil.which("java") is not None
        and shutil.which("javac") is not None
        and all(j.is_file() for j in BC_JARS)
    )


def require_bc() -> None:
    """Skip the calling test when (and only when) Java or Bouncy Castle is absent."""
    if not bc_available():
        import pytest

        pytest.skip(SKIP_REASON)


def _classpath(build: Path) -> str:
    return os.pathsep.join([str(build / "bcverify.jar"), *(str(j) for j in BC_JARS)])


def _fingerprint() -> str:
    h = hashlib.sha256(SOURCE.read_bytes())
    for tool in ("java", "javac"):
        h.update(os.path.realpath(shutil.which(tool) or tool).encode())
    for jar in BC_JARS:
        st = os.stat(jar)
        h.update(f"{os.path.realpath(jar)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _build() -> Path:
    """Compile BcVerify once (per source hash) and return its build directory."""
    global _built
    if _built is not None:
        return _built
    if not bc_available():
        raise BcHarnessError(SKIP_REASON)
    build = BUILD_ROOT / _fingerprint()
    ready = build / "READY"
    if not ready.exists():
        BUILD_ROOT.mkdir(parents=True, exist_ok=True)
        with open(BUILD_ROOT / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if not ready.exists():
                    _compile_into(build)
                    ready.write_text("ok\n")
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    _built = build
    return build


def _compile_into(build: Path) -> None:
    if build.exists():  # a half-finished build from a killed process
        shutil.rmtree(build)
    classes = build / "classes"
    classes.mkdir(parents=True)
    jars = os.pathsep.join(str(j) for j in BC_JARS)
    _run_checked(["javac", "-nowarn", "-Xlint:none", "-d", str(classes), "-cp", jars, str(SOURCE)], "javac")
    jar_tool = shutil.which("jar") or str(Path(os.path.realpath(shutil.which("javac") or "javac")).parent / "jar")
    _run_checked([jar_tool, "cf", str(build / "bcverify.jar"), "-C", str(classes), "."], "jar")
    # Train a dynamic CDS archive (needs the jar at its final path); optional, so failures are ignored.
    work = build / "selftest"
    work.mkdir()
    jsa = build / "bcverify.jsa"
    proc = subprocess.run(
        ["java", *JVM_FLAGS, f"-XX:ArchiveClassesAtExit={jsa}", "-cp", _classpath(build), "BcVerify",
         "selftest", str(work)],
        capture_output=True, text=True, timeout=120,
    )
    if proc.returncode != 0:
        jsa.unlink(missing_ok=True)
        if "OK selftest" not in proc.stdout:
            raise BcHarnessError(f"BcVerify selftest failed: {proc.stdout}{proc.stderr}")
    shutil.rmtree(work, ignore_errors=True)


def _run_checked(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise BcHarnessError(f"{what} failed ({proc.returncode}): {proc.stderr.strip()}")


def _java_cmd(build: Path) -> list[str]:
    cmd = ["java", *JVM_FLAGS]
    jsa = build / "bcverify.jsa"
    if jsa.exists():
        cmd.append(f"-XX:SharedArchiveFile={jsa}")
    return [*cmd, "-cp", _classpath(build), "BcVerify"]


def _argv(items: Iterable[object]) -> list[str]:
    out = [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in items]
    for a in out:
        if any(c in a for c in "\t\n\r"):
            raise ValueError(f"argument contains TAB/newline, not allowed: {a!r}")
    return out


def bc_verify(subcommand: str, *args: object, timeout: float = DEFAULT_TIMEOUT) -> subprocess.CompletedProcess:
    """Run one BcVerify subcommand in its own JVM.

    returncode 0 = verified, 1 = verification failed (reason on stderr), 2 = usage/parse error.
    """
    cmd = [*_java_cmd(_build()), *_argv([subcommand, *args])]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def bc_verify_many(
    argvs: Sequence[Sequence[object]], timeout: float | None = None
) -> list[subprocess.CompletedProcess]:
    """Run several ``[subcommand, *args]`` verifications in one JVM; one CompletedProcess each."""
    lines = [_argv(a) for a in argvs]
    if not lines:
        return []
    if any(not line or not line[0] for line in lines):
        raise ValueError("each argv needs a subcommand")
    if timeout is None:
        timeout = DEFAULT_TIMEOUT + 2.0 * len(lines)
    stdin = "".join("\t".join(line) + "\n" for line in lines)
    proc = subprocess.run(
        [*_java_cmd(_build()), "batch"], input=stdin, capture_output=True, text=True, timeout=timeout
    )
    out_lines = proc.stdout.splitlines()
    if len(out_lines) != len(lines):
        raise BcHarnessError(
            f"batch returned {len(out_lines)} results for {len(lines)} commands "
            f"(rc={proc.returncode}): {proc.stderr.strip()[:2000]}"
        )
    results = []
    for argv, line in zip(lines, out_lines):
        rc, out, err = line.split("\t", 2)
        results.append(
            subprocess.CompletedProcess(
                args=argv,
                returncode=int(rc),
                stdout=_unescape(out) + ("\n" if out else ""),
                stderr=_unescape(err) + ("\n" if err else ""),
            )
        )
    return results


def bc_ok(result: subprocess.CompletedProcess) -> bool:
    return result.returncode == 0


def assert_bc_ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """Assert a verification passed, with BC's reason in the failure message."""
    assert result.returncode == 0, f"BC rejected {result.args}: rc={result.returncode} {result.stderr.strip()}"
    return result


def assert_bc_fails(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """Assert a verification failed as a verification failure (exit 1), not a parse error."""
    assert result.returncode == 1, (
        f"expected BC to reject {result.args} (rc 1), got rc={result.returncode} "
        f"stdout={result.stdout.strip()!r} stderr={result.stderr.strip()!r}"
    )
    return result


def _unescape(s: str) -> str:
    out, i = [], 0
    while i < len(s):
        c = s[i]
        if c == "\\" and i + 1 < len(s):
            out.append({"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}.get(s[i + 1], s[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)
