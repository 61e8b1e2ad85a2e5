"""Key references (RFC 7512 ``pkcs11:`` URIs), key specifications and key descriptions."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, unquote


@dataclass(frozen=True)
class KeyRef:
    """Names a key in the token by label and/or CKA_ID; never carries a PIN (RFC 7512 §2.3)."""

    label: str | None = None
    key_id: bytes | None = None

    def __post_init__(self):
        if not self.label and not self.key_id:
            raise ValueError("a key reference needs a label or an id")

    @classmethod
    def parse(cls, text: "str | KeyRef") -> "KeyRef":
        """Accept a plain label or a ``pkcs11:object=...;id=%01%02`` URI (RFC 7512)."""
        if isinstance(text, KeyRef):
            return text
        if not text.startswith("pkcs11:"):
            return cls(label=text)
        path = text[len("pkcs11:"):].split("?", 1)[0]
        attrs = {}
        for part in filter(None, path.split(";")):
            name, _, value = part.partition("=")
            attrs[name] = value
        if "pin-value" in text or "pin-source" in text:
            raise ValueError("key URIs must not carry a PIN; configure it with RACENTRE_HSM_PIN")
        key_id = unquote(attrs["id"], encoding="latin-1").encode("latin-1") if "id" in attrs else None
        return cls(label=unquote(attrs["object"]) if "object" in attrs else None, key_id=key_id)

    def uri(self, token: str | None = None) -> str:
        parts = []
        if token:
            parts.append("token=" + quote(token, safe=""))
        if self.label:
            parts.append("object=" + quote(self.label, safe=""))
        if self.key_id:
            parts.append("id=" + "".join(f"%{b:02x}" for b in self.key_id))
        return "pkcs11:" + ";".join(parts)

    def __str__(self) -> str:
        return self.uri()


@dataclass(frozen=True)
class KeySpec:
    """How to generate one kind of key: logical key type, generation mechanism, size or curve."""

    name: str
    key_type: str          # logical: sm2, ec, rsa, sm4, aes, generic
    keygen: str            # logical mechanism name (hsm/vendors/*.toml or the standard table)
    pair: bool
    bits: int | None = None
    curve: str | None = None      # asn1crypto named-curve name


KEY_SPECS: dict[str, KeySpec] = {s.name: s for s in (
    KeySpec("sm2", "sm2", "sm2-keygen", True, 256, "sm2p256v1"),
    KeySpec("ec-p256", "ec", "ec-keygen", True, 256, "secp256r1"),
    KeySpec("ec-p384", "ec", "ec-keygen", True, 384, "secp384r1"),
    KeySpec("rsa-2048", "rsa", "rsa-keygen", True, 2048),
    KeySpec("rsa-3072", "rsa", "rsa-keygen", True, 3072),
    KeySpec("rsa-4096", "rsa", "rsa-keygen", True, 4096),
    KeySpec("sm4", "sm4", "sm4-keygen", False, 128),
    KeySpec("aes-128", "aes", "aes-keygen", False, 128),
    KeySpec("aes-256", "aes", "aes-keygen", False, 256),
    KeySpec("generic-256", "generic", "generic-keygen", False, 256),
)}

DEFAULT_SIGN_MECHANISM = {"sm2": "sm2-sign-sm3", "ec": "ecdsa-sha256", "rsa": "rsa-pkcs1-sha256"}


@dataclass(frozen=True)
class KeyInfo:
    """What the HSM says about a key (no secret values, ever)."""

    label: str
    key_id: bytes
    algorithm: str                 # a KEY_SPECS name, e.g. "sm2", "rsa-2048", "aes-256"
    key_type: str                  # logical key type
    pair: bool
    sensitive: bool
    extractable: bool
    public_key_info: bytes | None  # SubjectPublicKeyInfo DER for key pairs

    def as_dict(self) -> dict:
        return {"label": self.label, "id": self.key_id.hex(), "algorithm": self.algorithm,
                "type": "key-pair" if self.pair else "secret", "sensitive": self.sensitive,
                "extractable": self.extractable}
