"""doorplate tables

Revision ID: d001
Revises:
Create Date: 2026-12-01 00:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'd001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('doorplate_keys',
    sa.Column('kid', sa.String(length=16), nullable=False),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('kid', name=op.f('pk_doorplate_keys'))
    )
    op.create_table('doorplate_revocations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('place_id', sa.String(length=80), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_doorplate_revocations'))
    )
    with op.batch_alter_table('doorplate_revocations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_doorplate_revocations_place_id'), ['place_id'], unique=False)
    op.create_table('doorplate_hits',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('place_id', sa.String(length=80), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('entry_id', sa.String(length=80), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_doorplate_hits'))
    )
    with op.batch_alter_table('doorplate_hits', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_doorplate_hits_place_id'), ['place_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_doorplate_hits_day'), ['day'], unique=False)


def downgrade() -> None:
    op.drop_table('doorplate_hits')
    op.drop_table('doorplate_revocations')
    op.drop_table('doorplate_keys')
