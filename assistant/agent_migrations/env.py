"""Alembic environment for the agent-desk tables (own version table)."""

from assistant.agents import VERSION_TABLE, Base
from knowledge.db import run_env

run_env(Base.metadata, VERSION_TABLE)
