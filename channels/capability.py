"""Conversation capabilities: the unguessable token that opens one citizen's conversation.

A conversation id names a conversation; it grants nothing. The token is created with the
conversation, handed once to the citizen's client (the web page keeps it, a REST client
gets it in the creation response) and stored only as its sha256. Webhook conversations
(``rasa:<sender>``) and conversations from before tokens have no token: by id alone they
open for nobody but a caller holding the server's API token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from functools import partial

import anyio

from assistant.core import Assistant
from assistant.model import Conversation

# Compared against when the conversation has no token, so that "no such conversation",
# "no token stored" and "wrong token" cost the same time.
_NOTHING = hashlib.sha256(b"daoban: no conversation token").hexdigest()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


async def create(assistant: Assistant, channel: str) -> tuple[str, str]:
    """A new conversation and its token (the only time the token is known in clear)."""
    token = secrets.token_urlsafe(32)
    conv = Conversation(uuid.uuid4().hex, channel=channel)
    await anyio.to_thread.run_sync(
        partial(assistant.store.create, conv, token_hash=token_hash(token)))
    return conv.id, token


async def opens(assistant: Assistant, conversation_id: str, token: str | None) -> bool:
    """Whether ``token`` is the capability of ``conversation_id`` (constant-time)."""
    stored = await anyio.to_thread.run_sync(assistant.store.token_hash, conversation_id)
    presented = token_hash(token) if token else ""
    same = hmac.compare_digest(stored or _NOTHING, presented or "-" * 64)
    return same and stored is not None and bool(token)


def is_api_token(presented: str | None, api_token: str | None) -> bool:
    """The server's API token (``DAOBAN_API_TOKEN``) opens every conversation."""
    if not presented or not api_token:
        return False
    return hmac.compare_digest(presented.encode("utf-8", "surrogatepass"),
                               api_token.encode("utf-8", "surrogatepass"))
