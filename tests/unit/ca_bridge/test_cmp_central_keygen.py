"""GM/T 0034 dual certificates from an upstream CA's KMC over CMP (central key generation, RFC 9483 §4.1.6;
CertifiedKeyPair.privateKey, RFC 4210 §5.3.4 / RFC 9480 §2.7): the RA (``CmpCA``) asks for the encryption
certificate with a cr without publicKey and the subscriber's signing key as protocolEncrKey; our CMP server
(the upstream) has its KMC generate and archive the key (``prepare_escrowed_key``, GM/T 0014) and answers with
the KMC's envelope; the RA records it and the subscriber opens it with independent code (pure-Python SM2
decryption, SM4 through pyca/cryptography). A lost answer is polled, never issued twice; a CA that cannot
generate the key refuses, and the request fails with its reason.

Malformed, truncated, altered, wrongly protected and replayed central-key-generation crs get 4xx or a CMP
error, never a 5xx, and leave no KMC key reserved, no certificate and no open transaction (a replay is
refused before the KMC is asked for a key).

A refusal of one certificate of the pair revokes the other at the upstream CA: the rr is queued with the
request's failure and sent after its commit (never inside the RA's transaction: on one SQLite file in one
process the CA's answer would wait on that transaction's lock), retried by the sweep, sent once.

The upstream is our CMP server in-process over the same database as the RA (SQLite and PostgreSQL), with a
CA of its own and a KMC (``kms``) behind it."""
from __future__ import annotations

import secrets

import pytest
from asn1crypto import core, x509
from sqlalchemy import func, select

from ca_bridge.api import IssueRequest
from ca_bridge.cmp import asn1
from ca_bridge.cmp.client import SignatureCredentials, build_message
from ca_bridge.cmp.keypkg import EncryptedValue, from_encrypted_key, to_encrypted_key
from ca_bridge.cmp.models import CmpOutbox
from ca_bridge.cmp.upstream import CmpCA, UpstreamUnavailable, signature_credentials
from ca_bridge.embedded import EmbeddedCA
from ca_bridge.models import EscrowReservation, IssuedCert
from audit.trail import AuditEvent
from gmt0014.client import InProcessTransport
from kms.endpoint import Gmt0014Endpoint
from kms.models import EscrowedKey
from pkicore.envelope import (alg_id, build_sm2_enveloped_key, parse_signed_and_enveloped, parse_sm2_enveloped_key,
                              verify_signed_and_enveloped)
from pkicore.oids import OID
from ra.services import RaService
from ra.workflow import Actor, Policy
from tests.cmp_support import ra_node_server, EcKey, cmp_server
from tests.pgschema import empty_engine
from tests.unit.kms.helpers import escrow_one, make_escrow
from tests.unit.kms.subscriber import mul, openssl_sm2_key, public_point, sm2_decrypt, sm4_ecb_decrypt
from tests.unit.ra.csr_tools import openssl_csr
from tests.unit.ra.helpers import id_number, uscc

SUBMITTER, VETTER, FIRST, SECOND = (Actor(n, "ra_officer") for n in ("officer-a", "officer-b", "officer-c",
                                                                       "officer-d"))


@pytest.fixture(params=["sqlite", "postgresql"], scope="module")
def db(request, tmp_path_factory):
    """This module's own database: other tests of the session change the shared one under a CA and KMC
    (test_cache_generations installs another KMC certificate, which the KMC made here would then follow)."""
    from store.db import Base, make_session_factory
    from racentre.migrate import import_models
    import_models()
    with empty_engine(request.param, tmp_path_factory.mktemp("ckg-db"), "ckg") as engine:
        Base.metadata.create_all(engine)
        yield make_session_factory(engine)


@pytest.fixture(scope="module")
def upstream(softtoken_km, db):
    """A CA node of ours (SM2 hierarchy, a KMC behind it) serving CMP, and an RA identity it registered."""
    tag = f"k{secrets.token_hex(4)}-"
    ca = EmbeddedCA(softtoken_km, db, "http://ckg.test", name_prefix=tag)
    ca.init_hierarchy(kinds=("sm2",), label_prefix=tag)
    ca.test_tag = tag
    escrow = make_escrow(softtoken_km, db)
    issuing = ca.directory.get(f"{tag}issuing-sm2").certificate
    ca.attach_kmc(InProcessTransport(Gmt0014Endpoint(escrow, [issuing])), escrow.certificate)
    server = ra_node_server(ca, f"{tag}ra-ckg", "sm2")
    server.escrow = escrow
    return server


class Line:
    """The wire to the upstream; ``lose`` drops the answer to the next message of that body type."""

    def __init__(self, server):
        self.server, self.lose, self.bodies, self.down = server, None, [], set()

    def __call__(self, der, profile=None):
        body = asn1.PKIMessage.load(der)["body"]
        if body.name in self.down:
            raise UpstreamUnavailable("the upstream CA cannot be reached (test)")
        self.bodies.append((body.name, profile))
        _, answer = self.server.handle(der, profile)
        if self.lose is not None and self.lose == (body.name, profile):
            self.lose = None
            raise UpstreamUnavailable("connection reset after the request was delivered (test)")
        return answer


@pytest.fixture(scope="module")
def ra_db(db, tmp_path_factory):
    """The RA node's own database (of the same kind as the CA node's): the RA and the CA as two nodes."""
    from store.db import Base, make_session_factory
    kind = "sqlite" if db.kw["bind"].dialect.name == "sqlite" else "postgresql"
    with empty_engine(kind, tmp_path_factory.mktemp("ra-node"), "ranode") as engine:
        Base.metadata.create_all(engine)
        yield make_session_factory(engine)


def _ra(upstream, db=None):
    line = Line(upstream)
    db = db or upstream.ca.db
    cmp_ca = CmpCA(db, line, upstream.credentials, upstream.anchors, name="upstream")
    return RaService(db, cmp_ca, Policy()), line


def _vetted_dual(ra, tmp_path):
    unit, _ = ra.add_unit(SUBMITTER, name=f"杭州市测试局{secrets.token_hex(2)}", uscc=uscc(),
                          legal_representative="张三")
    person, _ = ra.add_civil_servant(SUBMITTER, name="张三", id_number=id_number(), unit_id=unit["id"])
    d_sub, spki_sub = openssl_sm2_key(tmp_path / "sign.key")
    csr = openssl_csr(tmp_path, "sign", "/CN=张三", sm2=True, key=tmp_path / "sign.key")
    req = ra.submit(SUBMITTER, type="civil-servant-dual", subject_id=person["id"], sign_csr=csr)
    ra.vet(VETTER, req["id"], documents_checked=True)
    return req["id"], d_sub, spki_sub


def _certificate(ra, rid, usage) -> x509.Certificate:
    return x509.Certificate.load(ra.certificate(rid, usage))


def _count(db, model, *where):
    with db() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def test_a_dual_request_through_cmp_gets_the_upstream_kmc_key_in_its_envelope(upstream, tmp_path):
    ra, line = _ra(upstream)
    rid, d_sub, spki_sub = _vetted_dual(ra, tmp_path)
    assert ra.approve(FIRST, rid)["state"] == "vetted"
    done = ra.approve(SECOND, rid)
    assert done["state"] == "issued", done
    by_usage = {c["usage"]: c for c in done["certificates"]}
    assert by_usage["enc"]["key_escrowed"] is True and by_usage["sign"]["key_escrowed"] is False
    # the encryption certificate was asked for by a cr without a key, under the enc profile
    assert ("cr", "civil-servant-enc") in line.bodies
    sign, enc = _certificate(ra, rid, "sign"), _certificate(ra, rid, "enc")
    assert sign.public_key.dump() == spki_sub and enc.public_key.dump() != spki_sub
    assert sign.subject == enc.subject and enc.key_usage_value.native >= {"key_encipherment"}

    # what the subscriber fetches, exactly as with the embedded CA: the KMC's signed envelope, opened here
    # with independent code (SM2 decryption with the C3 check, SM4-ECB by pyca/cryptography)
    envelope = ra.key_envelope(rid)
    check = verify_signed_and_enveloped(envelope, x509.Certificate.load(upstream.escrow.certificate).public_key.dump(),
                                        upstream.escrow.certificate)
    assert check.ok, check.reasons
    sed = parse_signed_and_enveloped(envelope)
    d_enc = int.from_bytes(sm4_ecb_decrypt(sm2_decrypt(d_sub, sed.encrypted_key), sed.encrypted_content), "big")
    assert mul(d_enc) == public_point(enc.public_key.dump())
    blob = parse_sm2_enveloped_key(ra.key_envelope(rid, "sm2-enveloped-key"))
    assert blob.public_key_info == enc.public_key.dump()

    # escrowed at the upstream's KMC under the certificate's serial; one certificate per CA request
    with upstream.ca.db() as s:
        kept = s.scalar(select(EscrowedKey).where(EscrowedKey.user_cert_no == str(enc.serial_number)))
        assert kept is not None and kept.public_key_info == enc.public_key.dump() and kept.status == "active"
        tid = s.get(CmpOutbox, f"ra-{rid}-enc").transaction_id
    assert _count(upstream.ca.db, IssuedCert, IssuedCert.request_id == f"cmp-{tid}") == 1
    assert _count(upstream.ca.db, EscrowReservation, EscrowReservation.request_id == f"cmp-{tid}") == 1


def test_a_lost_answer_is_polled_and_the_same_key_comes_back(upstream, tmp_path):
    ra, line = _ra(upstream)
    rid, d_sub, _ = _vetted_dual(ra, tmp_path)
    ra.approve(FIRST, rid)
    line.lose = ("cr", "civil-servant-enc")
    assert ra.approve(SECOND, rid)["state"] == "awaiting_ca"
    with upstream.ca.db() as s:
        tid = s.get(CmpOutbox, f"ra-{rid}-enc").transaction_id
    assert _count(upstream.ca.db, IssuedCert, IssuedCert.request_id == f"cmp-{tid}") == 1
    assert ra.collect_awaiting([rid]) == {rid: "issued"}
    assert line.bodies[-2][0] == "poll_req" and line.bodies[-1][0] == "cert_conf"
    enc = _certificate(ra, rid, "enc")
    sed = parse_signed_and_enveloped(ra.key_envelope(rid))
    d_enc = int.from_bytes(sm4_ecb_decrypt(sm2_decrypt(d_sub, sed.encrypted_key), sed.encrypted_content), "big")
    assert mul(d_enc) == public_point(enc.public_key.dump())
    assert _count(upstream.ca.db, IssuedCert, IssuedCert.request_id == f"cmp-{tid}") == 1
    assert _count(upstream.ca.db, EscrowedKey, EscrowedKey.user_cert_no == str(enc.serial_number)) == 1


def test_a_ca_without_a_kmc_refuses_and_the_request_fails_with_its_reason(upstream, ra_db, tmp_path):
    ra, _ = _ra(upstream, ra_db)
    rid, _, _ = _vetted_dual(ra, tmp_path)
    ra.approve(FIRST, rid)
    kmc, upstream.ca.kmc = upstream.ca.kmc, None
    try:
        done = ra.approve(SECOND, rid)
    finally:
        upstream.ca.kmc = kmc
    assert done["state"] == "failed", done
    assert "enc:" in done["reject_reason"] and "takes no centrally generated keys" in done["reject_reason"]
    # the signing certificate the CA did issue for the pair is revoked there
    with ra_db() as s:
        sign_row = s.get(CmpOutbox, f"ra-{rid}-sign")
        assert sign_row.state == "issued" and sign_row.status == "revoked"
    with upstream.ca.db() as s:
        assert s.scalar(select(IssuedCert.status).where(IssuedCert.serial == sign_row.serial)) == "revoked"


def _refused_enc(ra, upstream, rid):
    """The second approval, with the CA node's KMC gone: the signing certificate is issued, the encryption
    certificate refused (the CA takes no centrally generated keys)."""
    kmc, upstream.ca.kmc = upstream.ca.kmc, None
    try:
        return ra.approve(SECOND, rid)
    finally:
        upstream.ca.kmc = kmc


def _upstream_status(upstream, serial):
    with upstream.ca.db() as s:
        return s.scalar(select(IssuedCert.status).where(IssuedCert.serial == serial))


def test_a_refusal_on_one_database_revokes_the_pairs_other_certificate_after_the_commit(upstream, tmp_path):
    """RA and CA on one database in one process: the refusal is recorded promptly (no wait on the RA's own
    lock), and the signing certificate the CA issued for the pair is revoked there by one rr."""
    import time
    ra, line = _ra(upstream)
    rid, _, _ = _vetted_dual(ra, tmp_path)
    ra.approve(FIRST, rid)
    started = time.monotonic()
    done = _refused_enc(ra, upstream, rid)
    elapsed = time.monotonic() - started
    assert done["state"] == "failed" and "takes no centrally generated keys" in done["reject_reason"], done
    assert elapsed < 20, f"the refusal took {elapsed:.1f} s (a wait on the database lock?)"
    with upstream.ca.db() as s:
        sign_row = s.get(CmpOutbox, f"ra-{rid}-sign")
        rr_row = s.get(CmpOutbox, f"rr-ra-{rid}-sign")
        assert sign_row.status == "revoked" and sign_row.revocation_reason == "cessation_of_operation"
        assert (rr_row.kind, rr_row.state, rr_row.attempts) == ("rr", "done", 1)
    assert _upstream_status(upstream, sign_row.serial) == "revoked"
    assert [b for b, _ in line.bodies].count("rr") == 1
    assert ra.collect_awaiting() is not None and [b for b, _ in line.bodies].count("rr") == 1    # never again
    with upstream.ca.db() as s:
        actions = list(s.scalars(select(AuditEvent.action).where(AuditEvent.target_type == "ra_request",
                                                                 AuditEvent.target_id == str(rid))))
    assert "ra.certificate.revocation_queued" in actions and "ra.certificate.orphaned" not in actions


def test_the_upstream_down_for_the_revocation_leaves_it_queued_for_the_sweep(upstream, tmp_path):
    ra, line = _ra(upstream)
    rid, _, _ = _vetted_dual(ra, tmp_path)
    ra.approve(FIRST, rid)
    line.down = {"rr"}
    assert _refused_enc(ra, upstream, rid)["state"] == "failed"         # recorded: the rr waits
    with upstream.ca.db() as s:
        serial = s.get(CmpOutbox, f"ra-{rid}-sign").serial
        rr_row = s.get(CmpOutbox, f"rr-ra-{rid}-sign")
        assert rr_row.state == "sent" and rr_row.claimed_until is None
    assert _upstream_status(upstream, serial) == "good"
    assert ra.collect_awaiting() is not None and _upstream_status(upstream, serial) == "good"   # still down
    line.down = set()
    ra.collect_awaiting()                                                 # the sweep sends it
    assert _upstream_status(upstream, serial) == "revoked"
    ra.collect_awaiting()
    ra.ca.retry_pending(skip_prefix="ra-")                                # and `racentre ca cmp-sweep`'s pass
    assert [b for b, _ in line.bodies].count("rr") == 1                  # delivered once, never again
    with upstream.ca.db() as s:
        assert s.get(CmpOutbox, f"rr-ra-{rid}-sign").state == "done"
        assert s.get(CmpOutbox, f"ra-{rid}-sign").status == "revoked"


def test_the_central_key_request_is_for_a_registered_ra_only(upstream):
    """An end entity or a MAC sender cannot have the KMC make keys (the KMC is not even asked)."""
    key = EcKey()
    ee = upstream.ca.issue(IssueRequest(request_id=f"ee-{secrets.token_hex(4)}", profile="server",
                                        subject=(("country_name", "CN"), ("common_name", "ee.zj.gov.cn")),
                                        public_key_info=key.spki, dns_names=("ee.zj.gov.cn",), ca=None))
    creds = SignatureCredentials(ee.certificate, key.algorithm, key.sign)
    request = asn1.CertRequest({"cert_req_id": 0, "cert_template": {"subject": x509.Name.build({"common_name": "x"})},
                                "controls": [{"type": "1.3.6.1.5.5.7.5.1.6",
                                              "value": asn1.keys.PublicKeyInfo.load(key.spki)}]})
    message = build_message("cr", asn1.CertReqMessages([asn1.CertReqMsg({"cert_req": request})]), creds)
    before = _count(upstream.ca.db, EscrowedKey)
    _, der = upstream.handle(message.dump(), "civil-servant-enc")
    body = asn1.PKIMessage.load(der)["body"]
    assert body.name == "error" and "not_authorized" in body.chosen["pki_status_info"]["fail_info"].native
    # unprotected: refused as any unprotected message
    header = message["header"]
    bare = asn1.PKIMessage({"header": {"pvno": 2, "sender": header["sender"], "recipient": header["recipient"],
                                       "transaction_id": secrets.token_bytes(16), "sender_nonce": secrets.token_bytes(16)},
                            "body": message["body"]})
    _, der = upstream.handle(bare.dump(), "civil-servant-enc")
    body = asn1.PKIMessage.load(der)["body"]
    assert body.name == "error" and "bad_message_check" in body.chosen["pki_status_info"]["fail_info"].native
    assert _count(upstream.ca.db, EscrowedKey) == before


def test_a_key_made_for_a_request_the_ca_then_refuses_goes_back_to_the_kmc(upstream, tmp_path):
    """The KMC made the key before the transaction; the issuance is refused (a subject the profile does not
    take): the reservation goes, and the KMC is told (RevokeKeyReq) that the key names no certificate."""
    _, spki_sub = openssl_sm2_key(tmp_path / "sub.key")
    name = f"李四{secrets.token_hex(3)}"
    request = asn1.CertRequest({"cert_req_id": 0, "cert_template": {"subject": x509.Name.build({"common_name": name})},
                                "controls": [{"type": "1.3.6.1.5.5.7.5.1.6",
                                              "value": asn1.keys.PublicKeyInfo.load(spki_sub)}]})
    message = build_message("cr", asn1.CertReqMessages([asn1.CertReqMsg({"cert_req": request})]), upstream.credentials)
    tid = message["header"]["transaction_id"].native.hex()
    _, der = upstream.handle(message.dump(), "civil-servant-enc")
    response = asn1.PKIMessage.load(der)["body"].chosen["response"][0]
    assert response["status"]["status"].native == 2 and "needs" in " ".join(response["status"]["status_string"].native)
    with upstream.ca.db() as s:
        assert s.scalar(select(func.count()).select_from(EscrowReservation)
                        .where(EscrowReservation.request_id == f"cmp-{tid}")) == 0
        revoked = s.scalars(select(EscrowedKey.status).where(EscrowedKey.user_name == name)).all()
    assert revoked == ["revoked"]


def test_the_other_forms_of_the_private_key_are_taken_as_sm2_enveloped_keys(upstream, tmp_path):
    """EnvelopedData without the KMC's envelope, the older EncryptedValue (RFC 4211 §4.2.1) and a bare
    GB/T 35276 SM2EnvelopedKey all become the SM2EnvelopedKey of the same ciphertexts; the GM/T 0010
    envelope in the untagged position is kept as it is; a form that is not for the certified key is refused."""
    _, spki_sub = openssl_sm2_key(tmp_path / "sub.key")
    key = escrow_one(upstream.escrow, spki_sub)
    sed_der = key.signed_and_enveloped
    sed = parse_signed_and_enveloped(sed_der)
    spki = key.public_key_info
    assert from_encrypted_key(to_encrypted_key(sed_der), spki) == sed_der
    assert from_encrypted_key(sed_der, spki) == sed_der
    expected = build_sm2_enveloped_key(sed.encrypted_key, bytes(public_point_bytes(spki)), sed.encrypted_content)
    assert from_encrypted_key(expected, spki) == expected
    ev = EncryptedValue({"symm_alg": alg_id(OID.SM4_ECB), "enc_symm_key": sed.encrypted_key,
                         "key_alg": alg_id(OID.SM2_ENCRYPT, null_params=False), "enc_value": sed.encrypted_content})
    assert from_encrypted_key(ev.dump(), spki) == expected
    with pytest.raises(ValueError):
        from_encrypted_key(expected, spki_sub)                  # an SM2EnvelopedKey for another key


def public_point_bytes(spki: bytes) -> bytes:
    x, y = public_point(spki)
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")



# ------------------------------------------------------------------ malformed central-key-generation messages

class Capture(Line):
    """The wire, keeping the DER of every message sent."""

    def __init__(self, server):
        super().__init__(server)
        self.sent = []

    def __call__(self, der, profile=None):
        self.sent.append((der, profile))
        return super().__call__(der, profile)


def _central_cr(upstream, encr_spki: bytes, *, subject=None, template_extra=None, popo=None, cert_req_id=0,
                body="cr", credentials=None, controls=None):
    template = {"subject": subject or x509.Name.build({"common_name": f"王五{secrets.token_hex(3)}"}),
                **(template_extra or {})}
    request = asn1.CertRequest({"cert_req_id": cert_req_id, "cert_template": template, "controls": controls or [
        {"type": "1.3.6.1.5.5.7.5.1.6", "value": asn1.keys.PublicKeyInfo.load(encr_spki)}]})
    msg = {"cert_req": request}
    if popo is not None:
        msg["popo"] = popo
    return build_message(body, asn1.CertReqMessages([asn1.CertReqMsg(msg)]), credentials or upstream.credentials)


def _kmc_state(db):
    """What a refused message must not leave: KMC keys reserved or attempted, certificates, transactions."""
    from ca_bridge.cmp.models import CmpTransaction
    from ca_bridge.models import EscrowAttempt
    return {model.__name__: _count(db, model) for model in (EscrowReservation, EscrowAttempt, IssuedCert, EscrowedKey)} \
        | {"open transactions": _count(db, CmpTransaction, CmpTransaction.state.notin_(("rejected", "confirmed", "done")))}


def test_malformed_and_replayed_central_key_requests_are_refused_and_leave_no_key_reserved(upstream, tmp_path):
    """Central-key-generation crs (no publicKey, a protocolEncrKey control) -- malformed, truncated, altered,
    wrongly protected, replayed -- over HTTP: 4xx or a CMP error, never a 5xx; afterwards no KMC key stays
    reserved or attempted for them, no certificate or open transaction is written (a key the KMC made for a
    refused request is given back to it: EscrowedKey rows, archived by the KMC, may grow, never reservations)."""
    import random
    from ca_bridge.cmp.client import MacCredentials
    from tests.cmp_support import served_app
    client = served_app(upstream, upstream.ca.km, upstream.ca.db).test_client()

    def post(der, profile="civil-servant-enc"):
        response = client.post(f"/.well-known/cmp/p/{profile}", data=der, headers={"Content-Type": "application/pkixcmp"})
        assert response.status_code < 500, (response.status_code, der[:40].hex())
        assert response.status_code in (200, 400), response.status_code
        answer = asn1.PKIMessage.load(response.data)
        body = answer["body"]
        if body.name == "error":
            info = body.chosen["pki_status_info"]
        else:                                       # a cp (ip) whose one response is a rejection
            assert body.name in ("cp", "ip"), body.name
            info = body.chosen["response"][0]["status"]
        assert info["status"].native == "rejection" or info["status"].native == 2, info.native
        assert info["status_string"].native                                   # says why
        return info

    # a legitimate dual request first: its enc cr (issued) is what the replays and mutants start from
    ra = RaService(upstream.ca.db, CmpCA(upstream.ca.db, capture := Capture(upstream), upstream.credentials,
                                         upstream.anchors, name="upstream"), Policy())
    rid, _, spki_sub = _vetted_dual(ra, tmp_path)
    ra.approve(FIRST, rid)
    assert ra.approve(SECOND, rid)["state"] == "issued"
    legit, profile = next((d, p) for d, p in capture.sent
                          if asn1.PKIMessage.load(d)["body"].name == "cr" and p == "civil-servant-enc")

    rng = random.Random(1919)
    cases = [legit]                                                           # the exact replay
    cut = sorted({rng.randrange(1, len(legit)) for _ in range(12)}) + [len(legit) - 1, 2]
    cases += [legit[:n] for n in cut]                                         # truncated
    for _ in range(16):                                                       # bit flips (the signature breaks)
        blob = bytearray(legit)
        blob[rng.randrange(len(blob))] ^= 1 << rng.randrange(8)
        cases.append(bytes(blob))
    cases += [legit + b"\x00", b"\x30\x84\xff\xff\xff\xff" + legit]           # trailing byte, a length lie
    ec_key = EcKey()
    end_entity = SignatureCredentials(_end_entity_certificate(upstream, ec_key), ec_key.algorithm, ec_key.sign)
    replayed_tid = asn1.PKIMessage.load(legit)["header"]["transaction_id"].native
    cases += [
        build_message("cr", asn1.PKIMessage.load(legit)["body"].chosen, upstream.credentials,
                      transaction_id=replayed_tid).dump(),                    # the same transaction, a new nonce
        _central_cr(upstream, ec_key.spki).dump(),                            # the key to encrypt to is not SM2
        _central_cr(upstream, spki_sub, cert_req_id=5).dump(),                # certReqId must be 0
        _central_cr(upstream, spki_sub, popo=asn1.ProofOfPossession(name="ra_verified", value=core.Null())).dump(),
        _central_cr(upstream, spki_sub).dump(),                               # a subject the profile does not take
        _central_cr(upstream, spki_sub, body="ir").dump(),
        _central_cr(upstream, spki_sub, credentials=MacCredentials(b"no-such-ref", b"s" * 32)).dump(),
        _central_cr(upstream, spki_sub, credentials=end_entity).dump(),       # an end entity, not an RA
        _central_cr(upstream, spki_sub, controls=[{"type": "1.3.6.1.5.5.7.5.1.6",
                                                   "value": core.OctetString(b"not a key")}]).dump(),
        _central_cr(upstream, spki_sub, controls=[{"type": "1.3.6.1.5.5.7.5.1.6",
                                                   "value": core.Any.load(spki_sub[:-1] + b"\x00")}]).dump(),
    ]
    unprotected = asn1.PKIMessage.load(_central_cr(upstream, spki_sub).dump())
    cases.append(asn1.PKIMessage({"header": unprotected["header"], "body": unprotected["body"]}).dump())
    refused = _central_cr(upstream, spki_sub).dump()                         # refused after the KMC made its key
    cases += [refused, refused]                                               # ... and its replay: no new key
    before = _kmc_state(upstream.ca.db)
    with upstream.ca.db() as s:
        last_key = s.scalar(select(func.max(EscrowedKey.id)))
    for der in cases:
        post(der, profile)
    post(_central_cr(upstream, spki_sub).dump(), "no-such-profile")
    post(_central_cr(upstream, spki_sub).dump(), "server")                   # a profile without key escrow
    after = _kmc_state(upstream.ca.db)
    assert after.pop("EscrowedKey") > before.pop("EscrowedKey")              # the KMC did make keys for some...
    assert after == before                                                    # ... none stays reserved
    with upstream.ca.db() as s:                                               # every one went back to the KMC
        made = s.execute(select(EscrowedKey.user_name, EscrowedKey.status).where(EscrowedKey.id > last_key)).all()
    assert made and all(status == "revoked" for _, status in made), made
    assert ra.get_request(rid)["state"] == "issued" and ra.key_envelope(rid)          # the real pair unharmed


def _end_entity_certificate(upstream, key: EcKey) -> bytes:
    """An end entity's certificate for ``key`` from the CA node (not a registered RA)."""
    return upstream.ca.issue(IssueRequest(request_id=f"ee-{secrets.token_hex(4)}", profile="server",
                                          subject=(("country_name", "CN"), ("common_name", "ee.zj.gov.cn")),
                                          public_key_info=key.spki, dns_names=("ee.zj.gov.cn",), ca=None)).certificate
