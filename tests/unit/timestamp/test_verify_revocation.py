"""timestamp.verify: the TSA certificate's path and revocation at genTime through pkicore.validation
(pyhanko-certvalidator with our SM2 validator), with RFC 3161 §4's rule for revocations: before genTime
the token is invalid; after it, only a key or CA compromise invalidates it. Our embedded CA issues the
TSA certificate (critical id-kp-timeStamping) and publishes the CRLs."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import time

import pytest
from asn1crypto import tsp, x509

from ca_bridge import ca as hierarchy
from ca_bridge.api import IssueRequest, RevocationReason
from ca_bridge.embedded import EmbeddedCA
from store.db import Base, make_engine, make_session_factory, utcnow
from racentre.migrate import import_models
from timestamp.clock import ClockMonitor
from timestamp.tsa import TimeStampAuthority, TsaUnit
from timestamp.verify import verify_token


@pytest.fixture(scope="module")
def site(softtoken_km, tmp_path_factory):
    import_models()
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('tsaverify') / 'ca.db'}")
    Base.metadata.create_all(engine)
    tag = f"tv{secrets.token_hex(3)}-"
    ca = EmbeddedCA(softtoken_km, make_session_factory(engine), "http://ca.test:8600", name_prefix=tag)
    # made a minute ago (as the leaves' notBefore, ca_bridge.embedded.BACKDATE), so that a TSA whose clock
    # runs SKEW behind stamps inside the CAs' validity
    hierarchy.init_hierarchy(ca.km, ca.db, ca.public_url, kinds=("sm2",), prefix=tag, label_prefix=tag,
                             profiles=ca.profiles, config=ca.config, now=utcnow().replace(microsecond=0)
                             - dt.timedelta(minutes=1))
    ca.directory.reload()
    root = ca.authorities()[f"{tag}root-sm2"].certificate
    yield {"ca": ca, "km": softtoken_km, "tag": tag, "root": root}
    engine.dispose()


SKEW = 2.0      # seconds: CRL revocation dates have whole seconds


def _tsa(site, skew: float = 0.0):
    """A fresh TSA unit (own key, own certificate) so that each test revokes its own; its clock runs
    ``skew`` seconds ahead of the CA's (behind when negative): a token stamped SKEW after, or before, a
    revocation without waiting for the seconds to pass."""
    label = f"{site['tag']}tsa-{secrets.token_hex(3)}"
    spki = site["km"].ensure_key_pair(label, "sm2")
    issued = site["ca"].issue(IssueRequest(request_id=f"{label}-req", profile="tsa", public_key_info=spki,
                                           subject=(("country_name", "CN"), ("common_name", label))))
    unit = TsaUnit("default", key_manager=site["km"], key_label=label, algorithm_name="sm2-sm3",
                   certificate=issued.certificate, chain=tuple(issued.chain), policy="1.3.6.1.4.1.58011.1.1")
    clock = ClockMonitor(clock=lambda: time.time() + skew)
    return TimeStampAuthority({"default": unit}, digests=["sm3"], clock=clock), issued


def _token(tsa, data: bytes) -> bytes:
    query = tsp.TimeStampReq({"version": 1, "message_imprint": {
        "hash_algorithm": {"algorithm": "sm3"}, "hashed_message": hashlib.new("sm3", data).digest()},
        "cert_req": True}).dump()
    reply = tsp.TimeStampResp.load(tsa.respond(query))
    assert reply["status"]["status"].native == "granted"
    return reply["time_stamp_token"].dump()


def _crls(site, issued) -> list[bytes]:
    ca = site["ca"]
    return [ca.crls.current(issued.ca).der, ca.crls.current(f"{site['tag']}root-sm2").der]


def test_good_with_and_without_crls(site):
    tsa, issued = _tsa(site)
    token = _token(tsa, b"doc")
    with_crls = verify_token(token, data=b"doc", trust=[site["root"]], crls=_crls(site, issued))
    assert with_crls.ok, with_crls.reasons
    assert with_crls.chain[0].endswith(x509.Certificate.load(issued.certificate).subject.native["common_name"])
    assert len(with_crls.chain) == 3 and not with_crls.warnings
    without = verify_token(token, data=b"doc", trust=[site["root"]])
    assert without.ok and "no CRL given: revocation was not checked" in without.warnings


def test_untrusted_anchor_is_refused(site):
    tsa, _ = _tsa(site)
    prefix = f"o{secrets.token_hex(3)}-"
    other = EmbeddedCA(site["km"], site["ca"].db, "http://other.test", name_prefix=prefix)
    other.init_hierarchy(kinds=("sm2",), label_prefix=prefix)
    foreign_root = other.authorities()[f"{prefix}root-sm2"].certificate
    result = verify_token(_token(tsa, b"doc"), data=b"doc", trust=[foreign_root])
    assert not result.ok and any("does not chain to a trusted root" in r for r in result.reasons), result.reasons


def test_revoked_before_gentime_invalidates(site):
    tsa, issued = _tsa(site, SKEW)
    site["ca"].revoke(issued.ca, issued.serial, RevocationReason.superseded)
    result = verify_token(_token(tsa, b"doc"), data=b"doc", trust=[site["root"]], crls=_crls(site, issued))
    assert not result.ok and any("revoked" in r for r in result.reasons), result.reasons


def test_revoked_after_gentime(site):
    """RFC 3161 §4: a later revocation for another reason leaves earlier tokens valid (with a warning); a
    key compromise invalidates them all."""
    tsa, issued = _tsa(site, -SKEW)
    token = _token(tsa, b"doc")
    site["ca"].revoke(issued.ca, issued.serial, RevocationReason.superseded)
    later = verify_token(token, data=b"doc", trust=[site["root"]], crls=_crls(site, issued))
    assert later.ok, later.reasons
    assert any("revoked after genTime" in w for w in later.warnings), later.warnings

    tsa2, issued2 = _tsa(site, -SKEW)
    token2 = _token(tsa2, b"doc")
    site["ca"].revoke(issued2.ca, issued2.serial, RevocationReason.key_compromise)
    compromised = verify_token(token2, data=b"doc", trust=[site["root"]], crls=_crls(site, issued2))
    assert not compromised.ok and any("key_compromise" in r for r in compromised.reasons), compromised.reasons


def test_crls_given_but_none_from_the_issuer(site):
    """Revocation asked for (CRLs given) but the issuing CA's CRL is missing: cannot tell, so not ok."""
    tsa, issued = _tsa(site)
    root_crl = site["ca"].crls.current(f"{site['tag']}root-sm2").der
    result = verify_token(_token(tsa, b"doc"), data=b"doc", trust=[site["root"]], crls=[root_crl])
    assert not result.ok and any("revocation status unknown" in r for r in result.reasons), result.reasons
