"""officer TOTP keys sealed under HSM keys (racentre.secretbox: SM4-CBC + SM4-CMAC)

Revision ID: 5c0e7a9d2b41
Revises: 7fdc32124953
Create Date: 2026-12-02 10:00:00

Adds ``officer_account.totp_secret_sealed``, seals every plain base32 ``totp_secret`` into it with the
HSM keys of ``racentre.accounts.totp_box`` and drops the plain column; the downgrade opens them again.
The key manager comes from ``racentre.migrate.upgrade(..., key_manager=...)`` (``racentre db upgrade``
and every service start pass it); it is opened only when there are rows to convert.
"""
from __future__ import annotations

import base64

import sqlalchemy as sa
from alembic import context, op

from racentre.accounts import totp_box, totp_context

revision = '5c0e7a9d2b41'
down_revision = '7fdc32124953'
branch_labels = None
depends_on = None


def _box(count: int):
    provider = context.config.attributes.get("key_manager")
    if provider is None:
        raise RuntimeError(f"{count} officer account(s) hold TOTP keys to (re)seal with the HSM; "
                           "run `racentre db upgrade`, which opens the HSM")
    return totp_box(provider() if callable(provider) else provider)


def upgrade() -> None:
    with op.batch_alter_table('officer_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_secret_sealed', sa.LargeBinary(), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.text("select id, name, totp_secret from officer_account "
                                "where totp_secret is not null")).all()
    if rows:
        box = _box(len(rows))
        for row_id, name, secret in rows:
            text = secret.strip().replace(" ", "").upper()
            key = base64.b32decode(text + "=" * (-len(text) % 8))
            conn.execute(sa.text("update officer_account set totp_secret_sealed = :sealed where id = :id"),
                         {"sealed": box.seal(key, totp_context(name)), "id": row_id})
    with op.batch_alter_table('officer_account', schema=None) as batch_op:
        batch_op.drop_column('totp_secret')


def downgrade() -> None:
    with op.batch_alter_table('officer_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('totp_secret', sa.String(length=64), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.text("select id, name, totp_secret_sealed from officer_account "
                                "where totp_secret_sealed is not null")).all()
    if rows:
        box = _box(len(rows))
        for row_id, name, sealed in rows:
            secret = base64.b32encode(box.open(bytes(sealed), totp_context(name))).decode("ascii").rstrip("=")
            conn.execute(sa.text("update officer_account set totp_secret = :secret where id = :id"),
                         {"secret": secret, "id": row_id})
    with op.batch_alter_table('officer_account', schema=None) as batch_op:
        batch_op.drop_column('totp_secret_sealed')
