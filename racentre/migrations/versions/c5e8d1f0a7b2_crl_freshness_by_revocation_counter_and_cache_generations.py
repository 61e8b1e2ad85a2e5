"""CRL freshness from the database (a revocation counter per CA, the value each CRL covers, the value
each certificate's last status change took), generation counters for per-process caches, and the CA's
record of unanswered ApplyKeyReqs (their serial is reused, not orphaned)

Revision ID: c5e8d1f0a7b2
Revises: a3f9c2d8e6b1
Create Date: 2026-12-07 10:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'c5e8d1f0a7b2'
down_revision = 'a3f9c2d8e6b1'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ca_authority', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revocation_seq', sa.BigInteger(), server_default='0', nullable=False))
    with op.batch_alter_table('ca_issued_cert', schema=None) as batch_op:
        batch_op.add_column(sa.Column('change_seq', sa.BigInteger(), nullable=True))
        batch_op.drop_index('ix_ca_issued_cert_ca_changed')
        batch_op.create_index('ix_ca_issued_cert_ca_change_seq', ['ca_id', 'change_seq'], unique=False)
    # CRLs signed before the counter cover no known value: never fresh, so the next request signs a new one
    with op.batch_alter_table('ca_crl', schema=None) as batch_op:
        batch_op.add_column(sa.Column('covers_seq', sa.BigInteger(), nullable=True))
    op.create_table('ca_escrow_attempt',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('request_id', sa.String(length=128), nullable=False),
    sa.Column('ca_id', sa.Integer(), nullable=False),
    sa.Column('serial', sa.String(length=42), nullable=False),
    sa.Column('subscriber_public_key_info', sa.LargeBinary(), nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ca_id'], ['ca_authority.id'], name=op.f('fk_ca_escrow_attempt_ca_id_ca_authority')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ca_escrow_attempt')),
    sa.UniqueConstraint('request_id', name=op.f('uq_ca_escrow_attempt_request_id'))
    )
    op.create_table('db_generation',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_db_generation'))
    )


def downgrade() -> None:
    op.drop_table('db_generation')
    op.drop_table('ca_escrow_attempt')
    with op.batch_alter_table('ca_crl', schema=None) as batch_op:
        batch_op.drop_column('covers_seq')
    with op.batch_alter_table('ca_issued_cert', schema=None) as batch_op:
        batch_op.drop_index('ix_ca_issued_cert_ca_change_seq')
        batch_op.create_index('ix_ca_issued_cert_ca_changed', ['ca_id', 'changed_at'], unique=False)
        batch_op.drop_column('change_seq')
    with op.batch_alter_table('ca_authority', schema=None) as batch_op:
        batch_op.drop_column('revocation_seq')
