"""Tests of the openssl CLI wrapper on OpenSSL-made artefacts (good ones pass, tampered ones fail)."""

from __future__ import annotations

import pytest

from .openssl_cli import (
    ReferencePki,
    crl_verify,
    cms_verify,
    make_reference_pki,
    ocsp_verify,
    req_verify,
    require_openssl,
    run_openssl,
    sm2_public_from_private,
    sm2_raw_to_der,
    sm2_spki_der,
    sm2_verify,
    ts_verify,
    verify_chain,
)

KAT_D = 0x3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8
KAT_RS = bytes.fromhex(
    "F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3"
    "B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> ReferencePki:
    require_openssl()
    p = make_reference_pki(tmp_path_factory.mktemp("openssl-cli"))
    p.tampered("sm2.sig")
    p.tampered("sm2.csr", b"FlipTarget")
    p.tampered("ec.csr", b"FlipTarget")
    p.tampered("int.crl", bytes.fromhex("02045EED0001"))
    p.tampered("ocsp.resp", bytes.fromhex("02041234ABCD"))
    p.tampered("cms.der", b"CMS content")
    p.tampered("ts.tsr", p.values["ts.sha256"])
    p.write("content.flip", p["content"].read_bytes().replace(b"FlipTarget", b"FlipTargeu"))
    p.write("ts.data.flip", p["ts.data"].read_bytes() + b"x")
    x, y = sm2_public_from_private(KAT_D)
    p.write("kat.pub.der", sm2_spki_der(x, y))
    p.write("kat.msg", b"message digest")
    p.write("kat.sig", sm2_raw_to_der(KAT_RS))
    p.write("kat.sig.raw", KAT_RS)
    p.write("kat.sig.flip", sm2_raw_to_der(KAT_RS[:31] + bytes([KAT_RS[31] ^ 1]) + KAT_RS[32:]))
    return p


# ---------------------------------------------------------------- SM2 raw signatures

def test_sm2_signature(pki) -> None:
    assert sm2_verify(pki["sm2.pub"], pki["msg"], pki["sm2.sig"]).ok
    assert sm2_verify(pki["sm2.pub.der"], pki["msg"], pki["sm2.sig"]).ok
    assert sm2_verify(pki["sm2.pub"], pki["msg"], pki["sm2.sig.raw"], raw=True).ok


def test_sm2_signature_rejections(pki) -> None:
    assert not sm2_verify(pki["sm2.pub"], pki["msg"], pki["sm2.sig.flip"]).ok
    assert not sm2_verify(pki["sm2.pub"], pki["ts.data"], pki["sm2.sig"]).ok
    assert not sm2_verify(pki["sm2.pub"], pki["msg"], pki["sm2.sig"], distid="1234567812345679").ok
    assert not sm2_verify(pki["sm2.pub"], pki["msg"], pki["sm2.sig"], distid=None).ok  # OpenSSL's empty ID
    assert not sm2_verify(pki["kat.pub.der"], pki["msg"], pki["sm2.sig"]).ok


def test_sm2_signature_other_id(pki) -> None:
    assert sm2_verify(pki["sm2.pub"], pki["msg"], pki["sm2.sig.alice"], distid="ALICE123@YAHOO.COM").ok
    assert not sm2_verify(pki["sm2.pub"], pki["msg"], pki["sm2.sig.alice"]).ok


def test_sm2_known_answer(pki) -> None:
    assert sm2_verify(pki["kat.pub.der"], pki["kat.msg"], pki["kat.sig"]).ok
    assert sm2_verify(pki["kat.pub.der"], pki["kat.msg"], pki["kat.sig.raw"], raw=True).ok
    assert not sm2_verify(pki["kat.pub.der"], pki["kat.msg"], pki["kat.sig.flip"]).ok


# ---------------------------------------------------------------- CSRs

def test_req_verify(pki) -> None:
    assert req_verify(pki["sm2.csr"]).ok
    assert req_verify(pki["ec.csr"], distid=None).ok
    assert not req_verify(pki["sm2.csr.flip"]).ok
    assert not req_verify(pki["ec.csr.flip"], distid=None).ok


def test_req_verify_empty_id_trap(pki) -> None:
    # made without -sigopt distid: signed with the empty ID, so the default ID must reject it ...
    assert not req_verify(pki["sm2_emptyid.csr"]).ok
    # ... and only OpenSSL's own empty-ID default accepts it
    assert req_verify(pki["sm2_emptyid.csr"], distid=None).ok
    assert not req_verify(pki["sm2.csr"], distid=None).ok


# ---------------------------------------------------------------- chains, CRLs

def test_verify_chain(pki) -> None:
    assert verify_chain(pki["leaf.pem"], pki["root.pem"], untrusted=[pki["int.pem"]]).ok
    assert verify_chain(pki["leaf_rsa.pem"], pki["chain.pem"]).ok
    assert verify_chain(pki["rsa_self.pem"], pki["rsa_self.pem"]).ok
    assert not verify_chain(pki["leaf.pem"], pki["root.pem"]).ok  # intermediate missing
    assert not verify_chain(pki["leaf.pem"], pki["sm2_root.pem"], untrusted=[pki["int.pem"]]).ok


def test_verify_chain_with_crls(pki) -> None:
    crls = [pki["int.crl.pem"], pki["root.crl.pem"]]
    assert verify_chain(pki["leaf.pem"], pki["root.pem"], untrusted=[pki["int.pem"]], crls=crls,
                        crl_check_all=True).ok
    r = verify_chain(pki["leaf_rsa.pem"], pki["root.pem"], untrusted=[pki["int.pem"]], crls=crls,
                     crl_check_all=True)
    assert not r.ok and "revoked" in r.stdout + r.stderr


def test_verify_chain_cannot_check_sm2_default_id(pki) -> None:
    """Documents the REFERENCES §2 trap: `openssl verify` rejects a correct SM2 certificate
    (Bouncy Castle accepts it, see test_bc_harness) and accepts the empty-ID one."""
    assert not verify_chain(pki["sm2_leaf.pem"], pki["sm2_root.pem"]).ok
    assert verify_chain(pki["sm2_leaf_emptyid.pem"], pki["sm2_root.pem"]).ok


def test_crl_verify(pki) -> None:
    assert crl_verify(pki["int.crl.pem"], pki["int.pem"]).ok
    assert crl_verify(pki["int.crl"], pki["int.pem"]).ok
    assert not crl_verify(pki["int.crl"], pki["root.pem"]).ok
    assert not crl_verify(pki["int.crl.flip"], pki["int.pem"]).ok


# ---------------------------------------------------------------- OCSP

@pytest.mark.parametrize("resp", ["ocsp.resp", "ocsp_ca.resp"])
def test_ocsp_statuses(pki, resp) -> None:
    s = pki.serials
    for serial, status in ((s["leaf"], "good"), (s["leaf_rsa"], "revoked"), (s["unknown"], "unknown")):
        r = ocsp_verify(pki[resp], pki["int.pem"], pki["root.pem"], serial=serial, verify_other=pki["int.pem"])
        assert r.ok, r.stderr
        assert r.status == status


def test_ocsp_nonce_against_request(pki) -> None:
    r = ocsp_verify(pki["ocsp.resp"], pki["int.pem"], pki["root.pem"], request=pki["ocsp.req"],
                    verify_other=pki["int.pem"])
    assert r.ok, r.stderr
    # a fresh request carries another nonce
    other = pki.dir / "other.req"
    run_openssl("ocsp", "-issuer", pki["int.pem"], "-cert", pki["leaf.pem"], "-reqout", other, check=True)
    r = ocsp_verify(pki["ocsp.resp"], pki["int.pem"], pki["root.pem"], request=other, verify_other=pki["int.pem"])
    assert not r.ok


def test_ocsp_rejections(pki) -> None:
    r = ocsp_verify(pki["ocsp.resp.flip"], pki["int.pem"], pki["root.pem"], serial=pki.serials["leaf_rsa"],
                    verify_other=pki["int.pem"])
    assert not r.ok
    # the responder cannot be chained to an unrelated root
    r = ocsp_verify(pki["ocsp.resp"], pki["int.pem"], pki["sm2_root.pem"], serial=pki.serials["leaf"],
                    verify_other=pki["int.pem"])
    assert not r.ok


# ---------------------------------------------------------------- RFC 3161, CMS

def test_ts_verify(pki) -> None:
    assert ts_verify(pki["ts.tsr"], pki["root.pem"], data=pki["ts.data"]).ok
    assert ts_verify(pki["ts.tsr"], pki["root.pem"], queryfile=pki["ts.tsq"]).ok
    assert ts_verify(pki["ts.tsr"], pki["root.pem"], digest=pki.values["ts.sha256"].hex()).ok
    assert ts_verify(pki["ts.token"], pki["root.pem"], data=pki["ts.data"], token=True).ok
    assert ts_verify(pki["ts_nocert.tsr"], pki["root.pem"], data=pki["ts.data"], untrusted=pki["tsa.pem"]).ok


def test_ts_verify_rejections(pki) -> None:
    assert not ts_verify(pki["ts.tsr"], pki["root.pem"], data=pki["ts.data.flip"]).ok
    assert not ts_verify(pki["ts.tsr.flip"], pki["root.pem"], data=pki["ts.data"]).ok
    assert not ts_verify(pki["ts.tsr"], pki["sm2_root.pem"], data=pki["ts.data"]).ok


def test_cms_verify(pki) -> None:
    assert cms_verify(pki["cms.der"], pki["root.pem"]).ok
    # the detached one carries only the leaf: the intermediate comes from the CA file
    assert cms_verify(pki["cms_detached.pem"], pki["chain.pem"], content=pki["content"]).ok
    assert not cms_verify(pki["cms_detached.pem"], pki["root.pem"], content=pki["content"]).ok
    assert not cms_verify(pki["cms.der.flip"], pki["root.pem"]).ok
    assert not cms_verify(pki["cms_detached.pem"], pki["chain.pem"], content=pki["content.flip"]).ok
    assert not cms_verify(pki["cms.der"], pki["sm2_root.pem"]).ok
