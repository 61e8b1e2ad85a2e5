"""Many `racentre` commands in ONE child interpreter, each as `python -m racentre.cli ARGS` would run it.

Importing racentre.cli costs ~1.5 s of CPU; a test that runs twenty commands in twenty interpreters spends
most of its time there. A ``CliSession`` starts one interpreter (with the environment and working folder
the test gives it, so with its own token directory, and without tests/conftest.py) and runs each command
through ``racentre.cli.main``, the console script's own entry point: the same PkiError -> exit 2 and
Click handling, a fresh argv, stdin, stdout and stderr per command (click.testing's isolation), and an
exception that escapes is printed as a traceback with exit status 1, as the interpreter would. Usage lines
name the program "racentre" (as the console script does; `python -m racentre.cli` names itself so). Each
command builds its own services from the configuration, as in a fresh process; what the session shares is
the loaded PKCS#11 module, so a test that must prove that something reached the token's files runs that
step in a process of its own (``subprocess.run``) before it starts the session.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
from pathlib import Path

_DRIVER = r"""
import json, os, sys, traceback
from click import formatting
from click.testing import CliRunner
requests = sys.stdin
replies = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)              # what C code or a child writes to fd 1 goes to stderr, never into the replies
from racentre.cli import main
runner = CliRunner()
for line in requests:
    request = json.loads(line)
    os.chdir(request["cwd"])
    with runner.isolation(input=request["stdin"]) as streams:
        sys.argv = ["racentre", *request["args"]]
        formatting.FORCED_WIDTH = None     # the isolation's fixed 80 columns: a process measures its terminal
        code = 0
        try:
            main()
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
                code = 1
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        out, err = streams[0].getvalue(), streams[1].getvalue()
    replies.write(json.dumps({"returncode": code, "stdout": out.decode("utf-8", "replace"),
                              "stderr": err.decode("utf-8", "replace")}) + "\n")
    replies.flush()
"""


class CliSession:
    """``run(*args, stdin=None)`` -> subprocess.CompletedProcess (text), from one long-lived interpreter."""

    def __init__(self, env: dict, cwd: Path, timeout: float = 300):
        self.cwd, self.timeout = Path(cwd), timeout
        self._log = tempfile.TemporaryFile()          # the interpreter's own stderr (not a command's)
        self._proc = subprocess.Popen([sys.executable, "-c", _DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=self._log, env=env, cwd=self.cwd, text=True, encoding="utf-8")

    def run(self, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
        args = [str(a) for a in args]
        self._proc.stdin.write(json.dumps({"args": args, "stdin": stdin, "cwd": str(self.cwd)}) + "\n")
        self._proc.stdin.flush()
        ready, _, _ = select.select([self._proc.stdout], [], [], self.timeout)
        line = self._proc.stdout.readline() if ready else ""
        if not line:
            raise AssertionError(f"racentre {args}: no answer from the CLI session ({self._stderr()[-3000:]})")
        reply = json.loads(line)
        return subprocess.CompletedProcess(["racentre", *args], reply["returncode"], reply["stdout"], reply["stderr"])

    def _stderr(self) -> str:
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def close(self) -> None:
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=60)
        finally:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            self._proc.stdout.close()
            self._log.close()

    def __enter__(self) -> "CliSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def child_env(**extra) -> dict:
    """This process's environment without RACENTRE_* settings, with PYTHONPATH at the repository."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RACENTRE_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    env.update(extra)
    return env
