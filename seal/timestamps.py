"""Which TSA unit timestamps a seal: one of the seal key's own family, so that every verifier able to check
the seal can check its timestamp too (RFC 3161 token as the PAdES signature-time-stamp, ETSI EN 319 142-1
§5.4 B-T; the ``timeStamp`` of a GB/T 38540 §7.2 SES_Signature).

| seal key | TSA unit, in order of preference | messageImprint |
|---|---|---|
| SM2 | an SM2 unit (GM/T 0033: SM2 signature, SM3) — never another family | SM3 |
| ECDSA | an ECDSA unit, else an RSA unit | the seal's own digest (SHA-256 for P-256, SHA-384 for P-384) |
| RSA | an RSA unit, else an ECDSA unit | the seal's own digest (SHA-256 for rsa-sha256) |

Why: a verifier that knows only the international algorithms (stock pyHanko, Adobe Acrobat, EU DSS,
OpenSSL) cannot check an SM2/SM3 token, so an ECDSA or RSA seal stamped by the SM2 unit (the default unit)
can never validate there (``pyhanko sign validate`` stops at the SM3 OID). ECDSA and RSA stand in for each
other, because every such verifier checks both. An SM2 seal is checked by GM/T tools (GB/T 38540) that
expect the SM2/SM3 family throughout, so it is stamped by an SM2 unit only.

When the site has no unit of an acceptable family, sealing is refused (``NoTimestampUnit``, HTTP 409) with
the configuration to add, instead of sealing without a timestamp: a site with a TSA promises B-T seals
(proof of the signing time, which keeps a seal verifiable after its signer certificate expires or is
revoked), and a silently weaker seal would be noticed only when it no longer validates. Signing libraries
do the same: EU DSS signing at PAdES-BASELINE-T throws when its TSP source gives no token (the
``OnlineTSPSource`` exception ends the signature, e.g. jsignpdf issue 441), and digitorus/pdfsign (PR 153)
makes unsupported levels "fail explicitly instead of downgrading". A service wired without any TSA seals
without timestamps, as it always did.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from asn1crypto import cms, core, keys, tsp, x509

import pkicore  # noqa: F401 - registers sm3 / sm2_sm3 / the SM2 curve with asn1crypto
from pkicore.oids import OID
from seal.errors import SealConflict, SealError

# seal key family -> TSA unit families that may stamp it, preferred first
TSA_FAMILIES: dict[str, tuple[str, ...]] = {"sm2": ("sm2",), "ec": ("ec", "rsa"), "rsa": ("rsa", "ec")}
FAMILY_NAMES = {"sm2": "SM2", "ec": "ECDSA", "rsa": "RSA"}
_A = {"sm2": "an SM2", "ec": "an ECDSA", "rsa": "an RSA"}
_EXAMPLE_UNIT = {"sm2": "sm2=tsa-sm2:sm2-sm3", "ec": "ecdsa=tsa-ecdsa:ecdsa-sha256", "rsa": "rsa=tsa-rsa:rsa-sha256"}
_SM2_SIGNATURE_OIDS = {OID.SM2_WITH_SM3, OID.SM2_SIGN}


class NoTimestampUnit(SealConflict):
    """The site's TSA has no unit of a family that may stamp this seal (HTTP 409)."""


class TimestampFamilyMismatch(SealError):
    """A timestamp token from a TSA of a family that may not stamp this seal."""


def key_family(public_key: "x509.PublicKeyInfo | bytes") -> str:
    """``sm2``, ``ec`` or ``rsa`` for a SubjectPublicKeyInfo (an id-ecPublicKey on the SM2 curve is SM2)."""
    info = public_key if not isinstance(public_key, bytes) else keys.PublicKeyInfo.load(public_key)
    if info.algorithm == "ec":
        params = info["algorithm"]["parameters"]
        return "sm2" if params.name == "named" and params.chosen.dotted == OID.SM2_CURVE else "ec"
    if info.algorithm in ("rsa", "rsassa_pss"):
        return "rsa"
    raise ValueError(f"no key family for {info.algorithm} keys")


def token_family(token: "cms.ContentInfo | bytes") -> str:
    """The key family of the TSA that signed a TimeStampToken: its signer certificate's key when the
    token carries it, else its SignerInfo's signature algorithm."""
    info = token if not isinstance(token, bytes) else cms.ContentInfo.load(token)
    signed_data = info["content"]
    signer_info = signed_data["signer_infos"][0]
    sid = signer_info["sid"]
    for choice in signed_data["certificates"] or ():
        cert = choice.chosen
        if isinstance(cert, x509.Certificate) and sid.name == "issuer_and_serial_number" \
                and cert.issuer_serial == _issuer_serial(sid.chosen):
            return key_family(cert.public_key)
    oid = signer_info["signature_algorithm"]["algorithm"].dotted
    if oid in _SM2_SIGNATURE_OIDS:
        return "sm2"
    if oid.startswith("1.2.840.10045.4."):          # ecdsa-with-SHA* (RFC 5758 §3.2)
        return "ec"
    if oid.startswith("1.2.840.113549.1.1."):       # PKCS #1 (RFC 8017 Appendix C)
        return "rsa"
    raise ValueError(f"no key family for signature algorithm {oid}")


@functools.lru_cache(maxsize=64)
def _token_family_der(token: bytes) -> str:
    """``token_family`` of a DER token, cached: a timestamper's sizing token is the same for every seal."""
    return token_family(token)


def _issuer_serial(ias: cms.IssuerAndSerialNumber) -> bytes:
    """asn1crypto's ``Certificate.issuer_serial`` form of an IssuerAndSerialNumber."""
    return ias["issuer"].sha256 + b":" + str(ias["serial_number"].native).encode("ascii")


def check_token_family(seal_family: str, token: bytes) -> None:
    """TimestampFamilyMismatch unless the TimeStampToken's (DER) TSA is of a family that may stamp a seal
    of ``seal_family`` (``TSA_FAMILIES``)."""
    try:
        family = _token_family_der(token)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise TimestampFamilyMismatch(f"the TSA's token cannot be read: {exc}") from exc
    if family not in TSA_FAMILIES[seal_family]:
        raise TimestampFamilyMismatch(
            f"{_A[seal_family]} seal is timestamped by {_either(TSA_FAMILIES[seal_family])} TSA unit, not by "
            f"{_A[family]} one: the verifiers of the seal's family could not check the timestamp")


def _either(families: Iterable[str]) -> str:
    """'an ECDSA or RSA' for ("ec", "rsa")."""
    names = [FAMILY_NAMES[f] for f in families]
    return _A[next(iter(families))].split(" ")[0] + " " + " or ".join(names) if names else "a known"


class _TimeStampResp(core.Sequence):
    """RFC 3161 §2.4.2 TimeStampResp with the token optional (asn1crypto's requires it, so a rejection,
    which has none, does not load there)."""

    _fields = [("status", tsp.PKIStatusInfo), ("time_stamp_token", cms.ContentInfo, {"optional": True})]


def refusal(reply: bytes) -> str | None:
    """None when a TimeStampResp grants a token, else why not (its status, statusString, failInfo)."""
    try:
        resp = _TimeStampResp.load(reply)
        status = resp["status"]
        if status["status"].native in ("granted", "granted_with_mods") and resp["time_stamp_token"].native:
            return None
        text = "; ".join(status["status_string"].native or ())
        fail = status["fail_info"].native
        return f"{status['status'].native}" + (f": {text}" if text else "") + (f" ({', '.join(sorted(fail))})"
                                                                               if fail else "")
    except (ValueError, TypeError, KeyError) as exc:
        return f"not a TimeStampResp: {exc}"


@dataclass(frozen=True)
class TsaUnitRef:
    """One TSA unit as sealing sees it: its name, its key family and ``respond(TimeStampReq DER) ->
    TimeStampResp DER``."""

    name: str
    family: str
    respond: Callable[[bytes], bytes]


class SealTimestamps:
    """The TSA units a seal service may use, chosen per seal key family by ``TSA_FAMILIES``."""

    def __init__(self, units: Iterable[TsaUnitRef]):
        self.units = tuple(units)
        for unit in self.units:
            if unit.family not in TSA_FAMILIES:
                raise ValueError(f"TSA unit {unit.name!r}: unknown key family {unit.family!r}")

    @classmethod
    def over(cls, families: Mapping[str, str], respond: Callable[[bytes, str], bytes]) -> "SealTimestamps":
        """Units named in ``families`` (unit name -> key family, in order of preference: the default unit
        first), each answered by ``respond(query, unit name)`` — e.g. a ``TsaService``'s authority."""
        return cls(TsaUnitRef(name, family, _bound(respond, name)) for name, family in families.items())

    @classmethod
    def of_authority(cls, authority) -> "SealTimestamps":
        """Every unit of an in-process ``timestamp.tsa.TimeStampAuthority``, its default unit first."""
        names = [authority.default_unit] + [n for n in authority.units if n != authority.default_unit]
        return cls.over({n: authority.units[n].algorithm.key_type for n in names}, authority.respond)

    @classmethod
    def of_tsa_service(cls, tsa) -> "SealTimestamps":
        """Every unit of a ``timestamp.services.TsaService`` (from its ``[tsa]`` configuration; the
        authority is built on the first timestamp)."""
        return cls.over(tsa.unit_families(), lambda query, unit: tsa.authority.respond(query, unit))

    def unit_for(self, seal_family: str) -> TsaUnitRef:
        """The unit that stamps seals of ``seal_family`` (NoTimestampUnit when the site has none)."""
        for family in TSA_FAMILIES.get(seal_family, ()):
            for unit in self.units:
                if unit.family == family:
                    return unit
        have = ", ".join(f"{u.name} ({FAMILY_NAMES[u.family]})" for u in self.units) or "none"
        wanted = TSA_FAMILIES.get(seal_family, ())
        example = _EXAMPLE_UNIT[wanted[0]] if wanted else _EXAMPLE_UNIT["ec"]
        raise NoTimestampUnit(
            f"no TSA unit can timestamp {_A.get(seal_family, 'this')} seal: it needs {_either(wanted)} unit and "
            f"this site's units are {have}; add one to [tsa] units (e.g. units = \"{example}\") and run "
            f"`racentre setup`")


def _bound(respond: Callable[[bytes, str], bytes], name: str) -> Callable[[bytes], bytes]:
    return lambda query: respond(query, name)
