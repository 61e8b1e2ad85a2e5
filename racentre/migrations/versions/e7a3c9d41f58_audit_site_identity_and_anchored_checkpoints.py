"""Audit trail anchored outside the database: the site identity (audit_site) that names the HSM anchor and
is signed into each checkpoint, and per checkpoint its site, RFC 3161 token and the last event id it saw

Revision ID: e7a3c9d41f58
Revises: a7c3e9d1f5b2
Create Date: 2026-12-07 13:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'e7a3c9d41f58'
down_revision = 'a7c3e9d1f5b2'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_site',
    sa.Column('site_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('site_id', name=op.f('pk_audit_site'))
    )
    op.add_column('audit_checkpoint', sa.Column('site_id', sa.String(length=64), nullable=True))
    op.add_column('audit_checkpoint', sa.Column('tsa_token', sa.Text(), nullable=True))
    op.add_column('audit_checkpoint', sa.Column('last_event_id', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('audit_checkpoint') as batch:
        batch.drop_column('last_event_id')
        batch.drop_column('tsa_token')
        batch.drop_column('site_id')
    op.drop_table('audit_site')
