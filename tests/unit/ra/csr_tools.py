"""CSRs made by tools other than our code (OpenSSL CLI, pyca/cryptography), for the RA tests."""
from __future__ import annotations

from pathlib import Path

from asn1crypto import csr as asn1_csr, pem
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.interop.openssl_cli import SM2_DEFAULT_ID, run_openssl

DISTID = f"distid:{SM2_DEFAULT_ID}"


def openssl_sm2_key(path: Path) -> Path:
    run_openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2", "-out", path, check=True)
    return path


def openssl_csr(workdir: Path, name: str, subj: str, *, sm2: bool = False, distid: bool = True,
                keyalg: tuple[str, ...] = (), digest: str = "-sha256", key: Path | None = None) -> bytes:
    """A PEM CSR made by ``openssl req``; SM2 ones with ``-sm3`` and (unless distid=False) the default ID."""
    out = workdir / f"{name}.csr"
    if key is None:
        key = workdir / f"{name}.key"
        if sm2:
            openssl_sm2_key(key)
        else:
            run_openssl("genpkey", *keyalg, "-out", key, check=True)
    args = ["req", "-new", "-utf8", "-key", key, "-subj", subj, "-out", out]
    if sm2:
        args += ["-sm3"] + (["-sigopt", DISTID] if distid else [])
    elif digest:
        args += [digest]
    run_openssl(*args, check=True)
    return out.read_bytes()


def openssl_resign_sm2(workdir: Path, csr_pem: bytes, key: Path, sig_oid: str) -> bytes:
    """Re-sign an SM2 CSR's info with ``openssl pkeyutl`` (default ID) under another signature OID
    (the sm2sign variant USB-key middleware emits)."""
    der = pem.unarmor(csr_pem)[2]
    req = asn1_csr.CertificationRequest.load(der)
    tbs = req["certification_request_info"].dump()
    (workdir / "tbs.bin").write_bytes(tbs)
    run_openssl("pkeyutl", "-sign", "-inkey", key, "-rawin", "-digest", "sm3", "-pkeyopt", DISTID,
                "-in", workdir / "tbs.bin", "-out", workdir / "tbs.sig", check=True)
    new = asn1_csr.CertificationRequest({
        "certification_request_info": req["certification_request_info"],
        "signature_algorithm": {"algorithm": sig_oid},
        "signature": (workdir / "tbs.sig").read_bytes(),
    })
    return new.dump()


def cryptography_csr(key, common_name: str, organization: str | None = None,
                     digest=hashes.SHA256()) -> bytes:
    """A DER CSR made by pyca/cryptography."""
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "CN")]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return (x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs)).sign(key, digest)
            .public_bytes(serialization.Encoding.DER))


def ec_key(curve=ec.SECP256R1()):
    return ec.generate_private_key(curve)


def rsa_key(bits: int = 2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def spki_der(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def tongsuo_sm2_key():
    """An SM2 key in Tongsuo (tongsuopy), which signs SM2-with-SM3 with the default ID."""
    from tongsuopy.crypto.asymciphers import ec as ts_ec
    return ts_ec.generate_private_key(ts_ec.SM2())


def tongsuo_spki(key) -> bytes:
    from pkicore.keys import public_key_info_from_point
    n = key.public_key().public_numbers()
    return public_key_info_from_point("sm2p256v1", b"\x04" + n.x.to_bytes(32, "big") + n.y.to_bytes(32, "big"))


def tongsuo_sm2_csr(key, subject: dict | None = None) -> bytes:
    """A DER SM2 CSR whose info is built with asn1crypto and signed by Tongsuo (default ID)."""
    from asn1crypto import keys as asn1_keys, x509 as asn1_x509
    from tongsuopy.crypto import hashes as ts_hashes
    from tongsuopy.crypto.asymciphers import ec as ts_ec
    info = asn1_csr.CertificationRequestInfo({
        "version": "v1", "subject": asn1_x509.Name.build(subject or {}, use_printable=False),
        "subject_pk_info": asn1_keys.PublicKeyInfo.load(tongsuo_spki(key)), "attributes": []})
    signature = key.sign(info.dump(), ts_ec.ECDSA(ts_hashes.SM3()))
    return asn1_csr.CertificationRequest({"certification_request_info": info,
                                          "signature_algorithm": {"algorithm": "1.2.156.10197.1.501"},
                                          "signature": signature}).dump()
