"""CmpCA outbox: a lease per row (workers and nodes collecting the queue never send one request twice at
once), the body kind sent (cr or p10cr); RA requests may now wait for the upstream CA (state awaiting_ca);
a one-time CMP secret may be bound to an RA request

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
    with op.batch_alter_table('cmp_secret', schema=None) as batch_op:
        batch_op.add_column(sa.Column('ra_request_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_cmp_secret_ra_request_id'), ['ra_request_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cmp_secret', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cmp_secret_ra_request_id'))
        batch_op.drop_column('ra_request_id')
    with op.batch_alter_table('cmp_outbox', schema=None) as batch_op:
        batch_op.drop_column('kind')
        batch_op.drop_column('claimed_until')
