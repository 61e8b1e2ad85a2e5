"""Fixtures for the seal tests (defined in sealpki.py)."""
from tests.unit.seal.sealpki import seal_pki, stamp_png, tsa  # noqa: F401
