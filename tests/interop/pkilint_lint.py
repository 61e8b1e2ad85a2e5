"""pkilint (DigiCert, PyPI) over our certificates, CRLs and OCSP responses, through its Python API with the
validators its ``lint_pkix_cert``, ``lint_crl -t CRL -p PKIX`` and ``lint_ocsp_response`` commands build
(RFC 5280, RFC 5480/8813 key usages, RFC 6960)."""
from __future__ import annotations

from dataclasses import dataclass

from pkilint import loader, pkix
from pkilint.pkix import certificate, crl, extension, name, ocsp
from pkilint.validation import ValidationFindingSeverity

# The one finding expected at ERROR level: an SM2 encryption certificate's keyEncipherment/dataEncipherment
# (GM/T 0015 requires them; pkilint applies RFC 8813 to every id-ecPublicKey key; REFERENCES §11)
SM2_ENCRYPTION_KEY_USAGE = "pkix.key_usage_value_prohibited_for_ec"

_CERT_VALIDATOR = certificate.create_pkix_certificate_validator_container(
    certificate.create_decoding_validators(name.ATTRIBUTE_TYPE_MAPPINGS, extension.EXTENSION_MAPPINGS),
    [certificate.create_issuer_validator_container([]), certificate.create_validity_validator_container(),
     certificate.create_subject_validator_container([]), certificate.create_extensions_validator_container([]),
     certificate.create_spki_validator_container([])])
_CRL_VALIDATOR = crl.create_pkix_crl_validator_container(
    [pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
     pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS)],
    [crl.create_issuer_validator_container([]), crl.create_validity_validator_container([]),
     crl.create_extensions_validator_container([])])
_OCSP_VALIDATOR = ocsp.create_pkix_ocsp_response_validator_container(
    [ocsp.create_response_decoder(), pkix.create_attribute_decoder(name.ATTRIBUTE_TYPE_MAPPINGS),
     pkix.create_extension_decoder(extension.EXTENSION_MAPPINGS)], [])


@dataclass(frozen=True, order=True)
class Finding:
    severity: str         # FATAL, ERROR, WARNING, NOTICE, INFO
    code: str             # pkilint's finding code
    path: str             # the ASN.1 node it is about


def _findings(validator, document, threshold: ValidationFindingSeverity) -> list[Finding]:
    out = []
    for result in validator.validate(document.root):
        for described in result.finding_descriptions:
            if described.finding.severity <= threshold:
                out.append(Finding(described.finding.severity.name, described.finding.code, result.node.path))
    return sorted(out)


def lint_certificate(der: bytes, threshold=ValidationFindingSeverity.WARNING) -> list[Finding]:
    return _findings(_CERT_VALIDATOR, loader.RFC5280CertificateDocumentLoader().load_der_document(der), threshold)


def lint_crl(der: bytes, threshold=ValidationFindingSeverity.WARNING) -> list[Finding]:
    return _findings(_CRL_VALIDATOR, loader.RFC5280CertificateListDocumentLoader().load_der_document(der), threshold)


def lint_ocsp_response(der: bytes, threshold=ValidationFindingSeverity.WARNING) -> list[Finding]:
    return _findings(_OCSP_VALIDATOR, loader.RFC6960OCSPResponseDocumentLoader().load_der_document(der), threshold)

