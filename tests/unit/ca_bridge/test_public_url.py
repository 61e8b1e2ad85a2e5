"""Certificates name the site, not the node that issued them: without ``[service] public_url`` the CA
serves what exists (CRLs, OCSP, certificates) but issues nothing — neither a hierarchy nor an end-entity
certificate — and says which setting is missing (HTTP 503); with it, CRL DP and AIA carry that URL."""
from __future__ import annotations

import secrets

import pytest
from flask import Flask

from ca_bridge.embedded import EmbeddedCA
from ca_bridge.errors import NoPublicUrl
from racentre.config import Config, ServiceConfig
from racentre.web import _pki_error
from tests.unit.ca_bridge.conftest import PUBLIC_URL
from tests.unit.ca_bridge.helpers import extensions, parse, request


def _from_config(ca: EmbeddedCA, public_url: str) -> EmbeddedCA:
    node = EmbeddedCA(ca.km, ca.db, Config(service=ServiceConfig(public_url=public_url)).service.public_url)
    node.name_prefix = ca.name_prefix
    node.default_cas = dict(ca.default_cas)
    return node


def test_no_public_url_no_issuance(ca):
    node = _from_config(ca, "")                       # a node whose [service] public_url is unset
    with pytest.raises(NoPublicUrl, match=r"\[service\] public_url"):
        node.issue(request("server"))
    with pytest.raises(NoPublicUrl):
        EmbeddedCA(ca.km, ca.db, "", name_prefix=f"u{secrets.token_hex(3)}-").init_hierarchy()
    issued = ca.issue(request("server"))               # what exists is still served
    assert node.status(issued.ca, issued.serial).status == "good"
    with Flask("t").app_context():
        body, status = _pki_error(NoPublicUrl("no [service] public_url is set"))
    assert status == 503 and body.get_json()["error"]["code"] == "configuration"


def test_certificates_carry_the_public_url(ca):
    issued = _from_config(ca, "https://pki.example.gov.cn/").issue(request("server"))
    exts = extensions(parse(issued.certificate))
    text = repr(exts["crl_distribution_points"]) + repr(exts["authority_information_access"])
    assert "https://pki.example.gov.cn/" in text and PUBLIC_URL not in text and "127.0.0.1" not in text
