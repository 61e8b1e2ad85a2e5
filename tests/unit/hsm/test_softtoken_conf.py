"""The software token's own settings (slots, PBKDF2 iterations, PIN tries) live in racentre.toml
``[softtoken]``: ``prepare_environment`` writes them to the token's softtoken.conf before C_Initialize, and
the C token (src/config.c) runs with them."""
from __future__ import annotations

import pytest

from hsm.config import SOFTTOKEN_CONF
from hsm.token import prepare_environment
from racentre.config import load_config
from tests.conftest import run_python


def _config(tmp_path, body: str):
    path = tmp_path / "racentre.toml"
    path.write_text(f'[softtoken]\ndir = "tok"\n{body}', encoding="utf-8")
    return load_config(path, environ={})


def test_settings_are_written_to_the_token_file(tmp_path, monkeypatch):
    monkeypatch.delenv("RACENTRE_SOFTTOKEN_DIR", raising=False)     # restored afterwards
    config = _config(tmp_path, "slots = 3\npbkdf2_iterations = 1000\nmax_pin_failures = 4\n")
    prepare_environment(config.hsm)
    conf = tmp_path / "tok" / SOFTTOKEN_CONF
    lines = [line for line in conf.read_text().splitlines() if not line.startswith("#")]
    assert lines == ["slots = 3", "pbkdf2_iterations = 1000", "max_pin_failures = 4"]
    mtime = conf.stat().st_mtime_ns
    prepare_environment(config.hsm)                 # unchanged settings: the file is not rewritten
    assert conf.stat().st_mtime_ns == mtime


def test_a_hand_written_file_is_kept_when_nothing_is_set(tmp_path, monkeypatch):
    monkeypatch.delenv("RACENTRE_SOFTTOKEN_DIR", raising=False)
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / SOFTTOKEN_CONF).write_text("slots = 5\n")
    prepare_environment(_config(tmp_path, "").hsm)
    assert (tmp_path / "tok" / SOFTTOKEN_CONF).read_text() == "slots = 5\n"


@pytest.mark.hsm
def test_the_token_runs_with_the_configured_slots(tmp_path):
    (tmp_path / "racentre.toml").write_text('[softtoken]\ndir = "tok"\nslots = 3\n')
    result = run_python(
        "import pkcs11\n"
        "from hsm.token import prepare_environment\n"
        "from racentre.config import load_config\n"
        f"config = load_config({str(tmp_path / 'racentre.toml')!r}, environ={{}})\n"
        "prepare_environment(config.hsm)\n"
        "print(len(pkcs11.lib(config.hsm.module).get_slots()))\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"
