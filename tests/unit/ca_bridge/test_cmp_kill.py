"""Nothing is lost and nothing is issued twice across a kill -9 of either side of the RA -> CA CMP link.

Two processes, two databases: the upstream is our CA's CMP server (``tests/cmp_kill_node.py upstream``,
over the test CA's database and token, served over HTTP on its own port); the RA node
(``tests/cmp_kill_node.py ra``) has a database of its own and ``CmpCA`` over HTTP, and makes the final
approval of a vetted request. The upstream holds its answer to the cr (after committing the issuance, or
before handling it) and writes a marker; then:

* the RA process is killed -9 mid-exchange: the request is ``awaiting_ca`` with its transactionID
  committed; a sweep in a new process (this one) polls that transaction and gets the same certificate;
* the upstream is killed -9 mid-exchange: the RA's approval answers ``awaiting_ca``; the upstream is
  restarted and a sweep collects the certificate (polled when the CA had issued it, re-sent under the same
  transactionID when the CA had not processed the request).

Each ends with the request ``issued``, exactly one certificate at the CA for the transaction, confirmed."""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from asn1crypto import x509
from sqlalchemy import func, select

from ca_bridge.api import IssueRequest
from ca_bridge.cmp.models import CmpOutbox, CmpTransaction
from ca_bridge.cmp.upstream import CmpCA, HttpTransport, signature_credentials
from ca_bridge.models import IssuedCert
from store.db import Base, make_session_factory
from ra.services import RaService
from ra.workflow import Actor
from racentre.migrate import import_models
from tests.pgschema import empty_engine, url_of
from tests.unit.ca_bridge.conftest import PUBLIC_URL
from tests.unit.ca_bridge.test_cmp_awaiting import APPROVER, _vetted_server_request

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
ROOT = Path(__file__).resolve().parents[3]
LEASE = 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _url(engine) -> str:
    return url_of(engine) if engine.dialect.name == "postgresql" else engine.url.render_as_string(hide_password=False)


def ra_link(ca, softtoken_module, engine, label: str, key_type: str, common_name: str) -> dict:
    """What both processes need: the token, the CA's database, an RA identity (HSM key ``label``, cmp-ra
    certificate issued by ``ca``)."""
    spki = ca.km.ensure_key_pair(label, key_type)
    cert = ca.issue(IssueRequest(request_id=f"ra-node-{label}", profile="cmp-ra",
                                 subject=(("country_name", "CN"), ("common_name", common_name)),
                                 public_key_info=spki)).certificate
    token = {"module": softtoken_module, "token": ca.km.config.token, "pin": ca.km.config.pin.reveal(),
             "token_dir": os.environ["RACENTRE_SOFTTOKEN_DIR"]}
    return {"token": token, "ra_key": label, "ra_cert": cert,
            "anchors": [i.certificate for i in ca.authorities().values() if i.is_root], "ca_db": _url(engine)}


@pytest.fixture(scope="module")
def link(ca, softtoken_module):
    return ra_link(ca, softtoken_module, ca.db.kw["bind"], f"{ca.test_tag}ra-kill-{secrets.token_hex(3)}",
                   "ec-p256", "RA node (kill)")


@pytest.fixture
def ra_db(ca, tmp_path):
    """The RA node's own database (the backend of the CA's parameter)."""
    import_models()
    with empty_engine(ca.db.kw["bind"].dialect.name, tmp_path, "ranode") as engine:
        Base.metadata.create_all(engine)
        yield engine


def _child(role: str, args: dict, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tests.cmp_kill_node", role, json.dumps(args)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **popen)


class Upstream:
    def __init__(self, ca, link, tmp_path):
        self.ca, self.link, self.port, self.marker = ca, link, _free_port(), tmp_path / "held"
        self.proc, self.extra = None, {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/.well-known/cmp"

    def start(self, hold: str | None = None, seconds: float = 120):
        self.marker.unlink(missing_ok=True)
        self.proc = _child("upstream", {**self.link["token"], "db": self.link["ca_db"], "tag": self.ca.test_tag,
                                        "public_url": PUBLIC_URL, "port": self.port, "hold": hold,
                                        "seconds": seconds, "marker": str(self.marker), **self.extra})
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                assert self.proc.poll() is None, self.proc.stdout.read().decode()
                time.sleep(0.2)
        raise AssertionError("the upstream did not start")

    def kill9(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        out = self.proc.stdout.read().decode("utf-8", "replace")
        assert "Traceback" not in out, out[-3000:]

    def wait_for_marker(self, proc: subprocess.Popen, timeout: float = 120):
        deadline = time.monotonic() + timeout
        while not self.marker.exists():
            assert time.monotonic() < deadline, "the upstream never got the request"
            assert proc.poll() is None, proc.stdout.read().decode()
            time.sleep(0.1)

    def kill_mid_exchange(self, ra_proc: subprocess.Popen) -> None:
        """Kill this upstream -9 once it holds ``ra_proc``'s request: the RA's connection drops, and the RA
        process ends well, its request awaiting the CA (not 503, not lost)."""
        self.wait_for_marker(ra_proc)
        self.kill9()
        out = ra_proc.communicate(timeout=120)[0].decode("utf-8", "replace")
        assert ra_proc.returncode == 0, out[-3000:]
        assert json.loads(out.strip().splitlines()[-1]) == {"state": "awaiting_ca"}


def _ra_process(link, upstream: Upstream, ra_engine, rid: int) -> subprocess.Popen:
    return _child("ra", {**link["token"], "db": _url(ra_engine), "url": upstream.url, "ra_key": link["ra_key"],
                         "ra_cert": link["ra_cert"].hex(), "anchors": [a.hex() for a in link["anchors"]],
                         "lease": LEASE, "approver": APPROVER.name, "request": rid})


def _sweeping_ra(ca, link, upstream: Upstream, ra_engine) -> RaService:
    """The RA node restarted: a new process's CmpCA over the same database (this test process)."""
    cert = link["ra_cert"]
    cmp_ca = CmpCA(make_session_factory(ra_engine), HttpTransport(upstream.url, timeout=30),
                   signature_credentials(ca.km, link["ra_key"], cert), link["anchors"], name="upstream",
                   recipient=x509.Certificate.load(cert).issuer)
    return RaService(make_session_factory(ra_engine), cmp_ca)


def _vetted(ca, link, upstream, ra_engine) -> int:
    return _vetted_server_request(_sweeping_ra(ca, link, upstream, ra_engine))[0]


def _sweep_until_issued(ra: RaService, rid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while ra.collect_awaiting([rid]).get(rid) == "awaiting_ca":          # the dead process's lease first ends
        assert time.monotonic() < deadline, "still awaiting the CA"
        time.sleep(0.5)
    assert ra.get_request(rid)["state"] == "issued"


def _one_certificate(ca, ra_engine, rid: int) -> str:
    """The transaction's certificate count at the CA (must be 1) and the RA's record of it."""
    with make_session_factory(ra_engine)() as s:
        row = s.get(CmpOutbox, f"ra-{rid}-sign")
    with ca.db() as s:
        issued = s.scalar(select(func.count()).select_from(IssuedCert).where(
            IssuedCert.request_id == f"cmp-{row.transaction_id}"))
        tx = s.get(CmpTransaction, row.transaction_id)
        assert issued == 1 and tx.state == "confirmed" and tx.serial == row.serial
    return row.transaction_id


def _state(ra_engine, rid: int) -> tuple[str, str | None]:
    from ra.models import CertRequest
    with make_session_factory(ra_engine)() as s:
        row = s.get(CmpOutbox, f"ra-{rid}-sign")
        return s.get(CertRequest, rid).state, row.state if row else None


def test_the_ra_killed_mid_exchange_loses_nothing_and_issues_once(ca, link, ra_db, tmp_path):
    upstream = Upstream(ca, link, tmp_path)
    upstream.start(hold="after")
    try:
        rid = _vetted(ca, link, upstream, ra_db)
        ra_proc = _ra_process(link, upstream, ra_db, rid)
        upstream.wait_for_marker(ra_proc)               # the CA issued and committed; the answer is held
        os.kill(ra_proc.pid, signal.SIGKILL)
        ra_proc.wait(10)
        assert _state(ra_db, rid) == ("awaiting_ca", "sent")        # committed before the cr was sent
        _sweep_until_issued(_sweeping_ra(ca, link, upstream, ra_db), rid)
        _one_certificate(ca, ra_db, rid)
    finally:
        upstream.kill9()


@pytest.mark.parametrize("hold", ["after", "before"])
def test_the_upstream_killed_mid_exchange_loses_nothing_and_issues_once(ca, link, ra_db, tmp_path, hold):
    upstream = Upstream(ca, link, tmp_path)
    upstream.start(hold=hold)
    try:
        rid = _vetted(ca, link, upstream, ra_db)
        ra_proc = _ra_process(link, upstream, ra_db, rid)
        upstream.kill_mid_exchange(ra_proc)
        assert _state(ra_db, rid) == ("awaiting_ca", "sent")
        upstream.start()                                # restarted
        _sweep_until_issued(_sweeping_ra(ca, link, upstream, ra_db), rid)
        _one_certificate(ca, ra_db, rid)
    finally:
        if upstream.proc.poll() is None:
            upstream.kill9()
