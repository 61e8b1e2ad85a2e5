"""CmpCA outbox: the envelope of a key the upstream CA generated (central key generation, a dual pair's
encryption key from the upstream CA's KMC)

Revision ID: d5a2f7c91e34
Revises: c9e4a7b3d2f6
Create Date: 2026-12-07 17:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'd5a2f7c91e34'
down_revision = 'c9e4a7b3d2f6'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cmp_outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_envelope', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('cmp_outbox', schema=None) as batch_op:
        batch_op.drop_column('key_envelope')
