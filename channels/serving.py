"""How ``daoban serve`` runs uvicorn: the limits that must hold while bytes are read.

Uvicorn closes idle keep-alive connections, but nothing bounds how long a client may take
to send its headers: a client that sends one byte a minute held a connection for ever
(issue 15, finding 4). ``GuardedH11`` closes a connection whose request headers are not
complete ``header_timeout`` seconds after they began.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from channels.settings import Settings

MAX_HEADER_BYTES = 16 * 1024  # h11's limit on an incomplete request head


class GuardedH11(H11Protocol):
    header_timeout = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # From the first byte of the connection; between requests uvicorn's keep-alive
        # timeout governs an idle connection, and this one only a started, unfinished head.
        self._header_deadline: asyncio.TimerHandle | None = self.loop.call_later(
            self.header_timeout, self._expire)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._waiting_for_headers() and self.conn.trailing_data[0]:
            if self._header_deadline is None:
                self._header_deadline = self.loop.call_later(self.header_timeout,
                                                             self._expire)
        elif self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
        super().connection_lost(exc)

    def _waiting_for_headers(self) -> bool:
        in_request = self.cycle is not None and not self.cycle.response_complete
        return not in_request and self.conn.their_state is h11.IDLE

    def _expire(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing() or self.transport.get_protocol() is not self:
            return  # closed, or upgraded to a websocket
        if self._waiting_for_headers():
            self.transport.close()


# Credentials that may travel in a query string; the access log shows them as "…".
_SECRET_QUERY = re.compile(
    r"(?i)([?&](?:token|api_token|access_token|openid|signature|msg_signature)=)[^&\s\"]*")


class RedactQuery(logging.Filter):
    """Takes credentials out of uvicorn's access-log lines (the path is args[2])."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact(args[2]), *args[3:])
        return True


def redact(path: str) -> str:
    return _SECRET_QUERY.sub(r"\1…", path)


def uvicorn_config(app: FastAPI, settings: Settings, host: str, port: int) -> uvicorn.Config:
    protocol = type("GuardedH11", (GuardedH11,), {"header_timeout": settings.header_timeout})
    proxies = [a.strip() for a in settings.trusted_proxies.split(",") if a.strip()]
    options: dict[str, Any] = {
        "host": host, "port": port, "log_level": "info",
        "http": protocol,
        "ws_max_size": settings.ws_max_bytes,  # larger frames: closed 1009 before reading on
        "timeout_keep_alive": settings.keep_alive_seconds,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "limit_concurrency": settings.max_connections,
        # X-Forwarded-For / -Proto are believed from DAOBAN_TRUSTED_PROXIES only, and then
        # for every part of the app at once (the per-address socket cap and message rate
        # of /ws/chat read the client address uvicorn gives them). Uvicorn's own default
        # would believe any local process and never a proxy on another host.
        "proxy_headers": bool(proxies),
        "forwarded_allow_ips": proxies,
    }
    return uvicorn.Config(app, **options)


def serve(app: FastAPI, settings: Settings, host: str, port: int, workers: int = 1) -> int:
    """Serves ``app``: in this process, or (``workers`` > 1) in that many forked copies of
    it (channels/prefork.py); returns the exit status."""
    config = uvicorn_config(app, settings, host, port)  # configures logging
    logging.getLogger("uvicorn.access").addFilter(RedactQuery())
    if workers == 1:
        uvicorn.Server(config).run()
        return 0
    from channels.prefork import serve_forked

    return serve_forked(config, workers)


def run(settings: Settings, host: str, port: int, workers: int) -> int:
    """``daoban serve``: refuses what several workers cannot share, loads everything once
    (the start-up check included), then serves."""
    from channels.app import create_app, ready_services
    from channels.prefork import check_shared_state, prepare_for_fork

    check_shared_state(settings, workers)
    services = ready_services(settings)
    app = create_app(settings, services)
    if workers > 1:
        prepare_for_fork(services)
    return serve(app, settings, host, port, workers)
