"""Revocation (reasons, conflicts, hold/release) and CRLs (RFC 5280 §5: full, delta, caching)."""
from __future__ import annotations

import secrets

import pytest
from asn1crypto import core
from asn1crypto import crl as asn1_crl
from asn1crypto import x509

from ca_bridge.api import RevocationReason
from ca_bridge.embedded import EmbeddedCA
from ca_bridge.errors import CertificateNotFound, RevocationConflict
from pkicore.algorithms import algorithm
from pkicore.keys import verify_signature
from tests.unit.ca_bridge.conftest import PUBLIC_URL
from tests.unit.ca_bridge.helpers import request
from tests.unit.ca_bridge.test_hierarchy import SM2_SIG_ALG


@pytest.fixture
def own_ca(softtoken_km, db):
    """A fresh hierarchy: CRL contents are asserted exactly, so no other test may revoke under it."""
    tag = f"c{secrets.token_hex(4)}-"
    authority = EmbeddedCA(softtoken_km, db, PUBLIC_URL, name_prefix=tag)
    authority.init_hierarchy(kinds=("sm2",), label_prefix=tag)
    authority.test_tag = tag
    return authority


def entries(der: bytes) -> dict[int, str | None]:
    revoked = asn1_crl.CertificateList.load(der)["tbs_cert_list"]["revoked_certificates"]
    out = {}
    for item in revoked:
        reason = None
        for ext in item["crl_entry_extensions"]:
            if ext["extn_id"].native == "crl_reason":
                reason = ext["extn_value"].native
        out[item["user_certificate"].native] = reason
    return out


def check_signature(der: bytes, issuer_der: bytes) -> asn1_crl.CertificateList:
    crl = asn1_crl.CertificateList.load(der)
    issuer = x509.Certificate.load(issuer_der)
    assert crl["signature_algorithm"].dump() == SM2_SIG_ALG == crl["tbs_cert_list"]["signature"].dump()
    assert verify_signature(issuer.public_key.dump(), algorithm("sm2-sm3"), crl["tbs_cert_list"].dump(),
                            crl["signature"].native)
    assert crl.issuer == issuer.subject and crl.authority_key_identifier == issuer.key_identifier
    assert crl["tbs_cert_list"]["version"].native == "v2"
    return crl


def test_revoke_status_and_conflicts(ca):
    issued = ca.issue(request("civil-servant-sign"))
    assert ca.status(issued.ca, issued.serial).status == "good"
    status = ca.revoke(issued.ca, issued.serial, RevocationReason.key_compromise)
    assert status.status == "revoked" and status.reason is RevocationReason.key_compromise and status.revoked_at
    assert ca.status(issued.ca, issued.serial) == status
    with pytest.raises(RevocationConflict, match="already revoked") as info:
        ca.revoke(issued.ca, issued.serial, RevocationReason.superseded)
    assert info.value.code.value == "conflict"
    with pytest.raises(CertificateNotFound):
        ca.revoke(issued.ca, issued.serial + 1, RevocationReason.superseded)
    assert ca.status(issued.ca, issued.serial + 1).status == "unknown"
    with pytest.raises(RevocationConflict, match="on hold"):
        ca.revoke(issued.ca, issued.serial, RevocationReason.remove_from_crl)


def test_hold_release_and_make_permanent(ca):
    a, b = ca.issue(request("unit")), ca.issue(request("unit"))
    assert ca.revoke(a.ca, a.serial, RevocationReason.certificate_hold).reason is RevocationReason.certificate_hold
    assert ca.revoke(a.ca, a.serial, RevocationReason.remove_from_crl).status == "good"
    assert ca.status(a.ca, a.serial).status == "good"
    held = ca.revoke(b.ca, b.serial, RevocationReason.certificate_hold)
    permanent = ca.revoke(b.ca, b.serial, RevocationReason.key_compromise)
    assert permanent.reason is RevocationReason.key_compromise and permanent.revoked_at == held.revoked_at
    with pytest.raises(RevocationConflict):
        ca.revoke(b.ca, b.serial, RevocationReason.certificate_hold)


def test_full_and_delta_crl(own_ca):
    ca = own_ca
    name = f"{ca.test_tag}issuing-sm2"
    issuing = ca.directory.get(name)
    certs = [ca.issue(request("civil-servant-sign")) for _ in range(4)]
    empty = ca.crls.current(name)
    crl = check_signature(empty.der, issuing.certificate)
    assert entries(empty.der) == {} and isinstance(crl["tbs_cert_list"]["revoked_certificates"], core.Void)
    assert crl.crl_number_value.native == empty.number and crl.delta_crl_indicator_value is None
    assert ca.crls.current(name).number == empty.number            # fresh: served from the store
    ca.revoke(name, certs[0].serial, RevocationReason.key_compromise)
    ca.revoke(name, certs[1].serial, RevocationReason.unspecified)
    ca.revoke(name, certs[2].serial, RevocationReason.certificate_hold)
    full = ca.crls.current(name)                                     # regenerated after the revocations
    assert full.number > empty.number
    check_signature(full.der, issuing.certificate)
    # reasonCode absent for unspecified (RFC 5280 §5.3.1)
    assert entries(full.der) == {certs[0].serial: "key_compromise", certs[1].serial: None,
                                 certs[2].serial: "certificate_hold"}
    # delta: only what changed after the base
    ca.revoke(name, certs[3].serial, RevocationReason.affiliation_changed)
    ca.revoke(name, certs[2].serial, RevocationReason.remove_from_crl)
    delta = ca.crls.generate(name, delta=True)
    dcrl = check_signature(delta.der, issuing.certificate)
    assert delta.delta and delta.base_number == full.number and delta.number > full.number
    ext = {e["extn_id"].native: e for e in dcrl["tbs_cert_list"]["crl_extensions"]}
    assert ext["delta_crl_indicator"]["critical"].native is True
    assert dcrl.delta_crl_indicator_value.native == full.number
    assert entries(delta.der) == {certs[3].serial: "affiliation_changed", certs[2].serial: "remove_from_crl"}
    # the full CRL regenerated afterwards lists the permanent revocations only
    full2 = ca.crls.current(name)
    assert entries(full2.der) == {certs[0].serial: "key_compromise", certs[1].serial: None,
                                  certs[3].serial: "affiliation_changed"}
    assert full2.number > delta.number
    # a delta asked for now is based on the newest full CRL and is empty
    delta2 = ca.crls.current(name, delta=True)
    assert delta2.base_number == full2.number and entries(delta2.der) == {}


def test_root_crl_lists_a_revoked_issuing_ca(own_ca):
    ca = own_ca
    root = ca.directory.get(f"{ca.test_tag}root-sm2")
    issuing = x509.Certificate.load(ca.directory.get(f"{ca.test_tag}issuing-sm2").certificate)
    assert ca.status(root.name, issuing.serial_number).status == "good"
    ca.revoke(root.name, issuing.serial_number, RevocationReason.ca_compromise)
    crl = ca.crls.current(root.name)
    check_signature(crl.der, root.certificate)
    assert entries(crl.der) == {issuing.serial_number: "ca_compromise"}
