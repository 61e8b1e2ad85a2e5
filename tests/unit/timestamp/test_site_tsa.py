"""A site's TSA: `racentre tsa provision` certifies unit keys by the site's own CA only (refused before
`racentre setup`: never a self-signed CA of its own), the certificate lives in the database, and a
second service container on the same database and token — another node, with no files — serves tokens
that verify against the site's root."""
from __future__ import annotations

import dataclasses
import hashlib
import secrets

from click.testing import CliRunner

from racentre.config import Config, DatabaseConfig, ServiceConfig
from racentre.services import Services
from hsm import init_token
from pkicore.secret import Secret
from timestamp.cli import tsa_group
from timestamp.config import TsaConfig
from timestamp.errors import TsaError
from timestamp.verify import verify_token
from tests.pgschema import migrated


def _node(url: str, hsm_config, tsa: TsaConfig) -> Services:
    return Services(Config(hsm=hsm_config, database=DatabaseConfig(url=url), tsa=tsa,
                           service=ServiceConfig(public_url="http://tsa-site.test")))


def test_provision_by_the_site_ca_then_served_by_another_node(softtoken_config, tmp_path):
    hsm = dataclasses.replace(softtoken_config, token=f"tsa-site-{secrets.token_hex(3)}")
    init_token(hsm, Secret(secrets.token_hex(8)), hsm.pin)
    url = migrated(f"sqlite:///{tmp_path / 'site.db'}")
    tsa = TsaConfig(units="ecdsa=tsa-site-ec:ecdsa-sha256", base_dir=str(tmp_path / "node-a"), policy="1.2.3.4.1",
                    require_sync=False)    # this box's kernel clock is unsynchronised
    node_a = _node(url, hsm, tsa)
    runner = CliRunner()
    refused = runner.invoke(tsa_group, ["provision"], obj={"config": node_a.config, "services": node_a})
    assert refused.exit_code != 0 and isinstance(refused.exception, TsaError)
    assert "run `racentre setup`" in str(refused.exception)
    assert node_a.key_manager.list_keys() == []          # nothing made, no stand-alone CA key either

    node_a.site.init(kinds=("sm2", "ecdsa"))
    done = runner.invoke(tsa_group, ["provision"], obj={"config": node_a.config, "services": node_a})
    assert done.exit_code == 0, done.output
    assert "default: " in done.output and "ecdsa: " in done.output
    assert not any(k.label.startswith("tsa-standalone-ca") for k in node_a.key_manager.list_keys())

    node_b = _node(url, hsm, dataclasses.replace(tsa, base_dir=str(tmp_path / "node-b")))
    service = node_b.tsa
    roots = {info.name: info.certificate for info in node_b.site.ca.authorities().values() if info.is_root}
    for unit, digest, root in ((None, "sm3", "root-sm2"), ("ecdsa", "sha256", "root-ecdsa")):
        token = service.authority.stamp_digest(digest, hashlib.new(digest, b"node b").digest(), unit=unit)
        assert verify_token(token, data=b"node b", trust=[roots[root]]).ok
    assert not (tmp_path / "node-a").exists() and not (tmp_path / "node-b").exists()
    for node in (node_a, node_b):
        node.close()
