"""CmpCA outbox: a lease per row (workers and nodes collecting the queue never send one request twice at
once), the body kind sent (cr or p10cr); RA requests may now wait for the upstream CA (state awaiting_ca)

Revision ID: c9e4a7b3d2f6
Revises: b7c3e9d2a1f5
Create Date: 2026-12-07 16:10:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'c9e4a7b3d2f6'
down_revision = 'b7c3e9d2a1f5'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cmp_outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('kind', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('cmp_outbox', schema=None) as batch_op:
        batch_op.drop_column('kind')
        batch_op.drop_column('claimed_until')
