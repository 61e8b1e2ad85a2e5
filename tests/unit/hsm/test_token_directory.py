"""The software token's directory is fixed once this process has loaded the module (hsm.token):
a second configuration naming another directory must not repoint a later C_Initialize (a reinitialised
module would otherwise open an empty token and every key would seem missing)."""
from __future__ import annotations

import dataclasses
import os
import secrets

from hsm.token import prepare_environment


def test_a_loaded_module_keeps_its_directory(softtoken_km, softtoken_config, tmp_path, caplog):
    label = f"dir-fixed-{secrets.token_hex(4)}"
    softtoken_km.generate_key_pair(label)
    before = os.environ["RACENTRE_SOFTTOKEN_DIR"]
    other = dataclasses.replace(softtoken_config,
                                softtoken=dataclasses.replace(softtoken_config.softtoken, dir=str(tmp_path / "t")))
    prepare_environment(other)
    assert os.environ["RACENTRE_SOFTTOKEN_DIR"] == before
    assert "already loaded" in caplog.text
    assert not (tmp_path / "t").exists()
    # the keys of the session token are still reachable after a reinitialisation of the module
    softtoken_km.pool.recover()
    assert softtoken_km.find_key(label).label == label
    softtoken_km.delete_key(label)
