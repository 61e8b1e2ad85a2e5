"""RA requests: the officer's free-text reason for a suspension (冻结), release (解冻) or revocation

Revision ID: b8d2e6f1a9c3
Revises: d5a2f7c91e34
Create Date: 2026-12-07 19:40:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'b8d2e6f1a9c3'
down_revision = 'd5a2f7c91e34'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ra_request', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status_reason', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ra_request', schema=None) as batch_op:
        batch_op.drop_column('status_reason')
