"""daoban-guide/2: practical answers, yearly windows, numeric eligibility, popularity

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing rows (a version 1 guide base) get empty values: "the guide does not say".
    with op.batch_alter_table('kb_entries') as b:
        b.add_column(sa.Column('answers', sa.JSON(), nullable=False, server_default='{}'))
        b.add_column(sa.Column('windows', sa.JSON(), nullable=False, server_default='[]'))
        b.add_column(sa.Column('eligibility', sa.JSON(), nullable=False, server_default='[]'))
        b.add_column(sa.Column('popularity', sa.Integer(), nullable=False, server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('kb_entries') as b:
        b.drop_column('popularity')
        b.drop_column('eligibility')
        b.drop_column('windows')
        b.drop_column('answers')
