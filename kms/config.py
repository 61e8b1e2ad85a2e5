"""Settings of the key-management centre (one frozen dataclass; defaults suit the embedded KMC)."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class KmsConfig:
    # HSM labels: {prefix}-sign (KMC signing key), {prefix}-mac (archive MAC key),
    # {prefix}-kek-v<n> (key-encryption keys), {prefix}-dr (disaster-recovery import key)
    key_prefix: str = "kmc"
    kmc_subject: tuple[tuple[str, str], ...] = (("country_name", "CN"), ("organization_name", "RA Centre"),
                                                ("common_name", "RA Centre KMC"))
    approvals_required: int = 2            # M
    panel_size: int = 3                    # N: the officer panel
    officers: tuple[str, ...] = ()         # named panel (len == N); empty: any key_recovery_officer
    approval_ttl: dt.timedelta = dt.timedelta(hours=24)
    request_ttl: dt.timedelta = dt.timedelta(days=7)
    retention: dt.timedelta = dt.timedelta(days=365 * 5)   # kept after expiry/revocation before destruction
    request_freshness: dt.timedelta = dt.timedelta(minutes=10)   # GM/T 0014 requestTime window
    rotation_batch: int = 200
    trusted_ca_certificates: tuple[bytes, ...] = field(default=())   # DER; CAs allowed to call the KMC

    def __post_init__(self):
        if not (1 <= self.approvals_required <= self.panel_size):
            raise ValueError("need 1 <= approvals_required (M) <= panel_size (N)")
        if self.officers and len(set(self.officers)) != self.panel_size:
            raise ValueError("the officer panel must name exactly panel_size distinct officers")
