"""timestamp.tsa: queries in, replies out — tokens for each unit, every rejection path, nonce/certReq,
serial uniqueness, and Bouncy Castle's TimeStampToken.validate on SM2, ECDSA and RSA tokens."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets

import pytest
from asn1crypto import core, tsp

from timestamp.clock import ClockMonitor, ClockStatus
from timestamp.services import build_authority
from timestamp.tsa import ID_CT_TSTINFO, SerialNumbers, TimeStampResp
from timestamp.verify import verify_token
from tests.interop.bouncycastle import assert_bc_fails, assert_bc_ok, bc_available, bc_verify_many


def query(data: bytes = b"hello", digest: str = "sm3", *, nonce: int | None = None, cert_req: bool = True,
          policy: str | None = None, imprint: bytes | None = None, **extra) -> bytes:
    return tsp.TimeStampReq({"version": "v1", "message_imprint": {
        "hash_algorithm": {"algorithm": digest},
        "hashed_message": imprint if imprint is not None else hashlib.new(digest, data).digest()},
        "req_policy": policy, "nonce": nonce, "cert_req": cert_req, **extra}).dump()


@pytest.fixture(scope="module")
def authority(tsa_pki):
    return build_authority(tsa_pki.config, tsa_pki.km)


def granted(reply: bytes) -> tsp.TSTInfo:
    resp = TimeStampResp.load(reply)
    assert resp["status"]["status"].native == "granted", resp["status"].native
    sd = resp["time_stamp_token"]["content"]
    assert sd["encap_content_info"]["content_type"].dotted == ID_CT_TSTINFO
    return sd["encap_content_info"]["content"].parsed


def rejected(reply: bytes) -> tuple[set, list]:
    resp = TimeStampResp.load(reply)
    st = resp["status"]
    assert st["status"].native == "rejection" and resp["time_stamp_token"].native is None
    return st["fail_info"].native, st["status_string"].native


@pytest.mark.parametrize("unit, digest", [("default", "sm3"), ("default", "sha256"), ("ecdsa", "sha384"),
                                          ("rsa", "sha512")])
def test_token_fields(authority, tsa_pki, unit, digest):
    nonce = secrets.randbits(64)
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    reply = authority.respond(query(b"data", digest, nonce=nonce), None if unit == "default" else unit)
    info = granted(reply)
    assert info["version"].native == "v1" and info["policy"].dotted == "1.2.3.4.1"
    assert info["nonce"].native == nonce
    assert info["message_imprint"]["hashed_message"].native == hashlib.new(digest, b"data").digest()
    assert info["accuracy"].native == {"seconds": 1, "millis": None, "micros": None}
    assert before <= info["gen_time"].native <= dt.datetime.now(dt.timezone.utc)
    assert 0 < info["serial_number"].native < 1 << 128
    result = verify_token(reply, data=b"data", trust=[tsa_pki.ca[unit].certificate])
    assert result.ok, result.reasons
    assert result.algorithm == {"default": "sm2-sm3", "ecdsa": "ecdsa-sha256", "rsa": "rsa-sha256"}[unit]


def test_sm2_signer_info_algorithms(authority):
    token = TimeStampResp.load(authority.respond(query()))["time_stamp_token"]
    si = token["content"]["signer_infos"][0]
    assert si["digest_algorithm"].dump() == bytes.fromhex("300a06082a811ccf55018311")
    assert si["signature_algorithm"].dump() == bytes.fromhex("300a06082a811ccf55018375")
    attrs = {a["type"].native: a["values"][0] for a in si["signed_attrs"]}
    ess = attrs["signing_certificate_v2"]["certs"][0]
    assert ess["hash_algorithm"]["algorithm"].native == "sm3"


def test_cert_req_and_no_nonce(authority):
    with_certs = TimeStampResp.load(authority.respond(query(cert_req=True)))["time_stamp_token"]
    without = TimeStampResp.load(authority.respond(query(cert_req=False)))["time_stamp_token"]
    assert len(with_certs["content"]["certificates"]) == 2
    assert without["content"]["certificates"].native is None
    assert without["content"]["encap_content_info"]["content"].parsed["nonce"].native is None


def test_policy_handling(authority):
    assert granted(authority.respond(query(policy="1.2.3.4.1")))["policy"].dotted == "1.2.3.4.1"
    assert granted(authority.respond(query(policy="1.2.3.4.9")))["policy"].dotted == "1.2.3.4.1"
    fail, text = rejected(authority.respond(query(policy="1.2.3.4.5")))
    assert fail == {"unaccepted_policy"} and "1.2.3.4.5" in text[0]


@pytest.mark.parametrize("q, failure", [
    (lambda: query(imprint=b"\x01" * 31), "bad_data_format"),
    (lambda: query(digest="sha256", imprint=b"\x01" * 48), "bad_data_format"),
    (lambda: query(digest="sha1"), "bad_alg"),
    (lambda: query(digest="md5"), "bad_alg"),
    (lambda: query(extensions=[{"extn_id": "1.2.3.4", "critical": False, "extn_value": b"\x05\x00"}]),
     "unaccepted_extensions"),
    (lambda: b"", "bad_data_format"),
    (lambda: b"\x30\x03\x02\x01\x01", "bad_data_format"),
    (lambda: query()[:-5], "bad_data_format"),
    (lambda: query() + b"\x00", "bad_data_format"),
    (lambda: secrets.token_bytes(300), "bad_data_format"),
    (lambda: b"\x30\x84\xff\xff\xff\xff", "bad_data_format"),
    (lambda: tsp.TimeStampReq({"version": 2, "message_imprint": {"hash_algorithm": {"algorithm": "sm3"},
                                                                 "hashed_message": b"\x00" * 32}}).dump(),
     "bad_data_format"),
])
def test_rejections(authority, q, failure):
    fail, text = rejected(authority.respond(q()))
    assert fail == {failure} and text and text[0]


def test_unknown_unit_and_null_params(authority):
    fail, _ = rejected(authority.respond(query(), "nosuch"))
    assert fail == {"bad_request"}
    der = tsp.TimeStampReq({"version": "v1", "message_imprint": {
        "hash_algorithm": {"algorithm": "sha256", "parameters": core.Null()},
        "hashed_message": b"\x00" * 32}}).dump()
    assert bytes.fromhex("300d06096086480165030402010500") in der
    info = granted(authority.respond(der))
    assert info["message_imprint"]["hash_algorithm"].dump().endswith(b"\x05\x00")


def test_digest_allow_list(tsa_pki):
    from dataclasses import replace
    tsa = build_authority(replace(tsa_pki.config, digests="sm3"), tsa_pki.km)
    assert rejected(tsa.respond(query(digest="sha256")))[0] == {"bad_alg"}
    granted(tsa.respond(query(digest="sm3")))


def test_clock_unsynchronised_and_backwards(tsa_pki):
    now = [1_800_000_000.0]
    status = [ClockStatus(False, detail="test")]
    clock = ClockMonitor(require_sync=True, clock=lambda: now[0], status=lambda: status[0], status_ttl=0)
    tsa = build_authority(tsa_pki.config, tsa_pki.km, clock=clock)
    fail, text = rejected(tsa.respond(query()))
    assert fail == {"time_not_available"} and "synchronised" in text[0]
    status[0] = ClockStatus(True, max_error_us=5_000_000)
    assert rejected(tsa.respond(query()))[0] == {"time_not_available"}   # error bound above 1 s
    status[0] = ClockStatus(True, max_error_us=20_000)
    first = granted(tsa.respond(query()))["gen_time"].native
    assert first == dt.datetime.fromtimestamp(now[0], dt.timezone.utc)
    now[0] -= 2.0                                                       # the clock jumps back
    fail, text = rejected(tsa.respond(query()))
    assert fail == {"time_not_available"} and "backwards" in text[0]
    granted(tsa.respond(query(), "ecdsa"))                             # per unit: ecdsa had no token yet
    now[0] += 2.5
    assert granted(tsa.respond(query()))["gen_time"].native > first


def test_clock_requirement_off_by_default(tsa_pki):
    clock = ClockMonitor(clock=lambda: 1_800_000_000.123, status=lambda: ClockStatus(False))
    tsa = build_authority(tsa_pki.config, tsa_pki.km, clock=clock)
    info = granted(tsa.respond(query()))
    assert info["gen_time"].native.microsecond == 123000
    assert info["gen_time"].contents == b"20270115080000.123Z"


def test_serials_unique_and_positive():
    a, b = SerialNumbers(1), SerialNumbers(2)
    seen = {a.next() for _ in range(2000)} | {b.next() for _ in range(2000)}
    assert len(seen) == 4000 and all(0 < s < 1 << 128 for s in seen)


def test_system_failure_when_the_hsm_key_is_missing(tsa_pki, softtoken_km):
    from timestamp.tsa import TsaUnit
    authority = build_authority(tsa_pki.config, tsa_pki.km)
    unit = authority.units["ecdsa"]
    authority.units["ecdsa"] = TsaUnit("ecdsa", key_manager=softtoken_km, key_label="no-such-key",
                                       algorithm_name="ecdsa-sha256", certificate=unit.certificate,
                                       chain=unit.chain, policy=unit.policy)
    fail, _ = rejected(authority.respond(query(), "ecdsa"))
    assert fail == {"system_failure"}


def test_bouncy_castle_validates_tokens(authority, tsa_pki, tmp_path):
    if not bc_available():
        pytest.skip("Bouncy Castle not installed")
    data = "时间戳数据".encode()
    (tmp_path / "data.bin").write_bytes(data)
    (tmp_path / "other.bin").write_bytes(data + b"!")
    argvs = []
    for unit, digest in [("default", "sm3"), ("default", "sha256"), ("ecdsa", "sha256"), ("rsa", "sha384")]:
        reply = authority.respond(query(data, digest, nonce=7), None if unit == "default" else unit)
        (tmp_path / f"{unit}-{digest}.tsr").write_bytes(reply)
        token = TimeStampResp.load(reply)["time_stamp_token"].dump()
        (tmp_path / f"{unit}-{digest}.tst").write_bytes(token)
        ca = tsa_pki.ca_file(unit)
        argvs += [["tsp", tmp_path / f"{unit}-{digest}.tsr", "--data", tmp_path / "data.bin", "--ca", ca],
                  ["tsp", tmp_path / f"{unit}-{digest}.tst", "--data", tmp_path / "data.bin"],
                  ["tsp", tmp_path / f"{unit}-{digest}.tsr", "--data", tmp_path / "other.bin"]]
    results = bc_verify_many(argvs)
    for i in range(0, len(results), 3):
        assert_bc_ok(results[i])
        assert "policy=1.2.3.4.1" in results[i].stdout
        assert_bc_ok(results[i + 1])
        assert_bc_fails(results[i + 2])


@pytest.mark.parametrize("q", [
    lambda: query(), lambda: query(nonce=0), lambda: query(nonce=-5), lambda: query(nonce=1 << 500),
    lambda: query(cert_req=False), lambda: query(policy="1.2.3.4.1", nonce=3), lambda: query(policy="1.2.3.4.9"),
    lambda: query(digest="sha512", nonce=1 << 70),
    lambda: tsp.TimeStampReq({"version": "v1", "message_imprint": {
        "hash_algorithm": {"algorithm": "sha256", "parameters": core.Null()}, "hashed_message": b"\x01" * 32},
        "nonce": 9}).dump(),
])
def test_fast_parser_agrees_with_asn1crypto(authority, q):
    der = q()
    unit = authority.units["default"]
    fast = authority._fast_parse(der, unit)  # noqa: SLF001 - the two parsers must agree
    assert fast is not None
    assert fast == authority._parse_query(der, unit)  # noqa: SLF001


@pytest.mark.parametrize("q", [
    lambda: query(policy="1.2.3.4.5"), lambda: query(imprint=b"\x00" * 31), lambda: query(digest="sha1"),
    lambda: query(extensions=[{"extn_id": "1.2.3.4", "critical": False, "extn_value": b"\x05\x00"}]),
    lambda: query()[:-1], lambda: query() + b"\x00", lambda: b"\x30\x81\x05" + query()[2:7],
])
def test_fast_parser_defers_the_unusual(authority, q):
    assert authority._fast_parse(q(), authority.units["default"]) is None  # noqa: SLF001
