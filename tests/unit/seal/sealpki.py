"""Seal test PKI (plain module; conftest and interop tests import its fixtures): a CA, a seal-making authority, two units' signing keys and an SM2 TSA, all in the software token."""
from __future__ import annotations

import io
import secrets
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from pkicore.algorithms import algorithm
from tests.localca import LocalIssuer, ensure_key, make_signer
from timestamp.tsa import TimeStampAuthority, TsaUnit

# OFD and seal samples made by other implementations (ofdrw's test resources, Apache-2.0), kept in
# the repository: tests/vectors/ofd/README.md says what each is
TESTDATA = Path(__file__).resolve().parents[2] / "vectors" / "ofd"


def _label(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def seal_pki(softtoken_km):
    km = softtoken_km
    ca = LocalIssuer.create(km, _label("seal-ca"))
    maker = make_signer(km, ca, _label("seal-maker"), "RA Centre Seal Maker")
    unit = make_signer(km, ca, _label("unit-sign"), "Unit A Signing", organization="Unit A")
    unit2 = make_signer(km, ca, _label("unit2-sign"), "Unit B Signing", organization="Unit B")
    return {"km": km, "ca": ca, "maker": maker, "unit": unit, "unit2": unit2}


def png_bytes(width: int = 200, height: int = 200, color=(220, 0, 0, 255), fmt: str = "PNG") -> bytes:
    img = Image.new("RGBA" if fmt == "PNG" else "RGB", (width, height), (255, 255, 255, 0) if fmt == "PNG"
                    else (255, 255, 255))
    for x in range(width):
        for y in range(height):
            dx, dy = x - width / 2, y - height / 2
            if (width / 2 - 8) ** 2 < dx * dx + dy * dy < (width / 2 - 2) ** 2:
                img.putpixel((x, y), color if fmt == "PNG" else color[:3])
    out = io.BytesIO()
    img.save(out, fmt)
    return out.getvalue()


@pytest.fixture(scope="session")
def stamp_png() -> bytes:
    return png_bytes()


@pytest.fixture(scope="session")
def tsa(seal_pki):
    """An in-process SM2 TSA (timestamp.tsa) with a certificate from the seal test CA."""
    from timestamp.tsa import TimeStampAuthority, TsaUnit
    km, ca = seal_pki["km"], seal_pki["ca"]
    label = _label("seal-tsa")
    from tests.localca import ensure_key
    from pkicore.algorithms import algorithm
    spki = ensure_key(km, label, algorithm("sm2-sm3"))
    cert = ca.issue(spki, "Seal Test TSA", timestamping=True)
    unit = TsaUnit("default", key_manager=km, key_label=label, algorithm_name="sm2-sm3", certificate=cert,
                   chain=(ca.certificate,), policy="1.3.6.1.4.1.58011.1.1")
    return TimeStampAuthority({"default": unit}, digests=["sm3", "sha256"])


@pytest.fixture(scope="session")
def ecdsa_pki(seal_pki, tsa):
    """The international family beside the SM2 one: an ECDSA P-256 CA, a unit's ECDSA signing key and an
    RSA one (certified by that CA), and ``tsa_units``: a TSA with the SM2 unit of ``tsa`` as its default
    and an ECDSA unit certified by the ECDSA CA (as ``racentre setup --with-ecdsa`` with
    ``[tsa] units = "ecdsa=tsa-ecdsa:ecdsa-sha256"`` makes them)."""
    km = seal_pki["km"]
    ca = LocalIssuer.create(km, _label("seal-ecdsa-ca"), "ecdsa-sha256", common_name="RA Centre ECDSA Root")
    unit = make_signer(km, ca, _label("unit-ecdsa"), "Unit E Signing", "ecdsa-sha256", organization="Unit E")
    rsa_unit = make_signer(km, ca, _label("unit-rsa"), "Unit R Signing", "rsa-sha256", organization="Unit R")
    label = _label("seal-tsa-ecdsa")
    spki = ensure_key(km, label, algorithm("ecdsa-sha256"))
    tsa_cert = ca.issue(spki, "Seal Test TSA ECDSA", timestamping=True)
    ecdsa_unit = TsaUnit("ecdsa", key_manager=km, key_label=label, algorithm_name="ecdsa-sha256",
                         certificate=tsa_cert, chain=(ca.certificate,), policy="1.3.6.1.4.1.58011.1.1")
    units = TimeStampAuthority({"default": tsa.units["default"], "ecdsa": ecdsa_unit},
                               digests=["sm3", "sha256", "sha384"])
    return {"ca": ca, "unit": unit, "rsa_unit": rsa_unit, "tsa_cert": tsa_cert, "tsa_units": units}


def rezip(data: bytes, change: dict[str, bytes | None] | None = None, add: dict[str, bytes] | None = None) -> bytes:
    """An OFD package (a ZIP) rewritten: members in ``change`` replaced (None: removed), ``add`` appended
    — how the tests tamper with or re-shape documents made by us and by other producers."""
    change, add = change or {}, add or {}
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            content = change.get(info.filename, src.read(info.filename))
            if content is not None:
                z.writestr(info.filename, content)
        for name, content in add.items():
            z.writestr(name, content)
    return out.getvalue()


def unit_of(certificate: bytes) -> str:
    """The organisation (O) a unit signing certificate names: the seal's unit must be that one (issue 17)."""
    from asn1crypto import x509
    return x509.Certificate.load(certificate).subject.native["organization_name"]
