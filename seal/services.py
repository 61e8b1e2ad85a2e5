"""The seal service used by the web layer, the CLI and the demo: the registry, sealing a PDF or OFD with a
seal a principal may use (signing record audited; timestamped by a TSA unit of the seal key's family,
seal.timestamps), and verification.

The seal maker's certificate comes from the site's CA (``racentre.site.Site.seal_maker``); this package
issues no certificate.

The document modules (``seal.pdf`` with pyHanko's signer and validator, ``seal.ofd``, ``seal.geometry``,
``seal.anchor``, ``seal.verify``) are imported when a document is first sealed, placed or verified, never
when the service is built: a serving worker that makes no seal does not carry them (~20 MiB each,
tests/unit/test_worker_footprint.py).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from asn1crypto import pem, tsp, x509

from hsm import KeyManager
from pkicore.errors import ErrorCode
from pkicore.validation import RevocationSource, TrustPolicy
from seal.config import SealConfig
from seal.errors import BadDocument, SealError
from seal.registry import SealRegistry, SealUse, sign_with
from seal.report import DocumentReport
from seal.timestamps import SealTimestamps, TsaUnitRef, refusal
from seal.validation import SealPolicy

if TYPE_CHECKING:
    from seal import geometry, pdf


@dataclass(frozen=True)
class Placement:
    """Page (0-based; -1 = last; None = the first page, or with ``anchor`` any page) and position in mm
    (PDF: lower-left corner from the lower-left; OFD: top-left corner from the top-left), or centred
    over the text ``anchor`` (seal.anchor)."""

    page: int | None = 0
    x_mm: float = 120.0
    y_mm: float = 40.0
    anchor: str | None = None


class SealService:
    def __init__(self, registry: SealRegistry, *, trust: tuple[bytes, ...] = (),
                 chain: tuple[bytes, ...] = (), timestamps: SealTimestamps | None = None,
                 tsa_trust: tuple[bytes, ...] = (), revocation_info: RevocationSource | None = None,
                 trust_list: tuple[bytes, ...] = (), require_revocation: bool = True):
        self.registry = registry
        self.km: KeyManager = registry.km
        self.trust = trust            # seal CAs (PDF signer chains)
        self.chain = chain            # certificates carried in PDF signatures
        # the TSA units seals are stamped by, one of the seal key's family (seal.timestamps); None: no timestamps
        self.timestamps = timestamps
        # one timestamper per TSA unit for B-T seals: it keeps the TSA token that sizes the signature
        # placeholder, so a seal costs one TSA call, not two (B-LT seals get their own: pyHanko validates
        # its certificates)
        self._stampers: dict[str, pdf.InProcessTimeStamper] = {}
        self.tsa_trust = tsa_trust    # TSA issuing CAs (PDF signature timestamps)
        # (certificates) -> (CRLs, OCSP responses): PDF seals are PAdES B-LT with it (e.g. our CA's,
        # ca_bridge.revinfo.revocation_info), B-T without
        self.revocation_info = revocation_info
        # verification: our roots plus the operator's trust list ([seal] trust_anchor_files), known
        # intermediates, our revocation info, and the registry's word on our own seals' state
        anchors = tuple(dict.fromkeys(trust + trust_list))
        self.policy = SealPolicy(
            trust=TrustPolicy(anchors, chain, revocation_info, require_revocation),
            tsa=TrustPolicy(tuple(dict.fromkeys((tsa_trust or trust) + trust_list)), chain, revocation_info,
                            require_revocation),
            seal_state=registry.state)

    def seal(self, seal_id: int, data: bytes, *, principal: str, role: str, token: str | None = None,
             placement: Placement = Placement()) -> bytes:
        """Seal a PDF or OFD with seal ``seal_id`` if ``principal`` may use it; the signing record is audited."""
        from seal.verify import document_type
        kind = document_type(data)
        if kind not in ("pdf", "ofd"):
            raise BadDocument("the document is neither a PDF nor an OFD package")
        use = self.registry.use(seal_id, principal)
        sealed = self._apply(use, kind, data, placement)
        self.registry.record_signing(use, signer=principal, role=role, token=token, document_type=kind,
                                     document_sha256=hashlib.sha256(data).hexdigest(),
                                     sealed_sha256=hashlib.sha256(sealed).hexdigest())
        return sealed

    def placement_box(self, seal_id: int, data: bytes, placement: Placement = Placement()
                      ) -> tuple[geometry.Box, tuple[float, float]]:
        """Where ``seal`` would put seal ``seal_id`` on ``data`` (an anchor resolved as sealing resolves it), as
        a box from the page's top-left corner, with the page's size in mm: the officers' preview."""
        from seal import geometry
        from seal.verify import document_type
        kind = document_type(data)
        if kind not in ("pdf", "ofd"):
            raise BadDocument("the document is neither a PDF nor an OFD package")
        record = self.registry.get(seal_id)
        if placement.anchor:
            placement = self._anchored(record, kind, data, placement)
        count = geometry.page_count(data)
        page = 0 if placement.page is None else placement.page
        index = page + count if page < 0 else page
        if not 0 <= index < count:
            raise SealError(f"the document has no page {page + 1 if page >= 0 else page}")
        width, height = geometry.page_size(data, index)
        top = height - placement.y_mm - record.height_mm if kind == "pdf" else placement.y_mm
        return geometry.Box(index, placement.x_mm, top, record.width_mm, record.height_mm), (width, height)

    @staticmethod
    def _anchored(use: SealUse, kind: str, data: bytes, placement: Placement) -> Placement:
        """The seal centred over the anchor text (AnchorNotFound, a 400, when it is not there)."""
        from seal import anchor, ofd, pdf
        if kind == "ofd":
            pages = ofd.page_contents(data)
            if placement.page is not None:
                wanted = placement.page % len(pages) if pages else placement.page
                pages = [(i, root) for i, root in pages if i == wanted]
            found = anchor.find_in_ofd(pages, placement.anchor, "{%s}" % ofd.NS)
            return Placement(found.page, found.cx - use.width_mm / 2, found.cy - use.height_mm / 2)
        found = anchor.find_in_pdf(pdf.reader(data), placement.anchor, placement.page)
        return Placement(found.page, found.cx / pdf.MM - use.width_mm / 2, found.cy / pdf.MM - use.height_mm / 2)

    def _apply(self, use: SealUse, kind: str, data: bytes, placement: Placement) -> bytes:
        from seal import ofd, pdf
        if placement.anchor:
            placement = self._anchored(use, kind, data, placement)
        elif placement.page is None:
            placement = Placement(0, placement.x_mm, placement.y_mm)
        s = use.signer
        unit = self.timestamps.unit_for(s.alg.key_type) if self.timestamps is not None else None
        if kind == "ofd":
            stamper = _ofd_timestamper(unit, s.alg.digest) if unit is not None else None
            return ofd.seal_ofd(data, seal_der=use.seal_der, signer_cert=s.certificate, sign=sign_with(self.km, s),
                                alg=s.alg, place=ofd.StampPlace(placement.page, placement.x_mm, placement.y_mm),
                                timestamp=stamper)
        signer = pdf.HsmSigner(self.km, s.key_label, s.certificate, s.alg, chain=self.chain)
        seal_view = self.registry.get(use.seal_id)
        long_term = None
        if self.revocation_info is not None:
            roots = tuple(dict.fromkeys(self.trust + self.tsa_trust))
            long_term = pdf.LongTerm(roots, self.revocation_info)
        stamper = None
        if unit is not None:
            stamper = None if long_term is not None else self._stampers.get(unit.name)
            if stamper is None:
                stamper = pdf.InProcessTimeStamper(unit.respond)
                if long_term is None:
                    stamper = self._stampers.setdefault(unit.name, stamper)
        return pdf.seal_pdf(data, signer=signer, picture=use.picture, width_mm=use.width_mm, height_mm=use.height_mm,
                            placement=pdf.Placement(placement.page, placement.x_mm, placement.y_mm),
                            seal_name=seal_view.name, reason=f"电子印章 {seal_view.name} ({use.es_id})",
                            timestamper=stamper, long_term=long_term)

    def verify(self, data: bytes, *, trust: tuple[bytes, ...] | None = None) -> DocumentReport:
        """A PDF, OFD or bare seal under this site's policy; ``trust`` replaces the trust anchors (the
        CLI's --trust), never adds to them silently."""
        from seal.verify import verify_document
        policy = self.policy
        if trust is not None:
            policy = SealPolicy(policy.trust.with_anchors(trust), policy.tsa, policy.seal_state)
        return verify_document(data, policy)


def _ofd_timestamper(unit: TsaUnitRef, digest: str) -> Callable[[bytes], bytes]:
    """signature value -> RFC 3161 token over it for the SES_Signature timeStamp (GB/T 38540 §7.2), from
    ``unit`` (of the seal key's family) with the seal's own digest as the imprint (SM3 for SM2 seals)."""
    def stamp(signature: bytes) -> bytes:
        query = tsp.TimeStampReq({"version": "v1", "message_imprint": {
            "hash_algorithm": {"algorithm": digest}, "hashed_message": hashlib.new(digest, signature).digest()},
            "cert_req": True}).dump()
        reply = unit.respond(query)
        why = refusal(reply)
        if why is not None:
            raise SealError(f"the TSA unit {unit.name} did not timestamp the seal: {why}",
                            code=ErrorCode.UPSTREAM_UNAVAILABLE)
        return tsp.TimeStampResp.load(reply)["time_stamp_token"].dump()
    return stamp


def unprovisioned_seal_service(km: KeyManager, db, config: SealConfig | None = None) -> SealService:
    """The seal service of a site without a CA yet (before ``racentre setup``): no seal maker (making a
    seal is refused until the site's CA certifies one; the embedded CA is the only issuer),
    no timestamps; seals already made are used and verified against the operator's ``[seal]`` trust list
    and revocation policy (``config``)."""
    config = config or SealConfig()
    return SealService(SealRegistry(db, km, None), trust_list=config.trust_list(),
                       require_revocation=config.require_revocation)


def cert_der(data: bytes) -> bytes:
    """DER from a PEM or DER certificate."""
    if data.lstrip().startswith(b"-----BEGIN"):
        _, _, data = pem.unarmor(data)
    x509.Certificate.load(data, strict=True)
    return data
