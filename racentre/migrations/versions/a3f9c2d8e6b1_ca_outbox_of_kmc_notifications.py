"""CA outbox of GM/T 0014 notifications owed to the KMC (RevokeKeyReq), retried until answered

Revision ID: a3f9c2d8e6b1
Revises: e1d4b6a8c0f3
Create Date: 2026-12-01 14:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'a3f9c2d8e6b1'
down_revision = 'e1d4b6a8c0f3'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ca_kmc_notification',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ca_id', sa.Integer(), nullable=False),
    sa.Column('serial', sa.String(length=42), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=200), nullable=True),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('done_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.ForeignKeyConstraint(['ca_id'], ['ca_authority.id'], name=op.f('fk_ca_kmc_notification_ca_id_ca_authority')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ca_kmc_notification')),
    sa.UniqueConstraint('ca_id', 'serial', 'kind', name='uq_ca_kmc_notification_ca_serial_kind')
    )
    with op.batch_alter_table('ca_kmc_notification', schema=None) as batch_op:
        batch_op.create_index('ix_ca_kmc_notification_next_attempt_at', ['next_attempt_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ca_kmc_notification', schema=None) as batch_op:
        batch_op.drop_index('ix_ca_kmc_notification_next_attempt_at')
    op.drop_table('ca_kmc_notification')
