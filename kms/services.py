"""The KMC assembled from its parts: escrow, approval book and GM/T 0014 service (``build_kmc``; the
site builds one per process in ``racentre.services.Services.kmc``).

Embedded default: the KMC uses the centre's HSM and database (tables ``kms_*``). A stand-alone KMC is
the same object over its own container (own token and database: ``racentre serve --packages hsm,kms``),
reached by the CA through ``gmt0014.client.HttpTransport`` when the CA's ``[kmc] url`` is set.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

from gmt0014.client import InProcessTransport, KmcClient
from kms.config import KmsConfig
from kms.endpoint import Gmt0014Endpoint
from kms.escrow import KeyEscrow
from kms.recovery import ApprovalBook


@dataclass
class KmsParts:
    """The KMC's parts as ``build_kmc`` assembles them: the escrow (the domain), the M-of-N approval book
    and the GM/T 0014 endpoint."""

    escrow: KeyEscrow
    book: ApprovalBook
    service: Gmt0014Endpoint

    def client_for_ca(self, ca_certificate: bytes, sign) -> KmcClient:
        """An in-process GM/T 0014 client for a CA (trusted here on the spot): ``sign(data) -> DER``."""
        self.service.trust(ca_certificate)
        return KmcClient(InProcessTransport(self.service), ca_certificate=ca_certificate, sign=sign,
                         kmc_certificate=self.escrow.certificate)


def build_kmc(key_manager, db, config: KmsConfig | None = None, *, setup_lock=nullcontext,
              recipient_issuers=None, recipient_revocation=None) -> KmsParts:
    """Set up (idempotently) and return the KMC. Its tables (``kms_*``) come with the schema
    (``racentre db upgrade``), embedded or stand-alone alike. ``setup_lock()``: held while the KMC's
    keys, bootstrap certificate and first KEK are looked for and made, so the workers and nodes that
    start together on a fresh KMC make them once (``racentre.services.Services.kmc``: a lock of the
    database). ``recipient_issuers()`` (the served CAs' certificates, roots included, so that their CRLs
    can be established) and ``recipient_revocation`` (their CRLs/OCSP): whom a recovered key may go to;
    by default the CAs this KMC trusts, without revocation (a stand-alone KMC knows no more)."""
    escrow = KeyEscrow(key_manager, db, config or KmsConfig())
    with setup_lock():
        escrow.setup()
    service = Gmt0014Endpoint(escrow)
    # recovered keys go to subscribers of the CAs this KMC serves (or the configured recipient list)
    book = ApprovalBook(db, escrow.config, issuers=recipient_issuers or (
        lambda: [ca.certificate for ca in list(service.trusted.values())]), revocation=recipient_revocation)
    return KmsParts(escrow, book, service)
