"""Pre-produced OCSP responses (RFC 5019) as caches see them and as operators manage them, on SQLite and
PostgreSQL: GET answers carry Last-Modified, Expires, ETag and Cache-Control max-age (§6.2) — the same
from Flask and from the fast path —; a revocation on one node removes the kept response from the shared
table ca_ocsp_response in its own transaction, so another node answers "revoked" at once;
`racentre ca ocsp-purge` / `ocsp-regenerate` empty or re-sign the table (audited)."""
from __future__ import annotations

import base64
import contextlib
import datetime as dt
import email.utils
import hashlib
import secrets
import selectors
import time
from types import SimpleNamespace
from urllib.parse import quote

from asn1crypto import ocsp
from click.testing import CliRunner
from sqlalchemy import func, select
from werkzeug.test import Client

from ca_bridge.api import RevocationReason
from ca_bridge.cli import ca_group
from ca_bridge.embedded import EmbeddedCA
from ca_bridge.models import PreProducedOcsp
from ca_bridge.ocsp import AnswerMemo
from ca_bridge.store import KEPT, StoredResponse
from ca_bridge.views import OcspFastPath, bp
from audit.trail import AuditEvent
from store.db import make_engine, make_session_factory, reading, utcnow
from racentre import fastpath
from racentre.web import create_app
from tests.unit.ca_bridge.conftest import PUBLIC_URL
from tests.unit.ca_bridge.helpers import request, sm2_spki
from tests.pgschema import url_of
from tests.unit.ca_bridge.test_ocsp import _request, basic_response, statuses


def _kept_rows(ca, name: str, serial: int) -> int:
    with reading(ca.db) as session:
        return session.scalar(select(func.count()).select_from(PreProducedOcsp).where(
            PreProducedOcsp.ca_id == ca.directory.get(name).id, PreProducedOcsp.serial == format(serial, "x")))


def _http_time(value: str) -> dt.datetime:
    return email.utils.parsedate_to_datetime(value)


def test_get_answers_carry_rfc5019_cache_headers(ca):
    leaf = ca.issue(request("server", sm2_spki()))
    name = leaf.ca
    issuer = ca.directory.get(name).certificate
    plain = _request(issuer, [leaf.serial])
    encoded = quote(base64.b64encode(plain).decode(), safe="")
    app = create_app(None, ca.km, ca.db, services={"ca": ca}, blueprints=[bp])
    fastpath.install(app, "ocsp", OcspFastPath(ca))
    answers = []
    for client in (app.test_client(), Client(app.wsgi_app.wsgi_app)):        # fast path, then Flask alone
        resp = client.get(f"/ocsp/{name}/{encoded}")
        assert resp.status_code == 200
        answers.append(resp)
        data = basic_response(resp.data, ca, name)["tbs_response_data"]
        single = data["responses"][0]
        assert _http_time(resp.headers["Last-Modified"]) == data["produced_at"].native
        assert _http_time(resp.headers["Expires"]) == single["next_update"].native
        assert resp.headers["ETag"] == f'"{hashlib.sha1(resp.data).hexdigest()}"'
        directives = [d.strip() for d in resp.headers["Cache-Control"].split(",")]
        assert directives[1:] == ["public", "no-transform", "must-revalidate"]
        max_age = int(directives[0].removeprefix("max-age="))
        # never past nextUpdate, and up to when the responder replaces the response (half its validity)
        until_next = (single["next_update"].native - dt.datetime.now(dt.timezone.utc)).total_seconds()
        assert 0 < max_age <= min(until_next, ca.ocsp.refresh.total_seconds())
        assert max_age >= ca.ocsp.refresh.total_seconds() - 120
    fast, flask = answers
    assert fast.data == flask.data
    assert {k: fast.headers[k] for k in ("Last-Modified", "Expires", "ETag")} == \
        {k: flask.headers[k] for k in ("Last-Modified", "Expires", "ETag")}

    client = app.test_client()
    with_nonce = quote(base64.b64encode(_request(issuer, [leaf.serial], nonce=secrets.token_bytes(8))).decode(), safe="")
    resp = client.get(f"/ocsp/{name}/{with_nonce}")
    assert resp.headers["Cache-Control"] == "no-store" and "ETag" not in resp.headers
    resp = client.get(f"/ocsp/{name}/AAAA")                                    # malformedRequest
    assert resp.headers["Cache-Control"] == "no-store" and "Expires" not in resp.headers
    posted = client.post(f"/ocsp/{name}", data=plain, content_type="application/ocsp-request")
    assert posted.data == fast.data and "ETag" not in posted.headers          # POST answers are not cached


def test_revocation_on_another_node_invalidates_the_kept_response_at_once(ca, softtoken_km, db):
    node_b = EmbeddedCA(softtoken_km, db, PUBLIC_URL, name_prefix=ca.test_tag)   # its own caches, same database
    leaf = ca.issue(request("server", sm2_spki()))
    name = leaf.ca
    plain = _request(ca.directory.get(name).certificate, [leaf.serial])
    kept = ca.ocsp.respond(plain, name)
    assert statuses(basic_response(kept, ca, name)) == {leaf.serial: "good"}
    assert node_b.ocsp.respond(plain, name) == kept                        # node B serves node A's response
    assert _kept_rows(ca, name, leaf.serial) == 1
    node_b.revoke(name, leaf.serial, RevocationReason.key_compromise)
    assert _kept_rows(ca, name, leaf.serial) == 0                           # gone with the revocation's commit
    for node in (ca, node_b):
        answer = node.ocsp.respond(plain, name)
        assert statuses(basic_response(answer, ca, name)) == {leaf.serial: "revoked"}
    assert _kept_rows(ca, name, leaf.serial) == 1                           # the revoked answer is kept now
    assert ca.ocsp.respond(plain, name) == node_b.ocsp.respond(plain, name)


def test_operator_purges_and_regenerates_kept_responses(ca):
    good = ca.issue(request("server", sm2_spki()))
    revoked = ca.issue(request("server", sm2_spki()))
    name = good.ca
    issuer = ca.directory.get(name).certificate
    requests = {leaf.serial: _request(issuer, [leaf.serial]) for leaf in (good, revoked)}
    # signed two seconds ago (producedAt has whole seconds), so that the regenerated ones are later
    earlier = utcnow() - dt.timedelta(seconds=2)
    first = {serial: ca.ocsp.respond(body, name, now=earlier) for serial, body in requests.items()}
    # a node that read "good" before the revocation keeps its answer after the revocation committed
    before = ca.store.current(name, [revoked.serial])[revoked.serial].status
    ca.revoke(name, revoked.serial, RevocationReason.superseded)
    cert_id = ocsp.OCSPRequest.load(requests[revoked.serial])["tbs_request"]["request_list"][0]["req_cert"].dump()
    stale = StoredResponse(cert_id, ca.ocsp.kept_key(ca.directory.get(name), before),
                           utcnow() + dt.timedelta(hours=1), first[revoked.serial])
    ca.store.keep_responses(name, [(revoked.serial, "sha1", stale)])
    obj = {"services": SimpleNamespace(db=ca.db, ca=ca)}
    runner = CliRunner()
    done = runner.invoke(ca_group, ["ocsp-regenerate", "--ca", name], obj=obj)
    assert done.exit_code == 0, done.output
    assert int(done.output.split(": ")[1].split()[0]) >= 2
    table = {serial: ca.store.current(name, [serial])[serial].responses["sha1"].der for serial in requests}
    assert statuses(basic_response(table[revoked.serial], ca, name)) == {revoked.serial: "revoked"}
    again = {serial: ca.ocsp.respond(body, name) for serial, body in requests.items()}
    assert again == table
    assert again[good.serial] != first[good.serial]                         # signed afresh, served from the table
    renewed = basic_response(again[good.serial], ca, name)["tbs_response_data"]
    assert renewed["produced_at"].native > \
        basic_response(first[good.serial], ca, name)["tbs_response_data"]["produced_at"].native
    assert statuses(basic_response(again[revoked.serial], ca, name)) == {revoked.serial: "revoked"}
    assert ca.ocsp.respond(requests[good.serial], name) == again[good.serial]

    done = runner.invoke(ca_group, ["ocsp-purge", "--ca", name], obj=obj)
    assert done.exit_code == 0, done.output
    assert int(done.output.split(": ")[1].split()[0]) >= 2
    assert _kept_rows(ca, name, good.serial) == 0 and _kept_rows(ca, name, revoked.serial) == 0
    assert statuses(basic_response(ca.ocsp.respond(requests[good.serial], name), ca, name)) == {good.serial: "good"}
    assert _kept_rows(ca, name, good.serial) == 1                            # signed and kept again on demand
    with reading(ca.db) as session:
        actions = set(session.scalars(select(AuditEvent.action).where(AuditEvent.target_id == name)))
    assert {"ca.ocsp.purge", "ca.ocsp.regenerate"} <= actions
    bad = runner.invoke(ca_group, ["ocsp-purge", "--ca", "no-such-ca"], obj=obj)
    assert bad.exit_code != 0


def _get_app(ca):
    app = create_app(None, ca.km, ca.db, services={"ca": ca}, blueprints=[bp])
    fastpath.install(app, "ocsp", OcspFastPath(ca))
    return app


def test_conditional_get_answers_304_with_the_caching_headers(ca):
    """RFC 5019 §6.2 / RFC 7232: If-None-Match (weak comparison, before If-Modified-Since) and
    If-Modified-Since on a GET answer; nonce answers, error statuses, "*" and POST are always answered 200."""
    leaf = ca.issue(request("server", sm2_spki()))
    name = leaf.ca
    issuer = ca.directory.get(name).certificate
    plain = _request(issuer, [leaf.serial])
    url = f"/ocsp/{name}/{quote(base64.b64encode(plain).decode(), safe='')}"
    app = _get_app(ca)
    for client in (app.test_client(), Client(app.wsgi_app.wsgi_app)):        # through the fast path, Flask alone
        first = client.get(url)
        assert first.status_code == 200
        etag, last_modified = first.headers["ETag"], first.headers["Last-Modified"]
        for headers in ({"If-None-Match": etag}, {"If-None-Match": f"W/{etag}"},
                        {"If-None-Match": f'"other", {etag}'}, {"If-Modified-Since": last_modified},
                        {"If-Modified-Since": "Fri, 31 Dec 2100 00:00:00 GMT"},
                        {"If-None-Match": etag, "If-Modified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"}):
            resp = client.get(url, headers=headers)
            assert resp.status_code == 304, headers
            assert resp.data == b"" and "Content-Type" not in resp.headers
            # RFC 7232 §4.1: ETag, Expires, Cache-Control as the 200 would send them (no Last-Modified: the
            # strong ETag is there; Werkzeug drops it from a 304 as a SHOULD NOT of that clause)
            assert {k: resp.headers[k] for k in ("ETag", "Expires")} == {k: first.headers[k] for k in ("ETag", "Expires")}
            assert resp.headers["Cache-Control"].split(",", 1)[1] == first.headers["Cache-Control"].split(",", 1)[1]
        for headers in ({"If-None-Match": '"other"'}, {"If-None-Match": "*"}, {"If-None-Match": "garbage"},
                        {"If-None-Match": '"other"', "If-Modified-Since": last_modified},    # §6: INM decides
                        {"If-Modified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"},
                        {"If-Modified-Since": "not a date"}):
            resp = client.get(url, headers=headers)
            assert resp.status_code == 200, headers
            assert resp.data == first.data and resp.headers["ETag"] == etag
        nonce = quote(base64.b64encode(_request(issuer, [leaf.serial], nonce=secrets.token_bytes(8))).decode(), safe="")
        for path, headers in ((f"/ocsp/{name}/{nonce}", {"If-None-Match": "*"}),
                              (f"/ocsp/{name}/{nonce}", {"If-Modified-Since": "Fri, 31 Dec 2100 00:00:00 GMT"}),
                              (f"/ocsp/{name}/AAAA", {"If-None-Match": "*"}),
                              (f"/ocsp/{name}/AAAA", {"If-Modified-Since": "Fri, 31 Dec 2100 00:00:00 GMT"})):
            resp = client.get(path, headers=headers)
            assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store" and resp.data
        posted = client.post(f"/ocsp/{name}", data=plain, content_type="application/ocsp-request",
                             headers={"If-None-Match": etag, "If-Modified-Since": last_modified})
        assert posted.status_code == 200 and posted.data == first.data


def test_revoked_after_the_client_cached_the_good_answer_is_sent_whole(ca):
    """The validators are those of the answer that would be sent now: a client holding the good answer
    (its ETag, its Last-Modified — even within the same second, as here) gets 200 with "revoked", never a
    304 keeping it on "good"; with the revoked answer's own ETag it then gets 304."""
    leaf = ca.issue(request("server", sm2_spki()))
    name = leaf.ca
    plain = _request(ca.directory.get(name).certificate, [leaf.serial])
    url = f"/ocsp/{name}/{quote(base64.b64encode(plain).decode(), safe='')}"
    app = _get_app(ca)
    client = app.test_client()
    good = client.get(url)
    assert statuses(basic_response(good.data, ca, name)) == {leaf.serial: "good"}
    assert client.get(url, headers={"If-None-Match": good.headers["ETag"]}).status_code == 304
    ca.revoke(name, leaf.serial, RevocationReason.key_compromise)
    for headers in ({"If-None-Match": good.headers["ETag"]}, {"If-Modified-Since": good.headers["Last-Modified"]},
                    {"If-Modified-Since": "Fri, 31 Dec 2100 00:00:00 GMT"}):
        for each in (client, Client(app.wsgi_app.wsgi_app)):
            resp = each.get(url, headers=headers)
            assert resp.status_code == 200, headers
            assert statuses(basic_response(resp.data, ca, name)) == {leaf.serial: "revoked"}
            assert resp.headers["ETag"] != good.headers["ETag"]
    revoked = client.get(url)
    again = client.get(url, headers={"If-None-Match": revoked.headers["ETag"]})
    assert again.status_code == 304 and again.headers["ETag"] == revoked.headers["ETag"] and again.data == b""


@contextlib.contextmanager
def _other_node(ca):
    """Another node on the same database: its own engine (own connections), caches and status reads."""
    engine = ca.db.kw["bind"]
    url = url_of(engine) if engine.dialect.name == "postgresql" else engine.url.render_as_string(hide_password=False)
    other = make_engine(url)
    try:
        yield EmbeddedCA(ca.km, make_session_factory(other), PUBLIC_URL, name_prefix=ca.test_tag)
    finally:
        other.dispose()


def _fast_batch(path: OcspFastPath, requests) -> tuple[list, object]:
    """One batch through the fast path's stages, as a serving worker runs them (racentre.arbiter)."""
    staged = path.stage_many(requests)
    staged.read()
    out = staged.answers()
    staged.write()
    return out, staged


def test_remembered_answers_end_with_a_revocation_committed_elsewhere(ca, monkeypatch):
    """A worker remembers the pre-produced answers it gave (ca_bridge.ocsp.AnswerMemo) and serves the same
    POST body or GET path again with no status read, the same bytes and the GET caching headers; a revocation
    committed through another connection (another node) moves the CA's revocation counter, and the very
    next batch answers "revoked" over POST and GET — never the remembered "good"."""
    leaf = ca.issue(request("server", sm2_spki()))
    name = leaf.ca
    plain = _request(ca.directory.get(name).certificate, [leaf.serial])
    post = ("POST", f"/ocsp/{name}", "application/ocsp-request", str(len(plain)), plain)
    get = ("GET", f"/ocsp/{name}/{base64.b64encode(plain).decode()}", "", "", b"")
    nonce = _request(ca.directory.get(name).certificate, [leaf.serial], nonce=secrets.token_bytes(16))
    fresh = ("POST", f"/ocsp/{name}", "application/ocsp-request", str(len(nonce)), nonce)
    path = OcspFastPath(ca)
    reads = []
    current = ca.ocsp.store.current
    monkeypatch.setattr(ca.ocsp.store, "current", lambda *a, **k: reads.append(a) or current(*a, **k))

    first, _ = _fast_batch(path, [post, get, fresh])
    assert [statuses(basic_response(reply[1], ca, name)) for reply in first] == [{leaf.serial: "good"}] * 3
    assert len(path.memo) == 2 and len(reads) == 1                  # the nonce answer is never remembered
    again, staged = _fast_batch(path, [post, get])
    assert len(staged.hits) == 2 and len(reads) == 1                # no status read, no parsing
    assert again[0] == first[0] and again[1][1] == first[1][1]
    assert dict(again[1][2])["ETag"] == dict(first[1][2])["ETag"]
    assert dict(again[1][2])["Cache-Control"].startswith("max-age=")

    with _other_node(ca) as node_b:
        node_b.revoke(name, leaf.serial, RevocationReason.key_compromise)
    after, staged = _fast_batch(path, [post, get])
    assert not staged.hits and len(reads) == 2
    assert [statuses(basic_response(reply[1], ca, name)) for reply in after] == [{leaf.serial: "revoked"}] * 2
    # the revoked answer is remembered in turn, and is what Flask (conditional GET included) answers too
    remembered, staged = _fast_batch(path, [post, get])
    assert len(staged.hits) == 2 and remembered[0] == after[0]
    app = create_app(None, ca.km, ca.db, services={"ca": ca}, blueprints=[bp])
    flask = Client(app).get(get[1], headers={"If-None-Match": dict(remembered[1][2])["ETag"]})
    assert flask.status_code == 304


def _worker_batch(path: OcspFastPath, requests) -> tuple[list, str]:
    """One batch as a serving worker's main thread takes it (racentre.arbiter ``_read_nowait``): the read
    without waiting when the stage offers one (waited for as the poller does), else ``read`` (the batch
    thread). -> (answers, "nowait" or "thread")."""
    staged = fastpath.Staged(len(requests), [(list(range(len(requests))), path.stage_many(requests))])
    how = "thread"
    read = staged.read_nowait()
    if read is not False and read is not True:
        with selectors.DefaultSelector() as waiter:
            waiter.register(read.fileno(), selectors.EVENT_READ)
            while not (waiter.select(10) and read.ready()):
                pass
        read = staged.read_nowait()
    if read is True:
        how = "nowait"
    else:
        staged.read()
    out = staged.answers()
    staged.write()
    return out, how


def test_remembered_answers_read_the_counters_without_waiting_on_postgresql(ca, monkeypatch):
    """On PostgreSQL a batch of remembered answers sends its one statement — the revocation counters — on a
    non-blocking connection whose answer the worker's main thread waits for on its poller (the batch
    thread opened that connection once answers were remembered); on SQLite the batch thread reads. A
    revocation committed through another node's connections moves its CA's counter: that batch is read by
    the batch thread and answers "revoked" over POST and GET."""
    postgres = ca.db.kw["bind"].dialect.name == "postgresql"
    leaf = ca.issue(request("server", sm2_spki()))
    name = leaf.ca
    plain = _request(ca.directory.get(name).certificate, [leaf.serial])
    post = ("POST", f"/ocsp/{name}", "application/ocsp-request", str(len(plain)), plain)
    get = ("GET", f"/ocsp/{name}/{base64.b64encode(plain).decode()}", "", "", b"")
    path = OcspFastPath(ca)
    reads = []
    current = ca.ocsp.store.current
    monkeypatch.setattr(ca.ocsp.store, "current", lambda *a, **k: reads.append(a) or current(*a, **k))

    first, how = _worker_batch(path, [post, get])              # nothing remembered yet: statuses read
    assert how == "thread" and len(reads) == 1 and len(path.memo) == 2
    again, how = _worker_batch(path, [post, get])              # remembered (the connection is opened now)
    assert len(reads) == 1
    for _ in range(3):
        again, how = _worker_batch(path, [get, post])
        assert how == ("nowait" if postgres else "thread") and len(reads) == 1
        assert again[1] == first[0] and again[0][1] == first[1][1]

    with _other_node(ca) as node_b:
        node_b.revoke(name, leaf.serial, RevocationReason.key_compromise)
    after, how = _worker_batch(path, [post, get])
    assert how == "thread" and len(reads) == 2                 # the counter moved: statuses read again
    assert [statuses(basic_response(reply[1], ca, name)) for reply in after] == [{leaf.serial: "revoked"}] * 2
    remembered, how = _worker_batch(path, [post, get])
    assert how == ("nowait" if postgres else "thread") and len(reads) == 2 and remembered[0] == after[0]


def test_remembered_answers_end_at_their_refresh_time_and_with_a_purge(ca, monkeypatch):
    """A remembered answer is served until the time the database path would stop serving it (its refresh
    time, half-way to nextUpdate), and an operator's `racentre ca ocsp-purge` (on any node) ends it too."""
    leaf = ca.issue(request("server", sm2_spki()))
    name = leaf.ca
    plain = _request(ca.directory.get(name).certificate, [leaf.serial])
    post = ("POST", f"/ocsp/{name}", "application/ocsp-request", str(len(plain)), plain)
    path = OcspFastPath(ca)
    first, _ = _fast_batch(path, [post])
    _, staged = _fast_batch(path, [post])
    assert len(staged.hits) == 1
    later = utcnow() + ca.ocsp.refresh + dt.timedelta(seconds=1)
    monkeypatch.setattr("ca_bridge.views.utcnow", lambda: later)
    renewed, staged = _fast_batch(path, [post])
    assert not staged.hits and renewed[0][1] != first[0][1]          # signed afresh, producedAt later
    again, staged = _fast_batch(path, [post])
    assert len(staged.hits) == 1 and again == renewed
    with _other_node(ca) as node_b:
        assert node_b.store.purge(name) >= 1
    _, staged = _fast_batch(path, [post])
    assert not staged.hits and _kept_rows(ca, name, leaf.serial) == 1     # read, signed and kept again


def test_answer_memo_bounds_and_validity():
    """AnswerMemo alone: at most ``limit`` answers (the oldest go), none after its refresh time or under
    another directory, and ``holds`` only while the CA's counter and the purge generation are unchanged
    (an unreadable store, None, holds nothing)."""
    memo, cas, now = AnswerMemo(limit=2), {"x": object()}, utcnow()
    gens = {7: 3, KEPT: 1}
    for key in ("a", "b", "c"):
        memo.put(key, ("r", key), 7, now + dt.timedelta(seconds=60), gens, cas)
    assert len(memo) == 2 and memo.get("a", now, cas) is None and memo.get("c", now, cas).reply == ("r", "c")
    entry = memo.get("b", now, cas)
    assert AnswerMemo.holds(entry, {7: 3, KEPT: 1})
    assert not AnswerMemo.holds(entry, {7: 4, KEPT: 1}) and not AnswerMemo.holds(entry, {7: 3, KEPT: 2})
    assert not AnswerMemo.holds(entry, {8: 3, KEPT: 1}) and not AnswerMemo.holds(entry, None)
    assert memo.get("b", now + dt.timedelta(seconds=60), cas) is None                 # due for refresh: gone
    assert memo.get("c", now, {"x": object()}) is None                                # another directory: gone
    memo.put("d", ("r", "d"), 9, now + dt.timedelta(seconds=60), gens, cas)           # a CA not counted: not kept
    assert memo.get("d", now, cas) is None
