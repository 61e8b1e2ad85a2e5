"""API tokens name the officer (person) they act for, so four-eyes counts persons, not credentials

Revision ID: d2b7e9a41c60
Revises: c5e8d1f0a7b2
Create Date: 2026-12-07 10:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'd2b7e9a41c60'
down_revision = 'c5e8d1f0a7b2'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('officer', sa.String(length=128), nullable=True))
        batch_op.create_index(batch_op.f('ix_api_token_officer'), ['officer'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_token_officer'))
        batch_op.drop_column('officer')
