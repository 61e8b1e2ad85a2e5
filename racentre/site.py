"""Site provisioning: the centre's own service identities are certified by the embedded CA — TSA units
(profile ``tsa``, RFC 3161 §2.3), the KMC (``kmc``), the seal-making authority (``seal-maker``, GB/T
38540 §6) — and the KMC trusts the CA's SM2 issuing CAs, which ask it for the encryption keys of GM/T
0034 dual certificates over GM/T 0014. ``racentre.services.Services`` (the composition root) uses it.

Idempotent: each identity's key is generated in the HSM once (never extractable) and certified once
per key and issuing CA — the IssueRequest id is ``site:<role>:<CA name>:<SHA-256 of the key, 16 hex>`` and
EmbeddedCA issuance is idempotent on it — so every worker process may call these at start-up and reads
the same certificate.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from asn1crypto import x509

from ca_bridge.api import IssueRequest
from ca_bridge.ca import names_for
from ca_bridge.embedded import EmbeddedCA
from ca_bridge.errors import UnknownCA
from ca_bridge.revinfo import revocation_info
from hsm import KeyManager
from kms.services import KmsParts
from pkicore.algorithms import algorithm
from seal.registry import SealMaker, SealRegistry
from seal.services import SealService
from seal.timestamps import SealTimestamps


SEAL_MAKER_LABEL = "seal-maker"


@dataclass(frozen=True)
class Certified:
    certificate: bytes
    chain: tuple[bytes, ...]          # issuing CA up to and including the root


class Site:
    """The embedded CA plus what the centre's own services need from it."""

    def __init__(self, ca: EmbeddedCA, key_manager: KeyManager, organization: str | None = None):
        """Names from the CA's ``[ca]`` section; ``organization`` overrides its O=."""
        self.ca = ca
        self.km = key_manager
        self.organization = organization or ca.config.organization
        self.kmc_certified = False     # True once connect_kmc had the CA certify the KMC (racentre setup says so)

    @property
    def provisioned(self) -> bool:
        """True once the CA hierarchy exists (``racentre setup`` or ``racentre ca init``)."""
        return bool(self.ca.authorities())

    def init(self, kinds: tuple[str, ...] = ("sm2",)) -> list[str]:
        """Create the hierarchies of ``kinds`` that do not exist yet; returns the CAs created."""
        present = self.ca.authorities()
        missing = tuple(k for k in kinds if names_for(k, self.ca.name_prefix)["root"] not in present)
        if not missing:
            return []
        return self.ca.init_hierarchy(kinds=missing, organization=self.organization, actor="site-setup")

    # ------------------------------------------------------------------ certificates
    def roots(self) -> tuple[bytes, ...]:
        return tuple(info.certificate for info in self.ca.authorities().values() if info.is_root)

    def issuing(self) -> tuple[bytes, ...]:
        return tuple(info.certificate for info in self.ca.authorities().values() if not info.is_root)

    def _with_root(self, ca_name: str, chain: tuple[bytes, ...]) -> tuple[bytes, ...]:
        info = self.ca.authorities()[ca_name]
        while info.parent is not None:
            info = self.ca.authorities()[info.parent]
        return tuple(chain) + (info.certificate,)

    def _request_id(self, role: str, public_key_info: bytes) -> tuple[str, str]:
        """(IssueRequest id, CA name) of a service key's certificate: one per role, key and issuing CA."""
        key_hash = hashlib.sha256(public_key_info).hexdigest()[:16]
        ca = self.ca.issuing_ca_for(public_key_info).name
        return f"site:{role}:{ca}:{key_hash}", ca

    def certified(self, role: str, public_key_info: bytes) -> Certified | None:
        """The certificate ``certify`` issued for this key, read from the database (None: not yet)."""
        try:
            request_id, _ = self._request_id(role, public_key_info)
        except UnknownCA:          # no hierarchy yet (the CA directory looks again on a miss)
            return None
        issued = self.ca.find_issued(request_id)
        return Certified(issued.certificate, self._with_root(issued.ca, issued.chain)) if issued else None

    def _service_name(self, service: str) -> str:
        return self.ca.config.name("service_name", service=service, organization=self.organization)

    def certify(self, role: str, public_key_info: bytes, profile: str, common_name: str) -> Certified:
        """The certificate of a service key from the issuing CA of its key family (issued on first call,
        read back after; issued again by the right CA once that family's hierarchy is added)."""
        request_id, ca = self._request_id(role, public_key_info)
        issued = self.ca.issue(IssueRequest(
            request_id=request_id, profile=profile, public_key_info=public_key_info, ca=ca,
            subject=self.ca.config.subject(common_name, self.organization)))
        return Certified(issued.certificate, self._with_root(issued.ca, issued.chain))

    # ------------------------------------------------------------------ services
    def tsa_issuer(self):
        """A ``timestamp.services.CertificateIssuer``: (SPKI, unit) -> [TSA certificate, issuing CA, root]."""
        def issue(spki: bytes, unit: str) -> list[bytes]:
            certified = self.certify(f"tsa-{unit}", spki, "tsa", self._service_name(f"TSA {unit}"))
            return [certified.certificate, *certified.chain]
        return issue

    def tsa_certificates(self, unit: str, spki: bytes) -> list[bytes] | None:
        """A ``timestamp.services.CertificateSource``: the TSA unit's certificate for this key with its
        chain up to our root, as ``tsa_issuer`` issued it (from the database, so every node has it)."""
        certified = self.certified(f"tsa-{unit}", spki)
        return [certified.certificate, *certified.chain] if certified else None

    def seal_maker(self, label: str = SEAL_MAKER_LABEL, vid: str = "RACENTRE") -> SealMaker:
        """The seal-making authority: an SM2 key in the HSM with a CA-issued certificate."""
        spki = self.km.ensure_key_pair(label, "sm2")
        certified = self.certify("seal-maker", spki, "seal-maker", self._service_name("Seal Maker"))
        return SealMaker(label, certified.certificate, algorithm("sm2-sm3"), vid)

    def evidence_signer(self, label: str) -> Certified:
        """The trust services' evidence key (SM2 in the HSM, made once) with its certificate from our CA
        (profile ``trust-evidence``), issued on first call and read back after."""
        spki = self.km.ensure_key_pair(label, "sm2")
        return self.certify("trust-evidence", spki, "trust-evidence", f"{self.organization} Trust Evidence")

    def connect_kmc(self, kmc: KmsParts) -> None:
        """Certify the KMC signing key by the CA (replacing its bootstrap self-signed certificate) and let
        the KMC trust our SM2 issuing CAs (GM/T 0014 requests they sign). The CA reaches the KMC through
        the link ``racentre.services.Services.ca`` attached once."""
        cert = x509.Certificate.load(kmc.escrow.certificate)
        if cert.self_signed != "no":
            certified = self.certify("kmc", kmc.escrow.public_key_info, "kmc", self._service_name("KMC"))
            kmc.escrow.install_certificate(certified.certificate, actor="site-setup")
            self.kmc_certified = True
        for info in self.ca.authorities().values():
            if not info.is_root and info.algorithm.key_type == "sm2":
                kmc.service.trust(info.certificate)


def build_seal_service(site: Site, services, tsa=None):
    """The seal service over the CA-certified seal maker; PDF signer chains end at our roots; the TSA (if
    wired) timestamps seals, each with a unit of the seal key's family (seal.timestamps); our CA's CRLs and
    OCSP responses make PDF seals PAdES B-LT."""
    maker = site.seal_maker()
    registry = SealRegistry(services.db, services.key_manager, maker)
    seal_config = services.config.seal
    return SealService(registry, trust=site.roots(), chain=site.issuing(),
                       timestamps=SealTimestamps.of_tsa_service(tsa) if tsa is not None else None,
                       tsa_trust=site.roots(), revocation_info=lambda certs: revocation_info(site.ca, certs),
                       trust_list=seal_config.trust_list(), require_revocation=seal_config.require_revocation)
