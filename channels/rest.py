"""REST API and the Rasa-compatible REST webhook (wire formats stop here)."""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from assistant.core import Assistant
from assistant.model import Reply, UserMessage

router = APIRouter()
ConversationId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,160}$")]
_SENDER_OK = re.compile(r"^[A-Za-z0-9_.:-]{1,120}$")


class NewConversation(BaseModel):
    model_config = ConfigDict(extra="ignore")
    channel: str = Field(default="rest", pattern=r"^[a-z]{1,20}$")


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    text: str = Field(max_length=20_000)
    message_id: str | None = Field(default=None, max_length=160)


class RasaMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    sender: str = Field(min_length=1, max_length=1000)
    message: str = Field(max_length=20_000)


def _assistant(request: Request) -> Assistant:
    assistant: Assistant = request.app.state.services.assistant
    return assistant


@router.get("/health")
async def health(request: Request) -> dict[str, Any]:
    services = request.app.state.services
    guide = services.assistant.guide
    classifier = services.assistant.understanding.classifier
    nlu: dict[str, Any] = {"backend": services.settings.nlu}
    if hasattr(classifier, "status"):
        nlu = await anyio.to_thread.run_sync(classifier.status)
    return {
        "status": "ok",
        "nlu": nlu,
        "guide": {"items": len(guide.items), "bundles": len(guide.bundles),
                  "hash": services.guide_hash},
    }


@router.post("/api/v1/conversations", status_code=201)
async def create_conversation(
    request: Request, body: NewConversation | None = None
) -> dict[str, str]:
    cid = await _assistant(request).create(channel=(body or NewConversation()).channel)
    return {"id": cid}


@router.post("/api/v1/conversations/{conversation_id}/messages")
async def post_message(
    request: Request, conversation_id: ConversationId, body: MessageIn
) -> dict[str, Any]:
    replies = await _assistant(request).handle(
        UserMessage(conversation_id, body.text, channel="rest", message_id=body.message_id)
    )
    return {"replies": [r.as_dict() for r in replies]}


@router.get("/api/v1/conversations/{conversation_id}")
async def get_conversation(request: Request, conversation_id: ConversationId) -> dict[str, Any]:
    return await _assistant(request).state(conversation_id)


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
