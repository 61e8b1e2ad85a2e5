"""Issue 13: verdicts that are never wrong. Each case of the issue on OFD, PDF and bare seals (.esl), with the
ETSI EN 319 102-1 indication and sub-indication it must give and whether the signature itself is intact:
trusted, unknown root, expired seal, expired signer with and without a timestamp, revoked signer (our CA's
CRL), a seal suspended or revoked in the registry; and OFD documents as other producers write them (the
namespace without /2016, unprotected files, Type="Sign" signatures, a second seal over a protected
Signatures.xml, UTF-8 bytes in an IA5String, a corrupt DEFLATE entry), through the library, the CLI and
REST."""
from __future__ import annotations

import datetime as dt
import io
import json
import secrets
import time
import zipfile

import pytest
from asn1crypto import x509
from click.testing import CliRunner

from ca_bridge import ca as hierarchy
from ca_bridge.api import IssueRequest, RevocationReason
from ca_bridge.embedded import EmbeddedCA
from ca_bridge.revinfo import revocation_info
from pkicore.algorithms import algorithm
from pkicore.certificate import build_certificate, simple_name
from pkicore.cms import CmsSigner, sign_data
from store.db import Base, make_engine, make_session_factory, utcnow
from pkicore.sm2 import sm3
from racentre.migrate import import_models
from seal import ofd, pdf, ses
from seal.cli import seal_group
from tests.localca import LocalIssuer, ensure_key
from racentre.demo.samples import make_pdf
from seal.validation import SealPolicy, SealState
from seal.verify import verify_document
from tests.unit.seal.sealpki import TESTDATA, rezip as _rezip
from timestamp.clock import ClockMonitor
from timestamp.tsa import TimeStampAuthority, TsaUnit

NOW = dt.datetime.now(dt.timezone.utc)
HELLO = (TESTDATA / "helloworld.ofd").read_bytes()
UNIT = (("country_name", "CN"), ("organization_name", "示范市财政局"), ("common_name", "示范市财政局"))
USCC = (("1.2.156.10260.4.1.4.4", "91330100MA27XL0E2K"),)


def _indication(report) -> tuple[str, str | None]:
    return report.indication.value, report.sub_indication.value if report.sub_indication else None


def _seal_indications(report) -> list[tuple[str, str | None, bool | None]]:
    return [(s.indication.value, s.sub_indication.value if s.sub_indication else None, s.signature_intact)
            for s in report.seals]


@pytest.fixture(scope="module")
def site(softtoken_km, tmp_path_factory):
    """Our embedded CA (SM2, SQLite) with CRLs, a unit's signing key, the seal maker and an SM2 TSA, each
    certified by it; an unrelated root; and the site's policy (our root, our CRLs)."""
    import_models()
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('verdicts') / 'ca.db'}")
    Base.metadata.create_all(engine)
    tag = f"vd{secrets.token_hex(3)}-"
    km = softtoken_km
    ca = EmbeddedCA(km, make_session_factory(engine), "http://ca.test:8600", name_prefix=tag)
    # made a minute ago (as the leaves' notBefore, ca_bridge.embedded.BACKDATE): the "tsa_behind" unit, whose
    # clock runs two seconds behind, stamps inside the CAs' validity
    hierarchy.init_hierarchy(km, ca.db, ca.public_url, kinds=("sm2",), prefix=tag, label_prefix=tag,
                             profiles=ca.profiles, config=ca.config, now=utcnow().replace(microsecond=0)
                             - dt.timedelta(minutes=1))
    ca.directory.reload()

    def certify(label, profile, subject, identity=()):
        spki = km.ensure_key_pair(label, "sm2")
        return ca.issue(IssueRequest(request_id=f"{label}-req", profile=profile, subject=subject,
                                     public_key_info=spki, identity=identity))

    unit, maker, tsa_cert = (certify(f"{tag}unit", "unit", UNIT, USCC),
                             certify(f"{tag}maker", "seal-maker", (("common_name", "示范市 Seal Maker"),)),
                             certify(f"{tag}tsa", "tsa", (("common_name", "示范市 TSA"),)))
    tsa_unit = TsaUnit("default", key_manager=km, key_label=f"{tag}tsa", algorithm_name="sm2-sm3",
                       certificate=tsa_cert.certificate, chain=tuple(tsa_cert.chain), policy="1.3.6.1.4.1.58011.1.1")
    tsa = TimeStampAuthority({"default": tsa_unit}, digests=["sm3"])
    # CRL revocation dates have whole seconds: a token two seconds older than a revocation made now
    behind = TimeStampAuthority({"default": tsa_unit}, digests=["sm3"],
                                clock=ClockMonitor(clock=lambda: time.time() - 2.0))
    root = ca.authorities()[f"{tag}root-sm2"].certificate
    other = LocalIssuer.create(km, f"{tag}other-root", common_name="Unrelated Test Root")
    return {"ca": ca, "km": km, "tag": tag, "unit": unit, "maker": maker, "tsa": tsa, "tsa_behind": behind,
            "root": root, "other": other,
            "policy": SealPolicy.anchored([root], revocation_info=lambda certs: revocation_info(ca, certs),
                                          other_certs=unit.chain)}


def _seal_der(site, signer_cert: bytes, *, start: dt.datetime | None = None, end: dt.datetime | None = None,
              es_id: str | None = None) -> bytes:
    km, maker = site["km"], site["maker"]
    info = ses.build_seal_info(vid="RACENTRE", es_id=es_id or secrets.token_hex(6), seal_type=1, name="示范市财政局公章",
                               certs=[signer_cert], create_date=NOW, valid_start=start or NOW - dt.timedelta(days=1),
                               valid_end=end or NOW + dt.timedelta(days=30), picture_type="PNG",
                               picture=_png(), width_mm=40, height_mm=40)
    return ses.make_seal(info, maker.certificate, lambda d: km.sign(f"{site['tag']}maker", d), algorithm("sm2-sm3"))


def _png() -> bytes:
    from tests.unit.seal.sealpki import png_bytes
    return png_bytes(40, 40)


def _timestamper(site, tsa: str = "tsa"):
    def stamp(signature: bytes) -> bytes:
        from asn1crypto import tsp
        query = tsp.TimeStampReq({"version": "v1", "message_imprint": {
            "hash_algorithm": {"algorithm": "sm3"}, "hashed_message": sm3(signature)}, "cert_req": True}).dump()
        return tsp.TimeStampResp.load(site[tsa].respond(query))["time_stamp_token"].dump()
    return stamp


def _seal_ofd(site, data: bytes = HELLO, *, signer_label: str | None = None, signer_cert: bytes | None = None,
              seal_der: bytes | None = None, timestamp: bool = True, tsa: str = "tsa", **kw) -> bytes:
    km = site["km"]
    label = signer_label or f"{site['tag']}unit"
    cert = signer_cert or site["unit"].certificate
    return ofd.seal_ofd(data, seal_der=seal_der or _seal_der(site, cert), signer_cert=cert,
                        sign=lambda d: km.sign(label, d), alg=algorithm("sm2-sm3"),
                        timestamp=_timestamper(site, tsa) if timestamp else None, **kw)


# ------------------------------------------------------------------ trust anchors

def test_trusted_ofd_passes_and_unknown_root_is_indeterminate(site):
    sealed = _seal_ofd(site)
    good = ofd.verify_ofd(sealed, site["policy"])
    assert _indication(good) == ("TOTAL_PASSED", None), good.to_text()
    assert good.seals[0].time_proven and good.seals[0].timestamp_time
    # an unrelated root as the only anchor (racentre seal verify --trust other.pem): intact, never valid
    other = ofd.verify_ofd(sealed, SealPolicy.anchored([site["other"].certificate]))
    assert _seal_indications(other) == [("INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND", True)], other.to_text()


def test_trusted_pdf_passes_and_unknown_root_is_indeterminate(site):
    signer = pdf.HsmSigner(site["km"], f"{site['tag']}unit", site["unit"].certificate, algorithm("sm2-sm3"),
                           chain=site["unit"].chain)
    sealed = pdf.seal_pdf(make_pdf(1), signer=signer, picture=_png(), width_mm=30, height_mm=30,
                          timestamper=pdf.InProcessTimeStamper(site["tsa"].respond))
    good = pdf.verify_pdf(sealed, site["policy"])
    assert _indication(good) == ("TOTAL_PASSED", None), good.to_text()
    assert good.seals[0].time_proven
    other = pdf.verify_pdf(sealed, SealPolicy.anchored([site["other"].certificate]))
    assert _seal_indications(other) == [("INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND", True)], other.to_text()


def test_esl_trusted_unknown_root_and_expired(site):
    current = _seal_der(site, site["unit"].certificate)
    assert _indication(verify_document(current, site["policy"])) == ("TOTAL_PASSED", None)
    unknown = verify_document(current, SealPolicy.anchored([site["other"].certificate]))
    assert _seal_indications(unknown) == [("INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND", True)]
    expired = _seal_der(site, site["unit"].certificate, start=NOW - dt.timedelta(days=400),
                        end=NOW - dt.timedelta(days=35))
    report = verify_document(expired, site["policy"])
    assert _seal_indications(report) == [("TOTAL_FAILED", "EXPIRED", True)], report.to_text()


def test_no_trust_anchors_is_never_valid(site):
    report = ofd.verify_ofd(_seal_ofd(site))
    assert _seal_indications(report) == [("INDETERMINATE", "NO_CERTIFICATE_CHAIN_FOUND", True)]


# ------------------------------------------------------------------ time: seal and signer validity

def test_expired_seal_with_and_without_timestamp(site):
    """Sealed while the seal was valid; verified after it expired: the timestamp proves the time (passes);
    without one, nobody can tell (OUT_OF_BOUNDS_NO_POE)."""
    seal_der = _seal_der(site, site["unit"].certificate, start=NOW - dt.timedelta(days=2),
                         end=NOW + dt.timedelta(hours=1))
    later = NOW + dt.timedelta(hours=2)         # within the CRL's nextUpdate, after the seal's validEnd
    stamped = ofd.verify_ofd(_seal_ofd(site, seal_der=seal_der), site["policy"], at=later)
    assert _indication(stamped) == ("TOTAL_PASSED", None), stamped.to_text()
    bare = ofd.verify_ofd(_seal_ofd(site, seal_der=seal_der, timestamp=False), site["policy"], at=later)
    assert _seal_indications(bare) == [("INDETERMINATE", "OUT_OF_BOUNDS_NO_POE", True)], bare.to_text()


@pytest.fixture(scope="module")
def expired_signer(site):
    """A signer whose certificate (from a second, trusted root) expired yesterday."""
    km, tag = site["km"], site["tag"]
    issuer = LocalIssuer.create(km, f"{tag}old-root", common_name="Old Unit CA")
    label = f"{tag}old-unit"
    spki = ensure_key(km, label, algorithm("sm2-sm3"))
    cert = issuer.issue(spki, "Old Unit", not_before=NOW - dt.timedelta(days=40), days=39)
    policy = SealPolicy.anchored([site["root"], issuer.certificate],
                                 revocation_info=lambda certs: revocation_info(site["ca"], certs))
    return {"label": label, "cert": cert, "policy": policy}


def test_expired_signer_with_and_without_timestamp(site, expired_signer):
    """Signed after the certificate expired: a timestamp proves it (TOTAL_FAILED / EXPIRED); without a
    timestamp the signature might predate the expiry (INDETERMINATE / OUT_OF_BOUNDS_NO_POE)."""
    es = expired_signer
    seal_der = _seal_der(site, es["cert"])
    for stamp, want in ((True, ("TOTAL_FAILED", "EXPIRED", True)), (False, ("INDETERMINATE", "OUT_OF_BOUNDS_NO_POE", True))):
        doc = _seal_ofd(site, signer_label=es["label"], signer_cert=es["cert"], seal_der=seal_der, timestamp=stamp)
        report = ofd.verify_ofd(doc, es["policy"])
        assert _seal_indications(report) == [want], report.to_text()


# ------------------------------------------------------------------ revocation: our CA's CRL, the registry

def test_revoked_signer(site):
    """The signer's certificate revoked at our CA: with a timestamp after the revocation TOTAL_FAILED /
    REVOKED; a seal timestamped before it stays valid; without a timestamp REVOKED_NO_POE."""
    ca, km, tag = site["ca"], site["km"], site["tag"]
    label = f"{tag}rev-{secrets.token_hex(2)}"
    spki = km.ensure_key_pair(label, "sm2")
    issued = ca.issue(IssueRequest(request_id=f"{label}-req", profile="unit", subject=UNIT, public_key_info=spki,
                                   identity=USCC))
    seal_der = _seal_der(site, issued.certificate)
    before = _seal_ofd(site, signer_label=label, signer_cert=issued.certificate, seal_der=seal_der,
                       tsa="tsa_behind")         # stamped two seconds before the revocation
    ca.revoke(issued.ca, issued.serial, RevocationReason.key_compromise)
    after = _seal_ofd(site, signer_label=label, signer_cert=issued.certificate, seal_der=seal_der)
    bare = _seal_ofd(site, signer_label=label, signer_cert=issued.certificate, seal_der=seal_der, timestamp=False)
    assert _seal_indications(ofd.verify_ofd(after, site["policy"])) == [("TOTAL_FAILED", "REVOKED", True)]
    assert _seal_indications(ofd.verify_ofd(bare, site["policy"])) == [("INDETERMINATE", "REVOKED_NO_POE", True)]
    assert _indication(ofd.verify_ofd(before, site["policy"])) == ("TOTAL_PASSED", None)


def test_seal_state_in_the_registry(site):
    es_id = secrets.token_hex(6)
    doc = _seal_ofd(site, seal_der=_seal_der(site, site["unit"].certificate, es_id=es_id))
    base = site["policy"]
    for state, want in ((SealState("suspended", NOW), ("INDETERMINATE", "TRY_LATER")),
                        (SealState("revoked", NOW - dt.timedelta(hours=1)), ("TOTAL_FAILED", "REVOKED")),
                        (SealState("revoked", NOW + dt.timedelta(hours=1)), ("TOTAL_PASSED", None))):
        policy = SealPolicy(base.trust, base.tsa, lambda e, s=state: s if e == es_id else None)
        assert _indication(ofd.verify_ofd(doc, policy)) == want, state
    bare = _seal_ofd(site, seal_der=_seal_der(site, site["unit"].certificate, es_id=es_id), timestamp=False)
    revoked = SealPolicy(base.trust, base.tsa, lambda e: SealState("revoked", NOW) if e == es_id else None)
    assert _indication(ofd.verify_ofd(bare, revoked)) == ("INDETERMINATE", "REVOKED_NO_POE")


# ------------------------------------------------------------------ OFD from other producers



def _suwell(data: bytes) -> bytes:
    """Every XML of the package in the namespace without /2016, as Suwell (数科) writes it."""
    src = zipfile.ZipFile(io.BytesIO(data))
    return _rezip(data, {n: src.read(n).replace(b"http://www.ofdspec.org/2016", b"http://www.ofdspec.org")
                         for n in src.namelist() if n.endswith(".xml")})


def test_suwell_namespace_seals_and_verifies(site):
    doc = _suwell(HELLO)
    assert b"http://www.ofdspec.org/2016" not in zipfile.ZipFile(io.BytesIO(doc)).read("OFD.xml")
    sealed = _seal_ofd(site, doc)
    report = ofd.verify_ofd(sealed, site["policy"])
    assert _indication(report) == ("TOTAL_PASSED", None), report.to_text()


def test_unprotected_files_are_warnings_and_the_shown_document_must_be_protected(site):
    sealed = _seal_ofd(site)
    extra = ofd.verify_ofd(_rezip(sealed, add={"Doc_0/Attachs/note.txt": b"later"}), site["policy"])
    assert extra.ok and any("not protected by this seal: /Doc_0/Attachs/note.txt" in w for w in extra.seals[0].warnings)
    # OFD.xml now names another, unsealed document: what is shown is not what was sealed
    names = zipfile.ZipFile(io.BytesIO(sealed)).namelist()
    ofd_xml = zipfile.ZipFile(io.BytesIO(sealed)).read("OFD.xml")
    doc_xml = zipfile.ZipFile(io.BytesIO(sealed)).read("Doc_0/Document.xml")
    swapped = _rezip(sealed, {"OFD.xml": ofd_xml.replace(b"Doc_0/Document.xml", b"Doc_0/Document2.xml")},
                     add={"Doc_0/Document2.xml": doc_xml})
    report = ofd.verify_ofd(swapped, site["policy"])
    assert "Doc_0/Document.xml" in names
    # our seals protect OFD.xml too, so this is a proven change; the report also names the unsealed root
    assert _seal_indications(report) == [("TOTAL_FAILED", "HASH_FAILURE", True)], report.to_text()
    assert any("the document shown (/Doc_0/Document2.xml) is not protected" in r for r in report.seals[0].reasons)
    # a producer that leaves OFD.xml unprotected (REFERENCES §13): the swap cannot be proven, but what is
    # shown is not what was sealed -> SIGNED_DATA_NOT_FOUND, never valid
    loose = _type_sign_ofd(site, lambda x: sign_data(sm3(x), _cms_signer(site)))
    ofd_xml = zipfile.ZipFile(io.BytesIO(loose)).read("OFD.xml")
    doc_xml = zipfile.ZipFile(io.BytesIO(loose)).read("Doc_0/Document.xml")
    moved = _rezip(loose, {"OFD.xml": ofd_xml.replace(b"Doc_0/Document.xml", b"Doc_0/Document2.xml")},
                   add={"Doc_0/Document2.xml": doc_xml})
    report = ofd.verify_ofd(moved, site["policy"])
    assert _seal_indications(report) == [("INDETERMINATE", "SIGNED_DATA_NOT_FOUND", True)], report.to_text()


def test_second_seal_over_a_protected_signature_list(site):
    """A first seal that also protected Signatures.xml (as KingGrid does): adding a second seal rewrites
    it, which is expected; both pass. Changing it with no later seal fails."""
    first = _seal_ofd(site, protect_signature_list=True)
    alone = ofd.verify_ofd(first, site["policy"])
    assert alone.ok, alone.to_text()
    twice = _seal_ofd(site, first, place=ofd.StampPlace(0, 20, 20))
    report = ofd.verify_ofd(twice, site["policy"])
    assert _indication(report) == ("TOTAL_PASSED", None), report.to_text()
    assert any("later seals were added" in w for w in report.seals[0].warnings)
    sigs = zipfile.ZipFile(io.BytesIO(first)).read("Doc_0/Signs/Signatures.xml")
    edited = ofd.verify_ofd(_rezip(first, {"Doc_0/Signs/Signatures.xml": sigs.replace(b"<ofd:MaxSignId>1",
                                                                                      b"<ofd:MaxSignId>7")}),
                            site["policy"])
    assert _seal_indications(edited) == [("TOTAL_FAILED", "HASH_FAILURE", True)], edited.to_text()


SIGN_XML = "Doc_0/Signs/Sign_0/Signature.xml"


def _type_sign_ofd(site, value_for) -> bytes:
    """HELLO with one Type="Sign" signature whose SignedValue.dat is ``value_for(Signature.xml bytes)``."""
    refs = "".join(f'<ofd:Reference FileRef="/{n}"><ofd:CheckValue>{ofd._checkvalue(c)}</ofd:CheckValue></ofd:Reference>'
                   for n, c in ((n, zipfile.ZipFile(io.BytesIO(HELLO)).read(n))
                                for n in zipfile.ZipFile(io.BytesIO(HELLO)).namelist()
                                if n != "OFD.xml" and not n.endswith("/")))
    sig_xml = (f'<?xml version="1.0" encoding="UTF-8"?><ofd:Signature xmlns:ofd="{ofd.NS}"><ofd:SignedInfo>'
               '<ofd:Provider ProviderName="test"/><ofd:SignatureMethod>1.2.156.10197.1.501</ofd:SignatureMethod>'
               f'<ofd:References CheckMethod="1.2.156.10197.1.401">{refs}</ofd:References></ofd:SignedInfo>'
               '<ofd:SignedValue>/Doc_0/Signs/Sign_0/SignedValue.dat</ofd:SignedValue></ofd:Signature>').encode()
    sigs = (f'<?xml version="1.0" encoding="UTF-8"?><ofd:Signatures xmlns:ofd="{ofd.NS}"><ofd:MaxSignId>1'
            f'</ofd:MaxSignId><ofd:Signature ID="1" Type="Sign" BaseLoc="/{SIGN_XML}"/></ofd:Signatures>').encode()
    ofd_xml = zipfile.ZipFile(io.BytesIO(HELLO)).read("OFD.xml").decode()
    ofd_xml = ofd_xml.replace("</ofd:DocRoot>", "</ofd:DocRoot><ofd:Signatures>Doc_0/Signs/Signatures.xml</ofd:Signatures>")
    return _rezip(HELLO, {"OFD.xml": ofd_xml.encode()},
                  add={"Doc_0/Signs/Signatures.xml": sigs, SIGN_XML: sig_xml,
                       "Doc_0/Signs/Sign_0/SignedValue.dat": value_for(sig_xml)})


def _cms_signer(site) -> CmsSigner:
    km, tag = site["km"], site["tag"]
    return CmsSigner(lambda d: km.sign(f"{tag}unit", d), site["unit"].certificate, algorithm("sm2-sm3"),
                     chain=tuple(site["unit"].chain))


def test_type_sign_signatures(site):
    """GM/T 0099 §7.2.2 b: SignedData over SM3(Signature.xml) (as ofdrw writes it) or over Signature.xml,
    attached or detached, verify and pass; altered fails; a bare SM2 signature cannot be validated; junk
    gets a clear message, not an ASN.1 parser's."""
    km, tag = site["km"], site["tag"]
    signer = _cms_signer(site)
    for make in (lambda x: sign_data(sm3(x), signer), lambda x: sign_data(x, signer),
                 lambda x: sign_data(x, signer, detached=True)):
        report = ofd.verify_ofd(_type_sign_ofd(site, make), site["policy"])
        assert _seal_indications(report) == [("TOTAL_PASSED", None, True)], report.to_text()
        assert report.seals[0].kind == "ofd-sign"
    wrong = ofd.verify_ofd(_type_sign_ofd(site, lambda x: sign_data(sm3(x + b" "), signer)), site["policy"])
    assert _seal_indications(wrong)[0][:2] == ("TOTAL_FAILED", "HASH_FAILURE"), wrong.to_text()
    bare = ofd.verify_ofd(_type_sign_ofd(site, lambda x: km.sign(f"{tag}unit", x)), site["policy"])
    assert _seal_indications(bare) == [("INDETERMINATE", "NO_SIGNING_CERTIFICATE_FOUND", None)], bare.to_text()
    junk = ofd.verify_ofd(_type_sign_ofd(site, lambda x: b"\x04\x03abc"), site["policy"])
    assert _seal_indications(junk) == [("TOTAL_FAILED", "FORMAT_FAILURE", None)]
    assert "neither a GB/T 35275 SignedData nor an SM2 signature" in junk.seals[0].reasons[0]


def _utf8_email_name(common_name: str) -> x509.Name:
    """A subject whose emailAddress IA5String carries UTF-8 bytes (as real certificates do)."""
    base = simple_name(common_name)
    email = x509.EmailAddress.load(b"\x16" + bytes([len("张三@例子.cn".encode())]) + "张三@例子.cn".encode())
    rdn = x509.RelativeDistinguishedName([x509.NameTypeAndValue({"type": "email_address", "value": email})])
    return x509.Name(name="", value=x509.RDNSequence([*base.chosen, rdn]))


def test_utf8_bytes_in_ia5string_and_corrupt_deflate(site, tmp_path):
    km, tag = site["km"], site["tag"]
    other = site["other"]
    label = f"{tag}utf8"
    spki = ensure_key(km, label, algorithm("sm2-sm3"))
    cert = build_certificate(subject=_utf8_email_name("UTF8 Unit"), issuer=x509.Certificate.load(other.certificate).subject,
                             spki=spki, issuer_spki=x509.Certificate.load(other.certificate).public_key.dump(),
                             alg=algorithm("sm2-sm3"), sign=lambda t: km.sign(other.label, t))
    doc = _seal_ofd(site, signer_label=label, signer_cert=cert, seal_der=_seal_der(site, cert))
    report = ofd.verify_ofd(doc, SealPolicy.anchored([site["root"], other.certificate], other_certs=site["unit"].chain,
                                                     revocation_info=lambda c: revocation_info(site["ca"], c)))
    # shown leniently; pyhanko-certvalidator cannot compare such names, so the path is "cannot tell", said
    # in words — never a traceback, never valid
    (seal,) = report.seals
    assert "E=张三@例子.cn" in seal.signer and seal.signature_intact, report.to_text()
    assert (seal.indication.value, seal.sub_indication.value) == ("INDETERMINATE", "CERTIFICATE_CHAIN_GENERAL_FAILURE")
    assert any("UTF-8 in an IA5String" in r for r in seal.reasons), report.to_text()
    assert json.loads(report.to_json())["seals"][0]["signer"].endswith("E=张三@例子.cn")
    (tmp_path / "utf8.ofd").write_bytes(doc)
    out = CliRunner().invoke(seal_group, ["verify", str(tmp_path / "utf8.ofd")])
    assert out.exit_code == 3 and "张三@例子.cn" in out.output, out.output
    # a corrupt DEFLATE stream in one entry: a clear FORMAT_FAILURE, not an exception
    raw = bytearray(doc)
    name = b"Doc_0/Pages/Page_0/Content.xml"
    pos = raw.index(name) + len(name) + 4          # inside the first compressed bytes of that entry
    for i in range(pos, pos + 8):
        raw[i] ^= 0xFF
    broken = ofd.verify_ofd(bytes(raw), site["policy"])
    assert _indication(broken) == ("TOTAL_FAILED", "FORMAT_FAILURE"), broken.to_text()
    (tmp_path / "broken.ofd").write_bytes(bytes(raw))
    cli = CliRunner().invoke(seal_group, ["verify", str(tmp_path / "broken.ofd")])
    assert cli.exit_code == 1 and "FORMAT_FAILURE" in cli.output and "Traceback" not in cli.output, cli.output


def _seal_pdf(site, label: str, cert: bytes, chain=(), *, timestamp: bool = True) -> bytes:
    signer = pdf.HsmSigner(site["km"], label, cert, algorithm("sm2-sm3"), chain=chain)
    return pdf.seal_pdf(make_pdf(1), signer=signer, picture=_png(), width_mm=30, height_mm=30,
                        timestamper=pdf.InProcessTimeStamper(site["tsa"].respond) if timestamp else None)


def test_pdf_expired_and_revoked_signers(site, expired_signer):
    """The same time rules on PDF signatures: expired signer with a timestamp TOTAL_FAILED / EXPIRED and
    without OUT_OF_BOUNDS_NO_POE; a signer revoked at our CA REVOKED (timestamp after) or REVOKED_NO_POE."""
    es = expired_signer
    for stamp, want in ((True, ("TOTAL_FAILED", "EXPIRED", True)),
                        (False, ("INDETERMINATE", "OUT_OF_BOUNDS_NO_POE", True))):
        report = pdf.verify_pdf(_seal_pdf(site, es["label"], es["cert"], timestamp=stamp), es["policy"])
        assert _seal_indications(report) == [want], report.to_text()
    ca, km, tag = site["ca"], site["km"], site["tag"]
    label = f"{tag}pdfrev-{secrets.token_hex(2)}"
    issued = ca.issue(IssueRequest(request_id=f"{label}-req", profile="unit", subject=UNIT, identity=USCC,
                                   public_key_info=km.ensure_key_pair(label, "sm2")))
    ca.revoke(issued.ca, issued.serial, RevocationReason.key_compromise)
    for stamp, want in ((True, ("TOTAL_FAILED", "REVOKED", True)), (False, ("INDETERMINATE", "REVOKED_NO_POE", True))):
        report = pdf.verify_pdf(_seal_pdf(site, label, issued.certificate, issued.chain, timestamp=stamp),
                                site["policy"])
        assert _seal_indications(report) == [want], report.to_text()
