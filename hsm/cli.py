"""`racentre hsm ...`: operator commands over the key manager (info, init-token, keygen, list, sign, pubkey)."""
from __future__ import annotations

import contextlib
import getpass
import hashlib
import json
import sys

import click
from asn1crypto import pem

from hsm import KEY_SPECS, HsmConfig, init_token
from hsm.errors import HsmError
from audit.trail import record
from store.db import transaction
from pkicore.secret import Secret


def _config(ctx: click.Context) -> HsmConfig:
    return ctx.obj["config"].hsm


def _manager(ctx: click.Context):
    return ctx.obj["services"].key_manager


def _operator() -> str:
    """The operator as the OS knows them (the CLI has no console login)."""
    return f"os:{getpass.getuser()}"


@contextlib.contextmanager
def _audited(ctx: click.Context, action: str, label: str, **detail):
    """An operator's key operation and its audit row, committed together (nothing audited if it fails)."""
    with transaction(ctx.obj["services"].db) as session:
        yield
        record(session, actor=_operator(), role="hsm_operator", action=action, target_type="hsm_key",
               target_id=label, **detail)


@click.group("hsm")
def hsm_group():
    """Keys in the HSM (PKCS#11)."""


@hsm_group.command("info")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@click.pass_context
def info(ctx, as_json):
    """Module, token and supported mechanisms."""
    data = _manager(ctx).info().as_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for key in ("module", "token", "manufacturer", "model", "serial", "vendor_profile"):
        click.echo(f"{key:15s} {data[key]}")
    click.echo("mechanisms      " + ", ".join(data["mechanisms"]))


@hsm_group.command("init-token")
@click.option("--slot", type=int, default=None, help="slot id (default: the first free one)")
@click.pass_context
def init_token_cmd(ctx, slot):
    """Initialise a token labelled as configured ([hsm] token) and set its user PIN.

    The PINs come from the configuration (``[softtoken] so_pin_file`` / ``so_pin`` or
    RACENTRE_SOFTTOKEN_SO_PIN[_FILE]; ``[hsm] pin_file`` / ``pin`` or RACENTRE_HSM_PIN[_FILE]), the same
    ones the service logs in with; a PIN not configured is asked for (hidden, twice)."""
    config = _config(ctx)
    so_pin = config.softtoken.so_pin or Secret(click.prompt("security officer PIN", hide_input=True,
                                                             confirmation_prompt=True))
    user_pin = config.pin or Secret(click.prompt("user PIN", hide_input=True, confirmation_prompt=True))
    slot_id = init_token(config, so_pin, user_pin, slot_id=slot)
    sources = ", ".join(f"{what} from the configuration" for what, pin in
                        (("SO PIN", config.softtoken.so_pin), ("user PIN", config.pin)) if pin is not None)
    click.echo(f"initialised token {config.token!r} in slot {slot_id}" + (f" ({sources})" if sources else ""))


@hsm_group.command("keygen")
@click.argument("label")
@click.option("--algorithm", "-a", type=click.Choice(sorted(KEY_SPECS)), default="sm2", show_default=True)
@click.option("--extractable", is_flag=True, help="allow wrapping the key out (never in clear)")
@click.pass_context
def keygen(ctx, label, algorithm, extractable):
    """Generate a key (pair) inside the HSM."""
    km = _manager(ctx)
    spec = KEY_SPECS[algorithm]
    with _audited(ctx, "hsm.key.generate", label, algorithm=algorithm, extractable=extractable):
        info = (km.generate_key_pair(label, algorithm, extractable=extractable) if spec.pair
                else km.generate_secret_key(label, algorithm, extractable=extractable))
    click.echo(json.dumps(info.as_dict()))


@hsm_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_keys(ctx, as_json):
    """Keys on the token."""
    keys = [k.as_dict() for k in _manager(ctx).list_keys()]
    if as_json:
        click.echo(json.dumps(keys, indent=2))
        return
    for k in keys:
        click.echo(f"{k['label']:24s} {k['algorithm']:10s} {k['type']:8s} id={k['id']} "
                   f"{'extractable' if k['extractable'] else 'non-extractable'}")


@hsm_group.command("pubkey")
@click.argument("key")
@click.option("--out", type=click.Path(dir_okay=False), help="write PEM here instead of stdout")
@click.pass_context
def pubkey(ctx, key, out):
    """SubjectPublicKeyInfo (PEM) of a key pair."""
    text = pem.armor("PUBLIC KEY", _manager(ctx).public_key_info(key)).decode()
    if out:
        with open(out, "w", encoding="ascii") as fh:
            fh.write(text)
    else:
        click.echo(text, nl=False)


@hsm_group.command("sign")
@click.argument("key")
@click.option("--in", "infile", type=click.File("rb"), default="-", help="data to sign (default stdin)")
@click.option("--out", "outfile", type=click.File("wb"), default="-", help="DER signature (default stdout)")
@click.option("--mechanism", "-m", default=None, help="logical mechanism, e.g. sm2-sign-sm3, ecdsa-sha256")
@click.option("--user-id", default=None, help="SM2 signer ID (default 1234567812345678)")
@click.pass_context
def sign(ctx, key, infile, outfile, mechanism, user_id):
    """Sign data with a key in the HSM (SM2/ECDSA: DER r,s)."""
    data = infile.read()
    with _audited(ctx, "hsm.key.sign", key, mechanism=mechanism, sha256=hashlib.sha256(data).hexdigest()):
        sig = _manager(ctx).sign(key, data, mechanism, user_id=user_id.encode() if user_id else None)
    outfile.write(sig)
    if outfile is sys.stdout.buffer:
        outfile.flush()


__all__ = ["hsm_group", "HsmError"]
