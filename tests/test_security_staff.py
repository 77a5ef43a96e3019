"""Staff sign-in (issue 15, finding 6): failures counted per account and per address across
processes, exponential back-off that the right password does not bypass, the password
policy, the idle timeout, the token only in the cookie, Secure cookies behind a TLS proxy."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from assistant.agents import AgentError, Role
from assistant.desk import AgentDesk
from assistant.passwords import password_problem
from channels.settings import Settings
from tests.consoles import PASSWORD
from tests.harness import app_for
from tests.servers import ROOT, _server_env, daoban_process

Login = Callable[..., Any]


def _app(folder: Path, **options: Any) -> Iterator[TestClient]:
    settings = Settings(database_url=f"sqlite:///{folder / 's.db'}", index_dir=folder / "idx",
                        staff_lockout_seconds=3.0, **options)
    app = app_for(settings)
    with TestClient(app) as c:
        desk: AgentDesk = app.state.desk
        for name in ("wang", "zhao", "boss"):
            role = Role.SUPERVISOR if name == "boss" else Role.AGENT
            desk.agents.add(name, PASSWORD, display_name=name, role=role)
        yield c


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    yield from _app(tmp_path_factory.mktemp("staff"))


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    yield from _app(tmp_path_factory.mktemp("proxied"), trusted_proxies="10.0.0.1")


def login(client: TestClient, user: str, password: str, address: str = "10.1.1.1",
          headers: dict[str, str] | None = None) -> Any:
    c = TestClient(client.app, client=(address, 40000))
    return c.post("/agent/login", json={"username": user, "password": password},
                  headers=headers or {})


def test_right_password_never_ends_an_account_lockout(client: TestClient) -> None:
    # Five failures, each from another address (a distributed guesser): the account locks.
    for i in range(5):
        assert login(client, "wang", "guess-guess-1", address=f"10.2.0.{i}").status_code == 401
    refused = login(client, "wang", PASSWORD, address="10.2.1.1")
    assert refused.status_code == 429 and "太多" in refused.json()["error"]
    first_wait = int(refused.headers["retry-after"])
    assert 1 <= first_wait <= 3
    assert "set-cookie" not in refused.headers
    # More tries, the right password included, change nothing and are not counted.
    for _ in range(20):
        assert login(client, "wang", PASSWORD, address="10.2.1.2").status_code == 429
    time.sleep(first_wait + 0.2)
    # One more failure after the wait: the next wait doubles (3 s, then 6 s).
    assert login(client, "wang", "guess-guess-2").status_code == 401
    again = login(client, "wang", PASSWORD)
    assert again.status_code == 429 and 3 < int(again.headers["retry-after"]) <= 6
    time.sleep(int(again.headers["retry-after"]) + 0.2)
    assert login(client, "wang", PASSWORD).status_code == 200
    # The right password (after the wait) starts the count again.
    assert login(client, "wang", "guess-guess-3").status_code == 401
    assert login(client, "wang", PASSWORD).status_code == 200


def test_one_address_is_limited_across_accounts(client: TestClient) -> None:
    for i in range(20):
        assert login(client, f"nobody{i}", "guess", address="10.3.3.3").status_code == 401
    assert login(client, "zhao", PASSWORD, address="10.3.3.3").status_code == 429
    # The account itself is not locked: from another address it signs in.
    assert login(client, "zhao", PASSWORD, address="10.3.3.4").status_code == 200


def test_behind_a_trusted_proxy_each_client_counts_alone(proxied: TestClient) -> None:
    """An attacker behind the shared proxy no longer locks out the supervisor."""
    for i in range(20):
        r = login(proxied, f"guess{i}", "guess", address="10.0.0.1",
                  headers={"X-Forwarded-For": "203.0.113.66"})
        assert r.status_code == 401
    assert login(proxied, "zhao", PASSWORD, address="10.0.0.1",
                 headers={"X-Forwarded-For": "203.0.113.66"}).status_code == 429
    # A forged first hop does not help: the proxy appends the real address last.
    assert login(proxied, "zhao", PASSWORD, address="10.0.0.1",
                 headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.66"}).status_code == 429
    ok = login(proxied, "boss", PASSWORD, address="10.0.0.1",
               headers={"X-Forwarded-For": "203.0.113.7"})
    assert ok.status_code == 200
    cookie = ok.headers["set-cookie"]
    assert "daoban_agent=" in cookie and "Secure" in cookie and "HttpOnly" in cookie
    # Without a trusted proxy the forwarded header is ignored.
    assert login(proxied, "boss", PASSWORD, address="10.9.9.9",
                 headers={"X-Forwarded-For": "203.0.113.66"}).status_code == 200


def test_token_only_in_the_cookie(client: TestClient) -> None:
    r = login(client, "boss", PASSWORD, address="10.4.4.4")
    assert r.status_code == 200
    token = r.cookies["daoban_agent"]
    assert token and token not in r.text and "token" not in r.json()
    assert "Secure" not in r.headers["set-cookie"]  # plain HTTP, no TLS proxy configured
    c = TestClient(client.app)
    c.cookies.set("daoban_agent", token)
    assert c.get("/agent/api/me").json()["username"] == "boss"


def test_idle_sessions_end(tmp_path: Path) -> None:
    for c in _app(tmp_path, agent_idle_minutes=3 / 60):
        r = login(c, "wang", PASSWORD)
        browser = TestClient(c.app)
        browser.cookies.set("daoban_agent", r.cookies["daoban_agent"])
        for _ in range(5):  # in use: stays signed in past the idle time
            assert browser.get("/agent/api/me").status_code == 200
            time.sleep(1.0)
        time.sleep(3.5)
        assert browser.get("/agent/api/me").status_code == 401
        assert browser.get("/agent/api/me").status_code == 401


@pytest.mark.parametrize(("password", "problem"), [
    ("short-pw-9", "至少 12 位"),
    ("password1234", "太常见"),
    ("Qwerty!2026abc", "太常见"),
    ("aaaaaaaaaaaa", "太常见"),
    ("wangwu-the-agent-7", "用户名"),
])
def test_password_policy(client: TestClient, password: str, problem: str) -> None:
    desk: AgentDesk = client.app.state.desk  # type: ignore[attr-defined]
    found = password_problem("wangwu", password)
    assert found is not None and problem in found
    with pytest.raises(AgentError, match=problem):
        desk.agents.add("wangwu", password)
    assert desk.agents.by_username("wangwu") is None
    assert password_problem("wangwu", "river-lamp-73-orbit") is None


def test_cli_refuses_a_weak_password(tmp_path: Path) -> None:
    add = subprocess.run(
        [sys.executable, "-m", "channels.cli", "agent", "add", "li", "--password-stdin"],
        cwd=ROOT, env=_server_env(tmp_path), input="password1234\n", capture_output=True,
        text=True, timeout=120)
    assert add.returncode != 0 and "太常见" in add.stderr + add.stdout


def _post(base: str, user: str, password: str) -> int:
    req = urllib.request.Request(
        base + "/agent/login", method="POST",
        data=json.dumps({"username": user, "password": password}).encode(),
        headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


@pytest.mark.postgres
@pytest.mark.slow
def test_failures_are_counted_atomically_across_processes(pg_url: str, tmp_path: Path) -> None:
    env = {"DAOBAN_DATABASE_URL": pg_url, "DAOBAN_INDEX_DIR": str(tmp_path / "idx"),
           "DAOBAN_STAFF_LOCKOUT_SECONDS": "120"}
    add = subprocess.run(
        [sys.executable, "-m", "channels.cli", "agent", "add", "wang", "--password-stdin"],
        cwd=ROOT, env={**_server_env(tmp_path), **env}, input=PASSWORD + "\n",
        capture_output=True, text=True, timeout=120)
    assert add.returncode == 0, add.stderr
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with ExitStack() as stack:
        a, _ = stack.enter_context(daoban_process(tmp_path / "a", **env))
        b, _ = stack.enter_context(daoban_process(tmp_path / "b", **env))
        # 30 guesses at once, half through each process.
        with ThreadPoolExecutor(30) as pool:
            codes = list(pool.map(lambda i: _post((a, b)[i % 2], "wang", f"guess-{i}"),
                                  range(30)))
        assert sorted(codes) == [401] * 5 + [429] * 25, codes
        assert _post(a, "wang", PASSWORD) == 429
        assert _post(b, "wang", PASSWORD) == 429
