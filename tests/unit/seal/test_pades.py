"""seal.pades: the PAdES SignedData template equals what pyHanko's ``Signer.async_sign(use_pades=True)``
makes, byte for byte (B-B and B-T, SM2/ECDSA/RSA keys in the HSM, in-memory RSA-4096/ECDSA signers with
long Chinese names and several chain certificates); the ``bytes_reserved`` it gives pyHanko is never too
small; a document whose SignedData outgrows it is sealed again with pyHanko's own estimate; pyHanko never
estimates otherwise (B-B, B-T, B-LT)."""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import logging
import secrets

import pytest
from asn1crypto import cms, keys, x509
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import signers
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes
from pyhanko.sign.signers.pdf_signer import PdfSigningSession
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore

from seal.validation import SealPolicy
from seal import pades, pdf
from tests.localca import LocalIssuer, make_signer
from racentre.demo.samples import make_pdf
from timestamp.tsa import TimeStampAuthority, TsaUnit

LONG = "中华人民共和国浙江省杭州市人民政府办公厅电子政务外网数字证书认证中心"


class MemoKeyManager:
    """The HSM key manager, but one signature per (key, data): pyHanko and the template sign the same
    signed attributes, so both get the same (otherwise randomised) SM2/ECDSA signature."""

    def __init__(self, km):
        self.km, self.memo = km, {}

    def sign(self, label, data, mechanism):
        key = (label, data, mechanism)
        if key not in self.memo:
            self.memo[key] = self.km.sign(label, data, mechanism)
        return self.memo[key]


class FixedTimeStamper(TimeStamper):
    """A timestamper that hands out one token (a real one from our TSA) for every request."""

    def __init__(self, token: bytes):
        super().__init__()
        self.token = token

    async def async_timestamp(self, message_digest, md_algorithm):
        return cms.ContentInfo.load(self.token)


@pytest.fixture(scope="module")
def wide_tsa(seal_pki, softtoken_km):
    """An RSA TSA (longer tokens than the SM2 one) that stamps SM3 and every SHA-2 digest."""
    label = "pades-tsa-" + secrets.token_hex(3)
    spki = softtoken_km.ensure_key_pair(label, "rsa-2048")
    cert = seal_pki["ca"].issue(spki, "PAdES Test TSA " + LONG, timestamping=True)
    unit = TsaUnit("default", key_manager=softtoken_km, key_label=label, algorithm_name="rsa-sha256",
                   certificate=cert, chain=(seal_pki["ca"].certificate,), policy="1.3.6.1.4.1.58011.1.1")
    return TimeStampAuthority({"default": unit}, digests=["sm3", "sha256", "sha384", "sha512"])


def _token(tsa, digest="sm3") -> bytes:
    stamper = pdf.InProcessTimeStamper(tsa.respond)
    return asyncio.run(stamper.async_timestamp(hashlib.new(digest, b"x").digest(), digest)).dump()


def _pyhanko_cms(signer, digest: str, document_digest: bytes, timestamper=None) -> bytes:
    return asyncio.run(signer.async_sign(document_digest, digest, use_pades=True, timestamper=timestamper,
                                         signed_attr_settings=PdfCMSSignedAttributes())).dump()


def _ours(template: pades.PadesTemplate, signer, document_digest: bytes, token: bytes | None) -> bytes:
    attrs = template.signed_attributes(document_digest)
    signature = asyncio.run(signer.async_sign_raw(attrs, template.digest))
    return template.content_info(attrs, signature, token)


@pytest.fixture(scope="module")
def hsm_signers(seal_pki, softtoken_km):
    ca = seal_pki["ca"]
    rsa_ca = LocalIssuer.create(softtoken_km, "pades-rsa-ca-" + secrets.token_hex(3), "rsa-sha256",
                                common_name=LONG)
    memo = MemoKeyManager(softtoken_km)
    out = {}
    for name, issuer, alg_name in (("sm2", ca, "sm2-sm3"), ("ecdsa-p384", ca, "ecdsa-sha384"),
                                   ("rsa", rsa_ca, "rsa-sha256")):
        u = make_signer(softtoken_km, issuer, f"pades-{name}-{secrets.token_hex(3)}", LONG + name, alg_name,
                        organization=LONG)
        out[name] = pdf.HsmSigner(memo, u.label, u.certificate, u.alg, chain=[issuer.certificate])
    return out


@pytest.mark.parametrize("kind", ["sm2", "ecdsa-p384", "rsa"])
@pytest.mark.parametrize("timestamped", [False, True])
def test_template_equals_pyhanko_byte_for_byte(hsm_signers, tsa, wide_tsa, kind, timestamped):
    signer = hsm_signers[kind]
    digest = signer.alg.digest
    document_digest = hashlib.new(digest, secrets.token_bytes(64)).digest()
    token = _token(tsa if digest == "sm3" else wide_tsa, digest) if timestamped else None
    stamper = FixedTimeStamper(token) if timestamped else None
    reference = _pyhanko_cms(signer, digest, document_digest, stamper)
    template = signer.pades_template()
    ours = _ours(template, signer, document_digest, token)
    assert ours == reference
    # and it is what the standards say, not only what pyHanko does
    info = cms.ContentInfo.load(ours, strict=True)
    si = info["content"]["signer_infos"][0]
    for der_set in (info["content"]["certificates"], si["signed_attrs"]):     # DER: SET OF sorted
        members = [m.dump() for m in der_set]
        assert members == sorted(members)
    assert [a["type"].native for a in si["signed_attrs"]] == ["content_type", "message_digest",
                                                              "signing_certificate_v2"]
    assert b"\x31" + si["signed_attrs"].dump()[1:] == template.signed_attributes(document_digest)
    assert si["signed_attrs"].dump()[:1] == b"\xa0"
    unsigned = si["unsigned_attrs"].native
    assert (unsigned is not None) == timestamped
    if timestamped:
        assert [a["type"].native for a in si["unsigned_attrs"]] == ["signature_time_stamp_token"]
    if kind == "sm2":
        assert si["digest_algorithm"]["algorithm"].dotted == "1.2.156.10197.1.401"
        assert si["signature_algorithm"]["algorithm"].dotted == "1.2.156.10197.1.501"
    assert len(ours) <= template.size_bound(len(token) if token else None)


def _name(cn: str) -> cx509.Name:
    oid = cx509.oid.NameOID
    return cx509.Name([cx509.NameAttribute(oid.COUNTRY_NAME, "CN"), cx509.NameAttribute(oid.ORGANIZATION_NAME, LONG),
                       cx509.NameAttribute(oid.ORGANIZATIONAL_UNIT_NAME, LONG + "电子印章管理部"),
                       cx509.NameAttribute(oid.LOCALITY_NAME, LONG * 2), cx509.NameAttribute(oid.COMMON_NAME, cn)])


def _cert(subject, issuer, public_key, signing_key, ca: bool) -> bytes:
    now = dt.datetime.now(dt.timezone.utc)
    b = (cx509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
         .serial_number(cx509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
         .not_valid_after(now + dt.timedelta(days=30))
         .add_extension(cx509.BasicConstraints(ca=ca, path_length=None), critical=True))
    return b.sign(signing_key, hashes.SHA384()).public_bytes(serialization.Encoding.DER)


def _memory_signer(leaf_key, chain_keys) -> signers.SimpleSigner:
    """An in-memory pyHanko signer: ``leaf_key`` certified through ``chain_keys`` (root last)."""
    certs, issuer_name, issuer_key = [], None, None
    for i, key in enumerate(reversed(chain_keys)):
        name = _name(f"{LONG[:16]}根证书 {i}" if i == 0 else f"{LONG[:16]}中级证书 {i}")
        certs.insert(0, _cert(name, issuer_name or name, key.public_key(), issuer_key or key, True))
        issuer_name, issuer_key = name, key
    leaf = _cert(_name(LONG[:18] + "公章"), issuer_name, leaf_key.public_key(), issuer_key, False)
    der = leaf_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    return signers.SimpleSigner(signing_cert=x509.Certificate.load(leaf), signing_key=keys.PrivateKeyInfo.load(der),
                                cert_registry=SimpleCertificateStore.from_certs([x509.Certificate.load(c)
                                                                                 for c in certs]))


@pytest.fixture(scope="module")
def rsa4096():
    return [rsa.generate_private_key(65537, 4096) for _ in range(3)]


@pytest.mark.parametrize("case", ["rsa4096-3chain", "rsa4096-leaf-ec-chain", "p384-leaf-rsa4096-chain",
                                  "p256-self"])
def test_bytes_reserved_never_too_small(rsa4096, wide_tsa, case):
    p384 = ec.generate_private_key(ec.SECP384R1())
    leaf, chain, digest = {
        "rsa4096-3chain": (rsa4096[0], rsa4096[1:] + [rsa.generate_private_key(65537, 2048)], "sha512"),
        "rsa4096-leaf-ec-chain": (rsa4096[0], [p384, ec.generate_private_key(ec.SECP256R1())], "sha256"),
        "p384-leaf-rsa4096-chain": (p384, rsa4096[1:], "sha384"),
        "p256-self": (ec.generate_private_key(ec.SECP256R1()), [], "sha256")}[case]
    signer = _memory_signer(leaf, chain) if chain else _memory_signer(leaf, [leaf])
    template = pades.template_for(signer, digest)
    stamper = pdf.InProcessTimeStamper(wide_tsa.respond)
    token_size = len(asyncio.run(stamper.async_dummy_response(digest)).dump())
    for timestamper, size in ((None, None), (stamper, token_size)):
        reserved = template.bytes_reserved(size)
        assert reserved % 2 == 0
        for _ in range(5):      # fresh signatures and tokens each time: their sizes vary a little
            real = _pyhanko_cms(signer, digest, hashlib.new(digest, secrets.token_bytes(8)).digest(), timestamper)
            assert 2 * len(real) <= reserved
            if timestamper is None:        # exact but for the signature value's length
                assert template.size_bound() - 8 <= len(real) <= template.size_bound()
        assert reserved < 2 * template.size_bound(size) * 1.2       # and no waste worth speaking of


def _seal(signer, stamp_png, doc, **kw):
    return pdf.seal_pdf(doc, signer=signer, picture=stamp_png, width_mm=40, height_mm=40, **kw)


@pytest.fixture()
def no_estimate(monkeypatch):
    async def refuse(*args, **kwargs):
        raise AssertionError("pyHanko asked to estimate the signature size")
    monkeypatch.setattr(PdfSigningSession, "estimate_signature_container_size", refuse)


@pytest.fixture(scope="module")
def sm2(seal_pki):
    u = seal_pki["unit"]
    return pdf.HsmSigner(seal_pki["km"], u.label, u.certificate, u.alg, chain=[seal_pki["ca"].certificate])


def test_pyhanko_does_not_estimate(no_estimate, sm2, seal_pki, stamp_png, tsa):
    stamper = pdf.InProcessTimeStamper(tsa.respond)
    for kw in ({}, {"timestamper": stamper}):
        sealed = _seal(sm2, stamp_png, make_pdf(1), **kw)
        report = pdf.verify_pdf(sealed, SealPolicy.anchored([seal_pki["ca"].certificate]))
        assert report.ok, report.to_text()
        assert bool(report.seals[0].timestamp_time) == bool(kw)


def _contents_size(sealed: bytes) -> int:
    emb = PdfFileReader(io.BytesIO(sealed)).embedded_signatures[0]
    return len(bytes(emb.sig_object["/Contents"]))


def test_too_small_reservation_falls_back_to_pyhankos_estimate(monkeypatch, sm2, seal_pki, stamp_png, tsa, caplog):
    stamper = pdf.InProcessTimeStamper(tsa.respond)
    normal = _seal(sm2, stamp_png, make_pdf(1), timestamper=stamper)
    sizing = stamper._dummy_response_cache["sm3"]
    monkeypatch.setattr(pades.PadesTemplate, "bytes_reserved", lambda self, size=None: 600)
    with caplog.at_level(logging.WARNING, logger="seal.pdf"):
        sealed = _seal(sm2, stamp_png, make_pdf(1), timestamper=stamper)
    assert any("outgrew" in r.getMessage() for r in caplog.records)
    # the sizing token was fetched afresh (pyHanko's estimate refilled the cache): the TSA may have changed
    assert stamper._dummy_response_cache["sm3"] is not sizing
    report = pdf.verify_pdf(sealed, SealPolicy.anchored([seal_pki["ca"].certificate]))
    assert report.ok and report.seals[0].timestamp_time, report.to_text()
    # pyHanko's estimate: its dummy CMS plus 50 %, larger than ours
    assert _contents_size(sealed) > _contents_size(normal) > 300


def _embedded(sealed: bytes, index: int = 0):
    """(CMS DER without the placeholder's padding, document digest) of one seal."""
    cms_der, signed = pdf.cms_and_signed_bytes(sealed, index)
    si = cms.ContentInfo.load(cms_der)["content"]["signer_infos"][0]
    return cms_der, hashlib.new(si["digest_algorithm"]["algorithm"].native, signed).digest()


@pytest.mark.parametrize("kind,timestamped", [("sm2", True), ("sm2", False), ("ecdsa-p384", True), ("rsa", False)])
def test_sealed_documents_carry_what_pyhanko_would_have_made(no_estimate, monkeypatch, hsm_signers, tsa, wide_tsa,
                                                             stamp_png, kind, timestamped):
    """pyHanko's interrupted signing with our SignedData: the CMS in the document is byte for byte the one
    pyHanko's Signer.async_sign makes for the same document digest, signature and timestamp token."""
    signer = hsm_signers[kind]

    async def refuse(*args, **kwargs):
        raise AssertionError("pyHanko built the CMS")
    stamper = pdf.InProcessTimeStamper((tsa if signer.alg.digest == "sm3" else wide_tsa).respond)
    with monkeypatch.context() as m:
        m.setattr(pdf.HsmSigner, "async_sign", refuse)
        once = _seal(signer, stamp_png, make_pdf(2), timestamper=stamper if timestamped else None)
        twice = _seal(signer, stamp_png, once, timestamper=stamper if timestamped else None,
                      placement=pdf.Placement(page=1))
    for index, sealed in ((0, once), (1, twice)):
        embedded, document_digest = _embedded(sealed, index)
        token = None
        if timestamped:
            si = cms.ContentInfo.load(embedded)["content"]["signer_infos"][0]
            token = si["unsigned_attrs"][0]["values"][0].dump()
        reference = _pyhanko_cms(signer, signer.alg.digest, document_digest,
                                 FixedTimeStamper(token) if token else None)
        assert embedded == reference
    report = pdf.verify_pdf(twice, SealPolicy.anchored([c for c in signer.chain]))
    assert report.ok, report.to_text()
    assert len(report.seals) == 2 and all(bool(s.timestamp_time) == timestamped for s in report.seals)
