"""The client side of CMP (RFC 4210, RFC 9483 §4): build protected requests (MAC or signature), CRMF
CertReqMsgs with signature proof of possession (RFC 4211 §4.1), and check answers — protection, the
transactionID and that recipNonce echoes our senderNonce (RFC 4210 §5.1.1)."""
from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from typing import Callable

from asn1crypto import algos, core, x509

from ca_bridge.cmp import asn1
from ca_bridge.cmp.protection import (ProtectionError, is_mac, mac_value, pbm_algorithm, protected_part,
                                      verify_mac, verify_signature_protection)
from pkicore.algorithms import Algorithm
from store.db import utcnow


@dataclass(frozen=True)
class MacCredentials:
    """A shared secret and its reference (senderKID); ``algorithm`` makes a fresh MAC AlgorithmIdentifier."""
    reference: bytes
    secret: bytes
    algorithm: Callable[[], algos.AlgorithmIdentifier] = pbm_algorithm


@dataclass(frozen=True)
class SignatureCredentials:
    """A protection certificate (DER), its chain, and the function that signs with its key."""
    certificate: bytes
    algorithm: Algorithm
    sign: Callable[[bytes], bytes]
    chain: tuple[bytes, ...] = ()


class CmpClientError(Exception):
    """An answer that is malformed, unprotected, wrongly protected or not for our request."""


def algorithm_identifier(alg: Algorithm) -> dict:
    value = {"algorithm": alg.oid}
    if alg.params_null:
        value["parameters"] = core.Null()
    return value


def cert_req_msg(*, public_key_info: bytes, sign_pop: Callable[[bytes], bytes], pop_algorithm: Algorithm,
                 subject=None, extensions=None, controls=None, cert_req_id: int = 0) -> asn1.CertReqMsg:
    """A CertReqMsg whose POPOSigningKey signs the DER of its certReq (RFC 4211 §4.1, no poposkInput)."""
    template = {"public_key": asn1.keys.PublicKeyInfo.load(public_key_info)}
    if subject:
        template["subject"] = subject if isinstance(subject, x509.Name) else x509.Name.build(dict(subject))
    if extensions:
        template["extensions"] = extensions
    request = {"cert_req_id": cert_req_id, "cert_template": template}
    if controls:
        request["controls"] = controls
    cert_req = asn1.CertRequest(request)
    signature = sign_pop(cert_req.dump())
    popo = asn1.ProofOfPossession(name="signature", value={
        "algorithm_identifier": algorithm_identifier(pop_algorithm), "signature": core.OctetBitString(signature)})
    return asn1.CertReqMsg({"cert_req": cert_req, "popo": popo})


@functools.lru_cache(maxsize=64)
def _sender_of(certificate: bytes) -> tuple[bytes, bytes | None]:
    """The subject (DER) and subjectKeyIdentifier of a protection certificate: the header's sender and
    senderKID (RFC 9483 §3.1). Parsed once per certificate, not for every message (a pure function of the
    bytes)."""
    cert = x509.Certificate.load(certificate)
    return cert.subject.dump(), cert.key_identifier


def build_message(body_name: str, body, credentials, *, transaction_id: bytes | None = None,
                  sender_nonce: bytes | None = None, recip_nonce: bytes | None = None,
                  sender: x509.Name | None = None, recipient: x509.Name | None = None,
                  general_info=None, pvno: int = 2, extra_certs=()) -> asn1.PKIMessage:
    header = {
        "pvno": pvno,
        "sender": x509.GeneralName(name="directory_name", value=sender or x509.Name.build({})),
        "recipient": x509.GeneralName(name="directory_name", value=recipient or x509.Name.build({})),
        "message_time": core.GeneralizedTime(utcnow().replace(microsecond=0)),
        "transaction_id": transaction_id or secrets.token_bytes(16),
        "sender_nonce": sender_nonce or secrets.token_bytes(16),
    }
    if recip_nonce is not None:
        header["recip_nonce"] = recip_nonce
    if general_info:
        header["general_info"] = general_info
    if isinstance(credentials, MacCredentials):
        header["protection_alg"] = credentials.algorithm()
        header["sender_kid"] = credentials.reference
    else:
        header["protection_alg"] = algorithm_identifier(credentials.algorithm)
        subject, key_id = _sender_of(credentials.certificate)
        if sender is None:
            header["sender"] = x509.GeneralName(name="directory_name", value=x509.Name.load(subject))
        if key_id:
            header["sender_kid"] = key_id
    h = asn1.PKIHeader(header)
    b = asn1.PKIBody(name=body_name, value=body)
    data = protected_part(h, b)
    if isinstance(credentials, MacCredentials):
        protection = mac_value(credentials.secret, h["protection_alg"], data)
        certs = list(extra_certs)
    else:
        protection = credentials.sign(data)
        certs = [credentials.certificate, *credentials.chain, *extra_certs]
    message = {"header": h, "body": b, "protection": core.OctetBitString(protection)}
    if certs:
        message["extra_certs"] = [x509.Certificate.load(c) for c in certs]
    return asn1.PKIMessage(message)


def check_answer(der: bytes, request: asn1.PKIMessage, *, secret: bytes | None = None,
                 trusted_signer: Callable[[x509.Certificate, list], bool] | None = None) -> asn1.PKIMessage:
    """Parse and check an answer to ``request``: the same transactionID, recipNonce = our senderNonce,
    and protection by ``secret`` (MAC) or by a signer ``trusted_signer(signer, other extraCerts)`` accepts."""
    try:
        answer = asn1.PKIMessage.load(der, strict=True)
        answer.native                                 # noqa: B018 - parse it whole now
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise CmpClientError(f"the answer is not a DER PKIMessage: {exc}") from None
    header, rh = answer["header"], request["header"]
    if header["transaction_id"].native != rh["transaction_id"].native:
        raise CmpClientError("the answer names another transaction")
    if header["recip_nonce"].native != rh["sender_nonce"].native:
        raise CmpClientError("the answer's recipNonce is not our senderNonce (replayed or misrouted)")
    if header["protection_alg"].native is None or not answer["protection"].contents:
        raise CmpClientError("the answer is not protected")
    if is_mac(header["protection_alg"]):
        if secret is None:
            raise CmpClientError("the answer is MAC-protected and we hold no secret for it")
        try:
            ok = verify_mac(answer, secret)
        except ProtectionError as exc:
            raise CmpClientError(f"the answer's MAC cannot be checked: {exc}") from None
        if not ok:
            raise CmpClientError("the answer's MAC does not verify")
        return answer
    extra = answer["extra_certs"]
    if extra.native is None or not len(extra):
        raise CmpClientError("the signed answer carries no protection certificate")
    signer = extra[0]
    check = verify_signature_protection(answer, signer)
    if not check.ok:
        raise CmpClientError(f"the answer's signature does not verify: {check.why}")
    if trusted_signer is None or not trusted_signer(signer, list(extra)[1:]):
        raise CmpClientError("the answer is signed by a certificate we do not trust")
    return answer


def status_text(info: asn1.PKIStatusInfo) -> str:
    """A PKIStatusInfo as one line (status, failure bits, text) for logs and errors."""
    parts = [str(info["status"].native)]
    if info["fail_info"].native:
        parts.append(",".join(sorted(info["fail_info"].native)))
    if info["status_string"].native:
        parts.append("; ".join(info["status_string"].native))
    return " ".join(parts)
