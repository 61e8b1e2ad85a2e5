"""console login failures per client address (racentre.console.throttle)

Revision ID: e1d4b6a8c0f3
Revises: 5c0e7a9d2b41
Create Date: 2026-12-02 10:30:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'e1d4b6a8c0f3'
down_revision = '5c0e7a9d2b41'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('console_login_failure',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('remote', sa.String(length=64), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_console_login_failure'))
    )
    with op.batch_alter_table('console_login_failure', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_console_login_failure_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_console_login_failure_remote'), ['remote'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('console_login_failure', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_console_login_failure_remote'))
        batch_op.drop_index(batch_op.f('ix_console_login_failure_at'))
    op.drop_table('console_login_failure')
