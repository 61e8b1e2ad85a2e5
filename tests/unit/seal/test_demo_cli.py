"""The demo artefacts and the ``racentre seal`` CLI group."""
from __future__ import annotations

import json
import types

from click.testing import CliRunner

from seal import ses
from seal.cli import seal_group
from seal.demo import write_demo_artefacts
from seal.verify import verify_document
from tests.unit.seal.sealpki import TESTDATA


def test_demo_artefacts(db, softtoken_km, tsa, tmp_path):
    services = types.SimpleNamespace(key_manager=softtoken_km, db=db)
    written = write_demo_artefacts(services, tmp_path, tsa_respond=tsa.respond,
                                   tsa_trust=tsa.units["default"].chain)
    assert set(written) == {"seal.esl", "seal-maker.pem", "unsealed.pdf", "sealed.pdf", "sealed.ofd",
                            "sealed-verify.json"}
    assert ses.verify_seal((tmp_path / "seal.esl").read_bytes()).ok
    report = json.loads((tmp_path / "sealed-verify.json").read_text())
    assert report["sealed.pdf"]["indication"] == "TOTAL_PASSED" and len(report["sealed.pdf"]["seals"]) == 2
    assert all(s["timestamp_time"] and s["time_proven"] for s in report["sealed.pdf"]["seals"])
    assert report["sealed.ofd"]["indication"] == "TOTAL_PASSED" and report["sealed.ofd"]["seals"][0]["time_proven"]
    # without the demo's trust anchors our verifier cannot tell: intact, but no chain
    alone = verify_document((tmp_path / "sealed.ofd").read_bytes())
    assert alone.indication.value == "INDETERMINATE" and alone.seals[0].signature_intact
    assert alone.seals[0].sub_indication.value == "NO_CERTIFICATE_CHAIN_FOUND"


def test_cli_verify():
    """Exit status 0 TOTAL_PASSED, 1 TOTAL_FAILED, 3 INDETERMINATE; the text names the indication."""
    runner = CliRunner()
    untrusted = runner.invoke(seal_group, ["verify", str(TESTDATA / "v4signed.ofd")])
    assert untrusted.exit_code == 3 and "INDETERMINATE" in untrusted.output and "signature intact" in untrusted.output
    seal = runner.invoke(seal_group, ["verify", "--json", str(TESTDATA / "UserV1.esl")])
    out = json.loads(seal.output)
    assert seal.exit_code == 1 and out["seals"][0]["details"]["seal"]["version"] == 1
    assert (out["indication"], out["sub_indication"]) == ("TOTAL_FAILED", "EXPIRED")     # validEnd 2022-04-22
    bad = runner.invoke(seal_group, ["verify", str(TESTDATA / "helloworld.ofd")])
    assert bad.exit_code == 3 and "no seal" in bad.output


def test_cli_seal_types_match_the_table():
    choice = next(p for p in seal_group.commands["make"].params if p.name == "seal_type").type.choices
    assert sorted(choice) == sorted(ses.SEAL_TYPES)
