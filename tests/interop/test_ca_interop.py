"""The CA's artefacts against independent verifiers: every SM2 certificate (root, issuing, OCSP signer, a
leaf of each profile), CRL (full and delta) and OCSP response verifies with Bouncy Castle (signatures,
PKIX paths with and without CRLs, nonce), a flipped byte fails; the ECDSA P-256 hierarchy also passes
``openssl verify`` (chain + CRL check of every level) and ``openssl ocsp`` (delegated responder, nonce).
Certificates are not bent to please OpenSSL's empty SM2 ID: SM2 is checked by BC only."""
from __future__ import annotations

import base64
import secrets
from urllib.parse import quote

import pytest
from asn1crypto import pem

from ca_bridge.api import RevocationReason
from ca_bridge.embedded import EmbeddedCA
from ca_bridge.views import OcspFastPath, bp
from racentre import fastpath
from racentre.web import create_app
from tests.interop.bouncycastle import assert_bc_fails, assert_bc_ok, bc_available, bc_verify_many
from tests.interop.openssl_cli import crl_verify, flip_byte, ocsp_verify, openssl_available, verify_chain
from tests.unit.ca_bridge.helpers import ec_spki, ocsp_request, request, sm2_spki

PROFILES = ("civil-servant-sign", "civil-servant-enc", "unit", "server", "tsa")


@pytest.fixture(scope="module")
def pki(embedded_ca):
    """The interop CA of tests/interop/conftest.py (SM2, ECDSA and RSA hierarchies, SQLite)."""
    return embedded_ca


def pre_produced_get(ca: EmbeddedCA, name: str, request_der: bytes) -> bytes:
    """The pre-produced answer (RFC 5019) to a nonce-less request, asked twice over GET through the
    service's fast path (RFC 6960 Appendix A.1, URL-encoded base64): the second is the kept one."""
    app = create_app(None, ca.km, ca.db, services={"ca": ca}, blueprints=[bp])
    fastpath.install(app, "ocsp", OcspFastPath(ca))
    path = f"/ocsp/{name}/" + quote(base64.b64encode(request_der).decode(), safe="")
    first, second = (app.test_client().get(path) for _ in range(2))
    assert first.status_code == second.status_code == 200 and first.data == second.data
    assert first.headers["Content-Type"] == "application/ocsp-response"
    return second.data


def write(dir_, name: str, der: bytes, as_pem: str | None = None):
    path = dir_ / name
    path.write_bytes(pem.armor(as_pem, der) if as_pem else der)
    return path


def test_sm2_artefacts_with_bouncy_castle(pki):
    if not bc_available():
        pytest.skip("Bouncy Castle not installed: apt-get install libbcprov-java libbcpkix-java libbcutil-java")
    ca, d = pki, pki.work
    root = ca.directory.get(f"{ca.test_tag}root-sm2")
    issuing = ca.directory.get(f"{ca.test_tag}issuing-sm2")
    f = {"root": write(d, "root.der", root.certificate), "issuing": write(d, "issuing.der", issuing.certificate),
         "ocsp": write(d, "ocsp.der", issuing.ocsp_certificate)}
    leaves = {p: ca.issue(request(p, sm2_spki())) for p in PROFILES}
    revoked = ca.issue(request("civil-servant-sign", sm2_spki()))
    for p, leaf in leaves.items():
        f[p] = write(d, f"{p}.der", leaf.certificate)
    f["revoked"] = write(d, "revoked.der", revoked.certificate)
    ca.revoke(issuing.name, revoked.serial, RevocationReason.key_compromise)
    f["crl"] = write(d, "issuing.crl", ca.crls.current(issuing.name).der)
    f["root_crl"] = write(d, "root.crl", ca.crls.current(root.name).der)
    f["delta"] = write(d, "issuing.delta.crl", ca.crls.current(issuing.name, delta=True).der)
    nonce = secrets.token_bytes(16)
    good = leaves["civil-servant-sign"]
    f["ocsp_good"] = write(d, "good.ocsp", ca.ocsp.respond(ocsp_request(issuing.certificate, [good.serial], "sm3", nonce)))
    f["ocsp_revoked"] = write(d, "revoked.ocsp", ca.ocsp.respond(
        ocsp_request(issuing.certificate, [revoked.serial], "sha1", nonce)))
    f["pre_good"] = write(d, "pre-good.ocsp", pre_produced_get(
        ca, issuing.name, ocsp_request(issuing.certificate, [good.serial], "sm3")))
    f["pre_revoked"] = write(d, "pre-revoked.ocsp", pre_produced_get(
        ca, issuing.name, ocsp_request(issuing.certificate, [revoked.serial], "sha1")))
    flipped = {name: write(d, f"{name}.flip", flip_byte(f[name].read_bytes(), -10))
               for name in ("server", "crl", "ocsp_good", "issuing", "pre_good")}

    crls = ["--crl", f["crl"], "--crl", f["root_crl"]]
    ok = [["cert", f["root"], f["root"]], ["cert", f["issuing"], f["root"]], ["cert", f["ocsp"], f["issuing"]],
          ["cert-path", f["issuing"], f["root"]], ["cert-path", f["issuing"], f["root"], "--crl", f["root_crl"]],
          ["cert-path", f["ocsp"], f["root"], f["issuing"]], ["cert-path", f["ocsp"], f["root"], f["issuing"], *crls],
          ["crl", f["crl"], f["issuing"]], ["crl", f["root_crl"], f["root"]], ["crl", f["delta"], f["issuing"]],
          ["ocsp", f["ocsp_good"], f["issuing"], "--serial", f"{good.serial:x}", "--nonce", nonce.hex()],
          ["ocsp", f["ocsp_revoked"], f["issuing"], "--serial", f"{revoked.serial:x}", "--nonce", nonce.hex()],
          ["ocsp", f["pre_good"], f["issuing"], "--serial", f"{good.serial:x}"],
          ["ocsp", f["pre_revoked"], f["issuing"], "--serial", f"{revoked.serial:x}"],
          ["cert", f["revoked"], f["issuing"]], ["cert-path", f["revoked"], f["root"], f["issuing"]]]
    for p in PROFILES:
        ok += [["cert", f[p], f["issuing"]], ["cert-path", f[p], f["root"], f["issuing"]],
               ["cert-path", f[p], f["root"], f["issuing"], *crls]]
    bad = [["cert-path", f["revoked"], f["root"], f["issuing"], *crls],
           ["cert", flipped["server"], f["issuing"]], ["cert-path", flipped["server"], f["root"], f["issuing"]],
           ["cert", flipped["issuing"], f["root"]], ["crl", flipped["crl"], f["issuing"]],
           ["ocsp", flipped["ocsp_good"], f["issuing"], "--serial", f"{good.serial:x}"],
           ["ocsp", flipped["pre_good"], f["issuing"], "--serial", f"{good.serial:x}"],
           ["cert", f["server"], f["root"]],                                    # wrong issuer
           ["ocsp", f["ocsp_good"], f["issuing"], "--serial", f"{good.serial:x}", "--nonce", "00" * 16]]
    results = bc_verify_many(ok + bad)
    for result in results[:len(ok)]:
        assert_bc_ok(result)
    for result in results[len(ok):]:
        assert_bc_fails(result)
    by_args = {tuple(r.args[:2]): r for r in results[:len(ok)]}
    assert by_args[("ocsp", str(f["ocsp_good"]))].stdout.startswith("good")
    assert by_args[("ocsp", str(f["ocsp_revoked"]))].stdout.startswith("revoked")
    assert "reason=1" in by_args[("ocsp", str(f["ocsp_revoked"]))].stdout
    assert by_args[("ocsp", str(f["pre_good"]))].stdout.startswith("good")
    assert by_args[("ocsp", str(f["pre_revoked"]))].stdout.startswith("revoked")
    assert "revocation=true" in results[len(ok) - 1].stdout
    assert "revocation" in results[len(ok)].stderr.lower() and "keycompromise" in results[len(ok)].stderr.lower()


def test_ecdsa_hierarchy_with_openssl_and_bc(pki):
    if not openssl_available():
        pytest.skip("openssl CLI not installed")
    ca, d = pki, pki.work
    root = ca.directory.get(f"{ca.test_tag}root-ecdsa")
    issuing = ca.directory.get(f"{ca.test_tag}issuing-ecdsa")
    good = ca.issue(request("server", ec_spki()))
    revoked = ca.issue(request("server", ec_spki()))
    ca.revoke(issuing.name, revoked.serial, RevocationReason.superseded)
    f = {"root": write(d, "e-root.pem", root.certificate, "CERTIFICATE"),
         "issuing": write(d, "e-issuing.pem", issuing.certificate, "CERTIFICATE"),
         "ocsp": write(d, "e-ocsp.pem", issuing.ocsp_certificate, "CERTIFICATE"),
         "good": write(d, "e-good.pem", good.certificate, "CERTIFICATE"),
         "revoked": write(d, "e-revoked.pem", revoked.certificate, "CERTIFICATE"),
         "crl": write(d, "e-issuing.crl.pem", ca.crls.current(issuing.name).der, "X509 CRL"),
         "root_crl": write(d, "e-root.crl.pem", ca.crls.current(root.name).der, "X509 CRL")}
    crls = [f["crl"], f["root_crl"]]
    assert verify_chain(f["good"], f["root"], untrusted=[f["issuing"]]).ok
    result = verify_chain(f["good"], f["root"], untrusted=[f["issuing"]], crls=crls, crl_check_all=True)
    assert result.ok, result.stdout + result.stderr
    result = verify_chain(f["revoked"], f["root"], untrusted=[f["issuing"]], crls=crls, crl_check_all=True)
    assert not result.ok and "revoked" in (result.stdout + result.stderr)
    assert verify_chain(f["ocsp"], f["root"], untrusted=[f["issuing"]], crls=crls, crl_check_all=True).ok
    assert verify_chain(f["good"], f["root"], untrusted=[f["issuing"]], purpose="sslserver").ok
    assert crl_verify(f["crl"], f["issuing"]).ok and crl_verify(f["root_crl"], f["root"]).ok
    flipped = write(d, "e-issuing.crl.flip", flip_byte(ca.crls.current(issuing.name).der, -5))
    assert not crl_verify(flipped, f["issuing"]).ok

    for serial, expected in ((good.serial, "good"), (revoked.serial, "revoked")):
        der = ca.ocsp.respond(ocsp_request(issuing.certificate, [serial], "sha1"))
        resp = write(d, f"e-{expected}.ocsp", der)
        result = ocsp_verify(resp, f["issuing"], f["root"], serial=serial, verify_other=f["issuing"])
        assert result.ok and result.status == expected, result.stdout + result.stderr
    # nonce checked by openssl against the request
    nonce = secrets.token_bytes(16)
    req = ocsp_request(issuing.certificate, [good.serial], "sha256", nonce)
    req_file, resp_file = write(d, "e-nonce.req", req), write(d, "e-nonce.ocsp", ca.ocsp.respond(req))
    result = ocsp_verify(resp_file, f["issuing"], f["root"], verify_other=f["issuing"], request=req_file)
    assert result.ok and "nonce" not in (result.stdout + result.stderr).lower(), result.stdout + result.stderr
    other = write(d, "e-other.req", ocsp_request(issuing.certificate, [good.serial], "sha256", b"x" * 16))
    result = ocsp_verify(resp_file, f["issuing"], f["root"], verify_other=f["issuing"], request=other)
    assert "nonce" in (result.stdout + result.stderr).lower()
    # pre-produced answers over GET (RFC 5019), and the kept one again after a revocation: revoked
    for serial, expected in ((good.serial, "good"), (revoked.serial, "revoked")):
        resp = write(d, f"e-pre-{expected}.ocsp", pre_produced_get(
            ca, issuing.name, ocsp_request(issuing.certificate, [serial], "sha1")))
        result = ocsp_verify(resp, f["issuing"], f["root"], serial=serial, verify_other=f["issuing"])
        assert result.ok and result.status == expected, result.stdout + result.stderr
    ca.revoke(issuing.name, good.serial, RevocationReason.certificate_hold)
    resp = write(d, "e-pre-held.ocsp", pre_produced_get(
        ca, issuing.name, ocsp_request(issuing.certificate, [good.serial], "sha1")))
    result = ocsp_verify(resp, f["issuing"], f["root"], serial=good.serial, verify_other=f["issuing"])
    assert result.ok and result.status == "revoked", result.stdout + result.stderr
    ca.revoke(issuing.name, good.serial, RevocationReason.remove_from_crl)
    flipped = write(d, "e-good.ocsp.flip", flip_byte((d / "e-good.ocsp").read_bytes(), -5))
    assert not ocsp_verify(flipped, f["issuing"], f["root"], serial=good.serial, verify_other=f["issuing"]).ok

    if bc_available():
        good_der = write(d, "e-good.der", good.certificate)
        results = bc_verify_many([
            ["cert-path", good_der, f["root"], f["issuing"], "--crl", f["crl"], "--crl", f["root_crl"]],
            ["crl", f["crl"], f["issuing"]],
            ["ocsp", d / "e-good.ocsp", f["issuing"], "--serial", f"{good.serial:x}"]])
        for r in results:
            assert_bc_ok(r)
