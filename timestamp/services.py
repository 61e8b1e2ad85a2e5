"""Building the TSA from the configuration and the service container: units from ``[tsa]``, certificates
from ``certs_dir/<unit>.pem``, the clock monitor, the serial generator and the optional archive; and
provisioning (keys in the HSM, certificates from a CA) for sites and the demo.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable

from asn1crypto import pem

from hsm import KeyManager
from pkicore.algorithms import algorithm
from timestamp.clock import ClockMonitor
from timestamp.config import TsaConfig
from timestamp.errors import TsaError
from timestamp.models import archiver
from timestamp.provision import StandaloneIssuer, ensure_key
from timestamp.tsa import SerialNumbers, TimeStampAuthority, TsaUnit
from timestamp.verify import TokenVerification, load_certificates, verify_token

log = logging.getLogger(__name__)

STANDALONE_CA_LABEL = "tsa-standalone-ca"

# (key SPKI DER, unit name) -> [TSA certificate DER, issuing CA DER, ...]
CertificateIssuer = Callable[[bytes, str], list[bytes]]


def read_unit_certificates(path: Path) -> tuple[bytes, tuple[bytes, ...]]:
    try:
        certs = load_certificates(path.read_bytes())
    except OSError as exc:
        raise TsaError(f"TSA certificate file {path} cannot be read; run `racentre tsa provision`") from exc
    if not certs:
        raise TsaError(f"no certificate in {path}")
    return certs[0], tuple(certs[1:])


def build_authority(config: TsaConfig, km: KeyManager, *, archive=None,
                    clock: ClockMonitor | None = None) -> TimeStampAuthority:
    units = {}
    for name, unit in config.unit_configs().items():
        cert, chain = read_unit_certificates(config.cert_file(name))
        units[name] = TsaUnit(name, key_manager=km, key_label=unit.key, algorithm_name=unit.algorithm,
                              certificate=cert, chain=chain, policy=unit.policy or config.policy,
                              accuracy_ms=config.accuracy_ms, include_chain=config.include_chain)
    return TimeStampAuthority(
        units, digests=config.digest_list(), accept_policies=config.accepted_policies(),
        clock=clock or ClockMonitor(require_sync=config.require_sync, max_error_ms=config.max_error_ms),
        serials=SerialNumbers(config.node_id), archive=archive)


def standalone_issuer(km: KeyManager, config: TsaConfig) -> CertificateIssuer:
    """Certificates from HSM-backed one-level CAs, one per key family (SM2 units under an SM2 CA,
    ECDSA under ECDSA, RSA under RSA, so each unit's chain is checkable by tools without SM2)."""
    cas: dict[str, StandaloneIssuer] = {}
    family = {"sm2": "sm2-sm3", "ec": "ecdsa-sha256", "rsa": "rsa-sha256"}
    units = config.unit_configs()

    def issue(spki: bytes, unit: str) -> list[bytes]:
        kind = algorithm(units[unit].algorithm).key_type
        if kind not in cas:
            cas[kind] = StandaloneIssuer.create(km, f"{STANDALONE_CA_LABEL}-{kind}", family[kind],
                                                common_name=f"RA Centre TSA CA ({kind.upper()})")
        ca = cas[kind]
        return [ca.issue_tsa(spki, f"RA Centre TSA {unit}"), ca.certificate]
    return issue


def provision(config: TsaConfig, km: KeyManager, issuer: CertificateIssuer | None = None, *,
              force: bool = False) -> dict[str, Path]:
    """Make sure every unit has its key and a certificate file; returns unit -> certificate file."""
    issuer = issuer or standalone_issuer(km, config)
    out = {}
    for name, unit in config.unit_configs().items():
        path = config.cert_file(name)
        spki = ensure_key(km, unit.key, algorithm(unit.algorithm))
        if force or not path.is_file():
            certs = issuer(spki, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"".join(pem.armor("CERTIFICATE", c) for c in certs))
            log.info("TSA unit %s: certificate written to %s", name, path)
        out[name] = path
    return out


class TsaService:
    """What the web layer and the CLI use: the authority (built on first use) and verification."""

    def __init__(self, config: TsaConfig, km: KeyManager, db=None, *, clock: ClockMonitor | None = None):
        self.config = config
        self._km = km
        self._db = db
        self._clock = clock
        self._authority: TimeStampAuthority | None = None
        self._lock = threading.Lock()

    @classmethod
    def for_site(cls, services) -> "TsaService":
        """The site's TSA as the service runs it: ``[tsa]`` settings, the site's HSM, and its database
        when ``[tsa] archive`` keeps issued tokens (``services``: a ``racentre.services.Services``)."""
        config = services.config.tsa
        return cls(config, services.key_manager, services.db if config.archive else None)

    @property
    def authority(self) -> TimeStampAuthority:
        if self._authority is None:
            with self._lock:
                if self._authority is None:
                    archive = None
                    if self.config.archive:
                        if self._db is None:
                            raise TsaError("tsa.archive is on but no database is configured")
                        archive = archiver(self._db)
                    self._authority = build_authority(self.config, self._km, archive=archive, clock=self._clock)
        return self._authority

    def unit_families(self) -> dict[str, str]:
        """Unit name -> key family (``sm2`` | ``ec`` | ``rsa``) of every configured unit, the default unit
        first, read from ``[tsa]`` without building the authority (sealing picks a unit by family)."""
        return {name: algorithm(unit.algorithm).key_type for name, unit in self.config.unit_configs().items()}

    def trust_anchors(self) -> list[bytes]:
        """The issuing CAs of every unit (the service vouches for its own tokens)."""
        anchors = []
        for unit in self.authority.units.values():
            for c in unit.chain:
                if c not in anchors:
                    anchors.append(c)
        return anchors

    def verify(self, token: bytes, *, data: bytes | None = None, digest: bytes | None = None,
               crls=(), trust=None) -> TokenVerification:
        return verify_token(token, data=data, digest=digest, crls=crls,
                            trust=self.trust_anchors() if trust is None else trust)

