"""tests/cli_session.py answers as `python -m racentre.cli` does: the same exit status, standard output and
standard error (the usage lines aside, which name the program as it was started) for a help page, a usage
error (exit 2) and a configuration refused with PkiError's "error: ..." (exit 2), each twice in one
session."""
from __future__ import annotations

import re
import subprocess
import sys

from tests.cli_session import CliSession, child_env


def _same(a: subprocess.CompletedProcess, b: subprocess.CompletedProcess) -> None:
    def usage(text: str) -> str:
        return re.sub(r"(Usage:|Try) '?[^ ]+( -m racentre\.cli)?", r"\1 PROG", text)
    assert (a.returncode, usage(a.stdout), usage(a.stderr)) == (b.returncode, usage(b.stdout), usage(b.stderr))


def test_a_session_answers_as_a_process_of_its_own(tmp_path):
    (tmp_path / "racentre.toml").write_text('[hsm]\ntoken = "absent"\n[softtoken]\ndir = "softtoken"\n'
                                            'auto_init = false\n')
    (tmp_path / "softtoken").mkdir()
    env = child_env(RACENTRE_CONFIG=str(tmp_path / "racentre.toml"), RACENTRE_HSM_PIN="session-pin")
    commands = [("--help",), ("no-such-command",), ("hsm", "info")]
    own = [subprocess.run([sys.executable, "-m", "racentre.cli", *args], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120) for args in commands]
    assert [p.returncode for p in own] == [0, 2, 2] and own[2].stderr.startswith("error: ")
    with CliSession(env, tmp_path) as session:
        for _ in range(2):                                   # and again, in the same interpreter
            for args, alone in zip(commands, own):
                _same(session.run(*args), alone)
