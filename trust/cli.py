"""``racentre trust ...``: application keys, signing, verification, certificate information, envelopes
and evidence from the shell (the same TrustService as ``racentre serve``, given by the ``racentre`` CLI as
``ctx.obj["trust_service"]``). Verification exits 0 (TOTAL_PASSED), 1 (TOTAL_FAILED), 3 (INDETERMINATE)."""
from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import click

from trust.evidence import read_record

EXIT = {"TOTAL_PASSED": 0, "TOTAL_FAILED": 1, "INDETERMINATE": 3}
CLI_ROLE = "cli"


def _service(ctx):
    return ctx.obj["trust_service"]()


def _echo_json(value) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2, default=str))


@click.group("trust")
def trust_group():
    """Trust services for applications: 签名验签, 证书登录, 数字信封, 证据 (GM/T 0029, GM/T 0020 SOF_*)."""


@trust_group.group("key")
def key_group():
    """Applications' keys in the HSM, certified by our CA."""


@key_group.command("create")
@click.argument("application")
@click.option("--purpose", type=click.Choice(["sign", "encrypt"]), default="sign", show_default=True)
@click.option("--algorithm", "key_algorithm", default="sm2", show_default=True,
              type=click.Choice(["sm2", "ec-p256", "ec-p384", "rsa-2048", "rsa-3072"]))
@click.option("--profile", type=click.Choice(["server", "unit", "app-encryption"]), default=None,
              help="default: server (sign), app-encryption (encrypt)")
@click.option("--cn", "common_name", required=True, help="the certificate's common name")
@click.option("--org", "organization", default=None)
@click.option("--dns", "dns_names", multiple=True, help="DNS name (server profile: at least one)")
@click.option("--uscc", default=None, help="统一社会信用代码 (unit profile)")
@click.option("--actor", default="cli")
@click.pass_context
def key_create(ctx, application, purpose, key_algorithm, profile, common_name, organization, dns_names, uscc, actor):
    """Generate a key for APPLICATION (its API principal) in the HSM and certify it."""
    key = _service(ctx).keys.create(application, purpose=purpose, key_algorithm=key_algorithm, profile=profile,
                                    common_name=common_name, organization=organization, dns_names=dns_names,
                                    uscc=uscc, actor=actor, role="ra_admin")
    click.echo(f"已创建密钥 {key.id}: {key.application} {key.purpose} {key.key_algorithm} 证书序列号 {key.serial} "
               f"(有效期至 {key.not_after:%Y-%m-%d})")


@key_group.command("list")
@click.option("--app", "application", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def key_list(ctx, application, as_json):
    keys = _service(ctx).keys.list(application)
    if as_json:
        _echo_json([k.as_dict() for k in keys])
        return
    for k in keys:
        click.echo(f"{k.id}\t{k.application}\t{k.purpose}\t{k.key_algorithm}\t{k.serial}\t"
                   f"{'停用' if k.disabled else '可用'}")


@key_group.command("certificate")
@click.argument("key_id", type=int)
@click.option("--out", type=click.Path(dir_okay=False), required=True)
@click.pass_context
def key_certificate(ctx, key_id, out):
    Path(out).write_bytes(_service(ctx).keys.get(key_id).certificate)


@trust_group.command("sign")
@click.option("--app", "application", required=True, help="the application whose key signs")
@click.option("--in", "infile", type=click.File("rb"), required=True)
@click.option("--out", type=click.Path(dir_okay=False), required=True)
@click.option("--raw", is_flag=True, help="a raw signature (SOF_SignData) instead of CMS SignedData")
@click.option("--detached", is_flag=True)
@click.option("--gm", is_flag=True, help="GM/T 0010 content types")
@click.option("--signing-time", is_flag=True)
@click.option("--timestamp", is_flag=True, help="embed a signature timestamp from our TSA")
@click.option("--user-id", default=None, help="raw SM2: the user ID (default 1234567812345678)")
@click.option("--key-id", type=int, default=None)
@click.pass_context
def sign(ctx, application, infile, out, raw, detached, gm, signing_time, timestamp, user_id, key_id):
    result = _service(ctx).sign(application, infile.read(), role=CLI_ROLE, form="raw" if raw else "cms",
                                key_id=key_id, detached=detached, gm=gm, signing_time=signing_time,
                                timestamp=timestamp, user_id=user_id.encode() if user_id else None)
    Path(out).write_bytes(base64.b64decode(result["signature"]))
    click.echo(f"已签名: 密钥 {result['key_id']} ({result['algorithm']}), 证书序列号 {result['serial']}")


@trust_group.command("verify")
@click.option("--in", "infile", type=click.File("rb"), required=True, help="the signature (CMS or raw DER)")
@click.option("--data", type=click.File("rb"), default=None, help="raw: the data; CMS: detached content")
@click.option("--cert", type=click.File("rb"), default=None, help="raw: the signer certificate")
@click.option("--raw", is_flag=True)
@click.option("--user-id", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def verify(ctx, infile, data, cert, raw, user_id, as_json):
    report = _service(ctx).verify("cli", role=CLI_ROLE, signature=infile.read(), data=data.read() if data else None,
                                  certificate=cert.read() if cert else None, form="raw" if raw else "cms",
                                  user_id=user_id.encode() if user_id else None)
    if as_json:
        _echo_json(report)
    else:
        click.echo(f"{report['indication']}" + (f" / {report['sub_indication']}" if report["sub_indication"] else "")
                   + f" 证书验证码 {report['certificate_code']}: {report['reason']}")
        for s in report["signers"]:
            subject = (s.get("signer") or {}).get("subject", "?")
            click.echo(f"  签名者 {s['index']}: {subject} — {s['indication']} {s['sub_indication'] or ''} "
                       f"(证书 {s['certificate_code']})")
    sys.exit(EXIT[report["indication"]])


@trust_group.command("validate")
@click.argument("certificate", type=click.File("rb"))
@click.pass_context
def validate(ctx, certificate):
    """SOF_ValidateCert: exit 0 when the code is 1, else 1."""
    verdict = _service(ctx).validate_certificate(certificate.read())
    click.echo(f"{verdict['code']} {verdict['meaning']}: {verdict['indication']} "
               f"{verdict['sub_indication'] or ''} — {verdict['reason']}")
    sys.exit(0 if verdict["code"] == 1 else 1)


@trust_group.command("cert-info")
@click.argument("certificate", type=click.File("rb"))
@click.pass_context
def cert_info(ctx, certificate):
    """SOF_GetCertInfo as JSON."""
    _echo_json(_service(ctx).certificate_info(certificate.read()))


@trust_group.command("encrypt")
@click.option("--app", "application", default="cli")
@click.option("--to", "recipients", type=click.File("rb"), multiple=True, required=True,
              help="a recipient's encryption certificate (repeatable)")
@click.option("--in", "infile", type=click.File("rb"), required=True)
@click.option("--out", type=click.Path(dir_okay=False), required=True)
@click.pass_context
def encrypt(ctx, application, recipients, infile, out):
    der = _service(ctx).encrypt(application, infile.read(), [r.read() for r in recipients], role=CLI_ROLE)
    Path(out).write_bytes(der)
    click.echo(f"数字信封已写入 {out}")


@trust_group.command("decrypt")
@click.option("--app", "application", required=True)
@click.option("--in", "infile", type=click.File("rb"), required=True)
@click.option("--out", type=click.Path(dir_okay=False), required=True)
@click.option("--key-id", type=int, default=None)
@click.pass_context
def decrypt(ctx, application, infile, out, key_id):
    Path(out).write_bytes(_service(ctx).decrypt(application, infile.read(), role=CLI_ROLE, key_id=key_id))
    click.echo(f"已解密到 {out}")


@trust_group.command("evidence")
@click.argument("record_id")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="write the DER record here")
@click.pass_context
def evidence(ctx, record_id, out):
    der = _service(ctx).evidence_der(record_id)
    if out:
        Path(out).write_bytes(der)
    _echo_json(read_record(der))
