"""The demo's one entry point, ``run_demo`` (behind ``racentre demo --out DIR [--url URL]``, which
scripts/demo.sh runs against the served app: ``racentre.demo.cli``), in the order of README "Demo artefacts": the HSM, then
every flow through the REST API (``racentre.demo.flows``), CMP, the team's day in the console
(``racentre.demo.walk``: headless Chromium, screenshots) and the audit export,
and ``manifest.json`` listing what was written."""
from __future__ import annotations

import json
import secrets
from pathlib import Path

import click
from asn1crypto import pem

from hsm import KeyManager, KeyNotFound
from pkicore import algorithm, verify_signature
from racentre.app import build_app
from racentre.demo.audit import write_audit_export
from racentre.demo.client import Client
from racentre.demo.cmp import demo_cmp
from racentre.demo.flows import Demo, demo_id_number, demo_uscc
from racentre.setup_cli import setup_site

try:     # the console day needs selenium and Debian's chromium (installed by scripts/setup.sh with the [test] extra)
    from racentre.demo import walk
except ImportError:       # pragma: no cover - a production install without the test extra
    walk = None

DEMO_SM2_KEY = "demo-sm2"


def demo_hsm(km: KeyManager, out: Path) -> list[str]:
    try:
        info = km.find_key(DEMO_SM2_KEY)
    except KeyNotFound:
        info = km.generate_key_pair(DEMO_SM2_KEY, "sm2")
    message = "RA 中心数字认证系统 demo message ".encode() + secrets.token_hex(16).encode()
    signature = km.sign(DEMO_SM2_KEY, message)
    if not verify_signature(info.public_key_info, algorithm("sm2-sm3"), message, signature):
        raise click.ClickException("the HSM's SM2 signature did not verify; refusing to write it")
    (out / "hsm-sm2-pub.pem").write_bytes(pem.armor("PUBLIC KEY", info.public_key_info))
    (out / "hsm-sm2-msg.bin").write_bytes(message)
    (out / "hsm-sm2-sig.der").write_bytes(signature)
    return ["hsm-sm2-pub.pem", "hsm-sm2-msg.bin", "hsm-sm2-sig.der"]


def run_demo(services, out: Path, url: str | None = None) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    setup_site(services, kinds=("sm2", "ecdsa"))      # idempotent; scripts/demo.sh ran `racentre setup` already
    written = demo_hsm(services.key_manager, out)
    client = Client(url=url) if url else Client(app=build_app(services))
    demo = Demo(services, client, out)
    sm2 = demo.hierarchy("sm2")
    ecdsa = demo.hierarchy("ecdsa")
    demo.key_escrow(sm2)
    demo.timestamps()
    demo.seals(sm2, ecdsa)
    demo.trust()
    written += demo.written
    written += demo_cmp(services, client.app_client.application if client.app_client else None, out, url)
    missing = "selenium (the [test] extra) is not installed" if walk is None else walk.browser_missing()
    if missing:
        click.echo(f"demo: NO console screenshots (the team's day in Chromium was skipped): {missing}", err=True)
    else:     # the demo team's day in the console, in headless Chromium (racentre.demo.walk)
        try:
            written += walk.console_day(services, out, url, tag=demo.tag, id_number=demo_id_number(), uscc=demo_uscc(),
                                        recipient_pem=(out / "recovery-recipient.pem").read_text(),
                                        seal_id=demo.seal_id, unsealed_pdf=out / "unsealed.pdf")
        except walk.WalkError as exc:     # said loudly; the rest of the demo (and its login) still follows
            click.echo(f"demo: the team's day in the console FAILED: {exc}", err=True)
    written += write_audit_export(services, out)      # the auditor's signed export of the whole trail
    (out / "manifest.json").write_text(json.dumps({"artefacts": written}, indent=2))
    return written
