"""Request ids and structured logs.

Every HTTP request and every websocket connection gets a request id: the client's
``X-Request-ID`` when it is a plain token (letters, digits, ``._:-``, at most 64), else a new
one; HTTP responses carry it back in ``X-Request-ID``. It lives in a context variable, so
every log line written while a message is handled carries it — in the worker thread too
(anyio copies the context into ``to_thread.run_sync``), and in tasks started from it.

``DAOBAN_LOG_FORMAT=json`` writes one JSON object per line to stderr (``time``, ``level``,
``logger``, ``message``, ``request_id``, and ``exception`` with the traceback), uvicorn's
own lines included. The default ``text`` leaves logging as it was.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.core import Seen

log = logging.getLogger(__name__)

REQUEST_ID: ContextVar[str | None] = ContextVar("daoban_request_id", default=None)
HEADER = b"x-request-id"
_VALID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
OURS = ("daoban", "channels", "assistant", "knowledge", "nlu", "doorplate")
# Extra fields a log call may attach (``extra={...}``) that the JSON lines keep.
FIELDS = ("channel", "outcome", "seconds", "status")


def request_id(given: str | None) -> str:
    """The client's id if it is a plain token (it goes into logs: nothing else), else new."""
    return given if given and _VALID.match(given) else uuid.uuid4().hex


class RequestIds:
    """ASGI middleware: sets ``REQUEST_ID`` for the request or connection, and returns it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == HEADER),
                     None)
        rid = request_id(given)
        token = REQUEST_ID.set(rid)

        async def with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != HEADER]
                message["headers"] = [*headers, (HEADER, rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, with_id if scope["type"] == "http" else send)
        finally:
            REQUEST_ID.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": REQUEST_ID.get(),
        }
        for name in FIELDS:
            if hasattr(record, name):
                out[name] = getattr(record, name)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class MessageLog:
    """One line per handled message (no text, no ids but the request's): channel, outcome
    and time taken. INFO: shown when logging is configured to show it (JSON logs do)."""

    def message_handled(self, seen: Seen) -> None:
        log.info("message handled: %s %s in %.3f s", seen.channel, seen.outcome, seen.seconds,
                 extra={"channel": seen.channel, "outcome": seen.outcome,
                        "seconds": round(seen.seconds, 4)})


class JsonLogs:
    """Installs JSON lines on the root logger and uvicorn's handlers; ``remove`` undoes it."""

    def __init__(self) -> None:
        self.handler = logging.StreamHandler(sys.stderr)
        self.handler.setFormatter(JsonFormatter())
        self._levels: dict[str, int] = {}
        self._formatters: list[tuple[logging.Handler, logging.Formatter | None]] = []

    def install(self) -> None:
        logging.getLogger().addHandler(self.handler)
        for name in OURS:
            logger = logging.getLogger(name)
            self._levels[name] = logger.level
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.INFO)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            for h in logging.getLogger(name).handlers:
                # A handler shared by two of these loggers (or with the root logger) is
                # recorded once, with its own formatter, or removal would restore ours.
                if all(h is not seen for seen, _ in self._formatters):
                    self._formatters.append((h, h.formatter))
                h.setFormatter(self.handler.formatter)

    def remove(self) -> None:
        logging.getLogger().removeHandler(self.handler)
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
        for h, formatter in self._formatters:
            h.setFormatter(formatter)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    services = app.state.services
    observer = MessageLog()
    services.assistant.observers.append(observer)
    json_logs = JsonLogs() if services.settings.log_format == "json" else None
    if json_logs is not None:
        json_logs.install()
    try:
        yield
    finally:
        if json_logs is not None:
            json_logs.remove()
        if observer in services.assistant.observers:
            services.assistant.observers.remove(observer)


router = APIRouter(lifespan=lifespan)
