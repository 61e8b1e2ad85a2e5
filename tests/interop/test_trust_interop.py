"""The trust services against implementations nobody here wrote (issue 18):

* CMS SignedData made by Bouncy Castle 1.72 (SM3withSM2, its own CMSSignedDataGenerator) and by OpenSSL 3.0
  (`openssl cms -sign`, ECDSA P-256), attached and detached, verify with our code — and tampered content, a
  wrong certificate, a revoked signer (our CRL) give the right GM/T 0020 code and ETSI indication;
* our SM2 SignedData (RFC 5652 and GM/T 0010 forms, with a signature timestamp) verifies in Bouncy Castle and
  our ECDSA SignedData with `openssl cms -verify`, attached and detached; our evidence record verifies in BC;
* our raw SM2 signatures (default and a given ID) verify with `openssl pkeyutl -verify -rawin -digest sm3
  -pkeyopt distid:...`; raw SM2 signatures by the pure-Python gmssl are tested in tests/unit/trust.
"""
from __future__ import annotations

import secrets

import pytest
from asn1crypto import cms, pem, x509
from cryptography.hazmat.primitives import serialization
from tongsuopy.crypto import serialization as ts_serialization

from ca_bridge.api import RevocationReason
from tests.interop.bouncycastle import bc_verify, require_bc
from tests.interop.openssl_cli import require_openssl, run_openssl
from tests.pgschema import database_url
from tests.e2e.apiclient import api_client as client_for
from tests.unit.trust.site import b64, issue_user, make_site, unb64

DATA = "跨实现互通 interop content\n".encode() * 20


@pytest.fixture(scope="module")
def services(tmp_path_factory, softtoken_config):
    with database_url("sqlite", tmp_path_factory.mktemp("trust-interop"), "trust") as url:
        services = make_site(url, softtoken_config)
        yield services
        services.close()


@pytest.fixture(scope="module")
def client(services):
    return client_for(services, {"admin": ["ra_admin"], "app": ["application"]})


@pytest.fixture(scope="module")
def keys(client):
    out = {}
    for name, alg in (("sm2", "sm2"), ("ecdsa", "ec-p256")):
        resp = client("POST", "/api/v1/trust/keys", "admin", json={
            "application": client.names["app"], "key_algorithm": alg, "common_name": "interop.gov.test",
            "dns_names": ["interop.gov.test"]})
        assert resp.status_code == 201, resp.json
        out[name] = resp.json
    return out


def _pem_cert(der: bytes) -> bytes:
    return pem.armor("CERTIFICATE", der)


def _write(tmp_path, name: str, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _verify(client, **body) -> dict:
    resp = client("POST", "/api/v1/trust/verify", "app", json=body)
    assert resp.status_code == 200, resp.json
    return resp.json


def _pkcs8(user) -> bytes:
    if user.kind == "sm2":
        return user.key.private_bytes(ts_serialization.Encoding.DER, ts_serialization.PrivateFormat.PKCS8,
                                      ts_serialization.NoEncryption())
    return user.key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())


def _sign(client, keys, key, **body) -> bytes:
    resp = client("POST", "/api/v1/trust/sign", "app", json={"data": b64(DATA), "key_id": keys[key]["id"], **body})
    assert resp.status_code == 200, resp.json
    return unb64(resp.json["signature"])


def _root(services, kind: str) -> bytes:
    return services.ca.directory.get(f"root-{kind}").certificate


def _issuing(services, kind: str) -> bytes:
    return services.ca.directory.get(f"issuing-{kind}").certificate


# ---------------------------------------------------------------- Bouncy Castle

def test_bouncy_castle_sm2_signed_data_verifies_here(services, client, tmp_path):
    require_bc()
    user = issue_user(services)
    key = _write(tmp_path, "key.der", _pkcs8(user))
    cert = _write(tmp_path, "cert.der", user.certificate)
    content = _write(tmp_path, "content", DATA)
    for detached in (False, True):
        out = tmp_path / f"bc-{detached}.p7s"
        made = bc_verify("cms-sign", key, cert, content, out, "--alg", "SM3withSM2", *(["--detached"] if detached else []))
        assert made.returncode == 0, made.stderr
        body = {"signature": b64(out.read_bytes()), **({"data": b64(DATA)} if detached else {})}
        report = _verify(client, **body)
        assert report["valid"] and report["certificate_code"] == 1, report
        assert report["signers"][0]["algorithm"] == "sm2-sm3" and report["detached"] is detached
        tampered = _verify(client, signature=body["signature"], data=b64(DATA[:-1] + b"?"))
        assert tampered["indication"] == "TOTAL_FAILED" and tampered["sub_indication"] in ("HASH_FAILURE",
                                                                                          "SIG_CRYPTO_FAILURE")
    # the same SignedData once BC's signer is revoked by our CA: -3 from our CRL
    services.ca.revoke("issuing-sm2", x509.Certificate.load(user.certificate).serial_number,
                       RevocationReason.key_compromise)
    revoked = _verify(client, signature=b64((tmp_path / "bc-False.p7s").read_bytes()))
    assert revoked["certificate_code"] == -3 and not revoked["valid"]


def test_our_sm2_signed_data_verifies_in_bouncy_castle(services, client, keys, tmp_path):
    require_bc()
    issuing = _write(tmp_path, "issuing.der", _issuing(services, "sm2"))
    content = _write(tmp_path, "content", DATA)
    for name, body in (("attached", {}), ("gm", {"gm": True}), ("stamped", {"timestamp": True, "signing_time": True}),
                       ("detached", {"detached": True})):
        der = _sign(client, keys, "sm2", **body)
        path = _write(tmp_path, f"{name}.p7s", der)
        args = ["--content", content] if name == "detached" else []
        result = bc_verify("cms", path, "--ca", issuing, "--ess", *args)
        assert result.returncode == 0, (name, result.stderr)
        assert "sigAlg=1.2.156.10197.1.501" in result.stdout
    # and BC refuses it once the content is altered
    bad = bc_verify("cms", tmp_path / "detached.p7s", "--content", _write(tmp_path, "other", DATA + b"x"))
    assert bad.returncode == 1


def test_evidence_record_verifies_in_bouncy_castle(services, client, keys, tmp_path):
    require_bc()
    resp = client("POST", "/api/v1/trust/sign", "app", json={"data": b64(DATA), "key_id": keys["sm2"]["id"],
                                                            "evidence": True})
    der = client("GET", f"/api/v1/trust/evidence/{resp.json['evidence_id']}", "app").data
    result = bc_verify("cms", _write(tmp_path, "evidence.der", der), "--ca",
                       _write(tmp_path, "issuing.der", _issuing(services, "sm2")), "--ess")
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- OpenSSL

def test_openssl_ecdsa_signed_data_verifies_here(services, client, tmp_path):
    require_openssl()
    user = issue_user(services, "ec")
    key = _write(tmp_path, "key.pem", user.key.private_bytes(serialization.Encoding.PEM,
                                                             serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))
    cert = _write(tmp_path, "cert.pem", _pem_cert(user.certificate))
    content = _write(tmp_path, "content", DATA)
    for detached in (False, True):
        out = tmp_path / f"ossl-{detached}.der"
        args = ["cms", "-sign", "-binary", "-in", content, "-signer", cert, "-inkey", key, "-outform", "DER",
                "-out", out, "-md", "sha256"] + ([] if detached else ["-nodetach"])
        made = run_openssl(*args)
        assert made.returncode == 0, made.stderr
        body = {"signature": b64(out.read_bytes()), **({"data": b64(DATA)} if detached else {})}
        report = _verify(client, **body)
        assert report["valid"] and report["certificate_code"] == 1, report
        assert report["signers"][0]["algorithm"] == "ecdsa-sha256"
    # a wrong certificate: OpenSSL's SignedData with another user's certificate grafted in (OpenSSL itself
    # refuses to sign with a certificate that does not match the key)
    other = issue_user(services, "ec")
    der = _graft_certificate((tmp_path / "ossl-False.der").read_bytes(), user.certificate, other.certificate)
    wrong = _verify(client, signature=b64(der))
    assert not wrong["valid"] and wrong["indication"] in ("TOTAL_FAILED", "INDETERMINATE")
    assert wrong["sub_indication"] in ("SIG_CRYPTO_FAILURE", "NO_SIGNING_CERTIFICATE_FOUND"), wrong
    # revoked (our CRL)
    services.ca.revoke("issuing-ecdsa", x509.Certificate.load(user.certificate).serial_number,
                       RevocationReason.key_compromise)
    assert _verify(client, signature=b64((tmp_path / "ossl-False.der").read_bytes()))["certificate_code"] == -3


def _graft_certificate(signed: bytes, old: bytes, new: bytes) -> bytes:
    """The SignedData with certificate ``old`` replaced by ``new`` (and the SignerInfo's sid pointing to it)."""
    info = cms.ContentInfo.load(signed)
    sd = info["content"]
    new_cert = x509.Certificate.load(new)
    certs = [new_cert if c.chosen.dump() == old else c.chosen for c in sd["certificates"]]
    si = sd["signer_infos"][0]
    si["sid"] = cms.SignerIdentifier({"issuer_and_serial_number": {"issuer": new_cert.issuer,
                                                                   "serial_number": new_cert.serial_number}})
    sd["certificates"] = certs
    return cms.ContentInfo({"content_type": "signed_data", "content": sd}).dump(force=True)


def test_our_ecdsa_signed_data_verifies_with_openssl_cms(services, client, keys, tmp_path):
    require_openssl()
    root = _write(tmp_path, "root.pem", _pem_cert(_root(services, "ecdsa")))
    content = _write(tmp_path, "content", DATA)
    for name, body in (("attached", {}), ("stamped", {"timestamp": True, "signing_time": True}),
                       ("detached", {"detached": True})):
        path = _write(tmp_path, f"{name}.der", _sign(client, keys, "ecdsa", **body))
        args = ["cms", "-verify", "-binary", "-inform", "DER", "-in", path, "-CAfile", root, "-purpose", "any",
                "-out", tmp_path / f"{name}.out"] + (["-content", content] if name == "detached" else [])
        result = run_openssl(*args)
        assert result.returncode == 0 and "Verification successful" in result.stderr, (name, result.stderr)
        assert (tmp_path / f"{name}.out").read_bytes() == DATA
    altered = _write(tmp_path, "altered", DATA + b"!")
    refused = run_openssl("cms", "-verify", "-binary", "-inform", "DER", "-in", tmp_path / "detached.der",
                          "-CAfile", root, "-purpose", "any", "-content", altered, "-out", tmp_path / "x.out")
    assert refused.returncode != 0


def test_our_raw_sm2_verifies_in_openssl_with_distid(services, client, keys, tmp_path):
    require_openssl()
    content = _write(tmp_path, "content", DATA)
    for user_id in (None, "alice@gov.test"):
        body = {"data": b64(DATA), "form": "raw", "key_id": keys["sm2"]["id"], **({"user_id": user_id} if user_id else {})}
        resp = client("POST", "/api/v1/trust/sign", "app", json=body).json
        cert = x509.Certificate.load(unb64(resp["certificate"]))
        pub = _write(tmp_path, f"pub-{secrets.token_hex(2)}.pem", pem.armor("PUBLIC KEY", cert.public_key.dump()))
        sig = _write(tmp_path, f"sig-{secrets.token_hex(2)}.der", unb64(resp["signature"]))
        distid = user_id or "1234567812345678"
        good = run_openssl("pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-inkey", pub, "-in", content,
                           "-sigfile", sig, "-pkeyopt", f"distid:{distid}")
        assert good.returncode == 0 and "Signature Verified Successfully" in good.stdout, good.stderr
        wrong = run_openssl("pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-pubin", "-inkey", pub, "-in", content,
                            "-sigfile", sig, "-pkeyopt", f"distid:{distid}x")
        assert wrong.returncode != 0
