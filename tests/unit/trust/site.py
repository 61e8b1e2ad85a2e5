"""A whole site for the trust tests: a fresh token, a migrated database (SQLite or PostgreSQL), `racentre
setup` with the SM2 and ECDSA hierarchies and an ECDSA TSA unit, the full app, API tokens, and civil
servants whose keys live outside the HSM (Tongsuo for SM2, pyca/cryptography for ECDSA), as a USB key
would hold them."""
from __future__ import annotations

import base64
import dataclasses
import secrets

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tongsuopy.crypto import hashes as ts_hashes
from tongsuopy.crypto import serialization as ts_serialization
from tongsuopy.crypto.asymciphers import ec as ts_ec

from ca_bridge.api import IssueRequest
from hsm import init_token
from store.db import transaction
from pkicore.oids import OID
from pkicore.secret import Secret
from access.auth import create_token
from racentre.config import Config, DatabaseConfig, ServiceConfig
from racentre.services import Services
from racentre.setup_cli import setup_site
from racentre.app import build_app
from timestamp.config import TsaConfig

ID_NUMBER = "33010619900101123X"
USCC = "91330100MA27XL0E2K"
PERSON = (("country_name", "CN"), ("organization_name", "杭州市财政局"), ("organizational_unit_name", "预算处"),
          ("common_name", "张三"))


def make_site(url: str, hsm_config) -> Services:
    hsm_config = dataclasses.replace(hsm_config, token=f"trust-{secrets.token_hex(4)}")
    init_token(hsm_config, Secret(secrets.token_hex(8)), hsm_config.pin)
    config = Config(hsm=hsm_config, database=DatabaseConfig(url=url),
                    service=ServiceConfig(public_url="http://trust.test"),
                    tsa=TsaConfig(units="ecdsa=tsa-ecdsa:ecdsa-sha256", policy="1.2.156.99999.1.18",
                                  require_sync=False))      # this box's kernel clock is unsynchronised
    services = Services(config)
    setup_site(services, ("sm2", "ecdsa"))
    return services


@dataclasses.dataclass
class User:
    """A civil servant with a software key (the 'USB key') and a certificate from our CA."""

    key: object
    certificate: bytes
    kind: str                # sm2 | ec

    def sign(self, data: bytes) -> bytes:
        if self.kind == "sm2":
            return self.key.sign(data, ts_ec.ECDSA(ts_hashes.SM3()))       # SM2, default ID
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    @property
    def d(self) -> int:
        return self.key.private_numbers().private_value


def issue_user(services: Services, kind: str = "sm2", *, profile: str = "civil-servant-sign",
               validity_days: int | None = None, name: str = "张三", key=None) -> User:
    if kind == "sm2":
        key = key or ts_ec.generate_private_key(ts_ec.SM2())
        spki = key.public_key().public_bytes(ts_serialization.Encoding.DER,
                                             ts_serialization.PublicFormat.SubjectPublicKeyInfo)
        ca = "issuing-sm2"
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
        ca = "issuing-ecdsa"
    subject = (*PERSON[:-1], ("common_name", name))
    issued = services.ca.issue(IssueRequest(
        request_id=f"test-{secrets.token_hex(6)}", profile=profile, subject=subject, public_key_info=spki,
        identity=((OID.ID_CARD_NUMBER, ID_NUMBER),), validity_days=validity_days, ca=ca))
    return User(key, issued.certificate, kind)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text)
