"""Trust services: application keys, login challenges, evidence records

Revision ID: b7c3e9d2a1f5
Revises: e7a3c9d41f58
Create Date: 2026-12-07 13:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'b7c3e9d2a1f5'
down_revision = 'e7a3c9d41f58'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('trust_key',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('application', sa.String(length=128), nullable=False),
    sa.Column('label', sa.String(length=128), nullable=False),
    sa.Column('purpose', sa.String(length=8), nullable=False),
    sa.Column('algorithm', sa.String(length=32), nullable=False),
    sa.Column('profile', sa.String(length=32), nullable=False),
    sa.Column('ca', sa.String(length=64), nullable=False),
    sa.Column('serial', sa.String(length=42), nullable=False),
    sa.Column('certificate', sa.LargeBinary(), nullable=False),
    sa.Column('chain', sa.LargeBinary(), nullable=False),
    sa.Column('not_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trust_key')),
    sa.UniqueConstraint('label', name=op.f('uq_trust_key_label'))
    )
    op.create_index(op.f('ix_trust_key_application'), 'trust_key', ['application'], unique=False)
    op.create_table('trust_challenge',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('application', sa.String(length=128), nullable=False),
    sa.Column('value', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=32), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trust_challenge'))
    )
    op.create_index(op.f('ix_trust_challenge_application'), 'trust_challenge', ['application'], unique=False)
    op.create_index(op.f('ix_trust_challenge_expires_at'), 'trust_challenge', ['expires_at'], unique=False)
    op.create_table('trust_evidence',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('application', sa.String(length=128), nullable=False),
    sa.Column('decision', sa.String(length=32), nullable=False),
    sa.Column('data_digest', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('der', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trust_evidence'))
    )
    op.create_index(op.f('ix_trust_evidence_kind'), 'trust_evidence', ['kind'], unique=False)
    op.create_index(op.f('ix_trust_evidence_application'), 'trust_evidence', ['application'], unique=False)
    op.create_index(op.f('ix_trust_evidence_data_digest'), 'trust_evidence', ['data_digest'], unique=False)
    op.create_index(op.f('ix_trust_evidence_created_at'), 'trust_evidence', ['created_at'], unique=False)


def downgrade() -> None:
    op.drop_table('trust_evidence')
    op.drop_table('trust_challenge')
    op.drop_table('trust_key')
