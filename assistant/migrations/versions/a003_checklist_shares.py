"""checklist shares: read-only copies of a checklist behind an unguessable token

Revision ID: a003
Revises: a002
Create Date: 2026-11-29 21:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'a003'
down_revision: str | None = 'a002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('checklist_shares',
    sa.Column('token', sa.String(length=43), nullable=False),
    sa.Column('snapshot', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('token', name=op.f('pk_checklist_shares'))
    )
    with op.batch_alter_table('checklist_shares', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_checklist_shares_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('checklist_shares', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_checklist_shares_expires_at'))

    op.drop_table('checklist_shares')
