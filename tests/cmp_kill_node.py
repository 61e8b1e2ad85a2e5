"""The two processes of the kill -9 tests (``tests/unit/ca_bridge/test_cmp_kill.py``), each in its own
interpreter (``python -m tests.cmp_kill_node <role> <json>``; never imports tests/conftest.py):

* ``upstream``: our CA's CMP server over the test CA's database and token, served on a given port. With
  ``hold`` = ``"after"`` it answers the first cr/p10cr (the first sent under the profile label
  ``hold_label``, when given) only after touching ``marker`` and sleeping (the issuance is committed, the
  answer not yet sent); with ``"before"`` it sleeps before handling it. ``kmc_prefix``: the KMC made by the
  test (``kms.KeyEscrow`` with that key prefix, over the same database) is attached behind the CA, for
  central key generation.
* ``ra``: an RA node with ``CmpCA`` over HTTP to the upstream and a database of its own: the final
  approval of a vetted request; prints the request's state. ``profile_in_path``: the profile label goes
  into the URL (``/.well-known/cmp/p/<profile>``, RFC 9483 §6.1), as a dual pair's two profiles need.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from asn1crypto import x509
from werkzeug.serving import make_server

from ca_bridge.cmp import asn1
from ca_bridge.cmp.upstream import CmpCA, HttpTransport, signature_credentials
from ca_bridge.embedded import EmbeddedCA
from hsm import HsmConfig, KeyManager, SoftTokenConfig
from store.db import make_engine, make_session_factory
from pkicore.secret import Secret
from ra.services import RaService
from ra.workflow import Actor
from tests.cmp_support import cmp_server, served_app


def _km(args: dict) -> KeyManager:
    return KeyManager(HsmConfig(module=args["module"], token=args["token"], pin=Secret(args["pin"]),
                                softtoken=SoftTokenConfig(dir=args["token_dir"])))


def upstream(args: dict) -> None:
    km = _km(args)
    ca = EmbeddedCA(km, make_session_factory(make_engine(args["db"])), args["public_url"], name_prefix=args["tag"])
    if args.get("kmc_prefix"):
        from gmt0014.client import InProcessTransport
        from kms.config import KmsConfig
        from kms.endpoint import Gmt0014Endpoint
        from kms.escrow import KeyEscrow
        escrow = KeyEscrow(km, ca.db, KmsConfig(key_prefix=args["kmc_prefix"]))
        issuing = [i.certificate for i in ca.authorities().values() if i.parent is not None]
        ca.attach_kmc(InProcessTransport(Gmt0014Endpoint(escrow, issuing)), escrow.certificate)
    server = cmp_server(ca)
    handle, held = server.handle, threading.Event()

    def holding(der, label=None):
        kind = asn1.PKIMessage.load(der)["body"].name
        hold = args.get("hold") if kind in ("cr", "p10cr") and not held.is_set() \
            and args.get("hold_label") in (None, label) else None
        if hold:
            held.set()
        if hold == "before":
            Path(args["marker"]).write_text(kind)
            time.sleep(args["seconds"])
        answer = handle(der, label)
        if hold == "after":                 # committed: the CA issued; the answer is not sent yet
            Path(args["marker"]).write_text(kind)
            time.sleep(args["seconds"])
        return answer

    server.handle = holding
    http = make_server("127.0.0.1", args["port"], served_app(server, km, ca.db), threaded=True)
    print("serving", flush=True)
    http.serve_forever()


def ra(args: dict) -> None:
    km = _km(args)
    db = make_session_factory(make_engine(args["db"]))
    cert = bytes.fromhex(args["ra_cert"])
    cmp_ca = CmpCA(db, HttpTransport(args["url"], timeout=60, profile_in_path=args.get("profile_in_path", False)), signature_credentials(km, args["ra_key"], cert),
                   [bytes.fromhex(a) for a in args["anchors"]], name="upstream", lease=args["lease"],
                   recipient=x509.Certificate.load(cert).issuer)
    done = RaService(db, cmp_ca).approve(Actor(args["approver"], "ra_officer"), args["request"])
    print(json.dumps({"state": done["state"]}), flush=True)


if __name__ == "__main__":
    {"upstream": upstream, "ra": ra}[sys.argv[1]](json.loads(sys.argv[2]))
