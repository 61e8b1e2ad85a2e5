"""Issue 15: a bounded fuzz run of every route — schemathesis over the full OpenAPI document (positive and
negative cases of each operation, through Flask's test client: WSGI, no network), then a DER/JSON mutation
corpus (truncations, bit flips, length-field lies, deep nesting, huge integers) against the binary and
parsing endpoints (OCSP POST and GET, TSA, KMC GM/T 0014, seal verification, CSR submission, /tsa/verify, and
CMP: an RA-signed central-key-generation cr, whose mutants must leave no KMC key reserved).
On SQLite and PostgreSQL; seeded and deterministic; no answer may be a 5xx. The counts (cases per
endpoint, 5xx) are printed (`pytest -s`) for the record.

Credentials: an API token holding every role and a console session (its CSRF token put into the document
the fuzzer reads as a constant), so the cases reach past the authentication checks."""
from __future__ import annotations

import base64
import collections
import copy
import datetime as dt
import json
import random
import secrets
import time

import pytest
import schemathesis
from asn1crypto import core, tsp, x509
from hypothesis import HealthCheck, Phase, given, settings
from sqlalchemy import func, select
from schemathesis.generation.modes import GenerationMode

from ca_bridge.api import IssueRequest
from ca_bridge.cmp import asn1 as cmp_asn1
from ca_bridge.cmp.client import build_message
from ca_bridge.cmp.upstream import signature_credentials
from ca_bridge.models import EscrowAttempt, EscrowReservation
from gmt0014 import messages as gmt0014
from tests.unit.ca_bridge.helpers import ocsp_request
from tests.unit.ra.csr_tools import tongsuo_sm2_csr, tongsuo_sm2_key, tongsuo_spki
from tests.unit.ra.helpers import id_number
from tests.unit.seal.test_anchor import _page_pdf

pytestmark = pytest.mark.slow

POSITIVE, NEGATIVE = 3, 2              # schemathesis cases per operation and mode (about 80 s a database)
MUTANTS = 40                           # mutants per binary seed
SKIP = {"console.logout"}              # would end the fuzzer's own console session
BINARY = ["application/ocsp-request", "application/timestamp-query", "application/timestamp-request",
          "application/pdf", "application/ofd", "application/pkixcmp"]
schemathesis.serializer.alias(BINARY, "application/octet-stream")     # raw bytes, as for octet-stream
BUDGET = 100                           # seconds per database: a hard stop (the counts say if it was reached)


class Tally:
    def __init__(self):
        self.cases = collections.Counter()
        self.server_errors: list[tuple] = []
        self.statuses = collections.Counter()
        self.refused: dict[str, set] = collections.defaultdict(set)

    def add(self, key: str, status: int, what) -> None:
        self.cases[key] += 1
        self.refused[key].add(status in (401, 403))
        self.statuses[status] += 1
        if status >= 500:
            self.server_errors.append((key, status, what))

    def report(self, title: str) -> str:
        lines = [f"{title}: {sum(self.cases.values())} cases over {len(self.cases)} endpoints, "
                 f"{len(self.server_errors)} x 5xx; by status {dict(sorted(self.statuses.items()))}"]
        lines += [f"  {n:4d}  {key}" for key, n in sorted(self.cases.items())]
        stopped = sorted(key for key, flags in self.refused.items() if flags == {True})
        lines.append(f"  every case stopped at authentication/authorisation (401/403): {stopped or 'none'}")
        return "\n".join(lines)


def _document(site) -> dict:
    """The served document, with the console session's CSRF token as the constant value of every form's
    csrf_token (else every console form would stop at the CSRF check)."""
    doc = copy.deepcopy(site.client().get("/api/v1/openapi.json").get_json())
    csrf = site.console[1]
    for ops in doc["paths"].values():
        for op in ops.values():
            for media in op.get("requestBody", {}).get("content", {}).values():
                props = media.get("schema", {}).get("properties", {})
                if "csrf_token" in props:
                    props["csrf_token"] = {"const": csrf}
    return doc


def test_schemathesis_every_operation_no_5xx(site):
    doc = _document(site)
    schema = schemathesis.openapi.from_dict(doc)
    schema.app = site.app
    schema.location = "/api/v1/openapi.json"
    tally = Tally()
    started = time.monotonic()
    headers = {**site.auth(), "X-RACentre-API": "1"}
    cookies = {"racentre_session": site.console[0]}
    operations = sorted((r.ok() for r in schema.get_all_operations()), key=lambda o: (o.path, o.method))
    assert len(operations) >= 85
    for operation in operations:
        endpoint = doc["paths"][operation.path][operation.method.lower()]["x-endpoint"]
        if endpoint in SKIP:
            continue
        key = f"{operation.method.upper()} {operation.path}"
        for mode, count in ((GenerationMode.POSITIVE, POSITIVE), (GenerationMode.NEGATIVE, NEGATIVE)):
            if time.monotonic() - started > BUDGET:
                break
            try:
                strategy = operation.as_strategy(generation_mode=mode)
            except Exception:  # noqa: BLE001 - nothing to negate in this operation (no parameters, no body)
                continue

            @settings(max_examples=count, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(case=strategy)
            def run(case):
                response = case.call(headers=headers, cookies=cookies)
                # run() is called at once below, inside this iteration
                tally.add(key, response.status_code, (mode.value, case.path_parameters, case.query,  # noqa: B023
                                                      repr(case.body)[:200]))
            try:
                run()
            except Exception as exc:  # noqa: BLE001 - a generation failure (unsatisfiable schema) is not a 5xx
                if "Unsatisfiable" not in type(exc).__name__ and "Unsatisfied" not in str(exc):
                    raise
    print("\n" + tally.report(f"schemathesis ({site.services.engine.dialect.name})"))
    assert not tally.server_errors, tally.server_errors[:10]
    assert len(tally.cases) >= 80 and sum(tally.cases.values()) >= 400


# ------------------------------------------------------------------------------------- mutation corpus

def mutants(seed: bytes, rng: random.Random, n: int) -> list[bytes]:
    """Truncations, bit flips, inserted/removed bytes, DER length-field lies, deep nesting, huge integers."""
    out = [b"", seed[:1], seed + b"\x00", b"\x30\x80" * 5000, b"\x30\x84\xff\xff\xff\xff" + seed,
           b"\x02\x82\x10\x00" + b"\x7f" * 4096, b"\x30\x82\x10\x04\x02\x82\x10\x00" + b"\xff" * 4096,
           (b"\x30\x81\x80" * 3) + seed, b"\x04\x83\x00\x00\x05" + seed]
    while len(out) < n:
        blob = bytearray(seed)
        kind = rng.randrange(5)
        if kind == 0:
            blob = blob[:rng.randrange(1, len(blob))]
        elif kind == 1:
            for _ in range(rng.randrange(1, 5)):
                blob[rng.randrange(len(blob))] ^= 1 << rng.randrange(8)
        elif kind == 2:                         # lie in a length octet: after a tag, grow or shrink it
            positions = [i for i in range(len(blob) - 1) if blob[i] in (0x30, 0x31, 0x02, 0x04, 0x03, 0xA0)]
            i = rng.choice(positions) + 1
            blob[i] = rng.choice([0x00, 0x7f, 0x80, 0x81, 0x84, 0xff, (blob[i] + 1) & 0xff, (blob[i] - 1) & 0xff])
        elif kind == 3:
            i = rng.randrange(len(blob))
            blob[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
        else:
            i = rng.randrange(len(blob))
            del blob[i:i + rng.randrange(1, 16)]
        out.append(bytes(blob))
    return out[:n]


def json_mutants(example: dict, rng: random.Random, n: int) -> list[bytes]:
    """Deep nesting, huge integers, wrong types, non-objects, truncation of a JSON body."""
    out = [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50 + b"1" + b"}" * 50, b"null", b"[]", b'"x"', b"1e999",
           json.dumps({k: 10 ** 400 for k in example}).encode(), json.dumps({k: -2 ** 64 for k in example}).encode(),
           json.dumps({k: [v] for k, v in example.items()}).encode(), json.dumps({k: {"$ne": 1} for k in example}).encode(),
           b"\xff\xfe{}", json.dumps(example).encode()[:-3]]
    while len(out) < n:
        body = dict(example)
        key = rng.choice(sorted(body)) if body else "x"
        body[key] = rng.choice([None, True, 2 ** 63, -1, 1.5, "", "\x00", "x" * 70_000, [], {}, "%%%", "0x" + "f" * 50])
        out.append(json.dumps(body).encode())
    return out[:n]


def _seeds(site) -> dict:
    services = site.services
    ca = services.ca
    issuing = next(info for info in ca.authorities().values() if info.parent is not None and info.ocsp_key_label)
    ocsp = ocsp_request(issuing.certificate, [1, 2 ** 64])
    query = tsp.TimeStampReq({"version": "v1", "message_imprint": {
        "hash_algorithm": {"algorithm": "sha256"}, "hashed_message": b"\x09" * 32}, "nonce": 7, "cert_req": True}).dump()
    stamped = site.client().post("/tsa", data=query, content_type="application/timestamp-query").data
    token = tsp.TimeStampResp.load(stamped)["time_stamp_token"].dump()
    spki = tongsuo_spki(tongsuo_sm2_key())
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    apply = ca.kmc.client(issuing).build_request(
        [gmt0014.ApplyKey(0x5EED, spki, now, now + dt.timedelta(days=365), None)])
    csr = tongsuo_sm2_csr(tongsuo_sm2_key(), {"common_name": "fuzz.example.gov.cn"})
    return {"ocsp": ocsp, "tsa": query, "token": token, "kmc": apply, "pdf": _page_pdf(b"BT /F1 12 Tf (fuzz) Tj ET"),
            "csr": csr, "issuing": issuing.name, "cmp_central": _central_keygen_cr(services, spki)}


def _central_keygen_cr(services, encr_spki: bytes) -> bytes:
    """A central-key-generation cr (no publicKey; the key to encrypt the new private key to in the
    protocolEncrKey control, RFC 9483 §4.1.6), signed by an RA the site's CA registered (cmp-ra)."""
    label = f"fuzz-ra-{secrets.token_hex(3)}"
    ra_spki = services.key_manager.ensure_key_pair(label, "sm2")
    ra_cert = services.ca.issue(IssueRequest(request_id=f"ra-node-{label}", profile="cmp-ra", public_key_info=ra_spki,
                                             subject=(("country_name", "CN"), ("common_name", "RA node (fuzz)"))))
    identity = {"extn_id": "1.2.156.10260.4.1.1.1", "critical": False,       # GM/T 0015 identity (as the RA sends it)
                "extn_value": core.ParsableOctetString(core.PrintableString(id_number()).dump())}
    request = cmp_asn1.CertRequest({"cert_req_id": 0, "cert_template": {"subject": x509.Name.build(
        {"country_name": "CN", "organization_name": "杭州市测试局", "common_name": "王五"}), "extensions": [identity]},
        "controls": [
        {"type": "1.3.6.1.5.5.7.5.1.6", "value": cmp_asn1.keys.PublicKeyInfo.load(encr_spki)}]})
    return build_message("cr", cmp_asn1.CertReqMessages([cmp_asn1.CertReqMsg({"cert_req": request})]),
                         signature_credentials(services.key_manager, label, ra_cert.certificate)).dump()


def _kmc_reserved(services) -> int:
    """KMC keys reserved or attempted for a certificate not issued (what a refused request must not leave)."""
    with services.db() as s:
        return sum(s.scalar(select(func.count()).select_from(model)) for model in (EscrowReservation, EscrowAttempt))


def test_mutation_corpus_no_5xx(site):
    rng = random.Random(1915)
    seeds = _seeds(site)
    client = site.client()
    auth = site.auth()
    tally = Tally()
    name = seeds["issuing"]

    def post(key, path, body, ctype, headers=None):
        r = client.post(path, data=body, content_type=ctype, headers=headers or {})
        tally.add(key, r.status_code, body[:64])
        return r

    for blob in mutants(seeds["ocsp"], rng, MUTANTS):
        post("POST /ocsp", "/ocsp", blob, "application/ocsp-request")
        post("POST /ocsp/{name}", f"/ocsp/{name}", blob, "application/ocsp-request")
        encoded = base64.b64encode(blob).decode()
        for variant in (encoded, base64.urlsafe_b64encode(blob).decode(), encoded[:-3] + "%%%", encoded + "/x"):
            r = client.get(f"/ocsp/{name}/{variant}")
            tally.add("GET /ocsp/{name}/{encoded}", r.status_code, variant[:64])
    for blob in mutants(seeds["tsa"], rng, MUTANTS):
        post("POST /tsa", "/tsa", blob, "application/timestamp-query")
    for blob in mutants(seeds["token"], rng, MUTANTS):
        post("POST /tsa/verify", "/tsa/verify", json.dumps({"token": base64.b64encode(blob).decode()}).encode(),
             "application/json")
        post("POST /tsa/verify", "/tsa/verify",
             json.dumps({"token": base64.b64encode(seeds["token"]).decode(), "ca": base64.b64encode(blob).decode(),
                         "crl": base64.b64encode(blob[::-1]).decode()}).encode(), "application/json")
    for blob in mutants(seeds["kmc"], rng, MUTANTS):
        post("POST /kmc/v1/request", "/kmc/v1/request", blob, gmt0014.CONTENT_TYPE)
    for blob in mutants(seeds["pdf"], rng, MUTANTS) + [b"PK\x03\x04" + blob for blob in mutants(seeds["pdf"], rng, 5)]:
        post("POST /seal/verify", "/seal/verify", blob, "application/pdf", auth)
    reserved = _kmc_reserved(site.services)
    for blob in mutants(seeds["cmp_central"], rng, MUTANTS):
        post("POST /.well-known/cmp/p/{profile} (central keygen)", "/.well-known/cmp/p/civil-servant-enc", blob,
             "application/pkixcmp")
    assert _kmc_reserved(site.services) == reserved             # no mutant left a KMC key reserved
    answers = [cmp_asn1.PKIMessage.load(post("POST /.well-known/cmp/p/{profile} (central keygen)",
                                             "/.well-known/cmp/p/civil-servant-enc", seeds["cmp_central"],
                                             "application/pkixcmp").data)["body"] for _ in range(2)]
    assert answers[0].name == "cp" and answers[0].chosen["response"][0]["status"]["status"].native == 0, answers[0].chosen["response"][0]["status"].native
    assert answers[1].name == "error"                              # the replay, refused ...
    assert _kmc_reserved(site.services) == reserved + 1         # ... and no second key: the genuine one's only
    for blob in mutants(seeds["csr"], rng, MUTANTS):
        body = {"type": "server", "subject_id": 1, "csr": base64.b64encode(blob).decode()}
        post("POST /api/v1/ra/requests (CSR)", "/api/v1/ra/requests", json.dumps(body).encode(), "application/json",
             site.auth("applicant"))
    examples = {"/api/v1/ra/requests": ({"type": "server", "subject_id": 1, "csr": "x"}, site.auth("applicant")),
                "/api/v1/ra/units": ({"name": "u", "uscc": "x", "legal_representative": "y"}, site.auth("ra_operator")),
                "/api/v1/ra/requests/approve": ({"request_ids": [1]}, site.auth("ra_officer")),
                "/kmc/v1/approval-requests": ({"key_id": 1, "reason": "r", "recipient_certificate": "x"},
                                              site.auth("key_recovery_officer")),
                "/kmc/v1/import": ({"export": "e30=", "exporter_certificate": "x"}, site.auth("ra_admin")),
                "/seal/seals/1/users": ({"principal": "p"}, site.auth("ra_admin")),
                "/seal/seals/1/suspend": ({"reason": "r"}, site.auth("ra_admin")),
                "/tsa/verify": ({"token": "eA==", "digest": "00"}, {})}
    for path, (example, headers) in examples.items():
        for body in json_mutants(example, rng, 20):
            post(f"POST {path} (JSON)", path, body, "application/json", headers)
    print("\n" + tally.report(f"mutation corpus ({site.services.engine.dialect.name})"))
    assert not tally.server_errors, tally.server_errors[:10]
    assert sum(tally.cases.values()) >= 600
