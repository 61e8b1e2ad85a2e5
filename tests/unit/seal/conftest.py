"""Fixtures for the seal tests (defined in sealpki.py)."""
from tests.unit.seal.sealpki import ecdsa_pki, seal_pki, stamp_png, tsa  # noqa: F401
