"""Shared pieces of the CMP tests: a CmpServer over a test CA, the app served on a free port, and
subscriber keys that sign their own proof of possession (software keys: a subscriber's key never
needs our HSM)."""
from __future__ import annotations

import contextlib
import threading

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from werkzeug.serving import make_server

from ca_bridge.cmp.server import CmpServer
from ca_bridge.cmp.views import bp as cmp_bp
from pkicore.algorithms import algorithm
from racentre.config import Config, ServiceConfig
from racentre.secretbox import SecretBox
from racentre.web import create_app

SERVER_SUBJECT = (("country_name", "CN"), ("organization_name", "杭州市财政局"), ("common_name", "cmp.zj.gov.cn"))


def cmp_server(ca, **kw) -> CmpServer:
    tag = getattr(ca, "test_tag", "")
    return CmpServer(ca, SecretBox(ca.km, f"{tag}cmp-enc", f"{tag}cmp-mac"), label_prefix=tag, **kw)


def ra_node_server(ca, label: str, key: str = "ec-p256", **kw) -> CmpServer:
    """Our CA's CMP server with a registered RA identity to protect requests with: an HSM key ``label``
    certified under the ``cmp-ra`` profile (RA mode), and the CA's roots as the anchors answers chain to."""
    from ca_bridge.api import IssueRequest
    from ca_bridge.cmp.upstream import signature_credentials
    server = cmp_server(ca, **kw)
    spki = ca.km.ensure_key_pair(label, key)
    ra_cert = ca.issue(IssueRequest(request_id=f"ra-node-{label}", profile="cmp-ra",
                                    subject=(("country_name", "CN"), ("common_name", "RA node")), public_key_info=spki))
    server.credentials = signature_credentials(ca.km, label, ra_cert.certificate)
    server.anchors = [i.certificate for i in ca.authorities().values() if i.is_root]
    return server


class EcKey:
    """A subscriber's P-256 key: SPKI, PEM and an ECDSA-SHA256 signer."""

    algorithm = algorithm("ecdsa-sha256")

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.spki = self.key.public_key().public_bytes(serialization.Encoding.DER,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo)

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    def pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())


def served_app(server: CmpServer, km, db):
    """An app serving only the CMP blueprint over ``server``."""
    return create_app(Config(service=ServiceConfig(public_url="http://ca.test:8600")), km, db,
                      services={"cmp": server}, blueprints=[cmp_bp])


@contextlib.contextmanager
def served(server: CmpServer, km, db):
    """The CMP blueprint in a real app on a free port: yields the base URL."""
    app = served_app(server, km, db)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{http.server_port}"
    finally:
        http.shutdown()
        thread.join(5)
