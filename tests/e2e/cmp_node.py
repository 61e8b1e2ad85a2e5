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


def enrol_dual(key_path: str) -> None:
    """A civil servant's GM/T 0034 dual request at this RA node: the signing CSR made by OpenSSL with the
    subscriber's SM2 key at ``key_path``; the encryption key comes from the CA node's KMC (central key
    generation over CMP). Print the request, both certificates and the envelope the subscriber fetches."""
    from pathlib import Path

    from tests.unit.ra.csr_tools import openssl_csr
    from tests.unit.ra.helpers import id_number
    services = Services(load_config())
    ra = services.ra
    unit, _ = ra.add_unit(SUBMITTER, name="杭州市人社局", uscc=uscc(), legal_representative="李四")
    person, _ = ra.add_civil_servant(SUBMITTER, name="王五", id_number=id_number(), unit_id=unit["id"])
    csr = openssl_csr(Path(key_path).parent, "dual-sign", "/CN=王五", sm2=True, key=Path(key_path))
    req = ra.submit(SUBMITTER, type="civil-servant-dual", subject_id=person["id"], sign_csr=csr)
    ra.vet(VETTER, req["id"], documents_checked=True)
    ra.approve(APPROVER, req["id"])
    done = ra.approve(Actor("officer-d", "ra_officer"), req["id"])
    print(json.dumps({"request": req["id"], "state": done["state"],
                      "sign": ra.certificate(req["id"], "sign").hex() if done["state"] == "issued" else None,
                      "enc": ra.certificate(req["id"], "enc").hex() if done["state"] == "issued" else None,
                      "envelope": ra.key_envelope(req["id"]).hex() if done["state"] == "issued" else None}))


def escrowed(serial: str) -> None:
    """At the CA node: the status of the KMC's archived key for certificate ``serial`` (decimal), and the
    KMC's certificate."""
    from sqlalchemy import select

    from kms.models import EscrowedKey
    services = Services(load_config())
    with services.db() as s:
        row = s.scalar(select(EscrowedKey).where(EscrowedKey.user_cert_no == serial))
        status = None if row is None else [row.status, row.public_key_info.hex()]
    print(json.dumps({"key": status, "kmc_certificate": services.kmc.escrow.certificate.hex()}))


def revoke(request_id: str) -> None:
    services = Services(load_config())
    ra = services.ra                       # issues through services.upstream_ca ([ca] backend = "cmp")
    req = ra.submit(SUBMITTER, type="server", kind="revocation", target_request_id=int(request_id),
                    revocation_reason="key_compromise")
    ra.vet(VETTER, req["id"], documents_checked=True)
    print(json.dumps(ra.approve(APPROVER, req["id"])["state"]))


if __name__ == "__main__":
    globals()[sys.argv[1].replace("-", "_")](*sys.argv[2:])
