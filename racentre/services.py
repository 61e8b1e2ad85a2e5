"""The composition root: every service of the centre, built once per process from the configuration.

One cached property per service (the model is step-ca's ``authority.New`` with options): the key
manager, the database, the CA (``ca``, with the KMC attached to it once, here), the KMC (``kmc``), the
RA (``ra``), the TSA (``tsa``), the seal service (``seal``) and the site's own identities (``site``).
``racentre.app.build_app`` puts them into the Flask app and the CLI commands read them from
``ctx.obj["services"]``; no package builds another package's service, and nothing else composes.

The database is used only at this code's schema revision (``engine`` refuses any other, see
``racentre.migrate.require_current``); ``upgrade_database`` is the one way to change it. The key
manager makes token keys under a lock of the database (``store.db.named_lock``), so nodes sharing
one HSM and one database never create two keys with one label.
"""
from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from access.tokens import TOKEN_GENERATION, TOKEN_ROWS, TokenTable
from ca_bridge.cmp.client import MacCredentials
from ca_bridge.cmp.server import CmpServer
from ca_bridge.cmp.upstream import CmpCA, adopt_outbox, signature_credentials
from ca_bridge.cmp.upstream import HttpTransport as CmpHttpTransport
from ca_bridge.embedded import EmbeddedCA
from ca_bridge.revinfo import IssuerCrls, revocation_info
from gmt0014.client import HttpTransport, InProcessTransport
from hsm import KeyManager, open_key_manager
from kms.services import KmsParts, build_kmc
from audit.trail import bind_node
from store.db import HotReader, make_engine, make_session_factory, named_lock
from pkicore.errors import ErrorCode, PkiError
from ra.services import RaService, build_ra_service
from ra.workflow import record_cmp_enrolment
from racentre.config import Config
from racentre.schema import SchemaError, require_current
from racentre.secretbox import SecretBox
from racentre.site import Site, build_seal_service
from seal.services import SealService, unprovisioned_seal_service
from timestamp.services import TsaService
from trust.evidence import EvidenceSigner, default_algorithm
from trust.services import TrustService

KMC_SETUP_LOCK = "kmc-setup"


CMP_SECRET_ENC_KEY = "cmp-secret-enc"
CMP_SECRET_MAC_KEY = "cmp-secret-mac"


class _EmbeddedKmcEndpoint:
    """The in-process KMC's GM/T 0014 endpoint as the CA's transport sees it: the KMC itself
    (``Services.kmc``) is built on the first request, so a process that never escrows a key (a TSA node,
    ``racentre ca list``) never sets the KMC up."""

    def __init__(self, services: "Services"):
        self._services = services

    def handle(self, der: bytes) -> bytes:
        return self._services.kmc.service.handle(der)


def sqlite_path(url: str) -> Path | None:
    """The file of an ``sqlite:///`` URL (None for other databases and in-memory SQLite)."""
    if not url.startswith("sqlite:///"):
        return None
    name = url[len("sqlite:///"):].split("?", 1)[0]
    if not name or name == ":memory:" or "mode=memory" in url:
        return None
    return Path(name).absolute()


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
        every node of the site shares (``store.db.named_lock``), named after the token and the label."""
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
        self._require_database_file()
        require_current(self.database)
        return self.database

    def _require_database_file(self) -> None:
        """An SQLite file that does not exist is refused before anything opens it (opening would create an
        empty database wherever the command happened to run), naming the configuration that named it."""
        path = sqlite_path(self.config.database.url)
        if path is None or path.exists():
            return
        origin = self.config.source or "none found (--config, $RACENTRE_CONFIG, ./racentre.toml): built-in defaults"
        raise SchemaError(f"the database {path} does not exist (configuration: {origin}). Run `racentre setup` to "
                          f"create a site there, or export RACENTRE_CONFIG=/path/to/the/site/racentre.toml "
                          f"(the demo's is var/demo/racentre.toml in the repository)")

    def upgrade_database(self) -> None:
        """Bring the database to this code's schema (``racentre db upgrade``): one upgrader at a time
        across every node (racentre.migrate.upgrade), a no-op when it is current."""
        # Alembic is loaded here, by the one command that changes the schema, never by a serving worker
        # (racentre.schema checks the schema without it: ~11 MiB less resident memory per worker)
        from racentre.migrate import upgrade
        upgrade(self.database, key_manager=lambda: self.key_manager)
        self.__dict__.pop("engine", None)

    @cached_property
    def db(self) -> sessionmaker[Session]:
        return make_session_factory(self.engine)

    @cached_property
    def ca(self) -> EmbeddedCA:
        """The embedded CA, one per process (the CA views, the RA, provisioning, the CLI), with the KMC
        attached once: the stand-alone KMC of ``[kmc] url`` over HTTP (answers verified by its configured
        certificate), else the embedded one in process. The CA issues nothing without ``[service]
        public_url`` (ca_bridge.errors.NoPublicUrl)."""
        ca = EmbeddedCA(self.key_manager, self.db, self.public_url, config=self.config.ca)
        kmc_config = self.config.kmc
        if kmc_config.remote:
            ca.attach_kmc(HttpTransport(kmc_config.url, kmc_config.timeout), lambda: self._remote_kmc_certificate)
        else:
            ca.attach_kmc(InProcessTransport(_EmbeddedKmcEndpoint(self)), lambda: self.kmc.escrow.certificate)
        return ca

    @cached_property
    def _remote_kmc_certificate(self) -> bytes:
        """``[kmc] certificate_file``, read when the CA first talks to the stand-alone KMC (a CA host is set
        up before the KMC's certificate is issued: ``racentre setup``, then ``racentre ca issue``)."""
        return self.config.kmc.kmc_certificate()

    @cached_property
    def kmc(self) -> KmsParts:
        """The embedded key-management centre (GM/T 0034 escrow, GM/T 0014 endpoint, recovery) over this
        HSM and database, set up once (its keys and bootstrap certificate under a lock of the database,
        so workers and nodes starting together make them once). Once the site's CA exists, the CA
        certifies the KMC and the KMC trusts our SM2 issuing CAs (``Site.connect_kmc``). Refused when
        ``[kmc] url`` names a stand-alone KMC: that one runs on its own host, with its own config."""
        if self.config.kmc.remote:
            raise PkiError(f"this site's KMC is the stand-alone one at {self.config.kmc.url} ([kmc] url)",
                           code=ErrorCode.CONFIGURATION)
        kmc = build_kmc(self.key_manager, self.db, self.config.kmc,
                        setup_lock=lambda: named_lock(self.database, KMC_SETUP_LOCK),
                        # recovered keys go to holders of our certificates that are not revoked
                        recipient_issuers=lambda: [info.certificate for info in self.ca.authorities().values()],
                        recipient_revocation=lambda certs: revocation_info(self.ca, certs))
        if self.site.provisioned:
            self.site.connect_kmc(kmc)
        return kmc

    @cached_property
    def cmp(self) -> CmpServer:
        """The CMP server (RFC 9483) over the embedded CA; its one-time secrets sealed by two HSM SM4 keys; a
        certificate enrolled with a secret bound to an RA request is recorded on that request."""
        return CmpServer(self.ca, SecretBox(self.key_manager, CMP_SECRET_ENC_KEY, CMP_SECRET_MAC_KEY),
                         enrolled=record_cmp_enrolment)

    @cached_property
    def upstream_ca(self) -> CmpCA | None:
        """The upstream CA over CMP when ``[ca] backend = "cmp"`` (the RA issues through it), else None."""
        ca = self.config.ca
        if ca.backend != "cmp":
            return None
        ca.check_upstream()
        if ca.ra_key_label:
            chain = ca.ra_certificates()
            credentials = signature_credentials(self.key_manager, ca.ra_key_label, chain[0], chain[1:])
        else:
            credentials = MacCredentials(ca.upstream_reference.encode(), ca.upstream_secret.reveal().encode())
        return CmpCA(self.outbox_db,
                     CmpHttpTransport(ca.upstream_url, ca.upstream_timeout, profile_in_path=ca.profile_in_path),
                     credentials, ca.trust_anchors(), name=ca.upstream_name, poll_timeout=ca.poll_timeout,
                     central_keygen=ca.central_keygen)

    @cached_property
    def outbox_db(self) -> sessionmaker[Session]:
        """Where ``CmpCA`` keeps its queue: the site database, so that the RA's move to ``awaiting_ca`` and
        the queued requests (their transactionIDs) commit together; nothing is sent inside a transaction.
        A queue an earlier version kept beside a SQLite database (``<database>-cmp-outbox``) is adopted
        once: its rows are copied in (never a second transactionID for a request already sent)."""
        url = self.config.database.url
        sidecar = url[len("sqlite:///"):] + "-cmp-outbox" if url.startswith("sqlite:///") else None
        if sidecar and os.path.exists(sidecar):
            from racentre.migrate import upgrade    # Alembic only where an old queue file is left
            engine = make_engine(f"sqlite:///{sidecar}")
            try:
                upgrade(engine)
                adopt_outbox(make_session_factory(engine), self.db)
            finally:
                engine.dispose()
        return self.db

    @cached_property
    def site(self) -> Site:
        return Site(self.ca, self.key_manager)

    @cached_property
    def ra(self) -> RaService:
        """The registration authority over this database, issuing through ``ca``."""
        # an upstream CA over CMP when ``[ca] backend = "cmp"``, else the embedded one; [ra]: four-eyes, profiles
        service = build_ra_service(self.db, self.upstream_ca or self.ca, self.config.ra)
        if self.config.ca.backend != "cmp":      # our CA serves CMP: secrets bound to approved requests
            service.cmp_secrets = lambda *args, **kwargs: self.cmp.issue_secret(*args, **kwargs)
        return service

    @cached_property
    def tsa(self) -> TsaService:
        """The TSA as the site runs it: ``[tsa]`` settings, this HSM, the unit certificates our CA issued
        (from the database, so every node serves them: ``Site.tsa_certificates``), and the database
        archive when ``[tsa] archive`` keeps issued tokens."""
        config = self.config.tsa
        return TsaService(config, self.key_manager, self.db if config.archive else None,
                          certificates=self.site.tsa_certificates)

    @cached_property
    def seal(self) -> SealService:
        """The seal service. On a set-up site: the seal maker certified by our CA, our TSA's units, our
        CRLs and OCSP for PAdES B-LT. Before ``racentre setup`` (no CA yet, and no TSA certificate): no
        seal maker (seals are made once our CA has certified one: the embedded CA is the only issuer) and
        no timestamps; verification against ``[seal]`` trust lists."""
        if self.site.provisioned:
            return build_seal_service(self.site, self, self.tsa)
        return unprovisioned_seal_service(self.key_manager, self.db, self.config.seal)

    @cached_property
    def trust(self) -> TrustService:
        """The trust services (trust/) over this site: application keys certified by the embedded CA, our
        roots plus ``[trust] trust_anchor_files`` as anchors, our CRLs (SM2 chains are checked with CRLs,
        pkicore.validation), the site's TSA, the evidence key (``[trust] evidence_key_label``, SM2 in the
        HSM) certified by our CA on first use, and every CA's revocation counter for the validation cache."""
        config = self.config.trust
        site = self.site
        signer: dict[str, EvidenceSigner] = {}

        def evidence_signer() -> EvidenceSigner:
            if "s" not in signer:
                certified = site.evidence_signer(config.evidence_key_label)
                signer["s"] = EvidenceSigner(config.evidence_key_label, certified.certificate, certified.chain,
                                             default_algorithm())
            return signer["s"]

        return TrustService(
            self.db, self.key_manager, ca=lambda: self.ca, roots=site.roots, intermediates=site.issuing,
            revocation_info=lambda certs: revocation_info(self.ca, certs, with_ocsp=False, crls_from=self._issuer_crls),
            tsa=self.tsa,
            evidence_signer=evidence_signer, config=config, organization=site.organization,
            revocation_state=self._revocation_state())

    @cached_property
    def _issuer_crls(self) -> IssuerCrls:
        """Each CA's current CRL kept for the trust services (ca_bridge.revinfo.IssuerCrls), checked against
        the CA's revocation counter on the hot-path reader."""
        def seq(ca_id: int) -> int:
            rows = self.hot_reader.rows("SELECT revocation_seq FROM ca_authority WHERE id = ?", (ca_id,))
            return rows[0][0] if rows else -1
        return IssuerCrls(self.ca, seq)

    @cached_property
    def hot_reader(self) -> HotReader:
        """The hot paths' DBAPI reader (store.db.HotReader) for the trust services."""
        return HotReader(self.engine)

    def _revocation_state(self):
        """() -> every CA's revocation counter (``ca_bridge.crl.bump_revocation_seq``: bumped in the
        transaction of every status change), one small query on the hot-path reader: the trust services'
        validation cache keys on it, so a revocation on any node is seen by the next verification."""
        reader = self.hot_reader

        def state() -> tuple:
            return tuple(reader.rows("SELECT id, revocation_seq FROM ca_authority ORDER BY id", ()))
        return state

    def token_and_revocation_state(self) -> tuple[int, tuple]:
        """(the ``api_token`` generation, ``_revocation_state()``'s value) in one statement: what the trust
        verification fast path (trust.fastpath) reads once per batch of requests."""
        rows = self.hot_reader.rows(
            "SELECT -1, value FROM db_generation WHERE name = ? "
            "UNION ALL SELECT id, revocation_seq FROM ca_authority ORDER BY 1", (TOKEN_GENERATION,))
        generation = next((value for key, value in rows if key == -1), 0)
        return generation, tuple(tuple(row) for row in rows if row[0] != -1)

    @cached_property
    def token_table(self) -> TokenTable:
        """Every API token in memory for the hot paths (access.tokens), reloaded when its generation moves."""
        return TokenTable(lambda: self.hot_reader.rows(TOKEN_ROWS, ()))

    def close(self) -> None:
        if "key_manager" in self.__dict__:
            self.key_manager.close()
        if "database" in self.__dict__:
            self.database.dispose()
