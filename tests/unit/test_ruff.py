"""The tree passes ruff with the rules of pyproject.toml [tool.ruff] (issue 16, habits): pyflakes,
pycodestyle errors and warnings, bugbear and blind except. The ruff that runs is the pinned one."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PINNED = "0.17.6"        # setup.cfg [test]: ruff==0.17.6


def _ruff() -> str:
    found = Path(sys.executable).with_name("ruff")
    if found.is_file():
        return str(found)
    which = shutil.which("ruff")
    if which is None:
        pytest.fail(f"ruff is not installed: pip install 'ruff=={PINNED}' (setup.cfg [test])")
    return which


def test_ruff_version_is_the_pinned_one():
    version = subprocess.run([_ruff(), "--version"], capture_output=True, text=True, check=True).stdout.split()[-1]
    assert version == PINNED, f"ruff {version} runs, setup.cfg pins {PINNED}: rules may differ"
    assert f"ruff=={PINNED}" in (ROOT / "setup.cfg").read_text()


def test_tree_passes_ruff():
    result = subprocess.run([_ruff(), "check", "--no-cache", "--output-format", "concise", "."], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
