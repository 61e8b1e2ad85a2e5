"""A TSA test PKI on the shared software token (fixture tsa_pki): one HSM-backed CA per algorithm and three
TSA units (SM2 default, ECDSA, RSA) written as certs_dir/<unit>.pem (a TSA outside a site; a site keeps them in its database)."""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import pytest

from timestamp.config import TsaConfig
from tests.localca import LocalIssuer
from timestamp.services import write_certificate_files


@dataclass
class TsaPki:
    config: TsaConfig
    km: object
    ca: dict            # algorithm -> LocalIssuer
    certs_dir: Path

    def ca_file(self, unit: str) -> Path:
        return self.certs_dir / f"{unit}-ca.pem"


UNIT_ALGS = {"default": "sm2-sm3", "ecdsa": "ecdsa-sha256", "rsa": "rsa-sha256"}


def make_tsa_config(certs_dir: Path, tag: str, **overrides) -> TsaConfig:
    values = dict(key=f"tsa-sm2-{tag}", algorithm="sm2-sm3",
                  units=f"ecdsa=tsa-ec-{tag}:ecdsa-sha256, rsa=tsa-rsa-{tag}:rsa-sha256",
                  certs_dir=str(certs_dir), policy="1.2.3.4.1", accept_policies="1.2.3.4.9",
                  require_sync=False)      # this box's kernel clock is unsynchronised; test_tsa injects the status
    values.update(overrides)
    return TsaConfig(**values)


@pytest.fixture(scope="session")
def tsa_pki(softtoken_km, tmp_path_factory) -> TsaPki:
    from asn1crypto import pem
    km = softtoken_km
    tag = secrets.token_hex(4)
    certs_dir = tmp_path_factory.mktemp("tsa-certs")
    config = make_tsa_config(certs_dir, tag)
    cas = {}
    for unit, alg in UNIT_ALGS.items():
        cas[unit] = LocalIssuer.create(km, f"tsa-test-ca-{unit}-{tag}", alg,
                                            common_name=f"TSA Test CA {alg}")
        (certs_dir / f"{unit}-ca.pem").write_bytes(pem.armor("CERTIFICATE", cas[unit].certificate))

    def issuer(spki: bytes, unit: str) -> list[bytes]:
        return [cas[unit].issue_tsa(spki, f"Test TSA {unit}"), cas[unit].certificate]

    write_certificate_files(config, km, issuer)
    return TsaPki(config, km, cas, certs_dir)
