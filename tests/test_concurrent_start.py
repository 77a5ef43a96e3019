"""Server processes starting at the same moment on one empty database (SQLite file and
real PostgreSQL): every package's migration runs once and the guide base is loaded once;
the other processes wait for it and find the work done instead of failing."""

from __future__ import annotations

import multiprocessing
import traceback
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, inspect, select, text
from sqlalchemy.orm import Session

from assistant import agents
from assistant import store as conversations
from doorplate import store as doorplates
from knowledge import db as guide_db
from knowledge.db import alembic_config, make_engine
from knowledge.models import EntryRow
from knowledge.store import ensure_loaded
from tests.guidegen import small_guide, write

PROCESSES = 4
# (script location, version table) of every package, in the order ``daoban serve`` runs them.
PACKAGES = [
    (guide_db.MIGRATIONS, guide_db.VERSION_TABLE),
    (conversations.MIGRATIONS, conversations.VERSION_TABLE),
    (doorplates.MIGRATIONS, doorplates.VERSION_TABLE),
    (agents.MIGRATIONS, agents.VERSION_TABLE),
]

pytestmark = pytest.mark.slow


def _first_start(url: str, guide: str | None, barrier: Any, results: Any) -> None:
    """One server process's start-up: migrate every package, then load the guide base."""
    try:
        engine = make_engine(url)
        barrier.wait(60)  # all processes connect to the empty database at the same moment
        guide_db.migrate(engine)
        conversations.migrate(engine)
        doorplates.migrate(engine)
        agents.migrate(engine)
        loaded = guide is not None and ensure_loaded(engine, Path(guide)) is not None
        engine.dispose()
        results.put(("ok", loaded))
    except BaseException:
        results.put(("failed", traceback.format_exc()))


def _start_together(url: str, guide: Path | None = None) -> list[bool]:
    """Whether each process loaded the guide base; fails with every process's error."""
    # spawn: fresh interpreters, like separate ``daoban serve`` processes (and no fork of a
    # process that runs threads).
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(PROCESSES)
    results = ctx.Queue()
    procs = [ctx.Process(target=_first_start, args=(url, guide and str(guide), barrier, results))
             for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    try:
        outcomes = [results.get(timeout=120) for _ in procs]
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
    failures = [detail for status, detail in outcomes if status != "ok"]
    assert not failures, "\n".join(str(f) for f in failures)
    return [bool(loaded) for _, loaded in outcomes]


def _assert_at_head_once(engine: Engine) -> None:
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        for location, version_table in PACKAGES:
            head = ScriptDirectory.from_config(alembic_config(engine, location)).get_current_head()
            rows = conn.execute(text(f"SELECT version_num FROM {version_table}")).scalars().all()
            assert rows == [head], (version_table, rows)
    for expected in ("kb_entries", "conversations", "doorplate_hits", "agents", "handoffs"):
        assert expected in tables


def test_concurrent_first_start_migrates_once(db_url: str) -> None:
    _start_together(db_url)
    engine = make_engine(db_url)
    try:
        _assert_at_head_once(engine)
    finally:
        engine.dispose()


def test_concurrent_first_start_loads_the_guide_base_once(db_url: str, tmp_path: Path) -> None:
    guide = write(tmp_path / "guide.yaml", small_guide())
    loaded = _start_together(db_url, guide)
    assert sorted(loaded) == [False] * (PROCESSES - 1) + [True]  # the others found it loaded
    engine = make_engine(db_url)
    try:
        _assert_at_head_once(engine)
        with Session(engine) as s:
            assert s.scalar(select(func.count()).select_from(EntryRow)) == 3
    finally:
        engine.dispose()
