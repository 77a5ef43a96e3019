"""``daoban serve --workers N``: a master that loads once and forks workers sharing one
socket; refused without PostgreSQL and Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from channels.prefork import SharedStateMissing, check_shared_state
from channels.settings import Settings
from tests.servers import free_port, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
REDIS_URL = os.environ.get("DAOBAN_TEST_REDIS", "redis://127.0.0.1:6379/0")


def test_several_workers_need_postgresql_and_redis() -> None:
    check_shared_state(Settings(database_url="sqlite:///x.db"), 1)  # one process: anything
    with pytest.raises(SharedStateMissing, match=r"PostgreSQL.*Redis"):
        check_shared_state(Settings(database_url="sqlite:///x.db"), 2)
    with pytest.raises(SharedStateMissing, match="Redis") as no_redis:
        check_shared_state(Settings(database_url="postgresql+psycopg://h/db"), 4)
    assert "PostgreSQL (" not in str(no_redis.value)
    check_shared_state(Settings(database_url="postgresql+psycopg://h/db",
                                redis_url="redis://h:6379/0"), 4)
    with pytest.raises(SharedStateMissing):
        check_shared_state(Settings(), 0)


def test_serve_refuses_several_workers_on_sqlite_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "DAOBAN_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    env.pop("DAOBAN_REDIS_URL", None)
    done = subprocess.run([sys.executable, "-m", "channels.cli", "serve", "--workers", "2"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "PostgreSQL" in lines[0] and "Redis" in lines[0], done.stderr
    assert not (tmp_path / "x.db").exists()  # refused before anything was loaded


def _children(pid: int) -> set[int]:
    return {int(c) for t in Path(f"/proc/{pid}/task").iterdir()
            for c in (t / "children").read_text().split()}


def _until(what: str, condition: object, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while not condition():  # type: ignore[operator]
        if time.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
def test_workers_share_the_load_and_a_dead_one_is_replaced(pg_url: str, tmp_path: Path) -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception:
        if os.environ.get("CI"):
            pytest.fail("Redis on 127.0.0.1:6379 is required in CI")
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "DAOBAN_DATABASE_URL": pg_url, "DAOBAN_REDIS_URL": REDIS_URL,
           "DAOBAN_REDIS_PREFIX": f"daoban-test-{uuid.uuid4().hex[:10]}:",
           "DAOBAN_INDEX_DIR": str(tmp_path / "idx")}
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        master = subprocess.Popen(
            [sys.executable, "-m", "channels.cli", "serve", "--port", str(port),
             "--workers", "2"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_healthy(base, master, log)
            workers = _children(master.pid)
            assert len(workers) == 2, log.read_text()
            # Forked after the load: most of a worker's heap is the master's pages, shared
            # (anonymous memory is shared only across a fork).
            for pid in workers:
                kb = {line.split(":")[0]: int(line.split()[1]) for line in Path(
                    f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]}
                assert kb["Pss_Anon"] < 0.75 * kb["Anonymous"], kb

            victim = min(workers)
            os.kill(victim, signal.SIGKILL)
            _until("a new worker", lambda: len(_children(master.pid) - {victim}) == 2)
            assert victim not in _children(master.pid)
            for _ in range(6):  # whichever worker takes the connection answers
                with urllib.request.urlopen(base + "/health", timeout=10) as r:
                    assert r.status == 200

            master.send_signal(signal.SIGTERM)
            assert master.wait(30) == 0
            assert _alive(workers | _known(log)) == []
        finally:
            if master.poll() is None:
                master.kill()
                master.wait(10)
    assert f"worker {victim} ended (signal 9): starting another" in log.read_text()


def _known(log: Path) -> set[int]:
    """Worker pids uvicorn logged ("Started server process [PID]")."""
    return {int(line.rsplit("[", 1)[1].rstrip("]"))
            for line in log.read_text().splitlines() if "Started server process" in line}


def _alive(pids: set[int]) -> list[int]:
    return sorted(pid for pid in pids if Path(f"/proc/{pid}").exists()
                  and "zombie" not in Path(f"/proc/{pid}/status").read_text())


def test_nothing_pooled_is_inherited_by_the_workers(tmp_path: Path) -> None:
    """Before the fork the master's database connections are closed and a Rasa client's
    kept-alive connection is left behind: two processes on one connection corrupt it."""
    import gc
    from types import SimpleNamespace

    import httpx
    from sqlalchemy import text
    from sqlalchemy.pool import QueuePool

    from channels.prefork import prepare_for_fork
    from knowledge.db import make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    pool = engine.pool
    assert isinstance(pool, QueuePool) and pool.checkedin() == 1
    rasa_client = httpx.Client(timeout=2.5)
    classifier = SimpleNamespace(_client=rasa_client)
    services = SimpleNamespace(assistant=SimpleNamespace(
        store=SimpleNamespace(engine=engine),
        understanding=SimpleNamespace(classifier=classifier)))
    try:
        prepare_for_fork(services)  # type: ignore[arg-type]
        assert pool.checkedin() == 0 and engine.pool is not pool  # closed, a fresh pool
        assert rasa_client.is_closed
        assert classifier._client is not rasa_client and not classifier._client.is_closed
        assert classifier._client.timeout == rasa_client.timeout
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        classifier._client.close()
        engine.dispose()
