"""Demo artefacts for ``racentre demo``: a seal made by the demo, the maker certificate, an unsealed and a
twice-sealed PDF (visible, timestamped when a TSA is given), a sealed OFD and our verifier's report."""
from __future__ import annotations

import io
import json
import math
import secrets
from pathlib import Path

from asn1crypto import pem
from PIL import Image, ImageDraw

from seal.registry import SealRegistry, Signer
from seal.samplepdf import make_ofd, make_pdf
from seal.services import Placement, SealService, default_maker, unit_signer
from seal.timestamps import SealTimestamps

def demo_picture(size: int = 240) -> bytes:
    """A red round seal picture (transparent PNG)."""
    img = Image.new("RGBA", (size, size), (255, 255, 255, 0))
    d = ImageDraw.Draw(img)
    d.ellipse((6, 6, size - 6, size - 6), outline=(220, 0, 0, 255), width=10)
    c = size / 2
    star = [(c + (size * 0.18 if i % 2 == 0 else size * 0.07)
             * math.cos(math.pi / 2 + i * math.pi / 5),
             c - (size * 0.18 if i % 2 == 0 else size * 0.07)
             * math.sin(math.pi / 2 + i * math.pi / 5)) for i in range(10)]
    d.polygon(star, fill=(220, 0, 0, 255))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def write_demo_artefacts(services, out_dir: Path | str, *, timestamps: SealTimestamps | None = None,
                         tsa_trust: tuple[bytes, ...] = (), ofd_input: bytes | None = None) -> dict[str, Path]:
    """``timestamps``: the TSA units that stamp the seals (seal.timestamps); ``tsa_trust``: their CAs.
    Write seal.esl, seal-maker.pem, unsealed.pdf, sealed.pdf, sealed.ofd and sealed-verify.json to
    ``out_dir``; ``services`` gives ``key_manager`` and ``db`` (the schema must include seal.models)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    km = services.key_manager
    maker, issuer = default_maker(km)
    registry = SealRegistry(services.db, km, maker)
    service = SealService(registry, trust=(issuer.certificate,), chain=(issuer.certificate,), timestamps=timestamps,
                          tsa_trust=tuple(tsa_trust))
    tag = secrets.token_hex(3)
    signer = unit_signer(km, issuer, "seal-demo-unit", "示范单位")
    record = registry.make_seal(actor="demo", role="ra_admin", unit="示范单位", name="示范单位公章",
                                seal_type="official", picture=demo_picture(), width_mm=40, height_mm=40,
                                signers=[Signer(signer.label, signer.certificate, signer.alg)],
                                users=(f"demo-clerk-{tag}",))
    principal = f"demo-clerk-{tag}"
    unsealed = make_pdf(2, title="RA Centre demo contract")
    once = service.seal(record.id, unsealed, principal=principal, role="api_client", placement=Placement(0, 120, 40))
    twice = service.seal(record.id, once, principal=principal, role="api_client", placement=Placement(1, 30, 40))
    ofd_doc = ofd_input if ofd_input is not None else make_ofd("RA Centre demo document 示范文档")
    files = {
        "seal.esl": registry.seal_der(record.id),
        "seal-maker.pem": pem.armor("CERTIFICATE", maker.certificate),
        "unsealed.pdf": unsealed,
        "sealed.pdf": twice,
    }
    reports = {"sealed.pdf": service.verify(twice).as_dict()}
    sealed_ofd = service.seal(record.id, ofd_doc, principal=principal, role="api_client",
                              placement=Placement(0, 100, 150))
    files["sealed.ofd"] = sealed_ofd
    reports["sealed.ofd"] = service.verify(sealed_ofd).as_dict()
    files["sealed-verify.json"] = json.dumps(reports, ensure_ascii=False, indent=2).encode()
    written = {}
    for name, content in files.items():
        (out / name).write_bytes(content)
        written[name] = out / name
    return written
