"""conversation capability: the sha256 of the token that opens a conversation

Revision ID: a002
Revises: a001
Create Date: 2026-11-29 20:40:00

Conversations created before this revision get no token: nobody can open them by id
alone any more (the REST API answers them only to the server's API token).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'a002'
down_revision: str | None = 'a001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('token_hash', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_column('token_hash')
