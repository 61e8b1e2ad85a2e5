"""The certificate authority (issue 3, CA half): SM2 hierarchy in the HSM, GM/T 0015 certificates from
data profiles, CRLs, OCSP, and ``EmbeddedCA`` behind the ``ca_bridge.api.CABackend`` interface.

Public surface: ``EmbeddedCA`` (``from_services(services)``), ``init_hierarchy``, ``load_profiles``, the
Flask blueprint ``bp`` (``ca_bridge.views.init_app(app, services)`` wires it) and the click group
``ca_group``.
"""
from ca_bridge.api import CABackend, CertificateStatus, IssuedCertificate, IssueRequest, RevocationReason
from ca_bridge.ca import init_hierarchy
from ca_bridge.embedded import EmbeddedCA
from ca_bridge.cli import ca_group
from ca_bridge.profiles import Profile, load_profiles
from ca_bridge.views import bp, init_app

__all__ = ["CABackend", "CertificateStatus", "IssuedCertificate", "IssueRequest", "RevocationReason",
           "EmbeddedCA", "init_hierarchy", "load_profiles", "Profile", "bp", "init_app", "ca_group"]
