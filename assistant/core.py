"""``Assistant.handle(UserMessage) -> list[Reply]``: one lock per conversation around
load → understand → step → save, as Rasa's ``agent.handle_message`` does."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import anyio

from assistant.flows import Ctx, Outcome, PlaceAware, checklist, step
from assistant.model import Conversation, ConversationMode, Reply, Stage, UserMessage
from assistant.passages import index_for
from assistant.store import Event, SqlConversationStore
from knowledge.validate import GuideBase
from nlu.pii import mask
from nlu.understand import Understanding, Understood

log = logging.getLogger(__name__)

# Most asked items, offered when daoban did not understand (by id; missing ones are skipped).
POPULAR = [
    "newborn-bundle", "id-card-replacement", "social-security-card-replace",
    "hpf-withdraw-rent", "offsite-medical-filing", "residence-permit",
]


@dataclass(frozen=True)
class Handled:
    replies: list[Reply]
    events: list[dict[str, Any]]  # as ``store.events_after`` returns them
    # What the message came to: answered | clarified | fallback | handoff | agent (for a
    # human) | repeat (a message id already processed). With the intent model's confidence
    # and the calibrated confidence that the best hit is what was asked, when the bot read it.
    outcome: str = "repeat"
    intent_confidence: float | None = None
    match_confidence: float | None = None


@dataclass(frozen=True)
class Seen:
    """One handled message, as observers (metrics) see it: no text, no ids."""

    channel: str
    outcome: str
    seconds: float  # lock wait included: what the citizen waited
    intent_confidence: float | None
    match_confidence: float | None


class MessageObserver(Protocol):
    """Told about every handled message (operations metrics). Must not block or raise."""

    def message_handled(self, seen: Seen) -> None: ...


class PlaceLog(Protocol):
    """Records what is asked at a door-sign place (statistics; injected, like PlaceAware)."""

    def record_message(self, place_id: str, text: str, entry_id: str | None) -> None: ...


class DeskHook(Protocol):
    """The agent desk, told what each message appended (a handoff asked for, a message
    for the agent, a rating of the human session). Injected: the assistant never imports
    the desk."""

    async def after_message(self, conversation_id: str, events: list[dict[str, Any]]) -> None: ...


class AssistantError(Exception):
    pass


class ConversationNotFound(AssistantError):
    pass


class MessageRejected(AssistantError):
    """The message itself is unacceptable (empty, too long)."""


class Assistant:
    def __init__(
        self,
        guide: GuideBase,
        understanding: Understanding,
        store: SqlConversationStore,
        *,
        max_chars: int = 1000,
        workers: int = 2,
        places: PlaceAware | None = None,
        place_log: PlaceLog | None = None,
    ) -> None:
        self.guide = guide
        self.understanding = understanding
        self.store = store
        self.max_chars = max_chars
        self.ctx = Ctx(guide, [p for p in POPULAR if guide.entry(p) is not None], places)
        index_for(guide)  # the guide's sentences for questions: built here, not on a question
        self.place_log = place_log
        self._locks: OrderedDict[str, asyncio.Lock] = OrderedDict()
        # Few worker threads on purpose: the work is CPU-bound Python, and many threads
        # fighting the event loop for the GIL made latency worse (benchmarks/load_ws.py).
        self.limiter = anyio.CapacityLimiter(workers)
        self.desk: DeskHook | None = None  # set by the composition root when agents exist
        self.observers: list[MessageObserver] = []

    def _lock(self, cid: str) -> asyncio.Lock:
        lock = self._locks.get(cid)
        if lock is None:
            lock = self._locks[cid] = asyncio.Lock()
            # Keep the table bounded; an evicted lock is never held (checked below).
            while len(self._locks) > 10_000:
                old_id, old = next(iter(self._locks.items()))
                if old.locked():
                    break
                del self._locks[old_id]
        self._locks.move_to_end(cid)
        return lock

    async def create(self, channel: str = "rest", conversation_id: str | None = None) -> str:
        conv = Conversation(conversation_id or uuid.uuid4().hex, channel=channel)
        await anyio.to_thread.run_sync(self.store.create, conv)
        return conv.id

    async def exists(self, conversation_id: str) -> bool:
        return await anyio.to_thread.run_sync(self.store.load, conversation_id) is not None

    async def handle(self, msg: UserMessage, *, create: bool = False) -> list[Reply]:
        return (await self.handle_logged(msg, create=create)).replies

    async def handle_logged(self, msg: UserMessage, *, create: bool = False) -> Handled:
        """Like ``handle``, also returning the events this message appended to the log
        (none when the message id was already processed)."""
        text = msg.text.strip()
        if not text:
            raise MessageRejected("消息不能为空")
        if len(text) > self.max_chars:
            raise MessageRejected(f"消息太长了（{len(text)} 字），请控制在 {self.max_chars} 字以内")
        started = time.perf_counter()
        async with self._lock(msg.conversation_id):
            # One worker-thread hop for the whole load → understand → step → save: the
            # per-conversation lock keeps it serial, and hops cost more than the SQL.
            handled = await anyio.to_thread.run_sync(
                self._handle_exclusive, msg, text, create, limiter=self.limiter
            )
        if self.desk is not None and handled.events:
            await self.desk.after_message(msg.conversation_id, handled.events)
        if self.observers:
            seen = Seen(msg.channel, handled.outcome, time.perf_counter() - started,
                        handled.intent_confidence, handled.match_confidence)
            for observer in self.observers:
                observer.message_handled(seen)
        return handled

    def _handle_exclusive(self, msg: UserMessage, text: str, create: bool) -> Handled:
        with self.store.exclusive(msg.conversation_id):  # other server processes
            return self._handle_sync(msg, text, create)

    def _handle_sync(self, msg: UserMessage, text: str, create: bool) -> Handled:
        if msg.message_id is not None:
            seen = self.store.processed(msg.conversation_id, msg.message_id)
            if seen is not None:
                return Handled(seen, [])
        conv = self.store.load(msg.conversation_id)
        if conv is None:
            if not create:
                raise ConversationNotFound(msg.conversation_id)
            conv = Conversation(msg.conversation_id, channel=msg.channel)
        if msg.place:
            conv.place = msg.place  # the latest scanned plate: the citizen stands there now
        out, understood = self._process(conv, text)
        if conv.place and self.place_log is not None:
            self.place_log.record_message(conv.place, mask(text), conv.current)
        events = [
            Event("user", {"text": text, "channel": msg.channel}),
            *out.events,
            *(Event("bot", r.as_dict()) for r in out.replies),
        ]
        logged = self.store.save(
            conv, events, message_id=msg.message_id, replies=out.replies,
            unanswered=out.unanswered, ratings=out.ratings, comment=out.comment,
        )
        return Handled(out.replies, logged, outcome_of(conv, out),
                       None if understood is None else understood.intent.confidence,
                       None if understood is None else understood.confidence)

    def _process(self, conv: Conversation, text: str) -> tuple[Outcome, Understood | None]:
        if conv.mode is ConversationMode.WITH_AGENT:
            # A human owns the conversation: the bot never answers. The agent desk
            # (another package) delivers the message; here it is only recorded.
            out = Outcome()
            out.events.append(Event("message_for_agent", {"text": text}))
            return out, None
        understood = self.understanding.understand(text)
        return step(conv, text, understood, self.ctx), understood

    async def state(self, conversation_id: str) -> dict[str, Any]:
        conv = await anyio.to_thread.run_sync(self.store.load, conversation_id)
        if conv is None:
            raise ConversationNotFound(conversation_id)
        events = await anyio.to_thread.run_sync(self.store.events, conversation_id)
        cur = self.guide.entry(conv.current) if conv.current else None
        return {
            "id": conv.id,
            "mode": conv.mode.value,
            "stage": conv.stage.value,
            "current_item": None if cur is None else {"id": cur.id, "name": cur.name,
                                                      "kind": cur.kind},
            "checklist": checklist(conv, self.ctx),
            "transcript": _transcript(events),
        }


def outcome_of(conv: Conversation, out: Outcome) -> str:
    """What one message came to, read from what the step produced (not from its words)."""
    if any(e.type == "mode" and e.payload.get("mode") == ConversationMode.WAITING_AGENT.value
           for e in out.events):
        return "handoff"
    if out.unanswered:
        return "fallback"
    if conv.stage is Stage.CLARIFY:
        return "clarified"
    if any(e.type == "message_for_agent" for e in out.events):
        return "agent"  # kept for the human 帮办 (who owns the conversation, or will)
    return "answered"


def _transcript(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in events:
        if e["type"] == "user":
            out.append({"from": "citizen", "text": e["text"], "at": e["at"]})
        elif e["type"] == "bot":
            out.append({"from": "bot", "text": e["text"], "buttons": e.get("buttons", []),
                        "card": e.get("card"), "at": e["at"]})
        elif e["type"] == "mode":
            out.append({"from": "system", "mode": e["mode"], "at": e["at"]})
    return out
