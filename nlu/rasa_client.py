"""The Rasa NLU backend, reached over HTTP (``rasa run --enable-api``).

One HTTP client for the process's lifetime, ``POST /model/parse`` with a short timeout, and a
circuit breaker: after a few failures the embedded classifier answers until Rasa is back,
and ``status()`` says so (``/health`` shows it). Retrieval of service items stays in daoban.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

from nlu.intents import Entity, IntentClassifier, ParseResult

log = logging.getLogger(__name__)


@dataclass
class BreakerState:
    failures: int = 0
    open_until: float = 0.0
    last_error: str | None = None


class RasaClassifier:
    def __init__(
        self,
        url: str,
        fallback: IntentClassifier,
        *,
        timeout: float = 1.0,
        max_failures: int = 3,
        cool_down: float = 30.0,
        expected_model: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.fallback = fallback
        self.max_failures = max_failures
        self.cool_down = cool_down
        self.expected_model = expected_model
        self._client = httpx.Client(timeout=timeout)
        self._state = BreakerState()
        self._lock = threading.Lock()
        self.model: str | None = None

    def close(self) -> None:
        self._client.close()

    def _open(self) -> bool:
        return time.monotonic() < self._state.open_until

    def _failed(self, err: str) -> None:
        with self._lock:
            self._state.failures += 1
            self._state.last_error = err
            if self._state.failures >= self.max_failures and not self._open():
                self._state.open_until = time.monotonic() + self.cool_down
                log.warning("Rasa at %s unavailable (%s): embedded NLU answers for %.0f s",
                            self.url, err, self.cool_down)

    def parse(self, text: str) -> ParseResult:
        if self._open():
            return self.fallback.parse(text)
        try:
            r = self._client.post(f"{self.url}/model/parse", json={"text": text})
            r.raise_for_status()
            result = to_parse_result(r.json())
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            self._failed(type(exc).__name__)
            return self.fallback.parse(text)
        with self._lock:
            if self._state.failures:
                log.info("Rasa at %s answers again", self.url)
            self._state = BreakerState()
        return result

    def status(self) -> dict[str, Any]:
        """For /health: is Rasa answering, and was its model trained on today's data?"""
        info: dict[str, Any] = {"backend": "rasa", "url": self.url,
                                "fallback_active": self._open(),
                                "last_error": self._state.last_error}
        try:
            r = self._client.get(f"{self.url}/status")
            r.raise_for_status()
            model_file = str(r.json().get("model_file", ""))
            self.model = model_file.rsplit("/", 1)[-1].removesuffix(".tar.gz")
            info["model"] = self.model
            if self.expected_model is not None:
                info["stale"] = self.model != self.expected_model
                if info["stale"]:
                    log.warning("Rasa model %s was trained on other data than %s",
                                self.model, self.expected_model)
        except (httpx.HTTPError, ValueError) as exc:
            info["reachable"] = False
            info["last_error"] = type(exc).__name__
        else:
            info["reachable"] = True
        return info


def to_parse_result(d: dict[str, Any]) -> ParseResult:
    intent = d["intent"]
    ranking = [(str(x["name"]), float(x["confidence"])) for x in d.get("intent_ranking", [])]
    entities = [
        Entity(str(e["entity"]), str(e.get("value", e.get("text", ""))),
               str(d.get("text", ""))[int(e.get("start", 0)):int(e.get("end", 0))])
        for e in d.get("entities", [])
    ]
    return ParseResult(str(intent["name"]), float(intent["confidence"]), entities,
                       ranking or [(str(intent["name"]), float(intent["confidence"]))])
