"""ca_bridge.ca: the SM2/ECDSA hierarchy in the HSM, its certificates, and refusal to set it up twice."""
from __future__ import annotations

import datetime as dt
import secrets

import pytest
from asn1crypto import x509
from sqlalchemy import select

from ca_bridge.ca import init_hierarchy
from ca_bridge.embedded import EmbeddedCA
from ca_bridge.errors import HierarchyExists
from ca_bridge.models import CertificateAuthority
from pkicore.algorithms import algorithm
from pkicore.keys import verify_signature
from tests.unit.ca_bridge.conftest import PUBLIC_URL
from tests.unit.ca_bridge.helpers import extensions, request, rsa_spki

SM2_SIG_ALG = bytes.fromhex("300a06082a811ccf55018375")     # sm2-with-sm3, parameters ABSENT
ECDSA_SIG_ALG = bytes.fromhex("300a06082a8648ce3d040302")   # ecdsa-with-SHA256, parameters ABSENT


def verifies(cert_der: bytes, issuer_der: bytes) -> bool:
    cert, issuer = x509.Certificate.load(cert_der), x509.Certificate.load(issuer_der)
    alg = algorithm(cert["signature_algorithm"]["algorithm"].dotted)
    return verify_signature(issuer.public_key.dump(), alg, cert["tbs_certificate"].dump(),
                            cert["signature_value"].native)


@pytest.mark.parametrize("kind,sig_alg", [("sm2", SM2_SIG_ALG), ("ecdsa", ECDSA_SIG_ALG)])
def test_hierarchy_certificates(ca, kind, sig_alg):
    root = ca.directory.get(f"{ca.test_tag}root-{kind}")
    issuing = ca.directory.get(f"{ca.test_tag}issuing-{kind}")
    assert root.is_root and issuing.parent == root.name and issuing.chain == (issuing.certificate,)
    assert root.key_label == f"{ca.test_tag}ca-root-{kind}"
    assert issuing.ocsp_key_label == f"{ca.test_tag}ocsp-issuing-{kind}"
    for der, issuer_der in ((root.certificate, root.certificate), (issuing.certificate, root.certificate),
                            (issuing.ocsp_certificate, issuing.certificate)):
        cert = x509.Certificate.load(der)
        assert cert["tbs_certificate"]["signature"].dump() == sig_alg
        assert cert["signature_algorithm"].dump() == sig_alg
        assert cert["tbs_certificate"]["version"].native == "v3"
        assert 64 <= cert.serial_number.bit_length() <= 159 and cert.serial_number > 0
        assert verifies(der, issuer_der)
    root_cert, issuing_cert = x509.Certificate.load(root.certificate), x509.Certificate.load(issuing.certificate)
    assert root_cert.self_signed == "maybe" and root_cert.subject == root_cert.issuer
    assert root_cert.ca and root_cert.max_path_length is None
    assert root_cert.key_usage_value.native == {"key_cert_sign", "crl_sign"}
    assert extensions(root_cert)["key_usage"][0] is True
    assert extensions(root_cert)["basic_constraints"][0] is True
    # 10 years by default, inside GmSSL 3's 3,653 days (ca_bridge/profiles/root-ca.toml)
    assert root_cert.not_valid_after - root_cert.not_valid_before == dt.timedelta(days=3650)
    assert extensions(issuing_cert)["basic_constraints"][0] is True
    assert issuing_cert.ca and issuing_cert.max_path_length == 0
    assert issuing_cert.authority_key_identifier == root_cert.key_identifier
    assert issuing_cert.crl_distribution_points[0]["distribution_point"].native == [f"{PUBLIC_URL}/ca/{root.name}/crl"]
    assert issuing_cert.not_valid_after <= root_cert.not_valid_after
    ocsp_cert = x509.Certificate.load(issuing.ocsp_certificate)
    exts = extensions(ocsp_cert)
    assert ocsp_cert.extended_key_usage_value.native == ["ocsp_signing"]
    assert "1.3.6.1.5.5.7.48.1.5" in exts or "ocsp_no_check" in exts
    assert ocsp_cert.key_usage_value.native == {"digital_signature"}
    assert not ocsp_cert.ca and "basic_constraints" not in exts
    assert ocsp_cert.authority_key_identifier == issuing_cert.key_identifier
    # the CA keys are in the HSM, sensitive and not extractable
    for label in (root.key_label, issuing.key_label, issuing.ocsp_key_label):
        info = ca.km.find_key(label)
        assert info.sensitive and not info.extractable


def test_rerun_is_refused_and_changes_nothing(ca, db):
    with db() as session:
        before = {r.name: r.certificate for r in session.scalars(select(CertificateAuthority))}
    with pytest.raises(HierarchyExists, match="already exists"):
        ca.init_hierarchy(kinds=("sm2",), label_prefix=ca.test_tag)
    # new CA names but the same HSM labels: refused before any key is touched
    other = EmbeddedCA(ca.km, db, PUBLIC_URL, name_prefix=f"n{secrets.token_hex(3)}-")
    with pytest.raises(HierarchyExists, match="key labelled"):
        other.init_hierarchy(kinds=("sm2",), label_prefix=ca.test_tag)
    with db() as session:
        after = {r.name: r.certificate for r in session.scalars(select(CertificateAuthority))}
    assert after == before
    assert HierarchyExists.code.value == "conflict"


def test_unknown_kind_refused(ca, db):
    with pytest.raises(Exception, match="unknown hierarchy kinds"):
        init_hierarchy(ca.km, db, PUBLIC_URL, kinds=("dsa",), prefix="x-", label_prefix="x-")


def test_rsa_hierarchy(softtoken_km, db):
    tag = f"r{secrets.token_hex(4)}-"
    authority = EmbeddedCA(softtoken_km, db, PUBLIC_URL, name_prefix=tag)
    assert authority.init_hierarchy(kinds=("rsa",), label_prefix=tag) == [f"{tag}root-rsa", f"{tag}issuing-rsa"]
    issued = authority.issue(request("server", rsa_spki()))
    assert issued.ca == f"{tag}issuing-rsa"
    cert = x509.Certificate.load(issued.certificate)
    assert cert["signature_algorithm"].dump() == bytes.fromhex("300d06092a864886f70d01010b0500")  # NULL params
    assert verifies(issued.certificate, authority.directory.get(f"{tag}issuing-rsa").certificate)


def test_hierarchy_certificates_are_audited_like_any_issuance(ca, db):
    """Issue 15: the issuing-CA and OCSP-signer certificates `ca init` makes have their
    ca.certificate.issue rows (by the CA that signed each), beside ca.hierarchy.create."""
    from audit import trail as audit
    issuing = ca.directory.get(f"{ca.test_tag}issuing-sm2")
    root = ca.directory.get(f"{ca.test_tag}root-sm2")
    with db() as s:
        for signer, der in ((root.name, issuing.certificate), (issuing.name, issuing.ocsp_certificate)):
            serial = format(x509.Certificate.load(der).serial_number, "x")
            events = audit.events_for(s, "certificate", f"{signer}/{serial}")
            assert [(e.action, e.actor) for e in events] == [("ca.certificate.issue", f"ca:{signer}")], signer
