"""PDF seals: PAdES (ETSI EN 319 142-1) signatures made with pyHanko over our HSM, SM2/SM3 included.

The seams (pyHanko ``sign/signers/pdf_cms.py``, ``sign/timestamps/api.py``):
* ``HsmSigner`` — a pyHanko ``Signer`` whose ``async_sign_raw`` calls ``KeyManager.sign`` (SM2 with the
  default user ID, ECDSA, RSA PKCS#1 v1.5);
* ``pkicore.validation.Sm2SignatureValidator`` — SM2-with-SM3 inside pyHanko's validation contexts;
* ``InProcessTimeStamper`` — a ``TimeStamper`` over a TSA's ``respond(query DER) -> reply DER``; whatever
  the timestamper, its token must come from a TSA of the seal key's family (``seal.timestamps``: checked on
  the token that sizes the placeholder, before anything is signed);
* ``LongTerm`` — PAdES B-LT (EN 319 142-1 §5.4): before signing, the revocation info of the signer's
  and the TSA's chains is asked of a revocation source (our CA's CRLs and OCSP responses), the chains
  are validated with it, and pyHanko writes it to the document security store (/DSS) in an incremental
  update after the signature.

The seal picture is the visible appearance of the signature field; further seals are incremental
updates, so earlier seals stay valid.

Sealing uses pyHanko's interrupted signing: pyHanko lays out the field, the appearance, the /Contents
placeholder (sized from the signer's template, never by pyHanko's dummy-CMS estimate) and the /ByteRange
digest, and does the B-LT /DSS update afterwards; the CMS SignedData in between is ``seal.pades``'s,
byte for byte what pyHanko's ``Signer.async_sign`` would make, from constant parts cached per signer.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import io
import logging
from dataclasses import dataclass
from typing import Callable, Iterable

from asn1crypto import algos, cms, crl, ocsp, tsp, x509
from PIL import Image
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import attributes, fields, signers
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.general import SigningError, as_signing_certificate_v2
from pyhanko.sign._session_scope import run_and_release  # private: tests/unit/test_library_contracts.py
from pyhanko.sign.signers.pdf_cms import SignedAttributeProviderSpec
from pyhanko.sign.signers.pdf_signer import PdfTBSDocument
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.timestamps.common_utils import TimestampRequestError
from pyhanko.sign.ades.report import AdESFailure, AdESPassed
from pyhanko.sign.validation import DocumentSecurityStore, validate_pdf_signature
from pyhanko.sign.validation.ades import ades_with_time_validation
from pyhanko.sign.validation.errors import NoDSSFoundError
from pyhanko.sign.validation.policy_decl import (LocalKnowledge, RevocationInfoGatheringSpec,
                                                 RevinfoOnlineFetchingRule, SignatureValidationSpec)
from pyhanko.sign.validation.status import PdfSignatureStatus
from pyhanko.stamp import TextStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.context import CertValidationPolicySpec
from pyhanko_certvalidator.ltv.types import ValidationTimingInfo
from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy
from pyhanko_certvalidator.registry import SimpleCertificateStore, SimpleTrustManager
from pyhanko_certvalidator.revinfo.archival import CRLContainer, OCSPContainer

import pkicore  # noqa: F401 - registers sm3 / sm2_sm3 / the SM2 curve with asn1crypto
from hsm import KeyManager
from pkicore.algorithms import Algorithm
from pkicore.cms import default_ess_digest
from pkicore.errors import ErrorCode
from pkicore.names import display_name
from pkicore.validation import (Finding, RevocationSource, Sm2SignatureValidator, SubIndication, failed,
                                indeterminate, is_sm2_ocsp, validate_certificate)
from seal import pades
from seal.errors import BadDocument, SealError
from seal.report import DocumentReport, SealVerdict, combine, unreadable
from seal.timestamps import check_token_family, refusal
from seal.validation import SealPolicy

MM = 72 / 25.4
MAX_PDF = 64 * 1024 * 1024
_OVERFLOW = "Final ByteRange payload larger than expected"
log = logging.getLogger(__name__)


class HsmSigner(signers.Signer):
    """A pyHanko signer whose private key stays in the HSM."""

    def __init__(self, km: KeyManager, key_label: str, certificate: bytes, alg: Algorithm,
                 chain: Iterable[bytes] = ()):
        certificate, chain = bytes(certificate), tuple(bytes(c) for c in chain)
        cert = x509.Certificate.load(certificate)
        mech = algos.SignedDigestAlgorithm({"algorithm": alg.asn1_name})
        super().__init__(signature_mechanism=mech, signing_cert=cert, embed_roots=True)
        self._cert_registry = None      # built on first use: the direct CMS path never needs it
        self.km = km
        self.key_label = key_label
        self.alg = alg
        self.certificate = certificate
        self.chain = chain
        self._mechanism = mech.dump()
        self._dummy = 512 if alg.key_type == "rsa" else 72

    @property
    def cert_registry(self) -> SimpleCertificateStore:
        if self._cert_registry is None:
            self._cert_registry = SimpleCertificateStore.from_certs([x509.Certificate.load(c) for c in self.chain])
        return self._cert_registry

    def pades_template(self) -> pades.PadesTemplate | None:
        """The constant parts of this signer's PAdES SignedData (``seal.pades``; cached per certificate,
        chain and algorithm), or None where pyHanko must build the CMS itself (RSASSA-PSS)."""
        if self.alg.asn1_name == "rsassa_pss":
            return None
        return pades.template(self.certificate, self.chain, self.alg.digest, self._mechanism, self.embed_roots)

    def _signed_attr_provider_spec(self, attr_settings, timestamper=None, use_cades=False, is_pdf_sig=True):
        """pyHanko's signed attributes, with the ESSCertIDv2 hashed by ``pkicore.cms.default_ess_digest`` (SM3 for SM2
        keys), so that the CMS pyHanko builds (encrypted documents, the fallback) equals the template's.
        (pyHanko 0.38 ``Signer._signed_attr_provider_spec``; its ``SigningCertificateV2Provider`` always
        hashes with SHA-256.)"""
        spec = super()._signed_attr_provider_spec(attr_settings, timestamper=timestamper, use_cades=use_cades,
                                                  is_pdf_sig=is_pdf_sig)
        ess = default_ess_digest(self.alg.digest)
        return spec if ess == "sha256" else _EssDigestSpec(spec, ess)

    async def async_sign_raw(self, data: bytes, digest_algorithm: str, dry_run: bool = False) -> bytes:
        if digest_algorithm != self.alg.digest:
            raise SigningError(f"{self.alg.name} signs with {self.alg.digest}, not {digest_algorithm}")
        if dry_run:
            return bytes(self._dummy)
        return self.km.sign(self.key_label, data, self.alg.mechanism)


class _SigningCertificateV2(attributes.SigningCertificateV2Provider):
    """signing-certificate-v2 (RFC 5035) with an ESSCertIDv2 of the given hash."""

    def __init__(self, signing_cert: x509.Certificate, digest: str):
        super().__init__(signing_cert)
        self.digest = digest

    async def build_attr_value(self, dry_run=False):
        return as_signing_certificate_v2(self.signing_cert, self.digest)


class _EssDigestSpec(SignedAttributeProviderSpec):
    """A pyHanko signed-attribute spec whose signing-certificate-v2 hashes with ``digest``."""

    def __init__(self, inner: SignedAttributeProviderSpec, digest: str):
        self.inner = inner
        self.digest = digest

    def signed_attr_providers(self, data_digest: bytes, digest_algorithm: str):
        for provider in self.inner.signed_attr_providers(data_digest=data_digest, digest_algorithm=digest_algorithm):
            if isinstance(provider, attributes.SigningCertificateV2Provider):
                provider = _SigningCertificateV2(provider.signing_cert, self.digest)
            yield provider


class InProcessTimeStamper(TimeStamper):
    """RFC 3161 timestamps from a TSA in this process: ``respond(TimeStampReq DER) -> TimeStampResp DER``."""

    def __init__(self, respond: Callable[[bytes], bytes]):
        super().__init__(include_nonce=True)
        self.respond = respond

    async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
        reply = self.respond(req.dump())
        why = refusal(reply)            # a rejection has no token: asn1crypto's TimeStampResp cannot load it
        if why is not None:
            raise TimestampRequestError(f"the TSA refused: {why}")
        return tsp.TimeStampResp.load(reply)

    def forget_sizing_tokens(self) -> None:
        """Drop the cached tokens that size signatures (pyHanko's dummy responses), e.g. after one
        outgrew its placeholder: the TSA's certificate may have changed."""
        self._dummy_response_cache.clear()


def validation_context(trust: Iterable[bytes] = (), other_certs: Iterable[bytes] = (), *,
                       at: dt.datetime | None = None, crls: Iterable[bytes] = (), ocsps: Iterable[bytes] = (),
                       revocation_mode: str = "soft-fail") -> ValidationContext:
    trust = [x509.Certificate.load(c) for c in trust]
    return ValidationContext(trust_roots=trust, other_certs=[x509.Certificate.load(c) for c in other_certs],
                             allow_fetching=False, revocation_mode=revocation_mode, crls=list(crls),
                             ocsps=list(ocsps), signature_validator=Sm2SignatureValidator(), moment=at)




@dataclass(frozen=True)
class LongTerm:
    """PAdES B-LT at signing: the roots the signer's and the TSA's chains end at, and where their
    revocation info comes from. Sealing fails when a chain does not validate with that info (a revoked
    signer or TSA certificate, a chain outside ``trust``), so a B-LT seal is never made unverifiable."""

    trust: tuple[bytes, ...]
    revocation_info: RevocationSource


def _ltv_context(ltv: LongTerm, signer: "HsmSigner", timestamper: TimeStamper | None) -> ValidationContext:
    certs = [signer.signing_cert.dump()] + [c.dump() for c in signer.cert_registry]
    if timestamper is not None:
        # the TSA's certificates travel in its tokens; this dummy token sizes the signature placeholder
        # anyway (_sign) and the timestamper caches it, so this costs no extra TSA call
        token = asyncio.run(timestamper.async_dummy_response(signer.alg.digest))
        token = cms.ContentInfo.load(token.dump())      # own copy: the cached one may serve other threads
        certs += [c.chosen.dump() for c in token["content"]["certificates"] or ()]
    crls, ocsps = ltv.revocation_info(certs)
    ocsps = [o for o in ocsps if not is_sm2_ocsp(o)]
    return validation_context(ltv.trust, certs, crls=crls, ocsps=ocsps, revocation_mode="hard-fail")


@dataclass(frozen=True)
class Placement:
    """Where the seal goes: page index (0-based; -1 = last), the lower-left corner in mm from the page's
    lower-left corner."""

    page: int = 0
    x_mm: float = 120.0
    y_mm: float = 40.0


def _stamp_style(picture: bytes) -> TextStampStyle:
    try:
        img = Image.open(io.BytesIO(picture))
        img.load()
    except (OSError, ValueError) as exc:
        raise SealError(f"seal picture unreadable: {exc}") from exc
    if img.mode not in ("RGB", "RGBA", "L", "LA"):
        img = img.convert("RGBA")
    return TextStampStyle(stamp_text="", border_width=0, background=PdfImage(img), background_opacity=1.0)


def reader(data: bytes) -> PdfFileReader:
    """A PDF reader over ``data`` (BadDocument when it is not a readable PDF)."""
    return _reader(data)


def _reader(data: bytes) -> PdfFileReader:
    if len(data) > MAX_PDF:
        raise BadDocument(f"PDF larger than {MAX_PDF} bytes")
    if not data.startswith(b"%PDF-") and b"%PDF-" not in data[:1024]:
        raise BadDocument("not a PDF document")
    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        reader.root  # noqa: B018 - forces the trailer and catalogue to parse
        return reader
    except (PdfError, ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError,
            AssertionError) as exc:
        raise BadDocument(f"PDF unreadable: {exc}") from exc


def seal_pdf(data: bytes, *, signer: HsmSigner, picture: bytes, width_mm: int, height_mm: int,
             placement: Placement = Placement(), field_name: str | None = None, reason: str | None = None,
             timestamper: TimeStamper | None = None, seal_name: str | None = None,
             long_term: LongTerm | None = None) -> bytes:
    """Add one visible seal as an incremental update (PAdES B-B, B-T with ``timestamper``, B-LT with
    ``long_term`` too: the revocation info goes to the /DSS in a further incremental update)."""
    reader = _reader(data)
    try:
        pages = int(reader.root["/Pages"]["/Count"])
        existing = [s.field_name for s in reader.embedded_signatures]
    except (PdfError, KeyError, TypeError, ValueError) as exc:
        raise BadDocument(f"PDF unreadable: {exc}") from exc
    page = placement.page if placement.page >= 0 else pages + placement.page
    if not 0 <= page < pages:
        raise SealError(f"the PDF has no page {placement.page + 1}")
    name = field_name or f"Seal{len(existing) + 1}"
    while name in existing:
        name += "_"
    x, y = placement.x_mm * MM, placement.y_mm * MM
    box = (round(x), round(y), round(x + width_mm * MM), round(y + height_mm * MM))
    vc = _ltv_context(long_term, signer, timestamper) if long_term is not None else None
    def prepare() -> tuple[IncrementalPdfFileWriter, signers.PdfSigner]:
        writer = IncrementalPdfFileWriter(io.BytesIO(data), strict=False)
        fields.append_signature_field(writer, fields.SigFieldSpec(name, on_page=page, box=box))
        meta = signers.PdfSignatureMetadata(field_name=name, md_algorithm=signer.alg.digest,
                                            subfilter=fields.SigSeedSubFilter.PADES, reason=reason,
                                            name=seal_name, embed_validation_info=vc is not None,
                                            validation_context=vc)
        return writer, signers.PdfSigner(meta, signer, stamp_style=style, timestamper=timestamper)

    try:
        style = _stamp_style(picture)
        # the coroutine hands back the buffer, not its bytes: asyncio.run's SIGINT handling (main thread)
        # formats the finished task, whose repr would copy a result of megabytes
        return asyncio.run(run_and_release(_sign(prepare, signer, timestamper), vc)).getvalue()
    except SigningError as exc:         # e.g. a B-LT signer or TSA chain that does not validate (revoked)
        cause = exc.__cause__
        raise SealError(f"sealing refused: {exc}" + (f": {cause}" if cause is not None else "")) from exc
    except TimestampRequestError as exc:
        raise SealError(f"the TSA did not timestamp the seal: {exc}", code=ErrorCode.UPSTREAM_UNAVAILABLE) from exc
    except (PdfError, KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise BadDocument(f"the PDF could not be sealed: {exc}") from exc


class _ReservedTooSmall(Exception):
    """The SignedData outgrew the /Contents placeholder."""


async def _sign(prepare, signer: HsmSigner, timestamper: TimeStamper | None) -> io.BytesIO:
    """The sealed document. pyHanko lays out the PDF with a /Contents placeholder of a size computed
    from the signer's template (``seal.pades``: exact but for the TSA's token, which the timestamper's
    cached sizing token stands for) instead of its own estimate, which builds a whole dummy CMS, and the
    SignedData is the template's (``_sign_direct``). pyHanko builds the CMS itself for RSASSA-PSS and
    encrypted documents (where it may add PDF MAC attributes); should the SignedData not fit, this
    document is sealed again by pyHanko with its own estimate."""
    writer, pdf_signer = prepare()
    try:
        template = signer.pades_template()
    except ValueError:
        template = None
    token_size = None
    if timestamper is not None:
        # the token that sizes the placeholder (cached by the timestamper) also shows the TSA's family
        sizing = await timestamper.async_dummy_response(signer.alg.digest)
        token_der = sizing.dump()
        check_token_family(signer.alg.key_type, token_der)
        token_size = len(token_der)
    try:
        if template is None:
            return await _sign_by_pyhanko(writer, pdf_signer, None)
        if writer.security_handler is not None:     # encrypted: pyHanko may add PDF MAC attributes
            return await _sign_by_pyhanko(writer, pdf_signer, template.bytes_reserved(token_size))
        return await _sign_direct(writer, pdf_signer, signer, template, timestamper,
                                  template.bytes_reserved(token_size))
    except (SigningError, _ReservedTooSmall) as exc:
        if not (isinstance(exc, _ReservedTooSmall) or _OVERFLOW in str(exc)):
            raise
        log.warning("PDF seal: the SignedData outgrew its reserved space (%s); sealing again with "
                    "pyHanko's own size estimate", exc)
        if isinstance(timestamper, InProcessTimeStamper):
            timestamper.forget_sizing_tokens()
        writer, pdf_signer = prepare()
        return await _sign_by_pyhanko(writer, pdf_signer, None)


async def _sign_direct(writer: IncrementalPdfFileWriter, pdf_signer: signers.PdfSigner, signer: HsmSigner,
                       template: pades.PadesTemplate, timestamper: TimeStamper | None,
                       bytes_reserved: int) -> io.BytesIO:
    """pyHanko's interrupted signing: pyHanko writes the field, the appearance and the placeholder and
    digests the /ByteRange; the SignedData is ``template``'s (what pyHanko's ``Signer.async_sign`` would
    make, without its asn1crypto object building); pyHanko fills it in and does the post-signing work
    (the /DSS update of B-LT)."""
    prepared, tbs, out = await pdf_signer.async_digest_doc_for_signing(writer, bytes_reserved=bytes_reserved,
                                                                       output=io.BytesIO())
    digest = tbs.md_algorithm
    if digest != template.digest:
        raise SigningError(f"{signer.alg.name} signs with {template.digest}, not {digest}")
    signed_attributes = template.signed_attributes(prepared.document_digest)
    signature = await signer.async_sign_raw(signed_attributes, digest)
    token = None
    if timestamper is not None:            # B-T: RFC 3161 token over the signature value
        imprint = hashlib.new(digest, signature).digest()
        token = (await timestamper.async_timestamp(imprint, digest)).dump()
    signed_data = template.content_info(signed_attributes, signature, token)
    if 2 * len(signed_data) > bytes_reserved:
        raise _ReservedTooSmall(f"{2 * len(signed_data)} hex digits for {bytes_reserved} reserved")
    await PdfTBSDocument.async_finish_signing(out, prepared, signed_data, post_sign_instr=tbs.post_sign_instructions,
                                              validation_context=tbs.validation_context)
    return out


async def _sign_by_pyhanko(writer: IncrementalPdfFileWriter, pdf_signer: signers.PdfSigner,
                           bytes_reserved: int | None) -> io.BytesIO:
    out = io.BytesIO()
    await pdf_signer.async_sign_pdf(writer, output=out, bytes_reserved=bytes_reserved)
    return out


_OK_LEVELS = (ModificationLevel.NONE, ModificationLevel.LTA_UPDATES, ModificationLevel.FORM_FILLING)


def verify_pdf(data: bytes, policy: SealPolicy = SealPolicy(), *, at: dt.datetime | None = None) -> DocumentReport:
    """Check every signature of a PDF: pyHanko (our SM2 validator loaded) for the integrity over the byte
    ranges, the signature, the timestamp and the changes made after each signature (its difference
    analysis: a page added, an appearance replaced, ...); then the same policy as every other seal
    (seal.validation): the signer certificate's path to the trust anchors with revocation (what /DSS
    embeds and the policy's source) at the time a trusted timestamp proves, else now."""
    digest = hashlib.sha256(data).hexdigest()
    try:
        reader = _reader(data)
        sigs = list(reader.embedded_signatures)
    except BadDocument as exc:
        return unreadable("pdf", exc.public_message, digest)
    except (PdfError, KeyError, TypeError, ValueError, IndexError, AttributeError, RecursionError) as exc:
        return unreadable("pdf", f"PDF unreadable: {exc}", digest)
    dss = _dss_summary(reader)
    material = _dss_material(reader)
    verdicts = [_verify_one(i, emb, policy, at, dss, material) for i, emb in enumerate(sigs)]
    return combine("pdf", verdicts, [], digest)


def _dss_material(reader: PdfFileReader) -> tuple[list[bytes], list[bytes], list[bytes]]:
    """(certificates, CRLs, OCSP responses) DER from the document security store."""
    try:
        dss = DocumentSecurityStore.read_dss(reader)
        return ([c.dump() for c in dss.load_certs()], [c.get_object().data for c in dss.crls],
                [o.get_object().data for o in dss.ocsps])
    except (PdfError, KeyError, TypeError, ValueError, AttributeError, NoDSSFoundError):
        return [], [], []


def _dss_summary(reader: PdfFileReader) -> dict:
    """What the document security store holds (PAdES B-LT revocation info)."""
    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except (PdfError, KeyError, TypeError, ValueError, AttributeError, NoDSSFoundError):
        return {"dss": False, "crls": 0, "ocsp_responses": 0, "certificates": 0}
    return {"dss": True, "crls": len(dss.crls), "ocsp_responses": len(dss.ocsps), "certificates": len(dss.certs)}


def _policy(trust: list[bytes]) -> CertValidationPolicySpec:
    return CertValidationPolicySpec(
        trust_manager=SimpleTrustManager.build(trust_roots=[x509.Certificate.load(c) for c in trust]),
        revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO), signature_validator=Sm2SignatureValidator())


def dss_knowledge(reader: PdfFileReader) -> LocalKnowledge:
    """The /DSS content (CRLs, OCSP responses, certificates) as pyHanko validation knowledge."""
    try:
        dss = DocumentSecurityStore.read_dss(reader)
    except NoDSSFoundError:
        return LocalKnowledge()
    return LocalKnowledge(
        known_crls=[CRLContainer(crl.CertificateList.load(c.get_object().data)) for c in dss.crls],
        known_ocsps=[cont for o in dss.ocsps
                     for cont in OCSPContainer.load_multi(ocsp.OCSPResponse.load(o.get_object().data))],
        known_certs=list(dss.load_certs()))


def long_term_validation(emb, trust: list[bytes], tsa_trust: list[bytes], at: dt.datetime | None = None):
    """PAdES B-LT validation: pyHanko's AdES "validation of signatures with time and with long-term
    validation material" (EN 319 102-1 §5.5, ``ades_with_time_validation``) with our SM2 validator,
    revocation info required for every certificate of the signer's and the TSA's paths and nothing
    fetched, so it passes only on what the document carries in its /DSS; the signature timestamp is the
    best signature time. (pyHanko 0.38 has no ``validate_pdf_ltv_signature`` /
    ``RevocationInfoValidationType.PADES_LT`` any more. Its §5.6.3 ``ades_lta_validation`` also runs
    past-signature validation, which needs proofs of existence of the CA certificates, i.e. a document
    timestamp (B-LTA): for a B-LT document it ends in NO_POE.) Returns the
    ``AdESWithTimeValidationResult``."""
    spec = SignatureValidationSpec(
        cert_validation_policy=_policy(trust), ts_cert_validation_policy=_policy(tsa_trust),
        revinfo_gathering_policy=RevocationInfoGatheringSpec(
            online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY),
        local_knowledge=dss_knowledge(emb.reader))
    timing = ValidationTimingInfo(at, at, True) if at is not None else ValidationTimingInfo.now()
    if not emb._integrity_checked:       # noqa: SLF001 - pyHanko offers no public "already computed" check
        emb.compute_integrity_info()
    return asyncio.run(ades_with_time_validation(
        emb.signed_data, spec, timing_info=timing, raw_digest=emb.compute_digest(),
        extra_status_kwargs=emb.summarise_integrity_info(), status_cls=PdfSignatureStatus))


def _ltv_check(emb, trust: list[bytes], tsa_trust: list[bytes], at, dss: dict) -> tuple[dict, str | None, str | None]:
    """(details, reason, warning) of the long-term validation of one signature."""
    details = dict(dss, validated=False, indication=None)
    if not dss["dss"]:
        return details, None, "no revocation info embedded (not PAdES B-LT): revocation status not checked"
    if not trust:
        return details, None, None
    try:
        result = long_term_validation(emb, trust, tsa_trust, at)
    except Exception as exc:  # noqa: BLE001 - pyHanko raises many kinds on hostile input: a finding, not a crash
        return details, None, f"long-term validation failed to run: {type(exc).__name__}: {exc}"
    indication = result.ades_subindic
    details.update(indication=f"{type(indication).__name__}.{indication.name}", validated=indication == AdESPassed.OK)
    if indication == AdESPassed.OK:
        return details, None, None
    why = f"{indication.name.lower()}" + (f": {result.failure_msg}" if result.failure_msg else "")
    if isinstance(indication, AdESFailure) or indication.name.startswith("REVOKED"):
        return details, f"long-term validation with the embedded revocation info failed ({why})", None
    return details, None, f"long-term validation with the embedded revocation info indeterminate ({why})"


def _verify_one(index: int, emb, policy: SealPolicy, at, dss: dict, material) -> SealVerdict:
    findings: list[Finding] = []
    warnings: list[str] = []
    name = emb.field_name
    trust, tsa_trust = list(policy.trust.trust_anchors), list(policy.tsa.trust_anchors)
    try:
        status = validate_pdf_signature(emb, signer_validation_context=validation_context(trust, at=at),
                                        ts_validation_context=validation_context(tsa_trust, at=at))
    except Exception as exc:  # noqa: BLE001 - pyHanko raises many kinds on hostile input: a verdict, not a crash
        return SealVerdict(index, (failed(SubIndication.FORMAT_FAILURE,
                                          f"signature unverifiable: {type(exc).__name__}: {exc}"),),
                           kind="pdf-cms", name=name)
    if not status.intact:
        findings.append(failed(SubIndication.HASH_FAILURE, "document digest does not match: the signed bytes were changed"))
    if not status.valid:
        findings.append(failed(SubIndication.SIG_CRYPTO_FAILURE, "signature invalid"))
    level = status.modification_level
    if status.coverage is None or status.coverage.name not in ("ENTIRE_FILE", "ENTIRE_REVISION"):
        findings.append(failed(SubIndication.HASH_FAILURE, "the signature does not cover its whole revision"))
    if level is not None and level not in _OK_LEVELS:
        findings.append(failed(SubIndication.HASH_FAILURE,
                               f"the document was changed after this seal in a way a seal does not allow "
                               f"({level.name.lower()}, e.g. content or a seal picture replaced, pages added)"))
    if status.docmdp_ok is False:
        findings.append(failed(SubIndication.HASH_FAILURE, "changes after this seal violate its modification policy"))
    ts_time = None
    proven_time = None
    ts = status.timestamp_validity
    if ts is None:
        warnings.append("no timestamp: the signing time is the signer's claim only")
    else:
        ts_time = ts.timestamp.isoformat()
        if not (ts.intact and ts.valid):
            findings.append(indeterminate(SubIndication.SIG_CONSTRAINTS_FAILURE, "signature timestamp invalid"))
        elif not ts.trusted:
            warnings.append("signature timestamp from a TSA that is not trusted: time not proven")
        else:
            proven_time = ts.timestamp
    certs, crls, ocsps = material
    signer = None
    signer_result = None
    try:
        signing_cert = status.signing_cert
        signer = _display(signing_cert)
        embedded = [c.chosen.dump() for c in emb.signed_data["certificates"] or () if c.name == "certificate"]
        signer_result = validate_certificate(signing_cert.dump(), policy.trust, at=proven_time or at,
                                             proven=proven_time is not None, who="signer",
                                             extra_certs=[*embedded, *certs], extra_crls=crls, extra_ocsps=ocsps)
        findings += signer_result.findings
        warnings += signer_result.warnings
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        findings.append(indeterminate(SubIndication.NO_SIGNING_CERTIFICATE_FOUND, f"signer certificate unusable: {exc}"))
    ltv, ltv_reason, ltv_warning = _ltv_check(emb, trust, tsa_trust, at, dss)
    for w in (ltv_reason, ltv_warning):
        if w:
            warnings.append(w)
    sig_obj = emb.sig_object
    return SealVerdict(
        index, tuple(findings), tuple(warnings), kind="pdf-cms", name=name,
        signature_intact=bool(status.intact and status.valid),
        seal_name=str(sig_obj.get("/Name")) if "/Name" in sig_obj else None,
        signer=signer, signing_time=status.signer_reported_dt.isoformat() if status.signer_reported_dt else None,
        timestamp_time=ts_time,
        validation_time=signer_result.validation_time.isoformat() if signer_result and signer_result.validation_time
        else None, time_proven=proven_time is not None,
        details={"algorithm": status.md_algorithm + "/" + str(status.pkcs7_signature_mechanism),
                 "coverage": status.coverage.name if status.coverage else None,
                 "modification_level": level.name if level is not None else None,
                 "reason": str(sig_obj.get("/Reason")) if "/Reason" in sig_obj else None,
                 "byte_range": [int(v) for v in sig_obj["/ByteRange"]], "ltv": ltv,
                 "signer_certificate": signer_result.as_dict() if signer_result else None})


def _display(cert: x509.Certificate) -> str:
    return display_name(cert.subject)


def cms_and_signed_bytes(data: bytes, index: int = 0) -> tuple[bytes, bytes]:
    """(CMS SignedData DER, the ByteRange bytes) of one signature, for outside verifiers."""
    reader = _reader(data)
    emb = list(reader.embedded_signatures)[index]
    br = [int(v) for v in emb.sig_object["/ByteRange"]]
    signed = data[br[0]:br[0] + br[1]] + data[br[2]:br[2] + br[3]]
    contents = bytes(emb.sig_object["/Contents"])       # ContentInfo DER, then zero padding
    return cms.ContentInfo.load(contents).dump(), signed
