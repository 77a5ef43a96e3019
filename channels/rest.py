"""REST API and the Rasa-compatible REST webhook (wire formats stop here)."""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from assistant.core import Assistant, ConversationNotFound
from assistant.model import Reply, UserMessage
from channels import capability, rest_events
from channels.edge import SafeStr

router = APIRouter()
ConversationId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,160}$")]
_SENDER_OK = re.compile(r"^[A-Za-z0-9_.:-]{1,120}$")


class NewConversation(BaseModel):
    model_config = ConfigDict(extra="ignore")
    channel: str = Field(default="rest", pattern=r"^[a-z]{1,20}$")


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text: SafeStr = Field(max_length=20_000)
    message_id: SafeStr | None = Field(default=None, max_length=160)


class RasaMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    sender: SafeStr = Field(min_length=1, max_length=1000)
    message: SafeStr = Field(max_length=20_000)


def _assistant(request: Request) -> Assistant:
    assistant: Assistant = request.app.state.services.assistant
    return assistant


class TokenRequired(Exception):
    """A conversation asked for without any credential (answered 401)."""


def presented_token(request: Request) -> str | None:
    """The credential a REST caller presents: ``Authorization: Bearer …`` or
    ``X-Conversation-Token``; the server's API token may also come as ``?token=`` (as
    Rasa's HTTP API takes it; the access log never shows it)."""
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-conversation-token") or request.query_params.get("token")


async def authorize(request: Request, conversation_id: str) -> None:
    """Raises unless the caller holds the conversation's token or the server's API token.
    A wrong token and a missing conversation get the same 404."""
    token = presented_token(request)
    if not token:
        raise TokenRequired
    if capability.is_api_token(token, request.app.state.services.settings.api_token):
        return
    if not await capability.opens(_assistant(request), conversation_id, token):
        raise ConversationNotFound(conversation_id)


def token_required_response() -> JSONResponse:
    return JSONResponse(
        {"error": "需要会话令牌（创建会话时返回的 token）", "code": "conversation_token_required"},
        status_code=401, headers={"WWW-Authenticate": "Bearer"})


@router.post("/api/v1/conversations", status_code=201)
async def create_conversation(
    request: Request, body: NewConversation | None = None
) -> dict[str, str]:
    cid, token = await capability.create(
        _assistant(request), (body or NewConversation()).channel)
    return {"id": cid, "token": token}


@router.post("/api/v1/conversations/{conversation_id}/messages")
async def post_message(
    request: Request, conversation_id: ConversationId, body: MessageIn
) -> dict[str, Any]:
    await authorize(request, conversation_id)
    replies = await _assistant(request).handle(
        UserMessage(conversation_id, body.text, channel="rest", message_id=body.message_id)
    )
    return {"replies": [r.as_dict() for r in replies]}


@router.get("/api/v1/conversations/{conversation_id}")
async def get_conversation(request: Request, conversation_id: ConversationId) -> dict[str, Any]:
    await authorize(request, conversation_id)
    return await _assistant(request).state(conversation_id)


@router.get("/api/v1/conversations/{conversation_id}/events")
async def get_events(
    request: Request, conversation_id: ConversationId,
    after: Annotated[int, Query(ge=0, lt=2**62)] = 0,
    wait: Annotated[float, Query(ge=0, le=3600)] = 0,
) -> dict[str, Any]:
    """The citizen-visible events after ``after``; with ``wait`` (seconds, at most
    ``rest_events.MAX_WAIT``) held until there is one."""
    await authorize(request, conversation_id)
    return await rest_events.events_since(request, conversation_id, after, wait)


def rasa_conversation_id(sender: str) -> str:
    """The Rasa sender id names the conversation (hashed when it has unusual characters)."""
    if _SENDER_OK.match(sender):
        return f"rasa:{sender}"
    return "rasa:h-" + hashlib.sha256(sender.encode()).hexdigest()[:32]


def rasa_render(recipient: str, replies: list[Reply]) -> list[dict[str, Any]]:
    out = []
    for r in replies:
        d: dict[str, Any] = {"recipient_id": recipient, "text": r.text}
        if r.buttons:
            d["buttons"] = [b.as_dict() for b in r.buttons]
        out.append(d)
    return out


@router.post("/webhooks/rest/webhook")
async def rasa_webhook(request: Request, body: RasaMessage) -> list[dict[str, Any]]:
    replies = await _assistant(request).handle(
        UserMessage(rasa_conversation_id(body.sender), body.message, channel="rasa"),
        create=True,
    )
    return rasa_render(body.sender, replies)
