"""CMP (RFC 9483): the server's one-time MAC secrets, transactions and seen nonces; the CmpCA outbox

Revision ID: a7c3e9d1f5b2
Revises: c5e8a1f0b2d4
Create Date: 2026-12-07 13:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'a7c3e9d1f5b2'
down_revision = 'c5e8a1f0b2d4'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cmp_secret',
    sa.Column('reference', sa.String(length=64), nullable=False),
    sa.Column('sealed', sa.LargeBinary(), nullable=False),
    sa.Column('profile', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.JSON(), nullable=False),
    sa.Column('dns_names', sa.JSON(), nullable=False),
    sa.Column('ip_addresses', sa.JSON(), nullable=False),
    sa.Column('identity', sa.JSON(), nullable=False),
    sa.Column('issued_by', sa.String(length=128), nullable=False),
    sa.Column('approvals_required', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('transaction_id', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('reference', name=op.f('pk_cmp_secret'))
    )
    op.create_table('cmp_transaction',
    sa.Column('transaction_id', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('sender', sa.Text(), nullable=False),
    sa.Column('mode', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('secret_reference', sa.String(length=64), nullable=True),
    sa.Column('cert_req_id', sa.Integer(), nullable=False),
    sa.Column('request', sa.JSON(), nullable=True),
    sa.Column('approvals', sa.JSON(), nullable=False),
    sa.Column('approvals_required', sa.Integer(), nullable=False),
    sa.Column('ca', sa.String(length=64), nullable=True),
    sa.Column('serial', sa.String(length=42), nullable=True),
    sa.Column('certificate', sa.LargeBinary(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('transaction_id', name=op.f('pk_cmp_transaction'))
    )
    op.create_table('cmp_nonce',
    sa.Column('nonce', sa.String(length=128), nullable=False),
    sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('nonce', name=op.f('pk_cmp_nonce'))
    )


    op.create_table('cmp_outbox',
    sa.Column('request_id', sa.String(length=128), nullable=False),
    sa.Column('transaction_id', sa.String(length=128), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('request', sa.JSON(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('certificate', sa.LargeBinary(), nullable=True),
    sa.Column('chain', sa.JSON(), nullable=False),
    sa.Column('serial', sa.String(length=42), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revocation_reason', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('request_id', name=op.f('pk_cmp_outbox')),
    sa.UniqueConstraint('transaction_id', name=op.f('uq_cmp_outbox_transaction_id'))
    )


def downgrade() -> None:
    op.drop_table('cmp_outbox')
    op.drop_table('cmp_nonce')
    op.drop_table('cmp_transaction')
    op.drop_table('cmp_secret')
