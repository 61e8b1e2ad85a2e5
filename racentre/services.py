"""The service container: builds the key manager and the database once per process from the config.

The CLI and ``racentre serve`` both use it, so they see the same settings and the same objects.
Package services (CA, RA, ...) are built from these by their own packages.

The database is used only at this code's schema revision (``engine`` refuses any other, see
``racentre.migrate.require_current``); ``upgrade_database`` is the one way to change it. The key
manager makes token keys under a lock of the database (``pkicore.db.named_lock``), so nodes sharing
one HSM and one database never create two keys with one label.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from ca_bridge.embedded import EmbeddedCA
from ca_bridge.revinfo import revocation_info
from hsm import KeyManager, open_key_manager
from pkicore.audit import bind_node
from pkicore.db import HotReader, make_engine, make_session_factory, named_lock
from racentre.config import Config
from racentre.migrate import require_current, upgrade
from racentre.provision import Site
from timestamp.services import TsaService
from trust.evidence import EvidenceSigner, default_algorithm
from trust.services import TrustService


class Services:
    def __init__(self, config: Config):
        self.config = config

    @property
    def public_url(self) -> str:
        """``[service] public_url``, the address relying parties reach the site at (CRL DP, AIA); "" when
        unset, and then the CA issues nothing (ca_bridge.errors.NoPublicUrl)."""
        return self.config.service.public_url.rstrip("/")

    @cached_property
    def key_manager(self) -> KeyManager:
        km = open_key_manager(self.config.hsm)
        km.creation_lock = self.key_creation_lock
        return km

    def key_creation_lock(self, label: str):
        """The lock under which a token key ``label`` is looked for and made: a lock of the database
        every node of the site shares (``pkicore.db.named_lock``), named after the token and the label."""
        return named_lock(self.database, f"hsm-key\0{self.config.hsm.token}\0{label}")

    @cached_property
    def database(self) -> Engine:
        """The engine, whatever the schema (for ``upgrade_database`` and locks); use ``engine``."""
        url = self.config.database.url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        engine = make_engine(url)
        bind_node(engine, self.config.audit.node_id)
        return engine

    @cached_property
    def engine(self) -> Engine:
        """The engine on a database at this code's schema revision (SchemaError otherwise)."""
        require_current(self.database)
        return self.database

    def upgrade_database(self) -> None:
        """Bring the database to this code's schema (``racentre db upgrade``): one upgrader at a time
        across every node (racentre.migrate.upgrade), a no-op when it is current."""
        upgrade(self.database, key_manager=lambda: self.key_manager)
        self.__dict__.pop("engine", None)

    @cached_property
    def db(self) -> sessionmaker[Session]:
        return make_session_factory(self.engine)

    @cached_property
    def ca(self) -> EmbeddedCA:
        """The embedded CA, one per process (shared by the CA views, the RA and site provisioning)."""
        return EmbeddedCA.from_services(self)

    @cached_property
    def site(self) -> Site:
        return Site(self.ca, self.key_manager)

    def trust_service(self, tsa: TsaService | None = None) -> TrustService:
        """The trust services (trust/) over this site: application keys certified by the embedded CA, our
        roots plus ``[trust] trust_anchor_files`` as anchors, our CRLs (cached by the CA; SM2 chains are
        checked with CRLs, pkicore.validation), the TSA (``tsa``, else the site's), and the evidence key
        (``[trust] evidence_key_label``, SM2 in the HSM) certified by our CA on first use."""
        cached = self.__dict__.get("_trust")
        if cached is not None:
            return cached
        config = self.config.trust
        site = self.site
        signer: dict[str, EvidenceSigner] = {}

        def evidence_signer() -> EvidenceSigner:
            if "s" not in signer:
                certified = site.evidence_signer(config.evidence_key_label)
                signer["s"] = EvidenceSigner(config.evidence_key_label, certified.certificate, certified.chain,
                                             default_algorithm())
            return signer["s"]

        service = TrustService(
            self.db, self.key_manager, ca=lambda: self.ca, roots=site.roots, intermediates=site.issuing,
            revocation_info=lambda certs: revocation_info(self.ca, certs, with_ocsp=False),
            tsa=tsa or TsaService.for_site(self), evidence_signer=evidence_signer, config=config,
            organization=site.organization, revocation_state=self._revocation_state())
        self.__dict__["_trust"] = service
        return service

    def _revocation_state(self):
        """() -> every CA's revocation counter (``ca_bridge.crl.bump_revocation_seq``: bumped in the
        transaction of every status change), one small query on the hot-path reader: the trust services'
        validation cache keys on it, so a revocation on any node is seen by the next verification."""
        reader = HotReader(self.engine)

        def state() -> tuple:
            return tuple(reader.rows("SELECT id, revocation_seq FROM ca_authority ORDER BY id", ()))
        return state

    def close(self) -> None:
        if "key_manager" in self.__dict__:
            self.key_manager.close()
        if "database" in self.__dict__:
            self.database.dispose()
