"""Alembic environment for the conversation tables (own version table)."""

from alembic import context
from sqlalchemy import Engine

from assistant.store import VERSION_TABLE, Base

engine: Engine = context.config.attributes["engine"]


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    # Several packages own tables in one database: compare only our own.
    return type_ != "table" or name in Base.metadata.tables


with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        render_as_batch=connection.dialect.name == "sqlite",
        include_name=include_name,
    )
    context.run_migrations()
