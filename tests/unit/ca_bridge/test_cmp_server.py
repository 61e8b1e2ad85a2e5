"""The CMP server (RFC 4210 / RFC 9483) through ``CmpServer.handle``, driven by our own client code:
MAC (PasswordBasedMac and PBMAC1) first enrolment with a one-time secret, replay refusal, waiting and
polling under four-eyes, signature-protected kur and rr, certConf, genm, and refusals that say why."""
from __future__ import annotations

import secrets

import pytest
from asn1crypto import x509

from ca_bridge.cmp import asn1
from ca_bridge.cmp.client import (MacCredentials, SignatureCredentials, build_message, cert_req_msg, check_answer)
from ca_bridge.cmp.protection import pbm_algorithm, pbmac1_algorithm
from ca_bridge.cmp.server import OLD_CERT_ID, cert_hash
from tests.cmp_support import SERVER_SUBJECT, EcKey, cmp_server


@pytest.fixture(scope="module")
def server(ca):
    return cmp_server(ca)


def _secret(server, approvals=0, subject=SERVER_SUBJECT):
    ref, secret = server.issue_secret("officer-a", profile="server", subject=subject,
                                      dns_names=("cmp.zj.gov.cn",), approvals_required=approvals)
    return MacCredentials(ref.encode(), secret.encode())


def _ir(key, creds, body="ir", **kw):
    msg = cert_req_msg(public_key_info=key.spki, sign_pop=key.sign, pop_algorithm=key.algorithm,
                       subject=kw.pop("subject", SERVER_SUBJECT), controls=kw.pop("controls", None))
    return build_message(body, asn1.CertReqMessages([msg]), creds, **kw)


def _ask(server, request, secret=None, label=None, status=200):
    code, der = server.handle(request.dump(), label)
    assert code == status
    trusted = lambda cert, pool: any(cert.dump() == server.signer(i).certificate  # noqa: E731
                               for i in server.ca.authorities().values() if not i.is_root)
    return check_answer(der, request, secret=secret, trusted_signer=trusted)


def _error_bits(answer):
    assert answer["body"].name == "error", answer["body"].name
    info = answer["body"].chosen["pki_status_info"]
    return set(info["fail_info"].native or ()), " ".join(info["status_string"].native)


def _enrol(server, key, creds):
    request = _ir(key, creds)
    answer = _ask(server, request, creds.secret)
    assert answer["body"].name == "ip"
    response = answer["body"].chosen["response"][0]
    assert response["status"]["status"].native == 0, response["status"].native
    cert = x509.Certificate.load(response["certified_key_pair"]["cert_or_enc_cert"].chosen.untag().dump())
    conf = build_message("cert_conf", asn1.CertConfirmContent([{"cert_hash": cert_hash(cert.dump()), "cert_req_id": 0}]),
                         creds, transaction_id=request["header"]["transaction_id"].native,
                         recip_nonce=answer["header"]["sender_nonce"].native)
    assert _ask(server, conf, creds.secret)["body"].name == "pkiconf"
    return cert, answer


@pytest.mark.parametrize("mac", [pbm_algorithm, pbmac1_algorithm])
def test_ir_with_one_time_secret_issues_the_vetted_subject_once(server, mac):
    base = _secret(server)
    creds = MacCredentials(base.reference, base.secret, mac)
    cert, answer = _enrol(server, EcKey(), creds)
    assert cert.subject.native["common_name"] == "cmp.zj.gov.cn"
    assert cert.subject_alt_name_value.native == ["cmp.zj.gov.cn"]
    assert answer["body"].chosen["ca_pubs"].native                      # the root for an ir (RFC 9483 §4.1.1)
    # the same secret again, in a new transaction: refused, nothing issued
    bits, text = _error_bits(_ask(server, _ir(EcKey(), creds), creds.secret))
    assert "not_authorized" in bits and "used already" in text


def test_replayed_message_and_transaction_are_refused(server):
    creds = _secret(server)
    request = _ir(EcKey(), creds)
    assert _ask(server, request, creds.secret)["body"].name == "ip"
    code, der = server.handle(request.dump())                            # the very same bytes again
    answer = asn1.PKIMessage.load(der)
    assert code == 200 and answer["body"].name == "error"
    assert "bad_sender_nonce" in set(answer["body"].chosen["pki_status_info"]["fail_info"].native)
    # a fresh nonce but the used transactionID
    again = _ir(EcKey(), creds, transaction_id=request["header"]["transaction_id"].native)
    bits, _ = _error_bits(_ask(server, again, creds.secret))
    assert "transaction_id_in_use" in bits


def test_wrong_secret_subject_and_pop_say_why(server):
    creds = _secret(server)
    wrong = MacCredentials(creds.reference, b"not-the-secret")
    code, der = server.handle(_ir(EcKey(), wrong).dump())
    answer = asn1.PKIMessage.load(der)
    info = answer["body"].chosen["pki_status_info"]
    assert code == 200 and "bad_message_check" in info["fail_info"].native
    other = (("country_name", "CN"), ("common_name", "someone-else.zj.gov.cn"))
    bits, text = _error_bits(_ask(server, _ir(EcKey(), creds, subject=other), creds.secret))
    assert "bad_cert_template" in bits and "vetted" in text
    # a POP signed by another key
    key, liar = EcKey(), EcKey()
    msg = cert_req_msg(public_key_info=key.spki, sign_pop=liar.sign, pop_algorithm=key.algorithm, subject=SERVER_SUBJECT)
    bits, _ = _error_bits(_ask(server, build_message("ir", asn1.CertReqMessages([msg]), creds), creds.secret))
    assert bits == {"bad_pop"}


def test_waiting_request_is_polled_until_two_other_officers_approve(server):
    creds = _secret(server, approvals=2)
    request = _ir(EcKey(), creds)
    answer = _ask(server, request, creds.secret)
    assert answer["body"].chosen["response"][0]["status"]["status"].native == 3          # waiting
    tid = request["header"]["transaction_id"].native

    def poll(nonce):
        req = build_message("poll_req", asn1.PollReqContent([{"cert_req_id": 0}]), creds, transaction_id=tid,
                            recip_nonce=nonce)
        return _ask(server, req, creds.secret)

    answer = poll(answer["header"]["sender_nonce"].native)
    assert answer["body"].name == "poll_rep" and answer["body"].chosen[0]["check_after"].native > 0
    with pytest.raises(Exception, match="issued the secret"):
        server.approve("officer-a", tid.hex())
    server.approve("officer-b", tid.hex())
    assert poll(answer["header"]["sender_nonce"].native)["body"].name == "poll_rep"
    server.approve("officer-c", tid.hex())
    answer = poll(answer["header"]["sender_nonce"].native)
    assert answer["body"].name == "ip"
    assert answer["body"].chosen["response"][0]["status"]["status"].native == 0


def _signed_by(cert, key):
    return SignatureCredentials(cert.dump(), key.algorithm, key.sign)


def test_kur_signed_with_the_old_certificate_then_rr(server, ca):
    key = EcKey()
    old, _ = _enrol(server, key, _secret(server))
    new_key = EcKey()
    cid = asn1.CertId({"issuer": x509.GeneralName(name="directory_name", value=old.issuer),
                       "serial_number": old.serial_number})
    creds = _signed_by(old, key)
    kur = _ir(new_key, creds, body="kur", controls=asn1.Controls([{"type": OLD_CERT_ID, "value": cid}]))
    answer = _ask(server, kur)
    assert answer["body"].name == "kup", answer["body"].native
    new = x509.Certificate.load(
        answer["body"].chosen["response"][0]["certified_key_pair"]["cert_or_enc_cert"].chosen.untag().dump())
    assert new.subject == old.subject and new.public_key.dump() == new_key.spki
    # revoke the new certificate with its own key
    rr = build_message("rr", asn1.RevReqContent([{"cert_details": {"issuer": new.issuer,
                                                                   "serial_number": new.serial_number}}]),
                       _signed_by(new, new_key))
    answer = _ask(server, rr)
    assert answer["body"].name == "rp" and answer["body"].chosen["status"][0]["status"].native == 0
    assert ca.status(ca.issuing_ca_for(new_key.spki).name, new.serial_number).status == "revoked"
    # the revoked certificate can no longer sign requests
    bits, _ = _error_bits(_ask(server, build_message("genm", asn1.InfoTypeAndValues([]), _signed_by(new, new_key))))
    assert "cert_revoked" in bits
    # an end entity may not revoke somebody else's certificate
    rr_other = build_message("rr", asn1.RevReqContent([{"cert_details": {"issuer": old.issuer,
                                                                         "serial_number": old.serial_number + 1}}]),
                             _signed_by(old, key))
    bits, _ = _error_bits(_ask(server, rr_other))
    assert "not_authorized" in bits


def test_genm_ca_certs_template_and_crls(server, ca):
    creds = _secret(server)
    genm = build_message("genm", asn1.InfoTypeAndValues([{"info_type": "1.3.6.1.5.5.7.4.17"},
                                                         {"info_type": "1.3.6.1.5.5.7.4.19"},
                                                         {"info_type": "1.3.6.1.5.5.7.4.18"},
                                                         {"info_type": "1.3.6.1.5.5.7.4.22"}]), creds, pvno=3)
    answer = _ask(server, genm, creds.secret)
    assert answer["body"].name == "genp"
    got = {i["info_type"].dotted: i for i in answer["body"].chosen}
    ca_certs = asn1.Certificates.load(got["1.3.6.1.5.5.7.4.17"]["info_value"].dump())
    assert {c.dump() for c in ca_certs} == {i.certificate for i in ca.authorities().values()}
    template = asn1.CertReqTemplateContent.load(got["1.3.6.1.5.5.7.4.19"]["info_value"].dump())
    assert template["cert_template"]["subject"].native["common_name"] == "cmp.zj.gov.cn"
    assert got["1.3.6.1.5.5.7.4.18"]["info_value"].native is None      # no root key update
    crls = asn1.CertificateLists.load(got["1.3.6.1.5.5.7.4.23"]["info_value"].dump())
    assert len(crls) >= 1


@pytest.mark.parametrize("body", [b"", b"\x30\x03\x02\x01\x02", b"\x30\x80\x00\x00", secrets.token_bytes(300),
                                  b"\x30" + b"\x84\xff\xff\xff\xff"])
def test_malformed_bodies_get_400_and_an_error_message(server, body):
    code, der = server.handle(body)
    assert code == 400
    answer = asn1.PKIMessage.load(der)
    assert answer["body"].name == "error"
    assert "bad_data_format" in answer["body"].chosen["pki_status_info"]["fail_info"].native


def test_unprotected_request_is_refused(server):
    creds = _secret(server)
    request = _ir(EcKey(), creds)
    bare = asn1.PKIMessage({"header": request["header"], "body": request["body"]})
    code, der = server.handle(bare.dump())
    answer = asn1.PKIMessage.load(der)
    assert code == 200 and answer["body"].name == "error"
    assert "not_authorized" in answer["body"].chosen["pki_status_info"]["fail_info"].native
