"""One embedded CA for the interop tests (SM2, ECDSA P-256 and RSA hierarchies on an SQLite database of its
own), and ``every_profile``: a certificate of every profile for every key family it accepts, issued the
way the site issues them (``EmbeddedCA.issue`` for subscribers, ``racentre.site.Site.certify`` for
the TSA, the KMC and the seal maker), with each hierarchy's CRLs and OCSP responses;
``local_issuer_certificates``: what ``pkicore.certificate`` builds outside the embedded CA (the seal and TSA
test PKIs' ``tests.localca.LocalIssuer`` CAs and end entities, the KMC's bootstrap self-signed certificate)."""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import pytest
from asn1crypto import pem
from cryptography.hazmat.primitives.asymmetric import ec

from ca_bridge.api import RevocationReason
from ca_bridge.embedded import EmbeddedCA
from kms.identity import self_signed_certificate
from store.db import Base, make_engine, make_session_factory
from racentre.migrate import import_models
from racentre.site import Site
from tests.unit.ca_bridge.helpers import ec_spki, ocsp_request, request, rsa_spki, sm2_spki
from tests.unit.seal.sealpki import seal_pki  # noqa: F401 - the seal test PKI fixture (LocalIssuer)
from tests.unit.timestamp.pki import tsa_pki  # noqa: F401 - the TSA test PKI fixture (LocalIssuer)

KINDS = ("sm2", "ecdsa", "rsa")
# subscriber profiles (IssueRequest through the RA) and the subject keys each is tried with, per hierarchy
SUBSCRIBER_KEYS = {
    "sm2": {"civil-servant-sign": ["sm2"], "civil-servant-enc": ["sm2"], "unit": ["sm2"], "server": ["sm2"],
            "app-encryption": ["sm2"]},
    "ecdsa": {"civil-servant-sign": ["ec-p256"], "civil-servant-enc": ["ec-p256", "ec-p384"], "unit": ["ec-p256"],
              "server": ["ec-p256", "ec-p384"], "app-encryption": ["ec-p256"]},
    "rsa": {"server": ["rsa-2048"]},
}
# the centre's own identities (racentre setup), per hierarchy: role -> profile
SITE_ROLES = {"sm2": {"tsa-sm2": "tsa", "kmc": "kmc", "seal-maker": "seal-maker", "trust-evidence": "trust-evidence"},
              "ecdsa": {"tsa-ecdsa": "tsa"}, "rsa": {"tsa-rsa": "tsa"}}
_SPKI = {"sm2": sm2_spki, "ec-p256": ec_spki, "ec-p384": lambda: ec_spki(ec.SECP384R1), "rsa-2048": rsa_spki}

def _spki(algorithm: str) -> bytes:
    return _SPKI[algorithm]()


@dataclass
class Issued:
    """One artefact: which hierarchy and profile (or "crl", "ocsp"), its key algorithm and its DER."""

    kind: str
    profile: str
    key: str
    der: bytes
    chain: tuple[bytes, ...] = field(default=(), repr=False)      # issuing CA .. root (certificates only)

    @property
    def name(self) -> str:
        return f"{self.kind}/{self.profile}/{self.key}"


@pytest.fixture(scope="package")
def embedded_ca(softtoken_km, tmp_path_factory):
    """SM2 + ECDSA + RSA hierarchies on an SQLite database of their own (interop needs one backend)."""
    import_models()
    work = tmp_path_factory.mktemp("ca-interop")
    engine = make_engine(f"sqlite:///{work / 'ca.db'}")
    Base.metadata.create_all(engine)
    tag = f"i{secrets.token_hex(4)}-"
    ca = EmbeddedCA(softtoken_km, make_session_factory(engine), "http://ca.interop.test", name_prefix=tag)
    ca.init_hierarchy(kinds=KINDS, label_prefix=tag)
    ca.test_tag, ca.work = tag, work
    yield ca
    engine.dispose()


@pytest.fixture(scope="package")
def every_profile(embedded_ca, softtoken_km) -> list[Issued]:
    ca, tag = embedded_ca, embedded_ca.test_tag
    site = Site(ca, softtoken_km)
    out: list[Issued] = []
    for kind in KINDS:
        root = ca.directory.get(f"{tag}root-{kind}")
        issuing = ca.directory.get(f"{tag}issuing-{kind}")
        key = {"sm2": "sm2", "ecdsa": "ec-p256", "rsa": "rsa-2048"}[kind]
        out += [Issued(kind, "root-ca", key, root.certificate, ()),
                Issued(kind, "issuing-ca", key, issuing.certificate, (root.certificate,)),
                Issued(kind, "ocsp-signer", key, issuing.ocsp_certificate, (issuing.certificate, root.certificate))]
        chain = (issuing.certificate, root.certificate)
        for profile, algorithms in SUBSCRIBER_KEYS[kind].items():
            for algorithm in algorithms:
                issued = ca.issue(request(profile, _spki(algorithm)))
                assert issued.ca == issuing.name
                out.append(Issued(kind, profile, algorithm, issued.certificate, chain))
        for role, profile in SITE_ROLES[kind].items():
            spki = softtoken_km.ensure_key_pair(f"{tag}{role}", key)
            certified = site.certify(role, spki, profile, f"Interop {role}")
            assert certified.chain == chain
            out.append(Issued(kind, profile, key, certified.certificate, chain))
        good = ca.issue(request("server", _spki(key)))
        revoked = ca.issue(request("server", _spki(key)))
        ca.revoke(issuing.name, revoked.serial, RevocationReason.key_compromise)
        out += [Issued(kind, "crl", key, ca.crls.current(issuing.name).der),
                Issued(kind, "crl-delta", key, ca.crls.current(issuing.name, delta=True).der),
                Issued(kind, "crl-root", key, ca.crls.current(root.name).der)]
        for status, serial in (("good", good.serial), ("revoked", revoked.serial)):
            nonce = secrets.token_bytes(16)
            out.append(Issued(kind, f"ocsp-{status}", key, ca.ocsp.respond(
                ocsp_request(issuing.certificate, [serial], "sha256", nonce))))
    return out


@pytest.fixture(scope="package")
def local_issuer_certificates(seal_pki, tsa_pki, softtoken_km) -> list[Issued]:  # noqa: F811
    """(kind "local"; profile "ca" or "end-entity"; key = signature algorithm) with the issuer's certificate."""
    seal_ca = seal_pki["ca"].certificate
    out = [Issued("local", "ca", "sm2-sm3", seal_ca, ())]
    out += [Issued("local", "end-entity", "sm2-sm3", seal_pki[name].certificate, (seal_ca,))
            for name in ("maker", "unit")]
    for unit, ca in tsa_pki.ca.items():
        out.append(Issued("local", "ca", ca.alg.name, ca.certificate, ()))
        (tsa, *_) = pem.unarmor((tsa_pki.certs_dir / f"{unit}.pem").read_bytes(), multiple=True)
        out.append(Issued("local", "tsa", ca.alg.name, tsa[2], (ca.certificate,)))
    label = f"kmc-bootstrap-{secrets.token_hex(4)}"
    softtoken_km.ensure_key_pair(label, "sm2")
    out.append(Issued("local", "end-entity", "sm2-sm3", self_signed_certificate(
        softtoken_km, label, (("country_name", "CN"), ("common_name", "Bootstrap KMC"))), ()))
    return out
