"""GM/T 0014 CARequest/KMRespond between a CA (KmcClient) and the KMC (Gmt0014Endpoint): round trips, bad
signatures, unknown CAs, replays, stale requests and ErrorPkgRespond for bad requests."""
from __future__ import annotations

import datetime as dt
import secrets

import pytest

from gmt0014 import messages as m
from gmt0014.client import InProcessTransport, KmcClient
from gmt0014.errors import ProtocolError
from kms.endpoint import Gmt0014Endpoint
from kms.identity import self_signed_certificate
from tests.unit.kms.helpers import audit
from tests.unit.kms.subscriber import mul, openssl_sm2_key, public_point, sm2_decrypt, sm4_ecb_decrypt
from pkicore.envelope import parse_signed_and_enveloped


def _ca(km, name="Test Civil Service CA"):
    label = f"ca-{secrets.token_hex(4)}"
    km.generate_key_pair(label, "sm2")
    cert = self_signed_certificate(km, label, (("country_name", "CN"), ("common_name", name)))
    return label, cert


@pytest.fixture
def ca(softtoken_km):
    return _ca(softtoken_km)


@pytest.fixture
def service(escrow, ca):
    return Gmt0014Endpoint(escrow, [ca[1]])


@pytest.fixture
def client(service, ca, softtoken_km, escrow):
    label, cert = ca
    return KmcClient(InProcessTransport(service), ca_certificate=cert,
                     sign=lambda data: softtoken_km.sign(label, data), kmc_certificate=escrow.certificate)


def _open(d_sub, sed_der):
    sed = parse_signed_and_enveloped(sed_der)
    key = sm2_decrypt(d_sub, sed.encrypted_key)
    return int.from_bytes(sm4_ecb_decrypt(key, sed.encrypted_content), "big")


def _window():
    now = dt.datetime.now(dt.timezone.utc)
    return now, now + dt.timedelta(days=365)


def test_apply_restore_revoke_round_trip(client, subscriber, tmp_path, escrow):
    d_sub, spki_sub = subscriber
    serial = secrets.randbits(120)
    got = client.apply_key(serial, spki_sub, *_window(), user_name="张三")
    assert got.user_cert_no == serial
    q = public_point(got.public_key_info)
    assert mul(_open(d_sub, got.signed_and_enveloped)) == q
    # the subscriber lost the key and has a new signing key: the CA (after RA vetting) asks for a restore
    d_new, spki_new = openssl_sm2_key(tmp_path / "new-sign.pem")
    again = client.restore_key(serial, spki_new)
    assert again.public_key_info == got.public_key_info
    assert mul(_open(d_new, again.signed_and_enveloped)) == q
    client.revoke_key(serial)
    key_id = escrow.find(client_ca_id(client), serial)
    assert escrow.describe(key_id)["status"] == "revoked"
    assert audit(escrow, "kms_key", key_id) == ["kms.key.escrowed", "kms.key.restored_to_subscriber",
                                                 "kms.key.revoked"]
    # a revoked key goes back only through the judicial procedure
    with pytest.raises(ProtocolError) as exc:
        client.restore_key(serial, spki_new)
    assert exc.value.err_no == m.ErrNo.CONFLICT


def client_ca_id(client) -> str:
    return m.ent_name(client.ca_certificate)["ent_pub_key_hash"].native.hex()


def test_batch_with_per_item_errors(client, subscriber):
    serial = secrets.randbits(60)
    results = client.send([m.ApplyKey(serial, subscriber[1], *_window()), m.ApplyKey(serial, subscriber[1], *_window()),
                           m.RestoreKey(serial + 1, subscriber[1]), m.RevokeKey(serial)])
    assert isinstance(results[0], m.RetKey)
    assert results[1] == m.Failure(m.ErrNo.CONFLICT, results[1].description)
    assert isinstance(results[2], m.Failure) and results[2].err_no == m.ErrNo.NOT_FOUND
    assert results[3] == m.Revoked(serial)


def test_bad_signature_refused(service, ca, softtoken_km, escrow, subscriber):
    other_label = f"other-{secrets.token_hex(4)}"
    softtoken_km.generate_key_pair(other_label, "sm2")
    forger = KmcClient(InProcessTransport(service), ca_certificate=ca[1],
                       sign=lambda data: softtoken_km.sign(other_label, data), kmc_certificate=escrow.certificate)
    [result] = forger.send([m.ApplyKey(1, subscriber[1], *_window())])
    assert result.err_no == m.ErrNo.BAD_SIGNATURE
    assert "kms.request.refused" not in audit(escrow)      # counted, written once per window (issue 15)
    assert service.refusals.flush() == 1
    assert audit(escrow) == ["kms.request.refused"]


def test_unknown_ca_refused(service, softtoken_km, escrow, subscriber):
    label, cert = _ca(softtoken_km, "Rogue CA")
    rogue = KmcClient(InProcessTransport(service), ca_certificate=cert,
                      sign=lambda data: softtoken_km.sign(label, data), kmc_certificate=escrow.certificate)
    with pytest.raises(ProtocolError) as exc:
        rogue.apply_key(5, subscriber[1], *_window())
    assert exc.value.err_no == m.ErrNo.UNKNOWN_CA


def test_replay_refused(client, service, subscriber):
    der = client.build_request([m.ApplyKey(secrets.randbits(60), subscriber[1], *_window())], task_no=4242)
    first = client.parse_response(service.handle(der), 4242)
    assert isinstance(first[0], m.RetKey)
    [again] = client.parse_response(service.handle(der), 4242)
    assert again.err_no == m.ErrNo.REPLAY
    # same taskNo with another requestTime is a replay too
    der2 = client.build_request([m.RevokeKey(1)], task_no=4242,
                                request_time=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=3))
    assert client.parse_response(service.handle(der2), 4242)[0].err_no == m.ErrNo.REPLAY


def test_stale_request_refused(client, service, subscriber):
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)
    der = client.build_request([m.RevokeKey(1)], task_no=77, request_time=old)
    assert client.parse_response(service.handle(der), 77)[0].err_no == m.ErrNo.STALE


def test_malformed_request_gets_signed_error(client, service):
    for junk in (b"", b"\x30\x00", b"hello", client.build_request([m.RevokeKey(1)]) + b"\x00"):
        [result] = client.parse_response(service.handle(junk), 0)
        assert result.err_no == m.ErrNo.BAD_REQUEST


def test_unsupported_algorithm_gets_error(client, service, subscriber, ca, softtoken_km):
    ks = m.build_ks_request(ca[1], [m.ApplyKey(3, subscriber[1], *_window())], 99, dt.datetime.now(dt.timezone.utc))
    ks["request_list"][0].chosen["app_key_len"] = 2048
    der = m.sign_message(m.CARequest, ks, lambda d: softtoken_km.sign(ca[0], d))
    [result] = client.parse_response(service.handle(der), 99)
    assert result.err_no == m.ErrNo.UNSUPPORTED_ALGORITHM


def test_client_refuses_tampered_or_foreign_response(client, service, subscriber):
    der = client.build_request([m.RevokeKey(1)], task_no=555)
    resp = bytearray(service.handle(der))
    resp[-5] ^= 1
    with pytest.raises(ProtocolError):
        client.parse_response(bytes(resp), 555)
    der = client.build_request([m.RevokeKey(1)], task_no=556)
    with pytest.raises(ProtocolError):
        client.parse_response(service.handle(der), 999)   # answers another task


def test_bulk_apply_is_one_transaction_and_falls_back_per_item(client, subscriber, escrow):
    """A request of ApplyKeyReq items only is escrowed in one transaction (one creation time for all
    rows); when that is refused as a whole (here: the same certificate twice) nothing is written and
    each item gets its own verdict, as in a mixed request."""
    from kms.models import EscrowedKey
    d_sub, spki_sub = subscriber
    serials = [secrets.randbits(60) for _ in range(3)]
    results = client.send([m.ApplyKey(serial, spki_sub, *_window()) for serial in serials])
    assert [r.user_cert_no for r in results] == serials
    created = set()
    for r in results:
        assert isinstance(r, m.RetKey) and mul(_open(d_sub, r.signed_and_enveloped)) == public_point(r.public_key_info)
        key_id = escrow.find(client_ca_id(client), r.user_cert_no)
        assert audit(escrow, "kms_key", key_id) == ["kms.key.escrowed"]
        with escrow.db() as s:
            row = s.get(EscrowedKey, key_id)
            escrow.check_record(row)
            created.add(row.created_at)
    assert len(created) == 1
    again = secrets.randbits(60)
    results = client.send([m.ApplyKey(again, spki_sub, *_window()), m.ApplyKey(again, spki_sub, *_window())])
    assert isinstance(results[0], m.RetKey) and results[0].user_cert_no == again
    assert results[1] == m.Failure(m.ErrNo.CONFLICT, results[1].description)
    key_id = escrow.find(client_ca_id(client), again)
    assert audit(escrow, "kms_key", key_id) == ["kms.key.escrowed"]


def test_apply_key_requests_that_cannot_be_honoured_get_their_error(client, service, subscriber, ca, softtoken_km):
    """Issue 15: the KMC accepted serial -5, 0 and 2^200 and a validity ending before it starts, and
    answered "internal error" for an off-curve subscriber key. Each is now refused with BAD_REQUEST and
    the reason, in the same batch as a good request that is still served. (Built by hand: our own
    client refuses to send such requests.)"""
    from asn1crypto import keys as asn1_keys
    now, later = _window()
    good = secrets.randbits(60)
    items = [m.ApplyKey(s_, subscriber[1], now, later) for s_ in (1, 2, 3, 4, 5, good)]
    ks = m.build_ks_request(ca[1], items, 77, dt.datetime.now(dt.timezone.utc))
    reqs = [r.chosen["app_user_info"] for r in ks["request_list"]]
    for info, serial in zip(reqs[:3], (-5, 0, 1 << 200)):
        info["user_cert_no"] = serial
    reqs[3]["not_before"], reqs[3]["not_after"] = later, now
    off_curve = bytearray(subscriber[1])
    off_curve[-1] ^= 1
    reqs[4]["user_pub_key"] = asn1_keys.PublicKeyInfo.load(bytes(off_curve))
    der = m.sign_message(m.CARequest, ks, lambda d: softtoken_km.sign(ca[0], d))
    results = client.parse_response(service.handle(der), 77)
    reasons = [r.description if isinstance(r, m.Failure) else None for r in results]
    assert [r.err_no if isinstance(r, m.Failure) else None for r in results[:5]] == [m.ErrNo.BAD_REQUEST] * 5, reasons
    assert "RFC 5280" in reasons[0] and "RFC 5280" in reasons[1] and "RFC 5280" in reasons[2]
    assert "ends before it starts" in reasons[3] and "on the curve" in reasons[4]
    assert isinstance(results[5], m.RetKey) and results[5].user_cert_no == good
