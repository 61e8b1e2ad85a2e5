"""CA pre-produced OCSP responses (RFC 5019), shared by every node and keyed by the status they state

Revision ID: c5e8a1f0b2d4
Revises: d2b7e9a41c60
Create Date: 2026-12-07 10:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'c5e8a1f0b2d4'
down_revision = 'd2b7e9a41c60'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ca_ocsp_response',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ca_id', sa.Integer(), nullable=False),
    sa.Column('serial', sa.String(length=42), nullable=False),
    sa.Column('digest', sa.String(length=16), nullable=False),
    sa.Column('cert_id', sa.LargeBinary(), nullable=False),
    sa.Column('status_key', sa.String(length=128), nullable=False),
    sa.Column('refresh_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('der', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['ca_id'], ['ca_authority.id'], name=op.f('fk_ca_ocsp_response_ca_id_ca_authority')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ca_ocsp_response')),
    sa.UniqueConstraint('ca_id', 'serial', 'digest', name='uq_ca_ocsp_response_ca_serial_digest')
    )


def downgrade() -> None:
    op.drop_table('ca_ocsp_response')
