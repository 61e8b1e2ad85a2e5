"""seal.timestamps: a seal is timestamped by a TSA unit of its key's family — SM2 by an SM2 unit over SM3,
ECDSA by an ECDSA (else RSA) unit, RSA by an RSA (else ECDSA) unit, over the seal's own digest — on PDF
and OFD, through the seal service and its REST view; with no unit of the family sealing is refused
(409, naming the configuration to add), never sealed with another family's token; and the SM2 family's
SM3 ESSCertIDv2 (seal.pades) against the ECDSA family's DEFAULT SHA-256, checked by pyHanko.
(Stock pyHanko, OpenSSL and Bouncy Castle on the same artefacts: tests/interop/test_seal_family_interop.py.)"""
from __future__ import annotations

import hashlib
import io
import secrets
import types

import pytest
from asn1crypto import cms, x509
from click.testing import CliRunner
from pyhanko.sign.general import check_ess_certid

from access.auth import create_token
from pkicore.algorithms import algorithm
from store.db import transaction
from pkicore.errors import ErrorCode
from pkicore.sm2 import sm3
from racentre.config import Config
from racentre.web import create_app
from seal import ofd, pdf, ses, views
from seal.cli import seal_group
from seal.errors import SealError
from tests.localca import ensure_key
from seal.registry import SealMaker, SealRegistry, Signer, signer_algorithm
from racentre.demo.samples import make_ofd, make_pdf
from seal.services import SealService, unprovisioned_seal_service
from seal.timestamps import NoTimestampUnit, SealTimestamps, TsaUnitRef, token_family
from seal.validation import SealPolicy
from timestamp.config import TsaConfig
from timestamp.services import TsaService
from timestamp.tsa import TimeStampAuthority, TsaUnit
from tests.unit.seal.sealpki import unit_of

POLICY = "1.3.6.1.4.1.58011.1.1"
SM3_OID = "1.2.156.10197.1.401"


def _refs(*families: str) -> SealTimestamps:
    return SealTimestamps(TsaUnitRef(f"{f}-{i}", f, lambda q: b"") for i, f in enumerate(families))


@pytest.mark.parametrize("units,seal,chosen", [
    (("sm2", "ec", "rsa"), "sm2", "sm2"), (("sm2", "ec", "rsa"), "ec", "ec"), (("sm2", "ec", "rsa"), "rsa", "rsa"),
    (("sm2", "ec"), "rsa", "ec"), (("sm2", "rsa"), "ec", "rsa"), (("ec", "sm2"), "sm2", "sm2"),
    (("sm2", "ec", "ec"), "ec", "ec")])
def test_unit_of_the_seal_family(units, seal, chosen):
    unit = _refs(*units).unit_for(seal)
    assert unit.family == chosen and unit.name == f"{chosen}-{units.index(chosen)}"   # the first of the family


@pytest.mark.parametrize("units,seal", [(("sm2",), "ec"), (("sm2",), "rsa"), (("ec", "rsa"), "sm2"), ((), "sm2")])
def test_no_unit_of_the_family_is_a_clear_409(units, seal):
    with pytest.raises(NoTimestampUnit) as refused:
        _refs(*units).unit_for(seal)
    message = refused.value.public_message
    assert refused.value.code == ErrorCode.CONFLICT
    assert "[tsa] units" in message and "racentre setup" in message
    assert {"sm2": "an SM2 unit", "ec": "an ECDSA or RSA unit", "rsa": "an RSA or ECDSA unit"}[seal] in message


def test_tsa_service_unit_families_come_from_the_configuration(softtoken_km, tmp_path):
    config = TsaConfig(units="ecdsa=tsa-ecdsa:ecdsa-sha256, rsa=tsa-rsa:rsa-sha256:1.2.3.4.2",
                       base_dir=str(tmp_path))
    service = TsaService(config, softtoken_km)
    assert service.unit_families() == {"default": "sm2", "ecdsa": "ec", "rsa": "rsa"}
    assert service._authority is None          # no certificates needed to route seals
    assert [u.name for u in SealTimestamps.of_tsa_service(service).units] == ["default", "ecdsa", "rsa"]


@pytest.fixture(scope="module")
def rsa_tsa_unit(seal_pki, ecdsa_pki):
    km = seal_pki["km"]
    label = f"seal-tsa-rsa-{secrets.token_hex(3)}"
    cert = ecdsa_pki["ca"].issue(ensure_key(km, label, algorithm("rsa-sha256")), "Seal Test TSA RSA",
                                 timestamping=True)
    return TsaUnit("rsa", key_manager=km, key_label=label, algorithm_name="rsa-sha256", certificate=cert,
                   chain=(ecdsa_pki["ca"].certificate,), policy=POLICY)


def _service(db, seal_pki, ecdsa_pki, authority) -> SealService:
    km, m = seal_pki["km"], seal_pki["maker"]
    roots = (seal_pki["ca"].certificate, ecdsa_pki["ca"].certificate)
    return SealService(SealRegistry(db, km, SealMaker(m.label, m.certificate, m.alg)), trust=roots, chain=roots,
                       timestamps=SealTimestamps.of_authority(authority), tsa_trust=roots)


def _make(service, signer, stamp_png) -> tuple[int, str]:
    clerk = f"clerk-{secrets.token_hex(3)}"
    record = service.registry.make_seal(actor="t", role="ra_admin", unit=unit_of(signer.certificate), name="U 公章",
                                        seal_type="official",
                                        picture=stamp_png, width_mm=40, height_mm=40, users=(clerk,),
                                        signers=[Signer(signer.label, signer.certificate, signer.alg)])
    return record.id, clerk


def _pdf_token(sealed: bytes) -> tuple[bytes, bytes]:
    si = cms.ContentInfo.load(pdf.cms_and_signed_bytes(sealed)[0])["content"]["signer_infos"][0]
    return si["unsigned_attrs"][0]["values"][0].dump(), si["signature"].native


def _imprint(token: bytes) -> tuple[str, bytes]:
    info = cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
    mi = info["message_imprint"]
    return mi["hash_algorithm"]["algorithm"].native, mi["hashed_message"].native


@pytest.mark.parametrize("signer_kind,with_rsa_unit,family,digest", [
    ("sm2", True, "sm2", "sm3"), ("ecdsa", True, "ec", "sha256"), ("rsa", True, "rsa", "sha256"),
    ("rsa", False, "ec", "sha256")])
def test_the_service_stamps_pdf_and_ofd_seals_with_a_unit_of_their_family(db, seal_pki, ecdsa_pki, tsa, rsa_tsa_unit,
                                                                         stamp_png, signer_kind, with_rsa_unit,
                                                                         family, digest):
    units = dict(ecdsa_pki["tsa_units"].units)
    if with_rsa_unit:
        units["rsa"] = rsa_tsa_unit
    service = _service(db, seal_pki, ecdsa_pki, TimeStampAuthority(units, digests=["sm3", "sha256"]))
    signer = {"sm2": seal_pki["unit"], "ecdsa": ecdsa_pki["unit"], "rsa": ecdsa_pki["rsa_unit"]}[signer_kind]
    seal_id, clerk = _make(service, signer, stamp_png)
    sealed_pdf = service.seal(seal_id, make_pdf(1), principal=clerk, role="api_client")
    token, signature = _pdf_token(sealed_pdf)
    assert token_family(token) == family and _imprint(token) == (digest, hashlib.new(digest, signature).digest())
    sealed_ofd = service.seal(seal_id, make_ofd("family"), principal=clerk, role="api_client")
    ((_, value),) = ofd.extract_signed_values(sealed_ofd)
    view = ses.parse_signature(value)
    assert token_family(view.time_stamp) == family
    assert _imprint(view.time_stamp) == (digest, hashlib.new(digest, view.signature).digest())
    for report in (service.verify(sealed_pdf), service.verify(sealed_ofd)):
        assert report.ok and report.seals[0].timestamp_time, report.to_text()


def test_pdf_sealing_refuses_a_token_of_another_family(seal_pki, ecdsa_pki, stamp_png):
    routes = SealTimestamps.of_authority(ecdsa_pki["tsa_units"])
    for u, ca, wrong in ((ecdsa_pki["unit"], ecdsa_pki["ca"], "sm2"), (seal_pki["unit"], seal_pki["ca"], "ec")):
        signer = pdf.HsmSigner(seal_pki["km"], u.label, u.certificate, u.alg, chain=[ca.certificate])
        with pytest.raises(SealError) as refused:
            pdf.seal_pdf(make_pdf(1), signer=signer, picture=stamp_png, width_mm=40, height_mm=40,
                         timestamper=pdf.InProcessTimeStamper(routes.unit_for(wrong).respond))
        assert refused.value.code == ErrorCode.BAD_REQUEST and "could not check the timestamp" in str(refused.value)


def test_rest_sealing_without_a_unit_of_the_family_is_409(db, seal_pki, ecdsa_pki, tsa, stamp_png):
    """The SM2-only TSA (the default configuration): an ECDSA seal — made over REST without naming its
    algorithm, which comes from the certificate's key — is refused with what to configure; an SM2 seal is
    sealed and stamped as before."""
    km = seal_pki["km"]
    app = create_app(Config(), km, db, blueprints=[])
    service = _service(db, seal_pki, ecdsa_pki, tsa)
    views.install(app, service)
    tag = secrets.token_hex(3)
    with transaction(db) as s:
        clerk = create_token(s, f"clerk-{tag}", ["api_client"])
        admin = create_token(s, f"admin-{tag}", ["ra_admin"])
    client = app.test_client()
    for signer, alg, status in ((ecdsa_pki["unit"], "ecdsa-sha256", 409), (seal_pki["unit"], "sm2-sm3", 200)):
        made = client.post("/seal/seals", headers={"Authorization": f"Bearer {admin}"}, data={
            "unit": unit_of(signer.certificate), "name": "U 章", "type": "official", "key_label": signer.label,
            "users": f"clerk-{tag}",
            "certificate": (io.BytesIO(signer.certificate), "unit.der"),
            "picture": (io.BytesIO(stamp_png), "stamp.png")}, content_type="multipart/form-data")
        assert made.status_code == 201, made.json
        assert service.registry.use(made.json["id"], f"clerk-{tag}").signer.alg.name == alg
        for doc, kind in ((make_pdf(1), "application/pdf"), (make_ofd("x"), "application/ofd")):
            r = client.post(f"/seal/seals/{made.json['id']}/sign", data=doc, content_type=kind,
                            headers={"Authorization": f"Bearer {clerk}"})
            assert r.status_code == status, r.get_data(as_text=True)
            if status == 409:
                assert r.json["error"]["code"] == "conflict"
                assert "ECDSA or RSA unit" in r.json["error"]["message"]
                assert 'units = "ecdsa=tsa-ecdsa:ecdsa-sha256"' in r.json["error"]["message"]


def _ess(sealed: bytes):
    si = cms.ContentInfo.load(pdf.cms_and_signed_bytes(sealed)[0])["content"]["signer_infos"][0]
    attr = next(a for a in si["signed_attrs"] if a["type"].native == "signing_certificate_v2")
    return attr["values"][0]["certs"][0]


def test_ess_cert_id_hash_follows_the_family(seal_pki, ecdsa_pki, stamp_png):
    """SM2: hashAlgorithm SM3 (1.2.156.10197.1.401, no parameters), hash = SM3(certificate); ECDSA: the
    DEFAULT SHA-256, omitted. pyHanko's check_ess_certid (what validate_pdf_signature runs) accepts both,
    and the whole seals verify."""
    for u, ca, oid, hash_fn in ((seal_pki["unit"], seal_pki["ca"], SM3_OID, sm3),
                                (ecdsa_pki["unit"], ecdsa_pki["ca"], None, lambda d: hashlib.sha256(d).digest())):
        signer = pdf.HsmSigner(seal_pki["km"], u.label, u.certificate, u.alg, chain=[ca.certificate])
        sealed = pdf.seal_pdf(make_pdf(1), signer=signer, picture=stamp_png, width_mm=40, height_mm=40)
        cert_id = _ess(sealed)
        if oid is None:
            assert cert_id.contents[0] == 0x04         # certHash first: the DEFAULT sha256 is not encoded
        else:
            assert cert_id["hash_algorithm"]["algorithm"].dotted == oid
            assert cert_id["hash_algorithm"].dump() == bytes.fromhex("300a06082a811ccf55018311")
        assert cert_id["cert_hash"].native == hash_fn(u.certificate)
        assert check_ess_certid(x509.Certificate.load(u.certificate), cert_id)
        report = pdf.verify_pdf(sealed, SealPolicy.anchored([ca.certificate]))
        assert report.ok, report.to_text()


def test_signing_algorithm_follows_the_certificate_key(db, seal_pki, ecdsa_pki, stamp_png):
    """A seal's signer algorithm defaults to its certificate key's (REST, CLI and console make seals with
    it) and an algorithm of another family or curve is refused when the seal is made, not at sealing."""
    assert signer_algorithm(seal_pki["unit"].certificate).name == "sm2-sm3"
    assert signer_algorithm(ecdsa_pki["unit"].certificate).name == "ecdsa-sha256"
    assert signer_algorithm(ecdsa_pki["rsa_unit"].certificate).name == "rsa-sha256"
    assert signer_algorithm(ecdsa_pki["rsa_unit"].certificate, "rsa-sha384").name == "rsa-sha384"
    with pytest.raises(SealError):
        signer_algorithm(ecdsa_pki["unit"].certificate, "no-such-algorithm")
    service = _service(db, seal_pki, ecdsa_pki, ecdsa_pki["tsa_units"])
    for u, wrong in ((ecdsa_pki["unit"], "sm2-sm3"), (ecdsa_pki["unit"], "ecdsa-sha384"),
                     (seal_pki["unit"], "ecdsa-sha256"), (ecdsa_pki["rsa_unit"], "ecdsa-sha256")):
        with pytest.raises(SealError) as refused:
            service.registry.make_seal(actor="t", role="ra_admin", unit=unit_of(u.certificate), name="U 章",
                                       seal_type="official",
                                       picture=stamp_png, width_mm=40, height_mm=40,
                                       signers=[Signer(u.label, u.certificate, algorithm(wrong))])
        assert f"algorithm {wrong} does not sign with the certificate's" in refused.value.public_message


def test_a_tsa_refusal_is_a_503_not_a_500(db, seal_pki, ecdsa_pki, stamp_png):
    """The ECDSA unit of a TSA that accepts SM3 imprints only refuses the seal's SHA-256 query (badAlg):
    sealing fails with UPSTREAM_UNAVAILABLE (503) for PDF and OFD, nothing is sealed."""
    units = dict(ecdsa_pki["tsa_units"].units)
    service = _service(db, seal_pki, ecdsa_pki, TimeStampAuthority(units, digests=["sm3"]))
    seal_id, clerk = _make(service, ecdsa_pki["unit"], stamp_png)
    for doc in (make_pdf(1), make_ofd("refused")):
        with pytest.raises(SealError) as refused:
            service.seal(seal_id, doc, principal=clerk, role="api_client")
        assert refused.value.code == ErrorCode.UPSTREAM_UNAVAILABLE, refused.value
        assert "rejection" in refused.value.public_message and "bad_alg" in refused.value.public_message, \
            refused.value.public_message


def test_cli_seal_make_takes_the_algorithm_from_the_certificate(db, seal_pki, ecdsa_pki, stamp_png, tmp_path):
    """``racentre seal make`` with an ECDSA unit certificate: ecdsa-sha256 without --algorithm; a
    --algorithm of another family is refused when the seal is made."""
    km, m = seal_pki["km"], seal_pki["maker"]
    registry = SealRegistry(db, km, SealMaker(m.label, m.certificate, m.alg))
    services = types.SimpleNamespace(key_manager=km, db=db, seal=SealService(registry))
    u = ecdsa_pki["unit"]
    (tmp_path / "unit.der").write_bytes(u.certificate)
    (tmp_path / "seal.png").write_bytes(stamp_png)
    argv = ["make", "--unit", "Unit E", "--name", "Unit E 公章", "--picture", str(tmp_path / "seal.png"),
            "--key-label", u.label, "--cert", str(tmp_path / "unit.der"), "--user", "clerk-e"]
    made = CliRunner().invoke(seal_group, argv, obj={"services": services})
    assert made.exit_code == 0, made.output
    seal_id = int(made.output.split()[1])
    assert registry.use(seal_id, "clerk-e").signer.alg.name == "ecdsa-sha256"
    refused = CliRunner().invoke(seal_group, argv + ["--algorithm", "sm2-sm3"], obj={"services": services})
    assert isinstance(refused.exception, SealError)
    assert "algorithm sm2-sm3 does not sign with the certificate's ECDSA secp256r1 key" in str(refused.exception)


def test_a_site_without_a_ca_makes_no_seal(db, softtoken_km, ecdsa_pki, stamp_png, tmp_path):
    """Before ``racentre setup`` the seal service has no maker (only the site's CA certifies one): making a
    seal is refused with a conflict naming the fix."""
    services = types.SimpleNamespace(key_manager=softtoken_km, db=db,
                                     seal=unprovisioned_seal_service(softtoken_km, db))
    assert services.seal.registry.maker is None
    u = ecdsa_pki["unit"]
    (tmp_path / "unit.der").write_bytes(u.certificate)
    (tmp_path / "seal.png").write_bytes(stamp_png)
    refused = CliRunner().invoke(seal_group, ["make", "--unit", "Unit E", "--name", "Unit E 公章", "--picture",
                                              str(tmp_path / "seal.png"), "--key-label", u.label, "--cert",
                                              str(tmp_path / "unit.der"), "--user", "clerk-e"],
                                 obj={"services": services})
    assert isinstance(refused.exception, SealError), refused.output
    assert refused.exception.code == ErrorCode.CONFLICT and "racentre setup" in str(refused.exception)
