"""pkicore.validation.parsed_certificate / parsed_crl: one fully parsed object per DER, shared by every
validation that meets it; DER that does not parse in full is loaded afresh each time, never shared."""
from __future__ import annotations

import datetime as dt

from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from pkicore.validation import parsed_certificate, parsed_crl


def _certificate(email: str) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = cx509.Name([cx509.NameAttribute(cx509.oid.NameOID.COMMON_NAME, "parsed once")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (cx509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(cx509.SubjectAlternativeName([cx509.RFC822Name(email)]), critical=False)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER), key


def test_a_certificate_is_parsed_once_and_shared():
    der, _ = _certificate("ab@example.cn")
    first = parsed_certificate(der)
    assert parsed_certificate(bytes(der)) is first
    assert first.dump() == der and first.subject.human_friendly == "Common Name: parsed once"


def test_a_certificate_that_does_not_parse_in_full_is_never_shared():
    der, _ = _certificate("ab@example.cn")
    odd = der.replace(b"ab@example.cn", "ab@éample.cn".encode())      # UTF-8 bytes in an IA5String
    assert len(odd) == len(der) and odd != der
    one, two = parsed_certificate(odd), parsed_certificate(odd)
    assert one is not two and one.dump() == odd


def test_a_crl_is_parsed_once_and_shared():
    key = ec.generate_private_key(ec.SECP256R1())
    name = cx509.Name([cx509.NameAttribute(cx509.oid.NameOID.COMMON_NAME, "crl issuer")])
    now = dt.datetime.now(dt.timezone.utc)
    der = (cx509.CertificateRevocationListBuilder().issuer_name(name).last_update(now)
           .next_update(now + dt.timedelta(days=1)).sign(key, hashes.SHA256())
           .public_bytes(serialization.Encoding.DER))
    first = parsed_crl(der)
    assert parsed_crl(bytes(der)) is first and first.dump() == der
