"""Steps of the two-node CMP test, each run in its own interpreter with RACENTRE_CONFIG naming the node
(``python -m tests.e2e.cmp_node <step> ...``): what an operator's scripts would do on each machine."""
from __future__ import annotations

import json
import sys
import time

from asn1crypto import pem
from cryptography import x509 as cx509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ca_bridge.api import IssueRequest
from ra.workflow import Actor
from racentre.config import load_config
from racentre.services import Services
from tests.unit.ra.helpers import uscc

SUBMITTER, VETTER, APPROVER = (Actor(n, "ra_officer") for n in ("officer-a", "officer-b", "officer-c"))


def ra_key(label: str) -> None:
    services = Services(load_config())
    print(services.key_manager.ensure_key_pair(label, "ec-p256").hex())


def certify_ra(spki_hex: str, out_cert: str, out_roots: str) -> None:
    services = Services(load_config())
    issued = services.ca.issue(IssueRequest(request_id=f"ra-node-{spki_hex[-16:]}", profile="cmp-ra",
                                            subject=(("country_name", "CN"), ("common_name", "RA node 1")),
                                            public_key_info=bytes.fromhex(spki_hex)))
    open(out_cert, "wb").write(pem.armor("CERTIFICATE", issued.certificate))
    roots = [i.certificate for i in services.ca.authorities().values() if i.is_root]
    open(out_roots, "wb").write(b"".join(pem.armor("CERTIFICATE", c) for c in roots))
    print(issued.serial)


def _csr(host: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return (cx509.CertificateSigningRequestBuilder()
            .subject_name(cx509.Name([cx509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                                      cx509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER))


def enrol_servers(count: str) -> None:
    """Register ``count`` servers, submit, vet and approve each at this RA node (issued by the CA node over
    CMP); print the request ids, serials and the enrolment rate."""
    services = Services(load_config())
    ra = services.ra                       # issues through services.upstream_ca ([ca] backend = "cmp")
    unit, _ = ra.add_unit(SUBMITTER, name="杭州市财政局", uscc=uscc(), legal_representative="张三")
    out, started = [], None
    stamp = int(time.time() * 1000) % 10**9
    requests = []
    for i in range(int(count)):
        host = f"app{stamp}-{i}.zj.gov.cn"
        server, _ = ra.add_server(SUBMITTER, host_name=host, unit_id=unit["id"])
        req = ra.submit(SUBMITTER, type="server", subject_id=server["id"], sign_csr=_csr(host))
        ra.vet(VETTER, req["id"], documents_checked=True)
        requests.append(req["id"])
    started = time.perf_counter()
    for rid in requests:
        done = ra.approve(APPROVER, rid)
        assert done["state"] == "issued", done
        cert = done["certificates"][0]
        out.append({"request": rid, "serial": cert["serial"], "ca": cert["ca"]})
    elapsed = time.perf_counter() - started
    print(json.dumps({"issued": out, "seconds": elapsed, "per_second": len(out) / elapsed}))


def revoke(request_id: str) -> None:
    services = Services(load_config())
    ra = services.ra                       # issues through services.upstream_ca ([ca] backend = "cmp")
    req = ra.submit(SUBMITTER, type="server", kind="revocation", target_request_id=int(request_id),
                    revocation_reason="key_compromise")
    ra.vet(VETTER, req["id"], documents_checked=True)
    print(json.dumps(ra.approve(APPROVER, req["id"])["state"]))


if __name__ == "__main__":
    globals()[sys.argv[1].replace("-", "_")](*sys.argv[2:])
