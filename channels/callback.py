"""Rasa's callback convention for webhook clients: what the desk says later is POSTed.

A client of the Rasa-compatible webhook (``POST /webhooks/rest/webhook``) gets the bot's
replies in the answer to its request. What comes later — the agent's messages, the desk's
notices (nobody on duty, an agent joined, handed back) — is POSTed to
``DAOBAN_CALLBACK_URL``, one message per request, in the shape of Rasa's ``callback``
channel: ``{"recipient_id": <sender>, "text": ..., "buttons": [{"title", "payload"}]}``
(buttons only when there are some; an answer card as ``"custom": {"card": ...}``).

With ``DAOBAN_CALLBACK_SECRET`` every request is signed: ``X-Daoban-Timestamp`` (Unix
seconds) and ``X-Daoban-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." +
body)>``; ``X-Daoban-Delivery`` is the same on every attempt at one message (a receiver
drops repeats). A failing receiver (network, timeout, 5xx, 408, 429) is retried with
exponential back-off; after the last attempt, or at once on another 4xx, the push fails
with ``delivery.Undelivered``, which the desk records on the message for the agent.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Sequence
from typing import Any

import httpx

from assistant.delivery import LEAVE, Undelivered
from assistant.model import Reply
from channels.settings import Settings

log = logging.getLogger(__name__)

PREFIX = "rasa:"  # the webhook's conversations (channels/rest.py rasa_conversation_id)
RETRY = frozenset({408, 425, 429})  # 4xx worth another try; every 5xx is


def recipient(conversation_id: str) -> str:
    """The webhook's ``sender`` the conversation came from. A sender outside
    ``[A-Za-z0-9_.:-]{1,120}`` was stored as ``h-`` + the first 32 hex digits of its
    sha256, and is sent back so."""
    return conversation_id.removeprefix(PREFIX)


def message(conversation_id: str, reply: Reply) -> dict[str, Any]:
    out: dict[str, Any] = {"recipient_id": recipient(conversation_id), "text": reply.text}
    if reply.buttons:
        out["buttons"] = [b.as_dict() for b in reply.buttons]
    if reply.card:
        out["custom"] = {"card": reply.card}
    return out


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class CallbackSink:
    """The desk's ``ReplySink`` for webhook conversations (queued: the desk does not wait
    for its retries)."""

    queued = True

    def __init__(self, url: str, secret: str | None, *, attempts: int = 5,
                 backoff: float = 1.0, timeout: float = 5.0,
                 client: httpx.AsyncClient | None = None) -> None:
        self.url = url
        self.secret = secret
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.client = client or httpx.AsyncClient(timeout=timeout, follow_redirects=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> CallbackSink | None:
        if not settings.callback_url:
            return None
        return cls(settings.callback_url, settings.callback_secret,
                   attempts=settings.callback_attempts, backoff=settings.callback_backoff,
                   timeout=settings.callback_timeout)

    async def push(self, conversation_id: str, replies: Sequence[Reply]) -> None:
        for reply in replies:
            await self._post(message(conversation_id, reply))

    async def _post(self, payload: dict[str, Any]) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode()
        delivery_id = uuid.uuid4().hex
        status: int | None = None
        for attempt in range(1, self.attempts + 1):
            headers = {"Content-Type": "application/json; charset=utf-8",
                       "X-Daoban-Delivery": delivery_id}
            if self.secret:
                stamp = str(int(time.time()))
                headers["X-Daoban-Timestamp"] = stamp
                headers["X-Daoban-Signature"] = signature(self.secret, stamp, body)
            try:
                r = await self.client.post(self.url, content=body, headers=headers)
            except httpx.HTTPError as exc:
                status, why = None, type(exc).__name__
            else:
                if r.is_success:
                    return
                status, why = r.status_code, f"HTTP {r.status_code}"
                if r.status_code < 500 and r.status_code not in RETRY:
                    break  # the receiver refuses this message: another try changes nothing
            log.warning("callback to the webhook client failed (%s), attempt %d of %d",
                        why, attempt, self.attempts)
            if attempt < self.attempts:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
        tries = f"已尝试 {attempt} 次" if attempt > 1 else "对方拒收"
        raise Undelivered(status, f"回调未送达（{why}，{tries}）。请稍后再试，或" + LEAVE)

    async def close(self) -> None:
        await self.client.aclose()
