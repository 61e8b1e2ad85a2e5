"""The TSA test PKI fixture (tests/unit/timestamp/pki.py) for this directory."""
from tests.unit.timestamp.pki import tsa_pki  # noqa: F401
