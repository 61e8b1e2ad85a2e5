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
from hsm import KeyManager, open_key_manager
from pkicore.audit import bind_node
from pkicore.db import make_engine, make_session_factory, named_lock
from racentre.config import Config
from racentre.migrate import SchemaError, require_current, upgrade
from racentre.provision import Site


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

    def close(self) -> None:
        if "key_manager" in self.__dict__:
            self.key_manager.close()
        if "database" in self.__dict__:
            self.database.dispose()
