"""A stand-alone KMC's pieces: the ``[kmc]`` section (racentre.config), CAs trusted through the KMC
database (``racentre kms trust-ca``) and picked up by a running service, `racentre serve --packages`,
and the CA's reading of the KMC's PKCS#10 request (``racentre ca issue``)."""
from __future__ import annotations

import datetime as dt
import secrets

import click
import pytest
from asn1crypto import pem
from click.testing import CliRunner

from ca_bridge.cli import read_csr
from ca_bridge.errors import BadEncoding, IssuanceError
from gmt0014 import messages as m
from gmt0014.client import InProcessTransport, KmcClient
from gmt0014.errors import ProtocolError
from kms.config import KmsConfigError
from kms.endpoint import Gmt0014Endpoint
from kms.errors import EscrowError
from kms.identity import self_signed_certificate, subject_name
from pkicore.algorithms import algorithm
from pkicore.certificate import build_certificate
from pkicore.csr import build_csr
from racentre.app import DEFAULT_PACKAGES
from racentre.cli import cli
from racentre.config import ConfigError, load_config
from racentre.serve import parse_packages
from tests.unit.kms.helpers import audit


def _sm2_ca(km, name: str) -> tuple[str, bytes]:
    label = f"ca-{secrets.token_hex(4)}"
    spki = km.generate_key_pair(label, "sm2").public_key_info
    rdn = subject_name((("country_name", "CN"), ("common_name", name)))
    alg = algorithm("sm2-sm3")
    return label, build_certificate(subject=rdn, issuer=rdn, spki=spki, issuer_spki=spki, alg=alg, ca=True,
                                    sign=lambda tbs: km.sign(label, tbs, alg.mechanism))


def _window():
    now = dt.datetime.now(dt.timezone.utc)
    return now, now + dt.timedelta(days=30)


# ------------------------------------------------------------------------------------ [kmc] section
def test_kmc_section_from_file_and_environment(tmp_path, softtoken_km):
    _, ca_cert = _sm2_ca(softtoken_km, "Trusted CA")
    (tmp_path / "ca.pem").write_bytes(pem.armor("CERTIFICATE", ca_cert))
    (tmp_path / "kmc.der").write_bytes(ca_cert)
    path = tmp_path / "racentre.toml"
    path.write_text('[kmc]\nurl = "http://kmc.example:8700/"\ncertificate_file = "kmc.der"\n'
                    'trusted_ca_files = "ca.pem, kmc.der"\napprovals_required = 3\npanel_size = 5\n')
    cfg = load_config(path, environ={}).kmc
    assert cfg.url == "http://kmc.example:8700" and cfg.remote and cfg.timeout == 30
    assert cfg.kmc_certificate() == ca_cert and cfg.trusted_cas() == (ca_cert, ca_cert)
    assert (cfg.approvals_required, cfg.panel_size) == (3, 5)
    env = {"RACENTRE_KMC_URL": "", "RACENTRE_KMC_TIMEOUT": "5", "RACENTRE_KMC_CERTIFICATE_FILE": "other.pem"}
    cfg = load_config(path, environ=env).kmc
    assert not cfg.remote and cfg.timeout == 5 and cfg.certificate_file == str(tmp_path / "other.pem")
    with pytest.raises(KmsConfigError, match="cannot read certificate file"):
        cfg.kmc_certificate()
    assert not load_config(None, environ={}).kmc.remote      # the default: the embedded KMC


@pytest.mark.parametrize("text, message", [
    ('[kmc]\nurl = "kmc.example:8700"\n', "http:// or https://"),
    ('[kmc]\napprovals_required = 4\n', "approvals_required"),
    ('[kmc]\ntimeout = 0\n', "positive"),
    ('[kmc]\nbogus = 1\n', "unknown setting kmc.bogus"),
])
def test_bad_kmc_settings_are_clear(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises((ConfigError, KmsConfigError), match=message):
        load_config(path, environ={})


def test_remote_kmc_needs_its_certificate(tmp_path):
    (tmp_path / "junk.pem").write_text("not a certificate")
    cfg = load_config(None, environ={"RACENTRE_KMC_URL": "http://kmc:1"}).kmc
    with pytest.raises(KmsConfigError, match="certificate_file is not"):
        cfg.kmc_certificate()
    cfg = load_config(None, environ={"RACENTRE_KMC_URL": "http://kmc:1",
                                     "RACENTRE_KMC_CERTIFICATE_FILE": str(tmp_path / "junk.pem")}).kmc
    with pytest.raises(KmsConfigError, match="not hold a valid X.509 certificate"):
        cfg.kmc_certificate()


# ------------------------------------------------------------------------------ stored trust
def test_trusted_ca_stored_in_the_kmc_database_is_picked_up_by_a_running_service(escrow, softtoken_km, subscriber):
    label, ca_cert = _sm2_ca(softtoken_km, "Remote Issuing CA")
    running = Gmt0014Endpoint(escrow)                 # a serving KMC, started before the CA was trusted
    client = KmcClient(InProcessTransport(running), ca_certificate=ca_cert,
                       sign=lambda d: softtoken_km.sign(label, d), kmc_certificate=escrow.certificate)
    with pytest.raises(ProtocolError) as refused:
        client.apply_key(secrets.randbits(60), subscriber[1], *_window())
    assert refused.value.err_no == m.ErrNo.UNKNOWN_CA
    Gmt0014Endpoint(escrow).trust(ca_cert, persist=True, actor="cli")      # `racentre kms trust-ca`, another process
    got = client.apply_key(serial := secrets.randbits(60), subscriber[1], *_window())
    assert got.user_cert_no == serial
    assert "kms.ca.trusted" in audit(escrow, "ca")
    # a restarted service trusts it from the start
    assert any(ca.certificate == ca_cert for ca in Gmt0014Endpoint(escrow).trusted.values())


def test_only_sm2_ca_certificates_can_be_stored(escrow, softtoken_km):
    label = f"leaf-{secrets.token_hex(4)}"
    softtoken_km.generate_key_pair(label, "sm2")
    leaf = self_signed_certificate(softtoken_km, label, (("common_name", "not a CA"),))
    with pytest.raises(EscrowError, match="CA certificate"):
        Gmt0014Endpoint(escrow).trust(leaf, persist=True)


# ---------------------------------------------------------------------------- serve --packages
def test_serve_packages():
    assert parse_packages("") == DEFAULT_PACKAGES
    assert parse_packages("kms, hsm") == ("hsm", "kms")          # build order, not the given one
    with pytest.raises(click.BadParameter, match="unknown package"):
        parse_packages("hsm,nosuch")


# ------------------------------------------------------------------------------ ca issue --csr
def test_read_csr_checks_proof_of_possession(softtoken_km):
    label = f"svc-{secrets.token_hex(4)}"
    spki = softtoken_km.generate_key_pair(label, "sm2").public_key_info
    subject = (("country_name", "CN"), ("common_name", "Remote KMC"))
    der = build_csr(subject, spki, algorithm("sm2-sm3"), lambda d: softtoken_km.sign(label, d))
    assert read_csr(pem.armor("CERTIFICATE REQUEST", der)) == (subject, spki)
    assert read_csr(der) == (subject, spki)
    other = f"svc-{secrets.token_hex(4)}"
    softtoken_km.generate_key_pair(other, "sm2")
    forged = build_csr(subject, spki, algorithm("sm2-sm3"), lambda d: softtoken_km.sign(other, d))
    with pytest.raises(IssuanceError, match="proof of possession"):
        read_csr(forged)
    with pytest.raises(BadEncoding):
        read_csr(b"\x30\x03\x02\x01\x01")


def test_kms_commands_refuse_on_a_site_whose_kmc_is_remote(tmp_path):
    result = CliRunner().invoke(cli, ["kms", "status"], env={"RACENTRE_CONFIG": "", "RACENTRE_KMC_URL": "http://kmc:8700"})
    assert result.exit_code == 2 and "stand-alone one at http://kmc:8700" in result.output
