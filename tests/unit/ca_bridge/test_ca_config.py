"""``[ca]`` decides what the CA writes: the hierarchy's names (C, O and each CN from the templates, not
a fixed "RA Centre") and how long its CRLs and OCSP responses are valid (nextUpdate)."""
from __future__ import annotations

import datetime as dt
import secrets

from asn1crypto import ocsp, x509

from ca_bridge.config import CaConfig
from ca_bridge.embedded import EmbeddedCA
from racentre.config import Config, ServiceConfig
from tests.unit.ca_bridge.conftest import PUBLIC_URL
from tests.unit.ca_bridge.helpers import ocsp_request, request


def test_names_and_validity_from_configuration(softtoken_km, db):
    tag = f"c{secrets.token_hex(4)}-"
    config = Config(service=ServiceConfig(public_url=PUBLIC_URL),
                    ca=CaConfig(organization="浙江省政务服务中心", root_name="{organization} 根证书 ({kind})",
                                issuing_name="{organization} 签发 CA", crl_validity=dt.timedelta(hours=6),
                                crl_refresh=dt.timedelta(hours=1), ocsp_validity=dt.timedelta(minutes=20)))
    # as racentre.services.Services.ca builds it
    ca = EmbeddedCA(softtoken_km, db, config.service.public_url, config=config.ca, name_prefix=tag,
                    default_cas={"sm2": f"{tag}issuing-sm2"})
    ca.init_hierarchy(kinds=("sm2",), label_prefix=tag)
    root = x509.Certificate.load(ca.directory.get(f"{tag}root-sm2").certificate)
    issuing = x509.Certificate.load(ca.directory.get(f"{tag}issuing-sm2").certificate)
    assert root.subject.native == {"country_name": "CN", "organization_name": "浙江省政务服务中心",
                                   "common_name": "浙江省政务服务中心 根证书 (SM2)"}
    assert issuing.subject.native["common_name"] == "浙江省政务服务中心 签发 CA"
    assert "RA Centre" not in repr(root.subject.native) + repr(issuing.subject.native)

    crl = ca.crls.generate(f"{tag}issuing-sm2")
    assert crl.next_update - crl.this_update == dt.timedelta(hours=6)
    leaf = ca.issue(request("server"))
    der = ca.ocsp.respond(ocsp_request(ca.directory.get(leaf.ca).certificate, [leaf.serial], "sha256"), leaf.ca)
    single = ocsp.OCSPResponse.load(der)["response_bytes"]["response"].parsed["tbs_response_data"]["responses"][0]
    assert single["next_update"].native - single["this_update"].native == dt.timedelta(minutes=20)
