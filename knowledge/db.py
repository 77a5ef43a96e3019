"""Engine creation and schema migration (Alembic) for the guide-base tables."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_knowledge"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite files get their folder, WAL and foreign keys."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
        # hide_parameters: a database error must not write what citizens typed to the log.
        engine = create_engine(url, connect_args={"check_same_thread": False},
                               hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            if db and db != ":memory:":
                _wal(cur)
                # WAL + NORMAL: durable across application crashes, one fsync per checkpoint
                # instead of per commit (a chat message is several small commits).
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA busy_timeout=5000")
            cur.close()

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_pre_ping=True, hide_parameters=True)


def _wal(cur: Any) -> None:
    """Switch the file to WAL. A new file is converted under an exclusive lock, and when
    several processes open it at once SQLite answers "database is locked" at once rather
    than wait (waiting could deadlock): retry for a while."""
    deadline = time.monotonic() + 10
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def alembic_config(engine: Engine, script_location: Path = MIGRATIONS) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine, script_location: Path = MIGRATIONS) -> None:
    """Bring a package's tables (the guide base by default) to the newest revision."""
    command.upgrade(alembic_config(engine, script_location), "head")


def run_env(metadata: MetaData, version_table: str) -> None:
    """The body of a package's Alembic ``env.py``: several packages own tables in one
    database, each with its own version table, and each compares only its own tables."""
    from alembic import context

    def include_name(name: str | None, type_: str, parent_names: object) -> bool:
        return type_ != "table" or name in metadata.tables

    engine: Engine = context.config.attributes["engine"]
    with engine.begin() as connection:
        serialise(connection, version_table)
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table=version_table,
            render_as_batch=connection.dialect.name == "sqlite",
            include_name=include_name,
        )
        context.run_migrations()


def lock_key(name: str) -> int:
    """A fixed advisory-lock key for ``name``, the same in every process (``hash()`` is
    salted per process), as the signed 64-bit integer ``pg_advisory_xact_lock`` takes."""
    digest = hashlib.sha256(f"daoban:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def serialise(connection: Connection, name: str) -> None:
    """Hold a database-wide lock called ``name`` until ``connection``'s transaction ends;
    call it first in the transaction. Server processes starting together on an empty
    database would otherwise race to create the same tables and rows; with the lock the
    later ones wait and then find the work done."""
    if connection.dialect.name == "postgresql":
        # Transaction-level: released by the commit or rollback, even if this process dies.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(name)})
    elif connection.dialect.name == "sqlite":
        # pysqlite runs DDL outside any transaction and begins one only at the first write,
        # after the reads that decided what to write. BEGIN IMMEDIATE takes the database's
        # one write lock up front (others wait for it through the busy timeout) and makes
        # the whole unit one transaction that the engine's commit ends.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
