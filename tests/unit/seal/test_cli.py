"""The ``racentre seal`` CLI group."""
from __future__ import annotations

import json

from click.testing import CliRunner

from seal import ses
from seal.cli import seal_group
from tests.unit.seal.sealpki import TESTDATA


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
