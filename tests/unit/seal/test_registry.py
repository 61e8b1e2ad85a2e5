"""Seal making and the registry: pictures refused with reasons, SESeal v4 signed in the HSM, life cycle,
per-seal authorisation, audit rows — over SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt
import io

import pytest
from PIL import Image

from audit import trail as audit
from seal import ses
from seal.errors import BadPicture, SealConflict, SealError, SealForbidden
from seal.picture import validate_picture
from seal.registry import SealMaker, SealRegistry, Signer
from tests.unit.seal.sealpki import png_bytes


@pytest.fixture()
def registry(db, seal_pki):
    m = seal_pki["maker"]
    return SealRegistry(db, seal_pki["km"], SealMaker(m.label, m.certificate, m.alg))


def _signer(seal_pki, who="unit"):
    u = seal_pki[who]
    return Signer(u.label, u.certificate, u.alg)


def _make(registry, seal_pki, stamp_png, **kw):
    args = dict(actor="admin1", role="ra_admin", unit="Unit A", name="Unit A 公章", seal_type="official",
                picture=stamp_png, width_mm=40, height_mm=40, signers=[_signer(seal_pki)], users=("clerk",))
    args.update(kw)
    return registry.make_seal(**args)


def test_make_seal_signed_by_maker_and_audited(registry, seal_pki, stamp_png, db):
    rec = _make(registry, seal_pki, stamp_png)
    assert rec.status == "active" and rec.users == ("clerk",) and rec.picture_type == "PNG"
    der = registry.seal_der(rec.id)
    check = ses.verify_seal(der)
    assert check.ok and check.view.es_id == rec.es_id and check.view.vid == "RACENTRE" and check.view.name == "Unit A 公章"
    view = ses.parse_seal(der)
    assert view.certs == (seal_pki["unit"].certificate,) and view.maker_cert == seal_pki["maker"].certificate
    with db() as s:
        events = audit.events_for(s, "seal", rec.id)
    assert [e.action for e in events] == ["seal.make"] and events[0].actor == "admin1"


@pytest.mark.parametrize("fmt", ["GIF", "JPEG"])
def test_gif_and_jpg_accepted(fmt):
    pic = validate_picture(png_bytes(64, 64, fmt=fmt))
    assert pic.type == {"GIF": "GIF", "JPEG": "JPG"}[fmt] and pic.width_px == 64


def _bmp() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64)).save(out, "BMP")
    return out.getvalue()


@pytest.mark.parametrize("data,why", [
    (b"", "empty"),
    (b"<svg></svg>", "unrecognised file signature"),
    (_bmp(), "unrecognised file signature"),
    (png_bytes(64, 64)[:200], "does not decode"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "does not decode"),
    (png_bytes(16, 16), "pixels"),
    (png_bytes(3000, 40), "pixels"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 600_000, "bytes; at most"),
])
def test_bad_pictures_refused_with_reason(data, why):
    with pytest.raises(BadPicture) as exc:
        validate_picture(data)
    assert why in exc.value.public_message


def test_png_declaring_huge_dimensions_refused():
    import struct
    import zlib
    ihdr = struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b"")
    with pytest.raises(BadPicture):
        validate_picture(bomb)


@pytest.mark.parametrize("kw,why", [
    ({"seal_type": "imperial"}, "unknown seal type"),
    ({"width_mm": 5}, "size"),
    ({"signers": []}, "at least one"),
    ({"valid_days": 5000}, "may not exceed"),
])
def test_make_refusals(registry, seal_pki, stamp_png, kw, why):
    with pytest.raises(SealError) as exc:
        _make(registry, seal_pki, stamp_png, **kw)
    assert why in exc.value.public_message


def test_certificate_must_match_key(registry, seal_pki, stamp_png):
    wrong = Signer(seal_pki["unit2"].label, seal_pki["unit"].certificate, seal_pki["unit"].alg)
    with pytest.raises(SealError, match="does not belong"):
        _make(registry, seal_pki, stamp_png, signers=[wrong])


def test_life_cycle_and_authorisation(registry, seal_pki, stamp_png, db):
    rec = _make(registry, seal_pki, stamp_png)
    use = registry.use(rec.id, "clerk")
    assert use.seal_der == registry.seal_der(rec.id) and use.signer.key_label == seal_pki["unit"].label
    with pytest.raises(SealForbidden):
        registry.use(rec.id, "stranger")
    registry.authorise(rec.id, "stranger", actor="admin1", role="ra_admin")
    assert registry.use(rec.id, "stranger")
    with pytest.raises(SealConflict):
        registry.authorise(rec.id, "stranger", actor="admin1", role="ra_admin")
    registry.deauthorise(rec.id, "stranger", actor="admin1", role="ra_admin")
    with pytest.raises(SealForbidden):
        registry.use(rec.id, "stranger")
    assert registry.suspend(rec.id, actor="admin1", role="ra_admin", reason="audit").status == "suspended"
    with pytest.raises(SealError, match="suspended"):
        registry.use(rec.id, "clerk")
    assert registry.resume(rec.id, actor="admin1", role="ra_admin").status == "active"
    assert registry.revoke(rec.id, actor="admin1", role="ra_admin", reason="lost").status == "revoked"
    with pytest.raises(SealConflict):
        registry.resume(rec.id, actor="admin1", role="ra_admin")
    with pytest.raises(SealError, match="revoked"):
        registry.use(rec.id, "clerk")
    with db() as s:
        actions = [e.action for e in audit.events_for(s, "seal", rec.id)]
    assert actions == ["seal.make", "seal.authorise", "seal.deauthorise", "seal.suspend", "seal.resume", "seal.revoke"]
    assert rec.id in [r.id for r in registry.list(status="revoked")]


def test_expire(registry, seal_pki, stamp_png):
    rec = _make(registry, seal_pki, stamp_png, valid_days=1)
    assert rec.id not in registry.expire()
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)
    assert rec.id in registry.expire(now=later)
    assert registry.get(rec.id).status == "expired"


def test_signing_record_audited(registry, seal_pki, stamp_png, db):
    rec = _make(registry, seal_pki, stamp_png)
    use = registry.use(rec.id, "clerk")
    rid = registry.record_signing(use, signer="clerk", role="api_client", token="clerk", document_type="pdf",
                                  document_sha256="aa" * 32, sealed_sha256="bb" * 32)
    rows = registry.signing_records(rec.id)
    assert rows[0]["id"] == rid and rows[0]["document_sha256"] == "aa" * 32
    with db() as s:
        last = audit.events_for(s, "seal", rec.id)[-1]
    assert last.action == "seal.sign" and last.detail["sealed_sha256"] == "bb" * 32


def test_a_seal_takes_only_its_own_units_certificate(registry, seal_pki, stamp_png):
    """Issue 17: a seal for unit "Unit A" bound to Unit B's signing certificate is refused (400, nothing
    stored), so another unit's key can never sign as this unit's seal."""
    other = seal_pki["unit2"]
    before = len(registry.list(unit="Unit A"))
    with pytest.raises(SealError) as refused:
        registry.make_seal(actor="admin1", role="ra_admin", unit="Unit A", name="Unit A 公章", seal_type="official",
                           picture=stamp_png, width_mm=40, height_mm=40,
                           signers=[Signer(other.label, other.certificate, other.alg)])
    assert "belongs to Unit B, not to the seal's unit Unit A" in refused.value.public_message
    assert len(registry.list(unit="Unit A")) == before
