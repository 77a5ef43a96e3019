"""Alembic environment for the doorplate tables (own version table)."""

from doorplate.store import VERSION_TABLE, Base
from knowledge.db import run_env

run_env(Base.metadata, VERSION_TABLE)
