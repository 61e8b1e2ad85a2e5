"""CRL freshness is decided by the database, never by clocks (issue 14): a revocation committed after a
CRL was signed, or counted on a node whose clock runs behind, makes the stored CRL stale at once;
thisUpdate never goes back. On SQLite and PostgreSQL (the ``db`` fixture)."""
from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from asn1crypto import crl as asn1_crl

from ca_bridge import crl as crl_module
from ca_bridge import embedded as embedded_module
from ca_bridge.api import RevocationReason
from store.db import transaction, utcnow
from tests.unit.ca_bridge.helpers import request
from tests.unit.ca_bridge.test_revocation_crl import entries, own_ca  # noqa: F401 - the fixture

BEHIND = dt.timedelta(hours=2)


def this_update(der: bytes) -> dt.datetime:
    return asn1_crl.CertificateList.load(der)["tbs_cert_list"]["this_update"].native


def test_a_revocation_held_open_while_a_crl_is_signed_is_on_the_next_crl(own_ca):
    ca = own_ca
    name = f"{ca.test_tag}issuing-sm2"
    cert = ca.issue(request("unit"))
    before = ca.crls.current(name)
    counted, commit = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def revoke():                       # a long revoking transaction (another request, node or officer)
        try:
            with transaction(ca.db) as session:
                ca.revoke(name, cert.serial, RevocationReason.key_compromise, session=session)
                counted.set()
                commit.wait(20)
        except BaseException as exc:  # noqa: BLE001 - asserted below
            failures.append(exc)
            counted.set()

    revoker = threading.Thread(target=revoke)
    revoker.start()
    assert counted.wait(20) and not failures
    # not committed: the stored CRL stays what is served, and it cannot list the certificate yet
    served = ca.crls.current(name)
    assert served.number == before.number and cert.serial not in entries(served.der)
    # a CRL signed meanwhile (another worker, or `racentre ca crl --new`) waits for the revocation's CA row
    # lock (PostgreSQL) or writer lock (SQLite), so it is signed after the commit and lists it
    signed: list = []
    signer = threading.Thread(target=lambda: signed.append(ca.crls.generate(name)))
    signer.start()
    time.sleep(0.5)
    assert signer.is_alive(), "a CRL was signed while a revocation of its CA was uncommitted"
    commit.set()
    revoker.join(20)
    signer.join(20)
    assert not failures and len(signed) == 1
    assert entries(signed[0].der) == {cert.serial: "key_compromise"}
    after = ca.crls.current(name)
    assert entries(after.der) == {cert.serial: "key_compromise"}
    assert before.number < signed[0].number <= after.number
    assert before.this_update <= signed[0].this_update <= after.this_update


def test_a_crl_signed_after_the_revocation_time_but_before_its_commit_is_stale(own_ca, monkeypatch):
    """The case the clock rule got wrong: the revocation's time (taken before its commit) is older than
    the CRL's thisUpdate. Here the revoking node's clock is two hours behind."""
    ca = own_ca
    name = f"{ca.test_tag}issuing-sm2"
    cert = ca.issue(request("unit"))
    first = ca.crls.current(name)
    monkeypatch.setattr(embedded_module, "utcnow", lambda: utcnow() - BEHIND)
    status = ca.revoke(name, cert.serial, RevocationReason.affiliation_changed)
    monkeypatch.undo()
    assert status.revoked_at < first.this_update            # the clock rule would call `first` fresh
    crl = ca.crls.current(name)
    assert crl.number > first.number and entries(crl.der) == {cert.serial: "affiliation_changed"}
    assert ca.crls.current(name).number == crl.number      # and now it is fresh: served, not signed again


def test_a_delta_lists_a_change_counted_after_its_base_whatever_its_clock(own_ca, monkeypatch):
    ca = own_ca
    name = f"{ca.test_tag}issuing-sm2"
    held, late = ca.issue(request("unit")), ca.issue(request("unit"))
    ca.revoke(name, held.serial, RevocationReason.certificate_hold)
    base = ca.crls.current(name)
    assert entries(base.der) == {held.serial: "certificate_hold"}
    monkeypatch.setattr(embedded_module, "utcnow", lambda: utcnow() - BEHIND)
    ca.revoke(name, late.serial, RevocationReason.key_compromise)         # stamped before the base
    ca.revoke(name, held.serial, RevocationReason.remove_from_crl)
    monkeypatch.undo()
    # a delta of that base (generate: no renewal of the base) lists both, though both are stamped before it
    delta = ca.crls.generate(name, delta=True)
    assert delta.delta and delta.base_number == base.number
    assert entries(delta.der) == {late.serial: "key_compromise", held.serial: "remove_from_crl"}
    # served now: the base no longer covers the counter, so a new base is signed and its delta is empty
    served = ca.crls.current(name, delta=True)
    assert served.base_number > base.number and entries(served.der) == {}
    assert entries(ca.crls.current(name).der) == {late.serial: "key_compromise"}


def test_this_update_never_goes_back_when_the_signing_node_is_behind(own_ca, monkeypatch):
    ca = own_ca
    name = f"{ca.test_tag}issuing-sm2"
    first = ca.crls.generate(name)
    monkeypatch.setattr(crl_module, "utcnow", lambda: utcnow() - BEHIND)
    behind = ca.crls.generate(name)
    monkeypatch.undo()
    assert behind.number == first.number + 1
    assert behind.this_update == first.this_update == this_update(behind.der)
    assert behind.next_update == behind.this_update + ca.crls.validity


@pytest.mark.parametrize("delta", [False, True])
def test_concurrent_requests_for_a_stale_crl_sign_it_once(own_ca, delta):
    ca = own_ca
    name = f"{ca.test_tag}issuing-sm2"
    ca.crls.current(name, delta=delta)
    ca.revoke(name, ca.issue(request("unit")).serial, RevocationReason.superseded)
    served: list = []
    threads = [threading.Thread(target=lambda: served.append(ca.crls.current(name, delta=delta))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(served) == 4 and len({p.number for p in served}) == 1
