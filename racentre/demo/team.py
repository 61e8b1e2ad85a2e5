"""The demo's RA team (the first hour of a new RA team): one officer account per role and enough people for every
four-eyes rule of ``ra.workflow`` (submitter ≠ vetter ≠ the two approvers) and ``kms.recovery`` (M = 2 of
N = 3 key-recovery officers, the requester not counting), each with a console login (password + TOTP)
and an API token acting for the same officer, so console, CLI (``--as NAME``) and REST are one person.

Only accounts created here (``created_by = DEMO_ACTOR``) may have their current one-time code shown by
``racentre console user totp NAME`` (``current_code``): a convenience for a demo, refused for every
account a site creates.
"""
from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.trail import record
from pkicore.errors import ErrorCode
from racentre import accounts, totp
from access.auth import ApiToken, create_token
from racentre.secretbox import SecretBox

DEMO_ACTOR = "demo-team"


@dataclass(frozen=True)
class Member:
    name: str
    display_name: str
    roles: tuple[str, ...]
    duty: str           # what this person does in the day (Chinese, shown by the demo)


TEAM = (
    Member("zhao", "赵敏", ("ra_operator",), "受理员：登记单位、人员和服务器，受理（提交）证书申请、吊销申请"),
    Member("qian", "钱进", ("ra_operator",), "审核员：核验身份证件后审核（不能审核自己受理的申请）"),
    Member("sun", "孙立", ("ra_officer",), "批准人一：批准、拒绝、退回补正、冻结/解冻"),
    Member("wang", "王磊", ("ra_officer",), "批准人二：公务员和单位证书须两名批准人（双人复核）"),
    Member("zhou", "周强", ("ra_admin",), "管理员：账户、作业（CRL、花名册导入）、发起密钥恢复"),
    Member("wu", "吴芳", ("auditor",), "审计员：审计日志、导出与统计"),
    Member("zheng", "郑伟", ("key_recovery_officer",), "密钥恢复员一（3 人中 2 人批准）"),
    Member("feng", "冯静", ("key_recovery_officer",), "密钥恢复员二"),
    Member("chen", "陈晨", ("key_recovery_officer",), "密钥恢复员三"),
)


@dataclass(frozen=True)
class Credentials:
    member: Member
    totp_secret: str        # base32, for an authenticator app
    otpauth_uri: str
    api_token: str


def new_password() -> str:
    """One generated password for the demo team (strong enough for ``racentre.passwords``)."""
    return "Demo-" + secrets.token_urlsafe(12)


def create_team(session: Session, box: SecretBox, password: str) -> list[Credentials]:
    """Create (or, run again, reset) every member: console account with ``password`` and a fresh TOTP key,
    and an API token named after the officer. Audited as account and token changes by ``DEMO_ACTOR``."""
    out = []
    for member in TEAM:
        row = session.scalar(select(accounts.OfficerAccount).where(accounts.OfficerAccount.name == member.name))
        if row is None:
            _, secret = accounts.add_account(session, name=member.name, roles=member.roles, actor=DEMO_ACTOR,
                                             box=box, display_name=member.display_name, password=password)
        else:
            if row.created_by != DEMO_ACTOR:
                raise accounts.AccountError(f"officer account {member.name!r} exists and is not a demo account",
                                            code=ErrorCode.CONFLICT)
            row.disabled = False
            accounts.set_password(session, member.name, password, actor=DEMO_ACTOR, box=box)
            secret = accounts.reset_totp(session, member.name, actor=DEMO_ACTOR, box=box)
        old = session.scalar(select(ApiToken).where(ApiToken.name == member.name))
        if old is not None:
            session.delete(old)
            session.flush()
        token = create_token(session, member.name, list(member.roles))
        record(session, actor=DEMO_ACTOR, role="ra_admin", action="auth.token.create", target_type="api_token",
               target_id=member.name, officer=member.name, roles=sorted(member.roles), expires_at=None)
        out.append(Credentials(member, secret, totp.provisioning_uri(secret, member.name), token))
    return out


def current_code(session: Session, name: str, box: SecretBox, *, actor: str, now: dt.datetime | None = None) -> str:
    """The one-time code of demo account ``name`` now; refused for any account the demo did not create."""
    row = session.scalar(select(accounts.OfficerAccount).where(accounts.OfficerAccount.name == name))
    if row is None:
        raise accounts.AccountError(f"no officer account {name!r}", code=ErrorCode.NOT_FOUND)
    if row.created_by != DEMO_ACTOR or row.totp_secret_sealed is None:
        raise accounts.AccountError(f"{name!r} is not a demo account: its one-time code is only in its owner's "
                                    "authenticator app", code=ErrorCode.FORBIDDEN)
    key = box.open(row.totp_secret_sealed, accounts.totp_context(name))
    record(session, actor=actor, role="ra_admin", action="console.account.show_demo_code", target_type=accounts.TARGET,
           target_id=name)
    return totp.totp(key, (now or dt.datetime.now(dt.timezone.utc)).timestamp())
