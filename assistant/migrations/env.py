"""Alembic environment for the conversation tables (own version table)."""

from assistant.store import VERSION_TABLE, Base
from knowledge.db import run_env

run_env(Base.metadata, VERSION_TABLE)
