"""OCSP under `racentre serve` (racentre.arbiter.FastPathThreadWorker) when the database is slow: the
status read of the OCSP fast path happens on the worker's batch thread, never on its main thread (the one
that reads every request, racentre.httpgate), so with the read slowed to seconds (a patched
``DbStatusStore.current``: tests/e2e/slowstatus/sitecustomize.py) health and TSA requests on workers whose
read is in progress are still answered at once, and the OCSP requests that arrived meanwhile share one read
(batching kept). Conditional GETs (RFC 7232, RFC 5019 §6.2) through the server get 304."""
from __future__ import annotations

import base64
import json
import os
import socket
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from asn1crypto import ocsp, x509

from bench.common import BenchServer, free_port, prepare_tsa_site_in_child, server_command
from bench.ocsp_http import http_get, http_post, ocsp_request
from tests.e2e.test_serve_slow_clients import granted, read_response, tsa_post, tsq

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLOW = 2.0           # seconds per status read while slowed

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(tmp_path_factory, softtoken_module):
    directory = tmp_path_factory.mktemp("ocsp-slow-db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RACENTRE_")}
    env.update(PYTHONPATH=ROOT, RACENTRE_SOFTTOKEN_DIR=str(directory / "softtoken"))
    config = prepare_tsa_site_in_child(directory, 2, env)
    flag = directory / "slow-status"
    flag.write_text("0")
    env.update(PYTHONPATH=os.pathsep.join((ROOT, str(Path(__file__).parent / "slowstatus"))),
               RACENTRE_TEST_SLOW_STATUS=str(flag), RACENTRE_TSA_REQUIRE_SYNC="false")
    port = free_port()
    # two workers (one would be served by waitress, not the gunicorn worker): both read slowly, so whichever
    # takes a health or TSA request has a slow read in progress
    with BenchServer(server_command(config, port, 2, 2, ("timestamp", "ca_bridge")), port,
                     directory / "server.log", env=env) as server:
        yield port, flag, _certificate(port)
    assert not server.tracebacks, server.log()


def _certificate(port: int) -> tuple[str, bytes, int]:
    """(CA name, CA certificate, serial) of the TSA unit's certificate (issued by the site's CA, which has a
    delegated OCSP responder), from a token's certificates."""
    status, _, body = exchange(port, tsa_post(tsq(1)))
    assert status == 200 and granted(body, 1)
    from timestamp.tsa import TimeStampResp
    certs = TimeStampResp.load(body)["time_stamp_token"]["content"]["certificates"]
    leaf = next(c.chosen for c in certs if c.chosen.extended_key_usage_value is not None
                and "time_stamping" in c.chosen.extended_key_usage_value.native)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ca", timeout=10) as resp:
        authorities = json.load(resp)["authorities"]
    for authority in authorities:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ca/{authority['name']}/cert", timeout=10) as resp:
            der = resp.read()
        if authority["ocsp"] and x509.Certificate.load(der).subject == leaf.issuer:
            return authority["name"], der, leaf.serial_number
    raise AssertionError(f"no CA with an OCSP responder issued the TSA certificate: {authorities}")


def exchange(port: int, data: bytes, timeout: float = 10.0) -> tuple[int, dict, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        status, headers, body, _ = read_response(sock)
        return status, headers, body


def ocsp_answer(body: bytes, serial: int, nonce: bytes | None) -> str:
    """The status an OCSP answer gives ``serial`` (after checking it is successful and echoes ``nonce``)."""
    answer = ocsp.OCSPResponse.load(body)
    assert answer["response_status"].native == "successful"
    data = answer.basic_ocsp_response["tbs_response_data"]
    echoed = [e["extn_value"].native for e in data["response_extensions"] or () if e["extn_id"].native == "nonce"]
    assert echoed == ([nonce] if nonce is not None else [])
    single = data["responses"][0]
    assert single["cert_id"]["serial_number"].native == serial
    return single["cert_status"].name


def test_health_and_tsa_answered_while_the_status_read_is_slow(site):
    port, flag, (ca, issuer, serial) = site
    post = f"/ocsp/{ca}"
    nonce = os.urandom(16)
    status, _, body = exchange(port, http_post(post, "application/ocsp-request", ocsp_request(issuer, serial, nonce)))
    assert status == 200 and ocsp_answer(body, serial, nonce) == "good"
    log = Path(f"{flag}.log")
    reads_before = len(log.read_text().splitlines())
    flag.write_text(str(SLOW))
    try:
        nonces = [os.urandom(16) for _ in range(8)]
        socks = []
        started = time.monotonic()
        for i, n in enumerate(nonces):              # 8 fresh OCSP requests (POST and GET), on their own connections
            request = ocsp_request(issuer, serial, n)
            s = socket.create_connection(("127.0.0.1", port), timeout=4 * SLOW + 10)
            s.sendall(http_post(post, "application/ocsp-request", request) if i % 2 else
                      http_get(f"/ocsp/{ca}/" + urllib.parse.quote(base64.b64encode(request).decode(), safe="")))
            socks.append(s)
        time.sleep(0.2)                             # the first batch is in its slow read now
        latencies = []
        for i in range(10):                         # health (thread pool) and TSA (main thread) meanwhile
            t = time.monotonic()
            status, _, body = exchange(port, b"GET /tsa/health HTTP/1.1\r\nHost: t\r\n\r\n" if i % 2 else
                                       tsa_post(tsq(100 + i)))
            latencies.append(time.monotonic() - t)
            assert status == 200 and (i % 2 or granted(body, 100 + i))
        answered_others = time.monotonic() - started
        assert max(latencies) < 1.0, latencies
        assert answered_others < SLOW, (answered_others, latencies)      # all of them inside the first slow read
        for s, n in zip(socks, nonces):
            status, _, body, _ = read_response(s)
            assert status == 200 and ocsp_answer(body, serial, n) == "good"
            s.close()
        elapsed = time.monotonic() - started
    finally:
        flag.write_text("0")
    reads = log.read_text().splitlines()[reads_before:]
    # batching kept: the 8 requests took at most two slow reads per worker (one per batch), not eight
    per_worker: dict[str, int] = {}
    for line in reads:
        per_worker[line.split()[0]] = per_worker.get(line.split()[0], 0) + 1
    assert reads and max(per_worker.values()) <= 2 and len(reads) < len(nonces), reads
    assert elapsed < 2 * SLOW + 3, elapsed
    assert all("racentre-batch" in line for line in reads), reads          # never the main thread
    status, _, body = exchange(port, b"GET /tsa/health HTTP/1.1\r\nHost: t\r\n\r\n")
    assert status == 200


def test_conditional_get_through_the_server(site):
    port, _, (ca, issuer, serial) = site
    path = f"/ocsp/{ca}/" + urllib.parse.quote(base64.b64encode(ocsp_request(issuer, serial, None)).decode(), safe="")
    status, headers, body = exchange(port, http_get(path))
    assert status == 200 and ocsp_answer(body, serial, None) == "good"
    etag, last_modified = headers["etag"], headers["last-modified"]
    for extra in (f"If-None-Match: {etag}", f"If-None-Match: W/{etag}", f"If-Modified-Since: {last_modified}"):
        status, answer, reply = exchange(port, http_get(path).replace(b"\r\n\r\n", f"\r\n{extra}\r\n\r\n".encode()))
        assert status == 304 and reply == b"", extra
        assert answer["etag"] == etag and answer["expires"] == headers["expires"]
        assert answer["cache-control"].endswith("public, no-transform, must-revalidate")
    status, _, reply = exchange(port, http_get(path).replace(b"\r\n\r\n", b'\r\nIf-None-Match: "other"\r\n\r\n'))
    assert status == 200 and reply == body
