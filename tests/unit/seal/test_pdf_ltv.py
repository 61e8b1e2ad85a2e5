"""PAdES B-LT seals: the signer's and the TSA's chains come from our embedded CA (SM2 and ECDSA
hierarchies), their CRLs and OCSP responses go to the /DSS after the signature, and the seals validate
long-term (pyHanko's AdES LTA validation, revocation required, no fetching: only what the DSS holds)."""
from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import io
import secrets

import pytest
from asn1crypto import crl, ocsp, x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.ades.report import AdESIndeterminate, AdESPassed
from pyhanko.sign.validation import DocumentSecurityStore
from pyhanko.sign.validation.ades import ades_with_time_validation
from pyhanko.sign.validation.policy_decl import (LocalKnowledge, RevocationInfoGatheringSpec,
                                                 RevinfoOnlineFetchingRule, SignatureValidationSpec)
from pyhanko.sign.validation.status import PdfSignatureStatus
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy
from pyhanko_certvalidator.registry import SimpleTrustManager

from ca_bridge.api import IssueRequest, RevocationReason
from ca_bridge.embedded import EmbeddedCA
from ca_bridge.revinfo import revocation_info
from pkicore.algorithms import algorithm
from store.db import Base, make_engine, make_session_factory
from racentre.migrate import import_models
from seal.validation import SealPolicy
from seal import pdf
from seal.errors import SealError
from racentre.demo.samples import make_pdf
from timestamp.tsa import TimeStampAuthority, TsaUnit

UNIT = (("country_name", "CN"), ("organization_name", "杭州市财政局"), ("common_name", "杭州市财政局"))
USCC = (("1.2.156.10260.4.1.4.4", "91330100MA27XL0E2K"),)


@pytest.fixture(scope="module")
def ltv_pki(softtoken_km, tmp_path_factory):
    """Our embedded CA (SM2 + ECDSA hierarchies, SQLite), a unit key per algorithm in the token with a
    ``unit`` certificate, and an SM2 TSA certified by the SM2 issuing CA."""
    import_models()
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('ltv') / 'ca.db'}")
    Base.metadata.create_all(engine)
    tag = f"ltv{secrets.token_hex(3)}-"
    ca = EmbeddedCA(softtoken_km, make_session_factory(engine), "http://ca.test:8600", name_prefix=tag)
    ca.init_hierarchy(kinds=("sm2", "ecdsa"), label_prefix=tag)
    km = softtoken_km

    def certify(label, alg_name, profile, subject, identity=(), ca_name=None):
        alg = algorithm(alg_name)
        spki = km.ensure_key_pair(label, alg.key_algorithm)
        issued = ca.issue(IssueRequest(request_id=f"{label}-req", profile=profile, subject=subject,
                                       public_key_info=spki, identity=identity))
        return issued, alg

    out = {"ca": ca, "km": km}
    for kind, alg_name in (("sm2", "sm2-sm3"), ("ecdsa", "ecdsa-sha256")):
        issued, alg = certify(f"{tag}unit-{kind}", alg_name, "unit", UNIT, USCC)
        root = ca.authorities()[f"{tag}root-{kind}"].certificate
        out[kind] = {"label": f"{tag}unit-{kind}", "issued": issued, "alg": alg, "root": root,
                     "chain": issued.chain}
    for kind, alg_name, digest in (("sm2", "sm2-sm3", "sm3"), ("ecdsa", "ecdsa-sha256", "sha256")):
        tsa_issued, _ = certify(f"{tag}tsa-{kind}", alg_name, "tsa", (("common_name", f"LTV Test TSA {kind}"),))
        unit = TsaUnit("default", key_manager=km, key_label=f"{tag}tsa-{kind}", algorithm_name=alg_name,
                       certificate=tsa_issued.certificate, chain=tuple(tsa_issued.chain),
                       policy="1.3.6.1.4.1.58011.1.1")
        out[kind]["tsa"] = TimeStampAuthority({"default": unit}, digests=[digest])
        out[kind]["tsa_cert"] = tsa_issued.certificate
    out["tag"] = tag
    return out


def _signer(pki, kind):
    k = pki[kind]
    return pdf.HsmSigner(pki["km"], k["label"], k["issued"].certificate, k["alg"], chain=k["chain"])


def _long_term(pki, kind):
    return pdf.LongTerm((pki[kind]["root"],), lambda certs: revocation_info(pki["ca"], certs))


def _seal(pki, kind, doc, stamp_png, long_term=True, **kw):
    return pdf.seal_pdf(doc, signer=_signer(pki, kind), picture=stamp_png, width_mm=40, height_mm=40,
                        timestamper=pdf.InProcessTimeStamper(pki[kind]["tsa"].respond),
                        long_term=_long_term(pki, kind) if long_term else None, **kw)


def _serial(der: bytes) -> int:
    return x509.Certificate.load(der).serial_number


def _dss(data: bytes):
    return DocumentSecurityStore.read_dss(PdfFileReader(io.BytesIO(data)))


def test_sm2_seal_carries_our_crl_and_ocsp_in_the_dss(ltv_pki, stamp_png):
    sealed = _seal(ltv_pki, "sm2", make_pdf(1), stamp_png)
    dss = _dss(sealed)
    crls = [crl.CertificateList.load(c.get_object().data) for c in dss.crls]
    ocsps = [ocsp.OCSPResponse.load(o.get_object().data) for o in dss.ocsps]
    tag = ltv_pki["tag"]
    issuers = {c["tbs_cert_list"]["issuer"].native["common_name"] for c in crls}
    ca = ltv_pki["ca"]
    expected = {x509.Certificate.load(ca.authorities()[f"{tag}{n}"].certificate).subject.native["common_name"]
                for n in ("issuing-sm2", "root-sm2")}
    assert expected <= issuers
    # SM2 chains carry CRLs only: pyhanko-certvalidator cannot check an SM2 delegated OCSP responder
    assert ocsps == []
    report = pdf.verify_pdf(sealed, SealPolicy.anchored([ltv_pki["sm2"]["root"]]))
    assert report.ok, report.to_text()
    ltv = report.seals[0].details["ltv"]
    assert ltv["dss"] and ltv["crls"] >= 2 and ltv["ocsp_responses"] == 0
    assert ltv["validated"] is True and ltv["indication"] == "AdESPassed.OK", (ltv, report.seals[0].warnings)
    assert not report.seals[0].warnings


def test_lt_validation_needs_the_dss(ltv_pki, stamp_png):
    """The same seal without B-LT: pyHanko's LT validation (revocation required, nothing fetched) cannot
    pass, and our report says the revocation status was not checked."""
    root = [ltv_pki["sm2"]["root"]]
    bt = _seal(ltv_pki, "sm2", make_pdf(1), stamp_png, long_term=False)
    emb = PdfFileReader(io.BytesIO(bt)).embedded_signatures[0]
    result = pdf.long_term_validation(emb, root, root)
    assert result.ades_subindic != AdESPassed.OK
    report = pdf.verify_pdf(bt, SealPolicy.anchored(root))
    # nothing embedded and no revocation source: the status of the CA-issued signer is unknown, so the
    # verdict is "cannot tell", never valid
    assert report.indication.value == "INDETERMINATE" and report.seals[0].sub_indication.value == "TRY_LATER"
    assert report.seals[0].signature_intact is True
    assert report.seals[0].details["ltv"] == {"dss": False, "crls": 0, "ocsp_responses": 0, "certificates": 0,
                                              "validated": False, "indication": None}
    assert any("not PAdES B-LT" in w for w in report.seals[0].warnings)
    # with the CA as revocation source (what the site's verifier has) it passes
    online = pdf.verify_pdf(bt, SealPolicy.anchored(root, revocation_info=lambda c: revocation_info(ltv_pki["ca"], c)))
    assert online.ok, online.to_text()
    lt = _seal(ltv_pki, "sm2", make_pdf(1), stamp_png)
    emb = PdfFileReader(io.BytesIO(lt)).embedded_signatures[0]
    assert pdf.long_term_validation(emb, root, root).ades_subindic == AdESPassed.OK
    # B-LT, not B-LTA: once the embedded CRLs are stale (validity 1 day) pyHanko asks to try later
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3)
    assert pdf.long_term_validation(emb, root, root, at=later).ades_subindic == AdESIndeterminate.TRY_LATER


def test_ecdsa_seal_validates_b_lt_with_stock_pyhanko(ltv_pki, stamp_png):
    sealed = _seal(ltv_pki, "ecdsa", make_pdf(1), stamp_png)
    dss = _dss(sealed)
    responses = [ocsp.OCSPResponse.load(o.get_object().data)["response_bytes"]["response"].parsed
                 for o in dss.ocsps]
    status = {r["tbs_response_data"]["responses"][0]["cert_id"]["serial_number"].native:
              r["tbs_response_data"]["responses"][0]["cert_status"].name for r in responses}
    assert status == {_serial(ltv_pki["ecdsa"]["issued"].certificate): "good",
                      _serial(ltv_pki["ecdsa"]["tsa_cert"]): "good"}
    assert len(dss.crls) == 2                      # issuing CA and root
    # stock pyHanko: default signature validator, revocation required, nothing fetched, the DSS as knowledge
    root = x509.Certificate.load(ltv_pki["ecdsa"]["root"])
    policy = CertValidationPolicySpec(trust_manager=SimpleTrustManager.build(trust_roots=[root]),
                                      revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO))
    reader = PdfFileReader(io.BytesIO(sealed))
    emb = reader.embedded_signatures[0]
    emb.compute_integrity_info()
    spec = SignatureValidationSpec(cert_validation_policy=policy, local_knowledge=pdf.dss_knowledge(reader),
                                   revinfo_gathering_policy=RevocationInfoGatheringSpec(
                                       online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY))
    result = asyncio.run(ades_with_time_validation(emb.signed_data, spec, raw_digest=emb.compute_digest(),
                                                   extra_status_kwargs=emb.summarise_integrity_info(),
                                                   status_cls=PdfSignatureStatus))
    assert result.ades_subindic == AdESPassed.OK, result.failure_msg
    assert result.api_status.trusted and result.api_status.timestamp_validity.trusted
    # and without the DSS the same policy cannot pass
    bare = dataclasses.replace(spec, local_knowledge=LocalKnowledge())
    emb2 = PdfFileReader(io.BytesIO(_seal(ltv_pki, "ecdsa", make_pdf(1), stamp_png, long_term=False)))\
        .embedded_signatures[0]
    emb2.compute_integrity_info()
    result = asyncio.run(ades_with_time_validation(emb2.signed_data, bare, raw_digest=emb2.compute_digest(),
                                                   extra_status_kwargs=emb2.summarise_integrity_info(),
                                                   status_cls=PdfSignatureStatus))
    assert result.ades_subindic != AdESPassed.OK


def test_several_b_lt_seals_by_incremental_updates(ltv_pki, stamp_png):
    once = _seal(ltv_pki, "sm2", make_pdf(2), stamp_png)
    twice = _seal(ltv_pki, "sm2", once, stamp_png, placement=pdf.Placement(page=-1, x_mm=20, y_mm=20))
    thrice = _seal(ltv_pki, "ecdsa", twice, stamp_png, placement=pdf.Placement(page=0, x_mm=20, y_mm=200))
    report = pdf.verify_pdf(thrice, SealPolicy.anchored([ltv_pki["sm2"]["root"], ltv_pki["ecdsa"]["root"]]))
    assert report.ok, report.to_text()
    assert len(report.seals) == 3
    assert all(s.details["ltv"]["validated"] for s in report.seals), [s.details["ltv"] for s in report.seals]
    # later seals are form filling for the earlier ones; after the last only its /DSS update came
    assert [s.details["modification_level"] for s in report.seals] == ["FORM_FILLING", "FORM_FILLING",
                                                                        "LTA_UPDATES"]


def test_revoked_signer_is_refused_and_reported(ltv_pki, stamp_png, softtoken_km):
    ca, tag = ltv_pki["ca"], ltv_pki["tag"]
    label = f"{tag}unit-revoked"
    alg = algorithm("sm2-sm3")
    issued = ca.issue(IssueRequest(request_id=f"{label}-req", profile="unit", subject=UNIT, identity=USCC,
                                   public_key_info=softtoken_km.ensure_key_pair(label, "sm2")))
    signer = pdf.HsmSigner(softtoken_km, label, issued.certificate, alg, chain=issued.chain)
    sealed = pdf.seal_pdf(make_pdf(1), signer=signer, picture=stamp_png, width_mm=40, height_mm=40,
                          timestamper=pdf.InProcessTimeStamper(ltv_pki["sm2"]["tsa"].respond),
                          long_term=_long_term(ltv_pki, "sm2"))
    ca.revoke(issued.ca, _serial(issued.certificate), RevocationReason.key_compromise)
    with pytest.raises(SealError, match="revoked"):
        pdf.seal_pdf(make_pdf(1), signer=signer, picture=stamp_png, width_mm=40, height_mm=40,
                     timestamper=pdf.InProcessTimeStamper(ltv_pki["sm2"]["tsa"].respond),
                     long_term=_long_term(ltv_pki, "sm2"))
    # the seal made before the revocation still carries the "good" CRL of its time and validates
    assert pdf.verify_pdf(sealed, SealPolicy.anchored([ltv_pki["sm2"]["root"]])).ok


def test_b_lt_seal_cms_is_ours_and_dss_is_pyhankos(ltv_pki, stamp_png, monkeypatch):
    """B-LT through pyHanko's interrupted signing: pyHanko neither estimates the signature size nor
    builds the CMS (seal.pades does), and still validates the chains before and writes the /DSS after."""
    from pyhanko.sign.signers.pdf_signer import PdfSigningSession

    async def refuse(*args, **kwargs):
        raise AssertionError("pyHanko estimated or built the CMS")
    monkeypatch.setattr(PdfSigningSession, "estimate_signature_container_size", refuse)
    monkeypatch.setattr(pdf.HsmSigner, "async_sign", refuse)
    for kind in ("sm2", "ecdsa"):
        sealed = _seal(ltv_pki, kind, make_pdf(1), stamp_png)
        assert len(_dss(sealed).crls) >= 2
        report = pdf.verify_pdf(sealed, SealPolicy.anchored([ltv_pki[kind]["root"]]))
        assert report.ok and report.seals[0].details["ltv"]["validated"], report.to_text()
