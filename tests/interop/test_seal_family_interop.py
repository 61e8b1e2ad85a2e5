"""ECDSA and RSA seals made by the seal service, checked end to end by verifiers nobody here wrote: the stock
``pyhanko sign validate`` CLI (pyhanko-cli, its own process: pyHanko's default signature validator, no
SM2 code of ours loaded) trusting only the ECDSA root, ``openssl ts -verify`` for the seal's timestamp
token and ``openssl cms -verify`` for the PDF's SignedData; each with a failing twin. The seal service
stamps each seal with a TSA unit of its key's family (seal.timestamps); the twin that shows why: the same
ECDSA seal stamped by the SM2 unit (what the service did before) is not valid for stock pyHanko.

And the SM2 family's SM3 ESSCertIDv2 (seal.pades): Bouncy Castle and pyHanko check it — a correctly
signed CMS whose ESSCertIDv2 names another certificate is refused by both."""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import secrets
from pathlib import Path

import pytest
from asn1crypto import cms, pem, x509

from pkicore.cms import signing_certificate_v2_attribute
from pyhanko.sign.general import check_ess_certid
from seal import ofd, pdf, ses
from seal.errors import SealError
from seal.registry import SealMaker, SealRegistry, Signer
from racentre.demo.samples import make_ofd, make_pdf
from seal.services import SealService
from seal.timestamps import SealTimestamps, token_family
from tests.interop.bouncycastle import bc_verify_many, require_bc
from tests.interop.openssl_cli import require_openssl, ts_verify
from tests.interop.stock_pyhanko import check_pdf_seal_with_openssl, stock_pyhanko_validate, token_and_signature
from tests.unit.seal.sealpki import ecdsa_pki, seal_pki, stamp_png, tsa  # noqa: F401

def _pem(path: Path, der: bytes) -> Path:
    path.write_bytes(pem.armor("CERTIFICATE", der))
    return path


@pytest.fixture()
def service(db, seal_pki, ecdsa_pki):
    """The seal service over our registry with the SM2 (default) and ECDSA TSA units."""
    km, m = seal_pki["km"], seal_pki["maker"]
    registry = SealRegistry(db, km, SealMaker(m.label, m.certificate, m.alg))
    roots = (ecdsa_pki["ca"].certificate, seal_pki["ca"].certificate)
    return SealService(registry, trust=roots, chain=(ecdsa_pki["ca"].certificate,),
                       timestamps=SealTimestamps.of_authority(ecdsa_pki["tsa_units"]), tsa_trust=roots)


def _seal_for(service, signer, stamp_png) -> tuple[int, str]:
    clerk = f"clerk-{secrets.token_hex(3)}"
    # a seal belongs to the unit its signing certificate names (O), as the registry requires
    unit = x509.Certificate.load(signer.certificate).subject.native["organization_name"]
    record = service.registry.make_seal(actor="test", role="ra_admin", unit=unit, name=f"{unit} 公章",
                                        seal_type="official", picture=stamp_png, width_mm=40, height_mm=40,
                                        signers=[Signer(signer.label, signer.certificate, signer.alg)], users=(clerk,))
    return record.id, clerk


@pytest.mark.parametrize("kind", ["unit", "rsa_unit"])
def test_international_seal_validates_with_stock_pyhanko_and_openssl(service, ecdsa_pki, seal_pki, stamp_png,
                                                                     tmp_path, kind):
    require_openssl()
    signer = ecdsa_pki[kind]                       # an ECDSA P-256 or an RSA-2048 signing key
    seal_id, clerk = _seal_for(service, signer, stamp_png)
    sealed = service.seal(seal_id, make_pdf(1), principal=clerk, role="api_client")
    token, signature = token_and_signature(sealed)
    # an ECDSA unit stamps it (the site has no RSA unit: the RSA seal takes the ECDSA one), SHA-256 imprint
    assert token_family(token) == "ec"
    info = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
    assert info["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha256"
    pdf_path = tmp_path / "sealed.pdf"
    pdf_path.write_bytes(sealed)
    root = _pem(tmp_path / "ecdsa-root.pem", ecdsa_pki["ca"].certificate)
    sm2_root = _pem(tmp_path / "sm2-root.pem", seal_pki["ca"].certificate)

    ok = stock_pyhanko_validate(pdf_path, root)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ":INTACT:TRUSTED,TIMESTAMP_TOKEN<INTACT:TRUSTED>,UNTOUCHED" in ok.stdout, ok.stdout
    untrusted = stock_pyhanko_validate(pdf_path, sm2_root)       # twin: the seal's root is not trusted
    assert untrusted.returncode != 0 and ":INTACT:UNTRUSTED,TIMESTAMP_TOKEN<INTACT:UNTRUSTED>" in untrusted.stdout

    check_pdf_seal_with_openssl(pdf_path, root, tmp_path / "openssl")
    (tmp_path / "token.der").write_bytes(token)
    (tmp_path / "signature.bin").write_bytes(signature)
    assert not ts_verify(tmp_path / "token.der", sm2_root, data=tmp_path / "signature.bin", token=True).ok


def test_ecdsa_seal_with_the_sm2_units_token_fails_stock_pyhanko(service, ecdsa_pki, stamp_png, tmp_path,
                                                                 monkeypatch):
    """What the seal service did before: the ECDSA seal stamped by the SM2 (default) unit. Stock pyHanko
    cannot validate it (SM3/SM2 in the token) — why sealing now refuses such a token (seal.pdf checks the
    family of the timestamper's token; disabled here to make the old document)."""
    sm2_unit = SealTimestamps.of_authority(ecdsa_pki["tsa_units"]).unit_for("sm2")
    signer = ecdsa_pki["unit"]
    hsm_signer = pdf.HsmSigner(service.km, signer.label, signer.certificate, signer.alg,
                               chain=(ecdsa_pki["ca"].certificate,))
    with pytest.raises(SealError) as refused:
        pdf.seal_pdf(make_pdf(1), signer=hsm_signer, picture=stamp_png, width_mm=40, height_mm=40,
                     timestamper=pdf.InProcessTimeStamper(sm2_unit.respond))
    assert "not by an SM2 one" in refused.value.public_message
    monkeypatch.setattr(pdf, "check_token_family", lambda family, token: None)    # the old behaviour
    old = pdf.seal_pdf(make_pdf(1), signer=hsm_signer, picture=stamp_png, width_mm=40, height_mm=40,
                       timestamper=pdf.InProcessTimeStamper(sm2_unit.respond))
    assert token_family(token_and_signature(old)[0]) == "sm2"
    (tmp_path / "old.pdf").write_bytes(old)
    root = _pem(tmp_path / "ecdsa-root.pem", ecdsa_pki["ca"].certificate)
    result = stock_pyhanko_validate(tmp_path / "old.pdf", root)
    # pyhanko-cli 0.6 / pyHanko 0.38: "Error: Generic processing error." (asn1crypto has no SM3 / SM2 OIDs)
    assert result.returncode != 0 and "INTACT:TRUSTED" not in result.stdout, result.stdout + result.stderr


def test_ecdsa_ofd_seal_timestamp_verifies_with_openssl(service, ecdsa_pki, stamp_png, tmp_path):
    require_openssl()
    seal_id, clerk = _seal_for(service, ecdsa_pki["unit"], stamp_png)
    sealed = service.seal(seal_id, make_ofd("ECDSA 印章"), principal=clerk, role="api_client")
    ((_, value),) = ofd.extract_signed_values(sealed)
    view = ses.parse_signature(value)
    assert token_family(view.time_stamp) == "ec"
    (tmp_path / "token.der").write_bytes(view.time_stamp)
    (tmp_path / "signature.bin").write_bytes(view.signature)
    (tmp_path / "other.bin").write_bytes(view.signature[::-1])
    root = _pem(tmp_path / "ecdsa-root.pem", ecdsa_pki["ca"].certificate)
    good = ts_verify(tmp_path / "token.der", root, data=tmp_path / "signature.bin", token=True)
    assert good.ok, good.stdout + good.stderr
    assert not ts_verify(tmp_path / "token.der", root, data=tmp_path / "other.bin", token=True).ok
    assert service.verify(sealed).ok


def test_sm2_seal_sm3_ess_cert_id_is_checked_by_bouncy_castle_and_pyhanko(seal_pki, tmp_path):
    """The SM2 seal's signing-certificate-v2 names its certificate by SM3 (pkicore.cms.default_ess_digest); BC (its
    ESSCertIDv2 parser and SM3) and pyHanko (``check_ess_certid``, through cryptography's SM3) match it. The
    twin — same template, signed correctly, but the ESSCertIDv2 of the CA certificate — is refused by both,
    so both really read the attribute."""
    require_bc()
    km, ca, u = seal_pki["km"], seal_pki["ca"], seal_pki["unit"]
    signer = pdf.HsmSigner(km, u.label, u.certificate, u.alg, chain=[ca.certificate])
    template = signer.pades_template()
    content = b"%PDF-1.7 bytes the seal covers " + secrets.token_bytes(32)
    wrong_cms = copy.copy(template.cms)
    wrong_cms._ess_attr = signing_certificate_v2_attribute(ca.certificate, "sm3")  # noqa: SLF001 - the twin
    wrong = dataclasses.replace(template, cms=wrong_cms)
    argv = []
    for name, t in (("right", template), ("wrong", wrong)):
        attrs = t.signed_attributes(hashlib.new("sm3", content).digest())
        (tmp_path / f"{name}.p7s").write_bytes(t.content_info(attrs, km.sign(u.label, attrs, u.alg.mechanism)))
        argv.append(["cms", str(tmp_path / f"{name}.p7s"), "--content", str(tmp_path / "content.bin"), "--ess"])
    (tmp_path / "content.bin").write_bytes(content)
    right, bad = bc_verify_many(argv)
    assert right.returncode == 0 and "ess=1.2.156.10197.1.401" in right.stdout, right.stderr
    assert bad.returncode == 1 and "ESSCertIDv2 hash" in bad.stderr, (bad.stdout, bad.stderr)
    cert = x509.Certificate.load(u.certificate)
    for name, accepted in (("right", True), ("wrong", False)):
        si = cms.ContentInfo.load((tmp_path / f"{name}.p7s").read_bytes())["content"]["signer_infos"][0]
        attr = next(a for a in si["signed_attrs"] if a["type"].native == "signing_certificate_v2")
        cert_id = attr["values"][0]["certs"][0]
        assert cert_id["hash_algorithm"]["algorithm"].dotted == "1.2.156.10197.1.401"
        assert check_ess_certid(cert, cert_id) is accepted
