"""Judicial/administrative recovery: M-of-N approvals by distinct, authenticated, unexpired key-recovery
officers; the key goes only to the named recipient certificate; every step audited."""
from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from kms.errors import ApprovalError
from kms.recovery import Officer, RecoveryAuthorisation
from pkicore.envelope import parse_signed_and_enveloped, verify_signed_and_enveloped
from tests.unit.kms.helpers import OFFICERS, audit, escrow_one
from tests.unit.kms.subscriber import (mul, public_point, sm2_decrypt,
                                       sm4_ecb_decrypt)


@pytest.fixture
def archived(escrow, subscriber):
    return escrow_one(escrow, subscriber[1])


def _request(book, archived, court):
    return book.request(purpose="recover", requested_by="ra-admin", reason="court order 2026-17",
                        key_id=archived.key_id, recipient_certificate=court[1], role="ra_admin")


def test_two_of_three_recovery_delivers_to_named_recipient(escrow, book, archived, court):
    rid = _request(book, archived, court)
    assert book.approve(rid, OFFICERS[0]) == 1
    assert book.approve(rid, OFFICERS[2]) == 2
    auth = book.authorise(rid, actor="ra-admin")
    assert isinstance(auth, RecoveryAuthorisation) and set(auth.approvers) == {"officer-1", "officer-3"}
    delivery = escrow.recover(auth, actor="ra-admin")
    sed = parse_signed_and_enveloped(delivery.signed_and_enveloped)
    key = sm2_decrypt(court[0], sed.encrypted_key)
    d = int.from_bytes(sm4_ecb_decrypt(key, sed.encrypted_content), "big")
    assert mul(d) == public_point(archived.public_key_info)
    assert verify_signed_and_enveloped(delivery.signed_and_enveloped, escrow.public_key_info, escrow.certificate).ok
    # single use
    with pytest.raises(ApprovalError):
        escrow.recover(auth, actor="ra-admin")
    assert audit(escrow, "kms_request", rid) == ["kms.recover.requested", "kms.recover.approved",
                                                 "kms.recover.approved", "kms.recover.authorised"]
    assert audit(escrow, "kms_key", archived.key_id) == ["kms.key.escrowed", "kms.key.recovered"]


def test_refused_with_m_minus_one(escrow, book, archived, court):
    rid = _request(book, archived, court)
    book.approve(rid, OFFICERS[0])
    with pytest.raises(ApprovalError, match="1 valid approval"):
        book.authorise(rid, actor="ra-admin")
    assert audit(escrow, "kms_request", rid)[-1] == "kms.recover.authorisation_refused"


def test_refused_with_repeated_approver(escrow, book, archived, court):
    rid = _request(book, archived, court)
    book.approve(rid, OFFICERS[1])
    with pytest.raises(ApprovalError, match="already approved"):
        book.approve(rid, OFFICERS[1])
    # the same name with other roles is the same person
    with pytest.raises(ApprovalError):
        book.approve(rid, Officer("officer-2", frozenset({"key_recovery_officer", "auditor"})))
    with pytest.raises(ApprovalError):
        book.authorise(rid, actor="ra-admin")
    assert "kms.recover.approval_refused" in audit(escrow, "kms_request", rid)


def test_refused_with_expired_approval(escrow, book, archived, court):
    rid = _request(book, archived, court)
    long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=30)
    book.approve(rid, OFFICERS[0], now=long_ago)     # 24 h approval lifetime: expired
    book.approve(rid, OFFICERS[1])
    with pytest.raises(ApprovalError, match="1 valid approval"):
        book.authorise(rid, actor="ra-admin")
    book.approve(rid, OFFICERS[2])
    assert book.authorise(rid, actor="ra-admin").approvers == ("officer-2", "officer-3")


def test_refused_without_the_role(escrow, book, archived, court):
    rid = _request(book, archived, court)
    book.approve(rid, OFFICERS[0])
    with pytest.raises(ApprovalError, match="key_recovery_officer"):
        book.approve(rid, Officer("ra-operator-7", frozenset({"ra_operator", "ra_admin"})))
    with pytest.raises(ApprovalError):
        book.authorise(rid, actor="ra-admin")


def test_requester_cannot_approve_and_panel_is_enforced(escrow, book, archived, court, softtoken_km):
    rid = book.request(purpose="recover", requested_by="officer-1", reason="case 9", key_id=archived.key_id,
                       recipient_certificate=court[1])
    with pytest.raises(ApprovalError, match="own request"):
        book.approve(rid, OFFICERS[0])
    panel = type(book)(escrow.db, dataclasses.replace(escrow.config, officers=("officer-2", "officer-3", "x")))
    with pytest.raises(ApprovalError, match="panel"):
        panel.approve(rid, Officer("officer-9", frozenset({"key_recovery_officer"})))


def test_authorisation_cannot_be_forged(archived):
    with pytest.raises(ApprovalError):
        RecoveryAuthorisation(request_id=1, key_id=archived.key_id, approvers=("me", "myself"),
                              issued_at=dt.datetime.now(dt.timezone.utc), recipient_public_key_info=b"x")


def test_wrong_authorisation_type_refused(escrow, book, archived):
    rid = book.request(purpose="export", requested_by="ra-admin", reason="DR drill")
    book.approve(rid, OFFICERS[0])
    book.approve(rid, OFFICERS[1])
    export_auth = book.authorise(rid, actor="ra-admin")
    with pytest.raises(ApprovalError):
        escrow.recover(export_auth, actor="ra-admin")


def test_recipient_must_be_ours_or_listed_and_approvers_see_it(escrow, archived, court, softtoken_km):
    """Issue 15: a self-made recipient certificate is refused (400, why); one issued by a CA this KMC serves
    is accepted; one on the administrator's recipient list is accepted; the request's status shows the
    approvers subject, issuer, serial and fingerprint before they approve."""
    import hashlib
    import secrets

    from asn1crypto import x509

    from kms.recovery import ApprovalBook
    from tests.localca import LocalIssuer
    from tests.unit.kms.conftest import with_recipients
    issuer = LocalIssuer.create(softtoken_km, f"recipient-ca-{secrets.token_hex(3)}", common_name="Test Issuing CA")
    court_spki = x509.Certificate.load(court[1]).public_key.dump()
    issued = issuer.issue(court_spki, "示范市中级人民法院")
    plain = ApprovalBook(escrow.db, escrow.config, issuers=lambda: [issuer.certificate])
    with pytest.raises(ApprovalError, match="not issued by one of our CAs") as refused:
        _request(plain, archived, court)                             # self-signed, not on the list
    assert refused.value.code.value == "bad_request"
    rid = plain.request(purpose="recover", requested_by="ra-admin", reason="court order 2026-18",
                        key_id=archived.key_id, recipient_certificate=issued, role="ra_admin")
    shown = plain.status(rid)["recipient"]
    assert shown["subject"].endswith("CN=示范市中级人民法院") and shown["issuer"].endswith("CN=Test Issuing CA")
    assert shown["fingerprint_sha256"] == hashlib.sha256(issued).hexdigest()
    assert shown["serial"] == format(x509.Certificate.load(issued).serial_number, "X")
    listed = ApprovalBook(escrow.db, with_recipients(escrow.config, court[2]))
    assert listed.check_recipient(court[1])["accepted"].startswith("on the recipient list")
    with pytest.raises(ApprovalError, match="malformed"):
        listed.check_recipient(b"\x30\x03\x02\x01\x01")


def test_recipient_path_and_status_through_our_ca(escrow, softtoken_km, subscriber):
    """The recipient's path is validated against the CAs the KMC serves (pkicore.validation): a
    certificate of our CA is accepted; once revoked, and with the CA's revocation information given,
    it is refused with the reason; a certificate is not accepted by a KMC that serves another CA."""
    import secrets

    from ca_bridge.api import IssueRequest, RevocationReason
    from ca_bridge.embedded import EmbeddedCA
    from ca_bridge.revinfo import revocation_info
    from kms.recovery import ApprovalBook
    from pkicore.oids import OID
    from tests.unit.ca_bridge.helpers import USCC

    def hierarchy(prefix):
        ca = EmbeddedCA(softtoken_km, escrow.db, "http://kmc-recipient.test", name_prefix=prefix)
        ca.init_hierarchy(kinds=("sm2",), label_prefix=prefix)
        return ca

    mine, other = f"r{secrets.token_hex(3)}-", f"x{secrets.token_hex(3)}-"
    ours, theirs = hierarchy(mine), hierarchy(other)      # one database: authorities() lists both
    # the served CAs' whole chain: pyhanko-certvalidator establishes a CRL only below a self-signed anchor
    chain = [i.certificate for name, i in ours.authorities().items() if name.startswith(mine)]
    leaf = ours.issue(IssueRequest(request_id=f"rcpt-{secrets.token_hex(4)}", profile="unit",
                                   public_key_info=subscriber[1],
                                   subject=(("country_name", "CN"), ("organization_name", "示范市中级人民法院"),
                                            ("common_name", "示范市中级人民法院")),
                                   identity=((OID.UNIFIED_SOCIAL_CREDIT_CODE, USCC),)))
    book = ApprovalBook(escrow.db, escrow.config, issuers=lambda: chain,
                        revocation=lambda certs: revocation_info(ours, certs))
    assert book.check_recipient(leaf.certificate)["accepted"].startswith("issued by")
    foreign = ApprovalBook(escrow.db, escrow.config,
                           issuers=lambda: [theirs.authorities()[f"{other}issuing-sm2"].certificate])
    with pytest.raises(ApprovalError, match="not issued by one of our CAs"):
        foreign.check_recipient(leaf.certificate)
    ours.revoke(leaf.ca, leaf.serial, RevocationReason.key_compromise)
    with pytest.raises(ApprovalError, match="revoked") as refused:
        book.check_recipient(leaf.certificate)
    assert refused.value.code.value == "bad_request"
