"""Demo artefacts for `racentre demo`: an SM2 and an ECDSA time-stamp, each query and reply going through
the real HTTP view (the Flask test client of the TSA blueprint over the configured HSM)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from pathlib import Path

from asn1crypto import pem, tsp
from flask import Flask

from timestamp import views
from timestamp.services import TsaService, standalone_issuer, write_certificate_files
from timestamp.verify import verify_token

DEMO_ECDSA_UNIT = "ecdsa"
# OpenSSL's example "tsa_policy1": put in demo tokens only, when [tsa] policy is not set
DEMO_POLICY = "1.2.3.4.1"


def _query(data: bytes, digest: str) -> bytes:
    return tsp.TimeStampReq({"version": "v1", "message_imprint": {
        "hash_algorithm": {"algorithm": digest}, "hashed_message": hashlib.new(digest, data).digest()},
        "nonce": secrets.randbits(63), "cert_req": True}).dump()


def demo_config(config):
    """The configured [tsa] plus an ECDSA unit when none is configured (and the demo policy when no
    policy is)."""
    if not config.policy:
        config = dataclasses.replace(config, policy=DEMO_POLICY)
    units = config.unit_configs()
    if any(u.algorithm.startswith("ecdsa") for u in units.values()):
        return config, next(n for n, u in units.items() if u.algorithm.startswith("ecdsa"))
    extra = f"{DEMO_ECDSA_UNIT}=tsa-ecdsa:ecdsa-sha256"
    return dataclasses.replace(config, units=f"{config.units},{extra}" if config.units else extra), DEMO_ECDSA_UNIT


def write_demo_artefacts(services, out_dir) -> list[str]:
    """tsa.pem, tsa-ca.pem, tsa-data.bin, tsq.der, tsr.der (SM2/SM3) and ecdsa/{tsa.pem,tsq.der,tsr.der};
    returns the names written (relative to ``out_dir``)."""
    out = Path(out_dir)
    (out / "ecdsa").mkdir(parents=True, exist_ok=True)
    config, ecdsa_unit = demo_config(services.config.tsa)
    km = services.key_manager
    write_certificate_files(config, km, standalone_issuer(km, config))   # a TSA outside a site
    service = TsaService(config, km)
    app = Flask("racentre-tsa-demo")
    views.install(app, service)
    client = app.test_client()
    data = "RA 中心时间戳演示 ".encode() + secrets.token_hex(16).encode()
    written = []
    for sub, unit, digest in (("", None, "sm3"), ("ecdsa/", ecdsa_unit, "sha256")):
        tsq = _query(data, digest)
        response = client.post(f"/tsa/{unit}" if unit else "/tsa", data=tsq,
                               headers={"Content-Type": "application/timestamp-query"})
        if response.status_code != 200 or response.headers["Content-Type"] != views.REPLY_TYPE:
            raise RuntimeError(f"TSA demo: HTTP {response.status_code} from /tsa/{unit or ''}")
        tsr = response.data
        u = service.authority.unit(unit)
        result = verify_token(tsr, data=data, trust=u.chain)
        if not result.ok:
            raise RuntimeError(f"TSA demo: our own token does not verify: {result.reasons}")
        (out / f"{sub}tsq.der").write_bytes(tsq)
        (out / f"{sub}tsr.der").write_bytes(tsr)
        (out / f"{sub}tsa.pem").write_bytes(pem.armor("CERTIFICATE", u.certificate))
        (out / f"{sub}tsa-ca.pem").write_bytes(b"".join(pem.armor("CERTIFICATE", c) for c in u.chain))
        written += [f"{sub}tsq.der", f"{sub}tsr.der", f"{sub}tsa.pem", f"{sub}tsa-ca.pem"]
    (out / "tsa-data.bin").write_bytes(data)
    clock = service.authority.clock.report()
    clock["note"] = ("clock synchronisation is NOT required here ([tsa] require_sync = false, set by the demo's "
                     "configuration: a demo machine's clock is often unsynchronised); a production TSA keeps the "
                     "default require_sync = true" if not clock["require_sync"] else "clock synchronisation is required")
    (out / "tsa-clock.json").write_text(json.dumps(clock, indent=2))
    return [*written, "tsa-data.bin", "tsa-clock.json"]
