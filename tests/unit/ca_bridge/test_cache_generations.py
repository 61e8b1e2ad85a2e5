"""Per-process caches follow changes made by another process, node or CLI run, without a restart
(issue 14): the CA directory (a hierarchy added elsewhere) and the KMC certificate (installed elsewhere),
through ``store.generation``. Two objects over one database stand for two processes: each has its own
cache and sees the other's change only through the database. On SQLite and PostgreSQL."""
from __future__ import annotations

import secrets
import threading
import time

from asn1crypto import x509
from sqlalchemy import select

from ca_bridge.api import EscrowedKeyRequest
from ca_bridge.embedded import EmbeddedCA
from gmt0014.client import InProcessTransport
from kms.endpoint import Gmt0014Endpoint
from kms.escrow import KeyEscrow
from kms.identity import self_signed_certificate
from store.db import transaction
from pkicore.envelope import verify_signed_and_enveloped
from store.generation import DbGeneration, GenerationWatch, bump, read
from tests.unit.ca_bridge.conftest import PUBLIC_URL
from tests.unit.ca_bridge.helpers import ec_spki, request, sm2_spki
from tests.unit.kms.helpers import make_escrow, wipe

FAST = 0.05          # seconds between generation checks in these tests (default: 1 s)


def test_bump_counts_in_the_callers_transaction_and_a_watch_sees_it(db):
    name = f"test-{secrets.token_hex(4)}"
    watch = GenerationWatch(db, name, interval=FAST)
    assert read(db, name) == 0
    watch.loaded(watch.read())
    assert not watch.due()                       # within the interval: no look at all
    time.sleep(FAST * 2)
    assert not watch.due()                       # looked: unchanged
    try:
        with transaction(db) as session:
            bump(session, name)
            bump(session, name)
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    time.sleep(FAST * 2)
    assert read(db, name) == 0 and not watch.due()
    with transaction(db) as session:
        bump(session, name)                      # the row is created by the first bump (an upsert)
    with transaction(db) as session:
        bump(session, name)
    assert read(db, name) == 2
    time.sleep(FAST * 2)
    assert watch.due()
    with db() as session:
        assert session.get(DbGeneration, name).value == 2


def test_a_watch_in_background_never_reads_on_the_callers_thread(db, monkeypatch):
    name = f"test-{secrets.token_hex(4)}"
    watch = GenerationWatch(db, name, interval=FAST)
    watch.loaded(watch.read())
    watch.watch_in_background()
    try:
        _background_checks(db, name, watch, monkeypatch)
    finally:
        watch.stop_watching()


def _background_checks(db, name, watch, monkeypatch):
    callers = set()
    real_read = watch.read

    def counted_read():
        callers.add(threading.get_ident())
        return real_read()

    monkeypatch.setattr(watch, "read", counted_read)
    time.sleep(FAST * 3)
    assert not watch.due()
    with transaction(db) as session:
        bump(session, name)
    deadline = time.monotonic() + 5
    while not watch.due() and time.monotonic() < deadline:
        time.sleep(FAST)
    assert watch.due()                                   # seen by the thread within a few intervals
    assert callers and threading.get_ident() not in callers
    watch.loaded(read(db, name))
    assert not watch.due()


def test_a_hierarchy_added_by_another_process_is_served_without_restart(softtoken_km, db):
    tag = f"g{secrets.token_hex(4)}-"
    node_a = EmbeddedCA(softtoken_km, db, PUBLIC_URL, name_prefix=tag)
    node_a.directory.watch.interval = FAST
    node_a.init_hierarchy(kinds=("sm2",), label_prefix=tag)
    assert f"{tag}issuing-ecdsa" not in node_a.authorities()
    key = ec_spki()
    assert node_a.issuing_ca_for(key).name == f"{tag}issuing-sm2"            # no ECDSA CA yet
    # `racentre setup --with-ecdsa` run by another process (its own directory cache)
    cli = EmbeddedCA(softtoken_km, db, PUBLIC_URL, name_prefix=tag)
    cli.init_hierarchy(kinds=("ecdsa",), label_prefix=tag)
    time.sleep(FAST * 2)
    assert {f"{tag}root-ecdsa", f"{tag}issuing-ecdsa"} <= set(node_a.authorities())   # listed (GET /ca)
    assert node_a.issuing_ca_for(key).name == f"{tag}issuing-ecdsa"
    issued = node_a.issue(request("server", key))
    assert issued.ca == f"{tag}issuing-ecdsa"


def test_a_kmc_certificate_installed_by_another_process_is_used_without_restart(softtoken_km, db):
    wipe(db)
    serving = make_escrow(softtoken_km, db)                 # the KMC in the serving process
    serving._certificate_watch.interval = FAST
    tag = f"k{secrets.token_hex(4)}-"
    ca = EmbeddedCA(softtoken_km, db, PUBLIC_URL, name_prefix=tag)
    ca.init_hierarchy(kinds=("sm2",), label_prefix=tag)
    service = Gmt0014Endpoint(serving, [ca.directory.get(f"{tag}issuing-sm2").certificate])
    ca.attach_kmc(InProcessTransport(service), lambda: serving.certificate)
    old = serving.certificate
    assert ca.kmc.client(ca.directory.get(f"{tag}issuing-sm2")).kmc_certificate == old
    # `racentre kms install-certificate` in another process: its own KeyEscrow over the same database
    cli = KeyEscrow(softtoken_km, db, serving.config)
    new = self_signed_certificate(softtoken_km, serving.sign_label, (("common_name", "KMC renewed"),))
    cli.install_certificate(new, actor="cli")
    time.sleep(FAST * 2)
    assert serving.certificate == new != old
    assert ca.kmc.client(ca.directory.get(f"{tag}issuing-sm2")).kmc_certificate == new
    # the envelopes the KMC signs from now on name the new certificate as their signer (GM/T 0010)
    key = ca.prepare_escrowed_key(EscrowedKeyRequest(f"gen-{secrets.token_hex(4)}", "civil-servant-enc",
                                                     sm2_spki()))
    spki = x509.Certificate.load(new).public_key.dump()
    assert verify_signed_and_enveloped(key.key_envelope, spki, new).ok
    assert not verify_signed_and_enveloped(key.key_envelope, spki, old).ok
    with db() as session:
        assert session.scalar(select(DbGeneration.value).where(DbGeneration.name == "kms_setting")) >= 2
