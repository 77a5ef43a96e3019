"""Alembic environment for the guide-base tables (own version table)."""

from knowledge.db import VERSION_TABLE, run_env
from knowledge.models import Base

run_env(Base.metadata, VERSION_TABLE)
