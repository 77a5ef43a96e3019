"""Alembic environment for the guide-base tables (own version table)."""

from alembic import context
from sqlalchemy import Engine

from knowledge.db import VERSION_TABLE
from knowledge.models import Base

engine: Engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()
