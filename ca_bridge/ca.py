"""Setting up the CA hierarchy: an SM2 root and issuing CA (keys generated in the HSM, never extractable),
a delegated OCSP signer per issuing CA (RFC 6960 §4.2.2.2, key in the HSM), and optionally ECDSA P-256
and RSA hierarchies for interoperability. Re-running is refused: it never destroys or overwrites a key
or a CA.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass
from typing import Mapping, Sequence

from asn1crypto import x509
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from ca_bridge.certbuilder import (CertificateTemplate, IssuerInfo, Urls, encode_name, inspect_public_key, name_text,
                                   random_serial)
from ca_bridge.config import CaConfig
from ca_bridge.errors import CaError, HierarchyExists
from ca_bridge.models import CertificateAuthority, IssuedCert
from ca_bridge.profiles import Profile, load_profiles
from hsm import KeyManager, KeyNotFound
from pkicore.algorithms import algorithm
from audit.trail import record
from store.db import transaction, utcnow
from store.generation import CA_AUTHORITIES, bump

log = logging.getLogger(__name__)
ACTOR_ROLE = "ca"          # the audit role of rows the CA writes itself


@dataclass(frozen=True)
class HierarchyKind:
    """One algorithm family of the hierarchy: key spec in the HSM and signature algorithm row."""

    suffix: str          # used in CA names and key labels: sm2, ecdsa, rsa
    key_algorithm: str   # hsm KEY_SPECS name
    signature: str       # pkicore.algorithms name
    title: str


KINDS = {k.suffix: k for k in (
    HierarchyKind("sm2", "sm2", "sm2-sm3", "SM2"),
    HierarchyKind("ecdsa", "ec-p256", "ecdsa-sha256", "ECDSA P-256"),
    HierarchyKind("rsa", "rsa-2048", "rsa-sha256", "RSA"),
)}


def ca_urls(public_url: str, ca_name: str, *, ocsp: bool) -> Urls:
    """Where relying parties find what CA ``ca_name`` publishes (ca_bridge.views URL layout)."""
    base = public_url.rstrip("/")
    return Urls(crl=f"{base}/ca/{ca_name}/crl", ocsp=f"{base}/ocsp/{ca_name}" if ocsp else "",
                ca_issuers=f"{base}/ca/{ca_name}/cert")


def names_for(kind: str, prefix: str = "", label_prefix: str = "") -> dict[str, str]:
    """CA names and HSM key labels of one hierarchy kind."""
    return {"root": f"{prefix}root-{kind}", "issuing": f"{prefix}issuing-{kind}",
            "root_label": f"{label_prefix}ca-root-{kind}", "issuing_label": f"{label_prefix}ca-issuing-{kind}",
            "ocsp_label": f"{label_prefix}ocsp-issuing-{kind}"}


def _refuse_if_present(km: KeyManager, session: Session, names: Sequence[str], labels: Sequence[str]) -> None:
    existing = list(session.scalars(select(CertificateAuthority.name).where(CertificateAuthority.name.in_(names))))
    if existing:
        raise HierarchyExists(f"CA {', '.join(sorted(existing))} already exists; refusing to create it again "
                              "(nothing was changed)")
    for label in labels:
        try:
            km.find_key(label)
        except KeyNotFound:
            continue
        raise HierarchyExists(f"a key labelled {label!r} already exists in the HSM; refusing to overwrite it "
                              "(nothing was changed)")


def init_hierarchy(km: KeyManager, db: sessionmaker[Session], public_url: str, *,
                   kinds: Sequence[str] = ("sm2",), prefix: str = "", label_prefix: str = "",
                   organization: str | None = None, profiles: Mapping[str, Profile] | None = None,
                   actor: str = "ca-init", now: dt.datetime | None = None,
                   config: CaConfig | None = None) -> list[str]:
    """Create root + issuing CA + OCSP signer for each kind ("sm2", "ecdsa", "rsa"); returns the CA names.

    Refused (HierarchyExists, nothing touched) when any CA name or key label is already taken. Keys are
    generated in the HSM as non-extractable; only their certificates reach the database. If the process
    dies between key generation and commit, the keys stay and a re-run is refused: an operator decides.
    The names come from ``config`` (``[ca]``: country, organization, common-name templates);
    ``organization`` overrides its organization.
    """
    config = config or CaConfig()
    if organization:
        config = dataclasses.replace(config, organization=organization)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise CaError(f"unknown hierarchy kinds {unknown or kinds} (choose from {', '.join(KINDS)})")
    profiles = profiles or load_profiles()
    now = (now or utcnow()).replace(microsecond=0)
    all_names = [names_for(k, prefix, label_prefix) for k in kinds]
    with db() as session:
        _refuse_if_present(km, session, [n[r] for n in all_names for r in ("root", "issuing")],
                           [n[r] for n in all_names for r in ("root_label", "issuing_label", "ocsp_label")])
    created: list[str] = []
    with transaction(db) as session:
        for kind_name, names in zip(kinds, all_names):
            created += _create_kind(km, session, public_url, KINDS[kind_name], names, config, profiles,
                                    actor, now)
    log.info("created CA hierarchy %s", ", ".join(created))
    return created


def _subject(config: CaConfig, name_key: str, kind: HierarchyKind) -> bytes:
    return encode_name(config.subject(config.name(name_key, kind=kind.title)))


def _create_kind(km: KeyManager, session: Session, public_url: str, kind: HierarchyKind, names: dict[str, str],
                 config: CaConfig, profiles: Mapping[str, Profile], actor: str, now: dt.datetime) -> list[str]:
    alg = algorithm(kind.signature)

    def signer(label: str):
        return lambda tbs: km.sign(label, tbs, alg.mechanism)

    root_key = inspect_public_key(km.generate_key_pair(names["root_label"], kind.key_algorithm).public_key_info)
    issuing_key = inspect_public_key(km.generate_key_pair(names["issuing_label"], kind.key_algorithm).public_key_info)
    ocsp_key = inspect_public_key(km.generate_key_pair(names["ocsp_label"], kind.key_algorithm).public_key_info)

    root_subject = _subject(config, "root_name", kind)
    root_profile = profiles["root-ca"]
    root_not_after = now + dt.timedelta(days=root_profile.validity_days)
    root_issuer = IssuerInfo(root_subject, root_key.key_id, alg, signer(names["root_label"]), root_not_after)
    root_cert = CertificateTemplate(root_issuer, root_profile).build(
        serial=random_serial(), subject_der=root_subject, key=root_key, not_before=now, not_after=root_not_after)
    root_urls = ca_urls(public_url, names["root"], ocsp=False)

    issuing_subject = _subject(config, "issuing_name", kind)
    issuing_profile = profiles["issuing-ca"]
    issuing_serial = random_serial()
    issuing_cert = CertificateTemplate(root_issuer, issuing_profile, root_urls).build(
        serial=issuing_serial, subject_der=issuing_subject, key=issuing_key, not_before=now,
        not_after=now + dt.timedelta(days=issuing_profile.validity_days))
    issuing_not_after = min(now + dt.timedelta(days=issuing_profile.validity_days), root_not_after)

    ocsp_profile = profiles["ocsp-signer"]
    ocsp_subject = _subject(config, "ocsp_name", kind)
    ocsp_serial = random_serial()
    issuing_issuer = IssuerInfo(issuing_subject, issuing_key.key_id, alg, signer(names["issuing_label"]),
                                issuing_not_after)
    ocsp_cert = CertificateTemplate(issuing_issuer, ocsp_profile, ca_urls(public_url, names["issuing"], ocsp=False)
                                    ).build(serial=ocsp_serial, subject_der=ocsp_subject, key=ocsp_key,
                                            not_before=now, not_after=now + dt.timedelta(days=ocsp_profile.validity_days))

    root = CertificateAuthority(name=names["root"], algorithm=alg.name, key_label=names["root_label"],
                                certificate=root_cert, crl_number=0, created_at=now)
    session.add(root)
    session.flush()
    issuing = CertificateAuthority(name=names["issuing"], algorithm=alg.name, key_label=names["issuing_label"],
                                   certificate=issuing_cert, parent_id=root.id, ocsp_key_label=names["ocsp_label"],
                                   ocsp_certificate=ocsp_cert, crl_number=0, created_at=now)
    session.add(issuing)
    session.flush()
    # the CA-issued certificates are in the status store too (root CRL lists a revoked issuing CA)
    for ca_id, ca_name, serial, profile, subject, der, days, request_id in (
            (root.id, names["root"], issuing_serial, issuing_profile, issuing_subject, issuing_cert,
             issuing_profile.validity_days, f"ca-init:{names['issuing']}"),
            (issuing.id, names["issuing"], ocsp_serial, ocsp_profile, ocsp_subject, ocsp_cert,
             ocsp_profile.validity_days, f"ca-init:{names['issuing']}:ocsp")):
        session.execute(insert(IssuedCert).values(
            ca_id=ca_id, serial=format(serial, "x"), request_id=request_id, profile=profile.name,
            subject=name_text(_rdns_of(subject)), not_before=now,
            not_after=min(now + dt.timedelta(days=days), root_not_after), certificate=der, status="good",
            created_at=now))
        # the same audit row as any issuance (EmbeddedCA._sign_one), by the issuing CA
        record(session, actor=f"ca:{ca_name}", role=ACTOR_ROLE, action="ca.certificate.issue", target_type="certificate",
               target_id=f"{ca_name}/{format(serial, 'x')}", request_id=request_id, profile=profile.name)
    bump(session, CA_AUTHORITIES)     # every process's CaDirectory reloads (ca_bridge.directory)
    record(session, actor=actor, role="ca_admin", action="ca.hierarchy.create", target_type="ca",
           target_id=names["issuing"], root=names["root"], algorithm=alg.name,
           keys=[names["root_label"], names["issuing_label"], names["ocsp_label"]])
    return [names["root"], names["issuing"]]


def _rdns_of(name_der: bytes) -> list[tuple[str, str]]:
    return [(atv["type"].native, atv["value"].native) for rdn in x509.Name.load(name_der).chosen for atv in rdn]
