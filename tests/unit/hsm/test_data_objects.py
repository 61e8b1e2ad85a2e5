"""Token data objects (CKO_DATA) through the key manager, on our soft token and on SoftHSMv2 (a real
PKCS#11 module besides ours): create, read, compare-and-set, conflict, delete; and a value written by
another process is what the next read returns (the audit anchor is shared by every node of a site)."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys
import textwrap

import pytest

from hsm import DataConflict

APP = "racentre.test"


@pytest.fixture
def label(any_km):
    name = f"data-{secrets.token_hex(4)}"
    yield name
    any_km.delete_data(name)


def test_compare_and_set_creates_updates_and_refuses(any_km, label):
    assert any_km.read_data(label) is None
    any_km.compare_and_set_data(label, None, b"one", application=APP)
    assert any_km.read_data(label) == b"one"
    with pytest.raises(DataConflict) as exc:
        any_km.compare_and_set_data(label, None, b"again", application=APP)      # exists: no second object
    assert exc.value.current == b"one"
    with pytest.raises(DataConflict) as exc:
        any_km.compare_and_set_data(label, b"stale", b"two", application=APP)
    assert exc.value.current == b"one" and any_km.read_data(label) == b"one"
    any_km.compare_and_set_data(label, b"one", b"two, longer than before", application=APP)
    assert any_km.read_data(label) == b"two, longer than before"
    assert any_km.list_data(APP)[label] == b"two, longer than before"
    assert any_km.delete_data(label) and any_km.read_data(label) is None and not any_km.delete_data(label)


def test_a_value_written_by_another_process_is_read(softtoken_km, softtoken_config, label):
    softtoken_km.compare_and_set_data(label, None, b"v1", application=APP)
    assert softtoken_km.read_data(label) == b"v1"          # this process has the object loaded now
    code = textwrap.dedent(f"""
        from hsm import HsmConfig, KeyManager, SoftTokenConfig
        from pkicore.secret import Secret
        km = KeyManager(HsmConfig(module={softtoken_config.module!r}, token={softtoken_config.token!r},
                                  pin=Secret({softtoken_config.pin.reveal()!r}),
                                  softtoken=SoftTokenConfig(dir={softtoken_config.softtoken.dir!r})))
        km.compare_and_set_data({label!r}, b"v1", b"v2 from another process", application={APP!r})
        km.close()
    """)
    env = dict(os.environ, RACENTRE_SOFTTOKEN_DIR=softtoken_config.softtoken.dir)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert softtoken_km.read_data(label) == b"v2 from another process"
    with pytest.raises(DataConflict):
        softtoken_km.compare_and_set_data(label, b"v1", b"v3", application=APP)   # the stale expectation fails


def test_an_update_cut_short_leaves_both_values_and_the_next_one_cleans_up(any_km, label):
    from pkcs11 import Attribute, ObjectClass

    def make(value):
        any_km.pool.run("test", lambda pooled: pooled.session.create_object({
            Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True, Attribute.PRIVATE: True,
            Attribute.LABEL: label, Attribute.APPLICATION: APP, Attribute.VALUE: value}))
    make(b"old")
    make(b"new")          # the replacement path was interrupted before destroying "old"
    assert sorted(any_km.read_data_values(label)) == [b"new", b"old"]
    with pytest.raises(Exception, match="2 data objects"):
        any_km.read_data(label)
    any_km.compare_and_set_data(label, b"new", b"newer", application=APP)
    assert any_km.read_data_values(label) == [b"newer"]


def test_a_public_object_with_the_label_is_not_taken_for_it(any_km, label):
    from pkcs11 import Attribute, ObjectClass
    any_km.pool.run("test", lambda pooled: pooled.session.create_object({
        Attribute.CLASS: ObjectClass.DATA, Attribute.TOKEN: True, Attribute.PRIVATE: False,
        Attribute.LABEL: label, Attribute.APPLICATION: APP, Attribute.VALUE: b"forged without the PIN"}))
    try:
        assert any_km.read_data(label) is None
    finally:
        any_km.pool.run("test", lambda pooled: [o.destroy() for o in pooled.session.get_objects(
            {Attribute.CLASS: ObjectClass.DATA, Attribute.LABEL: label})])
