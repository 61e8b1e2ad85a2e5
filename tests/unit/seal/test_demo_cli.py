"""The demo artefacts and the ``racentre seal`` CLI group."""
from __future__ import annotations

import json
import types

from click.testing import CliRunner

from seal import ses
from seal.cli import seal_group
from seal.demo import write_demo_artefacts
from seal.timestamps import SealTimestamps
from seal.verify import verify_document
from tests.unit.seal.sealpki import TESTDATA


def test_demo_artefacts(db, softtoken_km, tsa, tmp_path):
    services = types.SimpleNamespace(key_manager=softtoken_km, db=db)
    written = write_demo_artefacts(services, tmp_path, timestamps=SealTimestamps.of_authority(tsa),
                                   tsa_trust=tsa.units["default"].chain)
    assert set(written) == {"seal.esl", "seal-maker.pem", "unsealed.pdf", "sealed.pdf", "sealed.ofd",
                            "sealed-verify.json"}
    assert ses.verify_seal((tmp_path / "seal.esl").read_bytes()).ok
    report = json.loads((tmp_path / "sealed-verify.json").read_text())
    assert report["sealed.pdf"]["ok"] and len(report["sealed.pdf"]["seals"]) == 2
    assert all(s["timestamp_time"] for s in report["sealed.pdf"]["seals"])
    assert report["sealed.ofd"]["ok"] and report["sealed.ofd"]["seals"][0]["timestamp_time"]
    assert verify_document((tmp_path / "sealed.ofd").read_bytes()).ok


def test_cli_verify():
    runner = CliRunner()
    ok = runner.invoke(seal_group, ["verify", str(TESTDATA / "v4signed.ofd")])
    assert ok.exit_code == 0 and "VALID" in ok.output
    seal = runner.invoke(seal_group, ["verify", "--json", str(TESTDATA / "UserV1.esl")])
    assert seal.exit_code == 0 and json.loads(seal.output)["version"] == 1
    bad = runner.invoke(seal_group, ["verify", str(TESTDATA / "helloworld.ofd")])
    assert bad.exit_code == 1 and "no seal" in bad.output


def test_cli_seal_types_match_the_table():
    choice = next(p for p in seal_group.commands["make"].params if p.name == "seal_type").type.choices
    assert sorted(choice) == sorted(ses.SEAL_TYPES)
