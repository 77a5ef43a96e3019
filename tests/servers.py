"""A real ``daoban serve`` process and a real headless chromium for browser tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.consoles import PASSWORD

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI (apt-get install chromium)")
        pytest.skip("Debian's chromium is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def daoban_server(workdir: Path, **env: str) -> Iterator[str]:
    """``daoban serve`` on a free loopback port with its own SQLite; yields the base URL."""
    with daoban_process(workdir, **env) as (base, _):
        yield base


def _server_env(workdir: Path, **env: str) -> dict[str, str]:
    # Only what the test asks for: never a Redis bus from the developer's environment.
    inherited = {k: v for k, v in os.environ.items() if k != "DAOBAN_REDIS_URL"}
    return {**inherited, "DAOBAN_DATABASE_URL": f"sqlite:///{workdir / 'server.db'}",
            "DAOBAN_INDEX_DIR": str(workdir / "idx"), **env}


def wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until ``base``/health answers 200; fails the test at once if the server exits."""
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail("daoban serve exited: " + log.read_text()[-3000:])
        try:
            with urllib.request.urlopen(base + "/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail("daoban serve did not start: " + log.read_text()[-3000:])


def add_agent(workdir: Path, username: str, *options: str) -> None:
    """``daoban agent add USERNAME OPTIONS…`` (password ``PASSWORD``) on the database of
    ``daoban_server(workdir)``."""
    add = subprocess.run(
        [sys.executable, "-m", "channels.cli", "agent", "add", username, *options,
         "--password-stdin"],
        cwd=ROOT, env=_server_env(workdir), input=PASSWORD + "\n", capture_output=True,
        text=True, timeout=60)
    assert add.returncode == 0, add.stderr


@contextmanager
def daoban_process(workdir: Path, **env: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Like ``daoban_server``, also yielding the process (to kill it mid-test)."""
    port = free_port()
    full_env = _server_env(workdir, **env)
    log = (workdir / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "channels.cli", "serve", "--port", str(port)],
        cwd=ROOT, env=full_env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc, workdir / "server.log")
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


def launch_chromium(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
