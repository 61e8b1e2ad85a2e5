"""Signing for applications with their own HSM keys (GM/T 0020 SOF_SignData / SOF_SignMessage):

* raw: SM2 with SM3 and the user ID (GB/T 32918.2 §6.1; default ``1234567812345678``, GB/T 35276 §5.4.3.1;
  or one the caller gives), DER SEQUENCE{r, s}; ECDSA (DER) and RSA PKCS#1 v1.5 for the others;
* CMS SignedData (RFC 5652 §5), attached or detached, with contentType, messageDigest, ESS
  signing-certificate-v2 (RFC 5035) and optionally signingTime (RFC 5652 §11.3), in the RFC 5652 form
  (id-signedData / id-data, as Bouncy Castle and GmSSL emit) or the GM/T 0010 §7 form (1.2.156.10197.6.1.4.2.2 /
  .2.1); optionally an RFC 3161 signatureTimeStampToken (RFC 3161 Appendix A, id-aa 14) from our TSA
  over the signature value, from a TSA unit of the signer's key family (an SM2 signature by an SM2 unit with
  an SM3 imprint, ECDSA/RSA by an ECDSA or RSA unit) so every verifier of the signature can check its time.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Callable

from asn1crypto import tsp

from hsm import KeyManager
from pkicore.cms import (GM_DATA, GM_SIGNED_DATA, ID_DATA, ID_SIGNATURE_TIME_STAMP_TOKEN, ID_SIGNED_DATA, CmsSigner,
                         SignedDataTemplate, signature_timestamp_attribute)
from pkicore.sm2 import DEFAULT_USER_ID
from timestamp.errors import TsaError
from timestamp.tsa import TimeStampResp
from timestamp.services import TsaService
from trust.errors import TrustConflict, TrustError, TrustUnavailable
from trust.keys import AppKey

ID_AA_SIGNATURE_TIMESTAMP = ID_SIGNATURE_TIME_STAMP_TOKEN
# signer key family -> TSA unit families whose tokens that family's verifiers can check, preferred first
TSA_FAMILIES = {"sm2": ("sm2",), "ec": ("ec", "rsa"), "rsa": ("rsa", "ec")}
MAX_USER_ID = 1024


class Timestamper:
    """RFC 3161 tokens from our TSA (in process) over a signature value, by the signer's key family."""

    def __init__(self, tsa: TsaService):
        self.tsa = tsa

    def unit_for(self, family: str) -> str:
        units = self.tsa.unit_families()
        for wanted in TSA_FAMILIES[family]:
            for name, unit_family in units.items():
                if unit_family == wanted:
                    return name
        raise TrustConflict(f"no TSA unit of the {family} family can timestamp this signature: add one to [tsa] "
                            "units and run `racentre setup`")

    def token(self, signature: bytes, family: str, digest: str) -> bytes:
        """A TimeStampToken (ContentInfo DER) over ``signature``; imprint with ``digest`` (SM3 for SM2)."""
        unit = self.unit_for(family)
        query = tsp.TimeStampReq({"version": "v1", "message_imprint": {
            "hash_algorithm": {"algorithm": digest}, "hashed_message": hashlib.new(digest, signature).digest()},
            "cert_req": True, "nonce": secrets.randbits(63)}).dump()
        try:
            authority = self.tsa.authority
        except TsaError as exc:      # not built (no certificate, no policy): the service is not available
            raise TrustUnavailable(f"the TSA is not available: {exc.public_message}") from exc
        try:
            reply = TimeStampResp.load(authority.respond(query, unit))
            if reply["status"]["status"].native not in ("granted", "granted_with_mods"):
                raise TrustUnavailable("the TSA refused to timestamp the signature: "
                                       + "; ".join(reply["status"]["status_string"].native or ()))
            return reply["time_stamp_token"].dump()
        except (ValueError, KeyError, TypeError) as exc:
            raise TrustUnavailable(f"the TSA gave no usable timestamp ({type(exc).__name__}: {exc})") from exc


def key_family(key: AppKey) -> str:
    return key.algorithm.key_type


def sign_raw(km: KeyManager, key: AppKey, data: bytes, *, user_id: bytes | None = None) -> bytes:
    """SOF_SignData: the raw signature over ``data`` (SM2: with ``user_id``, default 1234567812345678)."""
    alg = key.algorithm
    if alg.key_type != "sm2" and user_id is not None:
        raise TrustError("a user ID applies to SM2 signatures only")
    if user_id is not None and not 0 < len(user_id) <= MAX_USER_ID:
        raise TrustError(f"the SM2 user ID must be 1..{MAX_USER_ID} bytes")
    if alg.key_type == "sm2":
        return km.sign(key.label, data, "sm2-sign-sm3", user_id=user_id or DEFAULT_USER_ID)
    return km.sign(key.label, data, alg.mechanism)


def cms_signer(km: KeyManager, key: AppKey) -> CmsSigner:
    alg = key.algorithm
    mechanism = "sm2-sign-sm3" if alg.key_type == "sm2" else alg.mechanism
    return CmsSigner(sign=lambda tbs: km.sign(key.label, tbs, mechanism), certificate=key.certificate,
                     algorithm=alg, chain=key.chain)


timestamp_attribute = signature_timestamp_attribute   # id-aa-signatureTimeStampToken (pkicore.cms)


def sign_cms(km: KeyManager, key: AppKey, data: bytes, *, detached: bool = False, gm: bool = False,
             signing_time: dt.datetime | None = None,
             timestamp: Callable[[bytes], bytes] | None = None) -> bytes:
    """SOF_SignMessage: a SignedData (ContentInfo DER) over ``data`` with ``key`` (module docstring).
    ``timestamp(signature) -> TimeStampToken`` adds the signature timestamp."""
    unsigned = (lambda signature: [timestamp_attribute(timestamp(signature))]) if timestamp is not None else None
    return SignedDataTemplate(cms_signer(km, key)).build(
        data, GM_DATA if gm else ID_DATA, detached=detached, signing_time=signing_time,
        unsigned_attributes=unsigned, outer_type=GM_SIGNED_DATA if gm else ID_SIGNED_DATA)
