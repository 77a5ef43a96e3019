"""The Rasa NLU backend: a real ``rasa run --enable-api`` server (started by
``scripts/rasa.sh start``, which ``make test`` runs when Python 3.10 is available)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from channels.app import Services, create_app
from channels.settings import Settings
from knowledge.db import make_engine, migrate
from knowledge.store import ensure_loaded, load_stored
from knowledge.validate import load_guide
from nlu.evaluate_intents import evaluate_intents, read_intent_cases
from nlu.intents import EmbeddedClassifier
from nlu.rasa_client import RasaClassifier, to_parse_result
from nlu.rasa_project import model_name, training_hash, write_project
from tests.harness import make_assistant

RASA_URL = os.environ.get("DAOBAN_RASA_URL", "http://127.0.0.1:5005")


@pytest.fixture(scope="module")
def embedded() -> EmbeddedClassifier:
    return EmbeddedClassifier()


@pytest.fixture(scope="module")
def rasa_url() -> str:
    try:
        httpx.get(f"{RASA_URL}/status", timeout=2).raise_for_status()
    except httpx.HTTPError:
        why = (f"no Rasa server at {RASA_URL}: `scripts/rasa.sh start` builds and starts it "
               "(needs Python 3.10: pyenv 3.10.13 or python3.10 on PATH)")
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    return RASA_URL


def test_project_generation_is_deterministic(tmp_path: Path) -> None:
    name = write_project(tmp_path / "p")
    assert name == model_name() and name.endswith(training_hash())
    assert (tmp_path / "p" / "data" / "nlu.yml").read_bytes() == Path(
        "nlu/data/nlu.yml"
    ).read_bytes()
    config = (tmp_path / "p" / "config.yml").read_text(encoding="utf-8")
    assert "JiebaTokenizer" in config and "DIETClassifier" in config and "char_wb" in config
    userdict = (tmp_path / "p" / "userdict" / "daoban.txt").read_text(encoding="utf-8")
    assert "住房公积金提取（租房）" not in userdict  # no punctuation inside jieba words
    assert "社会保障卡挂失补换 20000" in userdict


def test_model_name_is_the_same_from_the_database_as_from_the_files(sqlite_url: str) -> None:
    """The server names the model it expects from the guide base in its database; the
    training script from the YAML files. Rows come back in another order than the files
    list them, and a freshly trained model must not be reported stale because of it."""
    engine = make_engine(sqlite_url)
    try:
        migrate(engine)
        ensure_loaded(engine)
        stored = load_stored(engine)
    finally:
        engine.dispose()
    files = load_guide()
    assert list(stored.items) != list(files.items)  # the orders really differ
    assert model_name(stored) == model_name(files)


def test_parse_result_mapping() -> None:
    r = to_parse_result({
        "text": "我在道里区",
        "intent": {"name": "ask_location", "confidence": 0.9},
        "entities": [{"entity": "district", "value": "道里区", "start": 2, "end": 5}],
        "intent_ranking": [{"name": "ask_location", "confidence": 0.9},
                           {"name": "ask_item", "confidence": 0.1}],
    })
    assert r.intent == "ask_location" and r.entities[0].text == "道里区"
    assert r.ranking[1] == ("ask_item", 0.1)


def test_breaker_falls_back_to_embedded_when_rasa_is_down(embedded: EmbeddedClassifier) -> None:
    # A port nothing listens on: real connection errors, no mock.
    clf = RasaClassifier("http://127.0.0.1:9", embedded, timeout=0.2, max_failures=2,
                         cool_down=60)
    t0 = time.perf_counter()
    results = [clf.parse("社保卡丢了咋整") for _ in range(5)]
    assert all(r.intent == "ask_item" for r in results)
    status = clf.status()
    assert status["fallback_active"] is True and status["reachable"] is False
    assert time.perf_counter() - t0 < 3  # once open, the breaker does not wait on Rasa
    clf.close()


@pytest.mark.rasa
def test_real_rasa_parses_and_model_is_current(rasa_url: str, embedded: EmbeddedClassifier) -> None:
    clf = RasaClassifier(rasa_url, embedded, timeout=5, expected_model=model_name())
    status = clf.status()
    assert status["reachable"] and status["stale"] is False, status
    assert clf.parse("社保卡丢了咋整").intent == "ask_item"
    assert clf.parse("转人工").intent == "request_human"
    r = clf.parse("我在道里区住")
    assert any(e.entity == "district" and e.value == "道里区" for e in r.entities)
    report = evaluate_intents("rasa", clf, read_intent_cases(), own_process=False)
    assert report.accuracy >= 0.75, report
    assert clf._state.failures == 0  # every answer came from Rasa, not the fallback
    clf.close()


@pytest.mark.rasa
def test_app_with_rasa_backend(rasa_url: str, tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'r.db'}", index_dir=tmp_path / "i",
                        nlu="rasa", rasa_url=rasa_url)
    assistant = make_assistant(settings.database_url, settings.index_dir)
    embedded = assistant.understanding.classifier
    clf = RasaClassifier(rasa_url, embedded, expected_model=model_name())
    assistant.understanding.classifier = clf
    try:
        app = create_app(settings, Services(settings, assistant, "t"))
        with TestClient(app) as c:
            health = c.get("/health").json()
            assert health["nlu"]["backend"] == "rasa" and health["nlu"]["reachable"]
            r = c.post("/webhooks/rest/webhook", json={"sender": "r1", "message": "社保卡丢了咋整"})
            assert "社会保障卡挂失补换" in r.json()[0]["text"]
            r = c.post("/webhooks/rest/webhook", json={"sender": "r1", "message": "要多久"})
            assert "多久办好" in r.json()[0]["text"]
    finally:
        assistant.understanding.classifier = embedded
        clf.close()



def test_eval_finds_the_pid_rasa_sh_wrote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`daoban eval --nlu both` reports Rasa's memory from the pid file scripts/rasa.sh
    writes; a file naming a process that is not Rasa (a stale pid) gives no pid."""
    import subprocess
    import sys

    from channels.cli_nlu import rasa_pid

    pid_file = tmp_path / "rasa-5005.pid"
    monkeypatch.setenv("DAOBAN_RASA_PIDFILE", str(pid_file))
    monkeypatch.setenv("DAOBAN_RASA_PROJECT", str(tmp_path / "none"))
    monkeypatch.setenv("HOME", str(tmp_path))
    # A stand-in whose command line names rasa, as `rasa run …` does.
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()", "rasa"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"up\n"  # running
        pid_file.write_text(f"{proc.pid}\n")
        assert rasa_pid("http://127.0.0.1:5005") == proc.pid
        pid_file.write_text(f"{os.getpid()}\n")  # alive, but not Rasa
        assert rasa_pid("http://127.0.0.1:5005") is None
    finally:
        proc.communicate(b"")
    pid_file.write_text(f"{proc.pid}\n")  # gone
    assert rasa_pid("http://127.0.0.1:5005") is None
    script = Path("scripts/rasa.sh").read_text(encoding="utf-8")
    assert 'echo $! >"$PIDFILE"' in script and 'echo $! >"$PROJECT/rasa.pid"' in script
