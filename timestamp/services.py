"""Building the TSA from the configuration and the service container: units from ``[tsa]``, each unit's
certificate from a certificate source, the clock monitor, the serial generator and the optional archive;
and provisioning (keys in the HSM, certificates from a CA).

A site's TSA reads its unit certificates from the database, where the site's CA keeps every certificate
it issued (``racentre.site.Site.tsa_certificates``), so every node that shares the database and the
HSM serves the same units without any local file, and a node that started before a certificate was
issued takes it up without a restart (``TsaService`` looks again while a unit is missing). A TSA outside
a site (tests) reads ``certs_dir/<unit>.pem`` files instead (``certificate_files``).
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

from asn1crypto import pem, x509

from hsm import KeyManager, KeyNotFound
from pkicore.algorithms import Algorithm, algorithm
from timestamp.clock import ClockMonitor
from timestamp.config import TsaConfig, TsaConfigError
from timestamp.errors import TsaError
from timestamp.models import archiver
from timestamp.tsa import SerialNumbers, TimeStampAuthority, TsaUnit
from timestamp.verify import TokenVerification, load_certificates, verify_token

log = logging.getLogger(__name__)

# (key SPKI DER, unit name) -> [TSA certificate DER, issuing CA DER, ...]: issues (or returns) one; a site
# wires its CA's (racentre.site.Site.tsa_issuer: EmbeddedCA, profile ``tsa``), tests a local test issuer
CertificateIssuer = Callable[[bytes, str], list[bytes]]
# (unit name, key SPKI DER) -> [TSA certificate DER, issuing CA DER, ..., root DER], or None when none exists
CertificateSource = Callable[[str, bytes], "Sequence[bytes] | None"]


def ensure_key(km: KeyManager, label: str, alg: Algorithm) -> bytes:
    """The key pair ``label`` (generated when absent); returns its SubjectPublicKeyInfo DER."""
    return km.ensure_key_pair(label, alg.key_algorithm)


def read_unit_certificates(path: Path) -> tuple[bytes, tuple[bytes, ...]]:
    try:
        certs = load_certificates(path.read_bytes())
    except OSError as exc:
        raise TsaError(f"TSA certificate file {path} cannot be read") from exc
    if not certs:
        raise TsaError(f"no certificate in {path}")
    return certs[0], tuple(certs[1:])


def certificate_files(config: TsaConfig) -> CertificateSource:
    """Unit certificates from ``certs_dir/<unit>.pem`` (certificate, then its issuing CAs): a TSA outside
    a site (tests)."""
    def find(unit: str, _spki: bytes) -> list[bytes] | None:
        path = config.cert_file(unit)
        if not path.is_file():
            return None
        cert, chain = read_unit_certificates(path)
        return [cert, *chain]
    return find


def build_authority(config: TsaConfig, km: KeyManager, *, certificates: CertificateSource | None = None,
                    archive=None, clock: ClockMonitor | None = None,
                    serials: SerialNumbers | None = None) -> TimeStampAuthority:
    """Every unit of ``[tsa]`` with its certificate from ``certificates`` (default: ``certificate_files``);
    TsaError when a unit has no key or no certificate for that key."""
    certificates = certificates or certificate_files(config)
    units = {}
    for name, unit in config.unit_configs().items():
        policy = unit.policy or config.policy
        if not policy:
            raise TsaConfigError(f"TSA unit {name}: no policy OID; set [tsa] policy (RFC 3161 §2.4.2 TSAPolicyId, "
                                 "an OID under your organisation's arc) in racentre.toml or RACENTRE_TSA_POLICY")
        try:
            spki = km.public_key_info(unit.key)
        except KeyNotFound as exc:
            raise TsaError(f"TSA unit {name}: no key {unit.key!r} in the HSM; run `racentre setup`") from exc
        found = certificates(name, spki)
        if not found:
            raise TsaError(f"TSA unit {name}: no certificate for its key yet; run `racentre setup` "
                           "(or `racentre tsa provision`)")
        cert, chain = found[0], tuple(found[1:])
        if x509.Certificate.load(cert).public_key.dump() != spki:
            raise TsaError(f"TSA unit {name}: the certificate found is not for the key {unit.key!r}")
        units[name] = TsaUnit(name, key_manager=km, key_label=unit.key, algorithm_name=unit.algorithm,
                              certificate=cert, chain=chain, policy=policy,
                              accuracy_ms=config.accuracy_ms, include_chain=config.include_chain)
    return TimeStampAuthority(
        units, digests=config.digest_list(), accept_policies=config.accepted_policies(),
        clock=clock or ClockMonitor(require_sync=config.require_sync, max_error_ms=config.error_bound_ms()),
        serials=serials or SerialNumbers(config.node_id), archive=archive)


def provision(config: TsaConfig, km: KeyManager, issuer: CertificateIssuer) -> dict[str, list[bytes]]:
    """Every unit's key (made in the HSM when missing) certified by ``issuer`` (a site's: idempotent, kept
    in the database); returns unit -> [certificate, issuing CA, ...]."""
    return {name: issuer(ensure_key(km, unit.key, algorithm(unit.algorithm)), name)
            for name, unit in config.unit_configs().items()}


def write_certificate_files(config: TsaConfig, km: KeyManager, issuer: CertificateIssuer, *,
                            force: bool = False) -> dict[str, Path]:
    """``provision`` for a TSA outside a site: each unit's chain written to ``certs_dir/<unit>.pem``
    (kept when present unless ``force``); returns unit -> file."""
    out = {}
    for name, unit in config.unit_configs().items():
        path = config.cert_file(name)
        spki = ensure_key(km, unit.key, algorithm(unit.algorithm))
        if force or not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"".join(pem.armor("CERTIFICATE", c) for c in issuer(spki, name)))
            log.info("TSA unit %s: certificate written to %s", name, path)
        out[name] = path
    return out


class TsaService:
    """What the web layer and the CLI use: the authority and verification.

    The authority is built on first use and built again from its certificate source every
    ``refresh_seconds`` (a renewed certificate is taken up; if that fails the old one keeps serving).
    While it cannot be built (no certificate yet) every use raises TsaError, and the source is asked
    again at most every ``retry_seconds``: a node that started before ``racentre setup`` issued the TSA
    certificates serves them a moment later, without a restart."""

    retry_seconds = 2.0
    refresh_seconds = 300.0

    def __init__(self, config: TsaConfig, km: KeyManager, db=None, *, clock: ClockMonitor | None = None,
                 certificates: CertificateSource | None = None):
        self.config = config
        self._km = km
        self._db = db
        self._clock = clock or ClockMonitor(require_sync=config.require_sync, max_error_ms=config.error_bound_ms())
        self._serials = SerialNumbers(config.node_id)
        self._certificates = certificates or certificate_files(config)
        self._authority: TimeStampAuthority | None = None
        self._next_build = 0.0                   # time.monotonic() after which the authority is built again
        self._failure: TsaError | None = None
        self._lock = threading.Lock()

    @property
    def authority(self) -> TimeStampAuthority:
        authority = self._authority
        if authority is not None and time.monotonic() < self._next_build:
            return authority
        with self._lock:
            if time.monotonic() >= self._next_build:
                self._build()
            if self._authority is None:
                raise TsaError(self._failure.public_message)
            return self._authority

    def retry_now(self) -> None:
        """The certificate source changed in this process (``racentre setup`` issued TSA certificates): a TSA
        that could not be built is built again on its next use, not only after ``retry_seconds``."""
        with self._lock:
            if self._authority is None:
                self._next_build = 0.0

    def _build(self) -> None:
        try:
            archive = None
            if self.config.archive:
                if self._db is None:
                    raise TsaError("tsa.archive is on but no database is configured")
                archive = archiver(self._db)
            self._authority = build_authority(self.config, self._km, certificates=self._certificates,
                                              archive=archive, clock=self._clock, serials=self._serials)
            self._next_build = time.monotonic() + self.refresh_seconds
        except Exception as exc:  # noqa: BLE001 - the database or the HSM may be away for a moment
            failure = exc if isinstance(exc, TsaError) else TsaError(f"the TSA cannot be built: {exc}")
            # (a TsaError's public_message is what later uses raise: no growing traceback is kept)
            if failure is not exc:
                failure.__cause__ = exc
            if self._authority is not None:
                log.warning("TSA units not refreshed (the current ones keep serving): %s", exc)
            self._failure = failure
            self._next_build = time.monotonic() + self.retry_seconds

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

