"""HSM vendor profiles: logical mechanism names -> PKCS#11 codes, plus quirk flags (PKCS#11 v2.40 §2).

PKCS#11 defines no SM2/SM3/SM4 codes, so every vendor picks its own values in the vendor range
(0x80000000+). One TOML file per vendor in ``hsm/vendors/`` (XiPKI's vendor-*.json shape); code asks
``profile.quirks.sm2_der_signature``, never a vendor's name. Standard mechanisms are shared by all.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from pkcs11 import KeyType, Mechanism

VENDOR_DIR = Path(__file__).with_name("vendors")

STANDARD_MECHANISMS: dict[str, int] = {
    "ec-keygen": Mechanism.EC_KEY_PAIR_GEN,
    "ecdsa": Mechanism.ECDSA,
    "ecdsa-sha256": Mechanism.ECDSA_SHA256,
    "ecdsa-sha384": Mechanism.ECDSA_SHA384,
    "rsa-keygen": Mechanism.RSA_PKCS_KEY_PAIR_GEN,
    "rsa-pkcs1": Mechanism.RSA_PKCS,
    "rsa-pkcs1-sha256": Mechanism.SHA256_RSA_PKCS,
    "rsa-pkcs1-sha384": Mechanism.SHA384_RSA_PKCS,
    "rsa-pkcs1-sha512": Mechanism.SHA512_RSA_PKCS,
    "rsa-pss": Mechanism.RSA_PKCS_PSS,
    "rsa-pss-sha256": Mechanism.SHA256_RSA_PKCS_PSS,
    "aes-keygen": Mechanism.AES_KEY_GEN,
    "aes-key-wrap": Mechanism.AES_KEY_WRAP,
    "aes-key-wrap-pad": Mechanism.AES_KEY_WRAP_PAD,
    "aes-cbc-pad": Mechanism.AES_CBC_PAD,
    "generic-keygen": Mechanism.GENERIC_SECRET_KEY_GEN,
    "hmac-sha256": Mechanism.SHA256_HMAC,
    "sha256": Mechanism.SHA256,
}


@dataclass(frozen=True)
class Quirks:
    """Where a token departs from PKCS#11 v2.40. The four signature/point flags are XiPKI's vendor
    behaviours (its ``vendor.conf``: ``SM2_SIGNATURE_X962``, ``ECDSA_SIGNATURE_X962``,
    ``SM2_PRIVATEKEY_ECPOINT``, ``EC_PRIVATEKEY_ECPOINT``), named here by what they change."""
    sm2_der_signature: bool = False      # SM2 signatures in and out as X9.62 DER SEQUENCE{r,s}, not raw r||s
    ecdsa_der_signature: bool = False    # the same for CKM_ECDSA* (PKCS#11 v2.40 §2.3.1 says raw r||s)
    sm2_private_key_ec_point: bool = False   # an SM2 private key object carries CKA_EC_POINT (its public point)
    ec_private_key_ec_point: bool = False    # the same for CKK_EC private keys
    sm2_user_id_parameter: bool = False  # token takes the SM2 user ID as the mechanism parameter
    sm2_key_type: str = "vendor"         # "vendor" (CKK_SM2), "ec" (CKK_EC + SM2 params) or "none"
    thread_safe: bool = False            # safe from many threads after C_Initialize(NULL)

    def der_signature(self, key_type: str) -> bool:
        """True when the token signs and verifies ``key_type`` ("sm2" or "ec") in DER, not r||s."""
        return self.sm2_der_signature if key_type == "sm2" else self.ecdsa_der_signature and key_type == "ec"

    def private_key_ec_point(self, key_type: str) -> bool:
        """True when a private key of ``key_type`` ("sm2" or "ec") holds CKA_EC_POINT."""
        return self.sm2_private_key_ec_point if key_type == "sm2" else (
            self.ec_private_key_ec_point and key_type == "ec")


@dataclass(frozen=True)
class VendorProfile:
    name: str
    description: str = ""
    match_manufacturer: tuple[str, ...] = ()
    key_types: dict[str, int] = field(default_factory=dict)
    vendor_mechanisms: dict[str, int] = field(default_factory=dict)
    quirks: Quirks = Quirks()

    def mechanism(self, logical: str) -> Mechanism:
        """The python-pkcs11 Mechanism for a logical name, or KeyError if this vendor lacks it."""
        if logical in self.vendor_mechanisms:
            return Mechanism(self.vendor_mechanisms[logical])
        if logical in STANDARD_MECHANISMS:
            return Mechanism(STANDARD_MECHANISMS[logical])
        raise KeyError(logical)

    def has(self, logical: str) -> bool:
        return logical in self.vendor_mechanisms or logical in STANDARD_MECHANISMS

    def key_type(self, logical: str) -> KeyType:
        """KeyType for "sm2", "sm4", "ec", "rsa", "aes", "generic"."""
        standard = {"ec": KeyType.EC, "rsa": KeyType.RSA, "aes": KeyType.AES,
                    "generic": KeyType.GENERIC_SECRET}
        if logical in standard:
            return standard[logical]
        if logical == "sm2" and self.quirks.sm2_key_type == "ec":
            return KeyType.EC
        if logical in self.key_types:
            return KeyType(self.key_types[logical])
        raise KeyError(logical)

    def matches(self, manufacturer: str) -> bool:
        return any(manufacturer.strip().startswith(m) for m in self.match_manufacturer)


def _register(enum_cls, name: str, value: int) -> None:
    """Add a vendor-defined code to one of python-pkcs11's IntEnums.

    python-pkcs11 0.10.1 insists on ``isinstance(mech, Mechanism)`` and maps attribute values through
    ``KeyType(value)``, both of which reject codes outside PKCS#11; a pseudo-member makes them pass.
    """
    if value in enum_cls._value2member_map_:
        return
    member = int.__new__(enum_cls, value)
    member._name_ = name
    member._value_ = value
    enum_cls._value2member_map_[value] = member
    enum_cls._member_map_.setdefault(name, member)


def load_profile(name: str) -> VendorProfile:
    """Load ``hsm/vendors/<name>.toml`` (or an explicit path) and register its codes."""
    path = Path(name) if name.endswith(".toml") else VENDOR_DIR / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in VENDOR_DIR.glob("*.toml")))
        raise FileNotFoundError(f"unknown HSM vendor profile {name!r} (known: {known})")
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    profile = VendorProfile(
        name=data["name"],
        description=data.get("description", ""),
        match_manufacturer=tuple(data.get("match_manufacturer", ())),
        key_types=dict(data.get("key_types", {})),
        vendor_mechanisms=dict(data.get("mechanisms", {})),
        quirks=Quirks(**data.get("quirks", {})),
    )
    for logical, code in profile.vendor_mechanisms.items():
        _register(Mechanism, f"VENDOR_{profile.name}_{logical}".upper().replace("-", "_"), code)
    for logical, code in profile.key_types.items():
        _register(KeyType, f"VENDOR_{profile.name}_{logical}".upper().replace("-", "_"), code)
    return profile


def all_profiles() -> list[VendorProfile]:
    return [load_profile(p.stem) for p in sorted(VENDOR_DIR.glob("*.toml"))]


def detect_profile(manufacturer: str) -> VendorProfile:
    """Pick the profile whose ``match_manufacturer`` prefixes the module/token manufacturer ID."""
    for profile in all_profiles():
        if profile.matches(manufacturer):
            return profile
    return VendorProfile(name="generic", description="standard PKCS#11 mechanisms only",
                         quirks=Quirks(sm2_key_type="none"))
