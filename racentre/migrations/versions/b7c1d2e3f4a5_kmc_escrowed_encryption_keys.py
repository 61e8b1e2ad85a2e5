"""KMC-generated encryption keys of GM/T 0034 dual certificates: the CA's key reservations and the
subscriber's envelope on the RA certificate

Revision ID: b7c1d2e3f4a5
Revises: f4dbc3e26aec
Create Date: 2026-12-01 09:20:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'b7c1d2e3f4a5'
down_revision = 'f4dbc3e26aec'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('ca_escrow_reservation',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('request_id', sa.String(length=128), nullable=False),
    sa.Column('ca_id', sa.Integer(), nullable=False),
    sa.Column('profile', sa.String(length=64), nullable=False),
    sa.Column('serial', sa.String(length=42), nullable=False),
    sa.Column('subscriber_public_key_info', sa.LargeBinary(), nullable=False),
    sa.Column('public_key_info', sa.LargeBinary(), nullable=False),
    sa.Column('key_envelope', sa.LargeBinary(), nullable=False),
    sa.Column('not_before', sa.DateTime(timezone=True), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ca_id'], ['ca_authority.id'], name=op.f('fk_ca_escrow_reservation_ca_id_ca_authority')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ca_escrow_reservation')),
    sa.UniqueConstraint('request_id', name=op.f('uq_ca_escrow_reservation_request_id'))
    )
    with op.batch_alter_table('ra_certificate', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_envelope', sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ra_certificate', schema=None) as batch_op:
        batch_op.drop_column('key_envelope')
    op.drop_table('ca_escrow_reservation')
