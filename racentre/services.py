"""The service container: builds the key manager and the database once per process from the config.

The CLI and ``racentre serve`` both use it, so they see the same settings and the same objects.
Package services (CA, RA, ...) are built from these by their own packages.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from ca_bridge.embedded import EmbeddedCA
from hsm import KeyManager, open_key_manager
from pkicore.audit import bind_node
from pkicore.db import make_engine, make_session_factory
from racentre.config import Config
from racentre.migrate import upgrade
from racentre.provision import Site


class Services:
    def __init__(self, config: Config):
        self.config = config

    @property
    def public_url(self) -> str:
        svc = self.config.service
        return (svc.public_url or f"http://{svc.host}:{svc.port}").rstrip("/")

    @cached_property
    def key_manager(self) -> KeyManager:
        return open_key_manager(self.config.hsm)

    @cached_property
    def engine(self) -> Engine:
        url = self.config.database.url
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        engine = make_engine(url)
        bind_node(engine, self.config.audit.node_id)
        upgrade(engine, key_manager=lambda: self.key_manager)
        return engine

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
        if "engine" in self.__dict__:
            self.engine.dispose()
