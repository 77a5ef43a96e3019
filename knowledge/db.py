"""Engine creation and schema migration (Alembic) for the guide-base tables."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, MetaData, create_engine, event
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
        engine = create_engine(url, connect_args={"check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            if db and db != ":memory:":
                cur.execute("PRAGMA journal_mode=WAL")
                # WAL + NORMAL: durable across application crashes, one fsync per checkpoint
                # instead of per commit (a chat message is several small commits).
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.execute("PRAGMA busy_timeout=5000")
            cur.close()

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, pool_pre_ping=True)


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
        context.configure(
            connection=connection,
            target_metadata=metadata,
            version_table=version_table,
            render_as_batch=connection.dialect.name == "sqlite",
            include_name=include_name,
        )
        context.run_migrations()
