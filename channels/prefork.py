"""``daoban serve --workers N``: one master that loads everything, then forks N workers.

The guide base, the tokenizer's dictionary, the search indexes and the models are built
once, in the master, before any worker exists; the workers are ``os.fork`` copies that
share those pages with the master until they write to them (``gc.freeze`` keeps the
collector from touching every object, which would copy them all). All workers accept on
one listening socket that the master bound: the kernel hands each connection to one of
them, and a worker that dies leaves the socket, and the connections still queued on it,
to the others. The master serves nothing itself; it re-forks a worker that dies (from its
already-loaded state, so in milliseconds) and stops them all on SIGTERM or SIGINT.

Several processes share nothing in memory, so conversations, the agent desk and the rate
limits must live in PostgreSQL and Redis: ``check_shared_state`` refuses SQLite and a
missing Redis before anything is loaded.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import logging
import os
import signal
import socket
import sys
import time
import traceback
from types import FrameType
from typing import TYPE_CHECKING

import uvicorn
from uvicorn.config import STARTUP_FAILURE

from channels.settings import Settings

if TYPE_CHECKING:
    from channels.app import Services

log = logging.getLogger("daoban.prefork")

# A worker that dies this soon after it was forked, this many times in a row, is not
# restarted again: something is wrong that another fork will not fix.
QUICK_DEATH_SECONDS = 5.0
QUICK_DEATHS_ALLOWED = 5
STOP_GRACE_SECONDS = 15.0  # after SIGTERM, before SIGKILL (open websockets close first)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


class SharedStateMissing(Exception):
    """Several workers were asked for without PostgreSQL and Redis."""


def check_shared_state(settings: Settings, workers: int) -> None:
    """Refuses, in one line, what several processes cannot share."""
    if workers < 1:
        raise SharedStateMissing(f"daoban 未启动 (not started): --workers {workers}: "
                                 "进程数至少为 1 (at least 1)")
    if workers == 1:
        return
    missing = []
    if not settings.database_url.startswith("postgresql"):
        missing.append("PostgreSQL (DAOBAN_DATABASE_URL=postgresql+psycopg://…; "
                       "now " + settings.database_url.split(":", 1)[0] + ")")
    if not settings.redis_url:
        missing.append("Redis (DAOBAN_REDIS_URL=redis://…)")
    if missing:
        raise SharedStateMissing(
            f"daoban 未启动 (not started): --workers {workers} 需要 " + " 和 ".join(missing)
            + "：多个进程共享会话、人工帮办和限流 (several processes need PostgreSQL + Redis)")


def prepare_for_fork(services: Services) -> None:
    """Nothing a worker would share by accident: no pooled connection, no garbage."""
    from knowledge import memory

    # The master's own connections (migrations, the guide base) must not be inherited:
    # two processes on one PostgreSQL connection corrupt each other's protocol stream.
    services.assistant.store.engine.dispose()
    classifier = services.assistant.understanding.classifier
    client = getattr(classifier, "_client", None)  # nlu.rasa_client: an httpx.Client
    if client is not None and hasattr(client, "close") and hasattr(client, "timeout"):
        import httpx

        # The start-up check spoke to Rasa over a kept-alive connection; each worker opens
        # its own.
        classifier._client = httpx.Client(timeout=client.timeout)  # type: ignore[attr-defined]
        client.close()
    gc.collect()
    memory.release()
    # Everything alive now lives as long as the workers: the collector never scans it, so
    # it never writes to (and copies) the pages the workers share.
    gc.freeze()


class _Stop(Exception):
    pass


class Master:
    def __init__(self, config: uvicorn.Config, sock: socket.socket, workers: int) -> None:
        self.config = config
        self.sock = sock
        self.workers = workers
        self.children: dict[int, float] = {}  # pid → when it was forked
        self.master = os.getpid()
        self.quick_deaths = 0

    def _spawn(self) -> None:
        pid = os.fork()
        if pid == 0:
            _worker(self.config, self.sock, self.master)  # never returns
        self.children[pid] = time.monotonic()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        raise _Stop(signum)

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)
        code = 0
        try:
            for _ in range(self.workers):
                self._spawn()
            log.info("daoban master %d: %d workers %s", os.getpid(), self.workers,
                     sorted(self.children))
            while self.children:
                pid, status = os.wait()
                born = self.children.pop(pid, None)
                if born is None:
                    continue
                exit_code = os.waitstatus_to_exitcode(status)
                if exit_code == STARTUP_FAILURE:
                    log.error("worker %d could not start: stopping", pid)
                    code = 1
                    break
                quick = time.monotonic() - born < QUICK_DEATH_SECONDS
                self.quick_deaths = self.quick_deaths + 1 if quick else 0
                if self.quick_deaths >= QUICK_DEATHS_ALLOWED:
                    log.error("workers keep dying at once (last: %d, %s): stopping",
                              pid, _how(exit_code))
                    code = 1
                    break
                log.warning("worker %d ended (%s): starting another", pid, _how(exit_code))
                self._spawn()
        except _Stop:
            pass
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)  # a second Ctrl+C must not cut the stop
            self._stop_all()
            self.sock.close()
        return code

    def _stop_all(self) -> None:
        for pid in self.children:
            _kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while self.children and time.monotonic() < deadline:
            for pid in list(self.children):
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done:
                    del self.children[pid]
            time.sleep(0.05)
        for pid in self.children:
            _kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        self.children.clear()


def _how(exit_code: int) -> str:
    return f"signal {-exit_code}" if exit_code < 0 else f"exit {exit_code}"


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _stop_with(master: int) -> None:
    """A worker whose master is gone (killed with SIGKILL, say) gets SIGTERM and stops,
    rather than serving on unsupervised (Linux; elsewhere a no-op)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != master:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _worker(config: uvicorn.Config, sock: socket.socket, master: int) -> None:
    """A forked worker: serves until told to stop, then leaves without running anything
    of the master's (``os._exit``: no atexit handlers, no ``finally`` of the master)."""
    code = 1
    try:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)  # uvicorn installs its own while serving
        _stop_with(master)
        server = uvicorn.Server(config)
        server.run(sockets=[sock])
        code = 0 if server.started else STARTUP_FAILURE
    except SystemExit as exc:  # uvicorn's exit when the app's start-up fails
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve_forked(config: uvicorn.Config, workers: int) -> int:
    """Binds the socket in the master, forks ``workers`` workers, supervises them."""
    # Uvicorn's protocol classes and the app's middleware wrappers, imported and built
    # once here rather than once per worker.
    config.load()
    gc.collect()
    gc.freeze()
    sock = config.bind_socket()  # logs "Uvicorn running on …"
    return Master(config, sock, workers).run()
