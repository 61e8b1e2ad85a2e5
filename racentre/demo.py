"""`racentre demo --out DIR`: drives each capability through its real path and writes its artefacts.

HSM (issue 2): an SM2 key pair generated in the token, a message, and the token's SM2-with-SM3
signature over it (DER r,s; default user ID), self-checked with the software verifier before writing.
"""
from __future__ import annotations

import json
import secrets
from pathlib import Path

import click
from asn1crypto import pem

from hsm import KeyManager, KeyNotFound, open_key_manager
from pkicore import algorithm, verify_signature

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


@click.command("demo")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="artefact directory")
@click.pass_context
def demo_command(ctx, out_dir):
    """Run the demo flows and write their artefacts into DIR."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    km = open_key_manager(ctx.obj["config"].hsm)
    try:
        written = demo_hsm(km, out)
        (out / "manifest.json").write_text(json.dumps({"artefacts": written}, indent=2))
    finally:
        km.close()
    for name in written:
        click.echo(f"wrote {out / name}")
