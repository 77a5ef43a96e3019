"""What the assistant receives and returns, and the conversation it remembers.

Channels turn their wire format into ``UserMessage`` and render ``Reply`` values; the
assistant never sees XML, websocket frames or openids.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(frozen=True)
class UserMessage:
    conversation_id: str
    text: str
    channel: str = "rest"
    message_id: str | None = None  # a repeated id is processed once
    place: str | None = None  # a door-sign place id, when the citizen scanned one


@dataclass(frozen=True)
class Button:
    title: str
    payload: str

    def as_dict(self) -> dict[str, str]:
        return {"title": self.title, "payload": self.payload}


@dataclass(frozen=True)
class Reply:
    """Plain text always; buttons (≤5) and a structured card when a channel can show them."""

    text: str
    buttons: tuple[Button, ...] = ()
    card: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "buttons": [b.as_dict() for b in self.buttons],
            "card": self.card,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reply:
        return cls(
            str(d["text"]),
            tuple(Button(b["title"], b["payload"]) for b in d.get("buttons") or []),
            d.get("card"),
        )


class IllegalTransition(RuntimeError):
    pass


class ConversationMode(StrEnum):
    BOT = "BOT"
    WAITING_AGENT = "WAITING_AGENT"
    WITH_AGENT = "WITH_AGENT"
    CLOSED = "CLOSED"


_ALLOWED = {
    ConversationMode.BOT: {ConversationMode.WAITING_AGENT, ConversationMode.CLOSED},
    ConversationMode.WAITING_AGENT: {
        ConversationMode.WITH_AGENT, ConversationMode.BOT, ConversationMode.CLOSED
    },
    ConversationMode.WITH_AGENT: {
        ConversationMode.BOT, ConversationMode.WAITING_AGENT, ConversationMode.CLOSED
    },
    ConversationMode.CLOSED: {ConversationMode.BOT},
}


class Stage(StrEnum):
    IDLE = "idle"
    CLARIFY = "clarify"  # choosing among close candidates
    SITUATION = "situation"  # answering a 办事情形 question
    WALK = "walk"  # materials walkthrough
    RATING = "rating"
    COMMENT = "comment"  # optional comment after a rating


@dataclass
class Walk:
    """A materials walkthrough: one material at a time, answers remembered."""

    entry_id: str
    queue: list[str]  # material refs still to ask, in order
    answers: dict[str, str] = field(default_factory=dict)  # ref -> ready|missing|unsure|skipped
    done: bool = False


@dataclass
class Conversation:
    id: str
    channel: str = "rest"
    mode: ConversationMode = ConversationMode.BOT
    stage: Stage = Stage.IDLE
    current: str | None = None  # entry id the citizen is talking about
    options: list[str] = field(default_factory=list)  # candidates offered to choose from
    situations: dict[str, dict[str, str]] = field(default_factory=dict)  # item -> sit -> opt
    pending_situation: list[str] = field(default_factory=list)  # [item_id, situation_id]
    after_situation: str = ""  # what to do once situations are answered: walk|list
    walk: Walk | None = None
    misses: int = 0  # consecutive messages daoban could not answer
    rating_for: str | None = None
    place: str | None = None
    # Facts the citizen stated (slot -> value, nlu/data/dialogue.yml): not asked again.
    slots: dict[str, str] = field(default_factory=dict)
    reasks: int = 0  # times the pending question was asked again (at most once)
    confirm: str = ""  # an option the bot asked to confirm ("您是说…吗？")

    def transition(self, to: ConversationMode) -> None:
        if to not in _ALLOWED[self.mode]:
            raise IllegalTransition(
                f"conversation {self.id}: cannot go from {self.mode} to {to}; "
                f"expected one of {sorted(_ALLOWED[self.mode])}"
            )
        self.mode = to

    def to_state(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "mode": self.mode.value,
            "stage": self.stage.value,
            "current": self.current,
            "options": self.options,
            "situations": self.situations,
            "pending_situation": self.pending_situation,
            "after_situation": self.after_situation,
            "walk": None
            if self.walk is None
            else {
                "entry_id": self.walk.entry_id,
                "queue": self.walk.queue,
                "answers": self.walk.answers,
                "done": self.walk.done,
            },
            "misses": self.misses,
            "rating_for": self.rating_for,
            "place": self.place,
            "slots": self.slots,
            "reasks": self.reasks,
            "confirm": self.confirm,
        }

    @classmethod
    def from_state(cls, cid: str, s: dict[str, Any]) -> Conversation:
        w = s.get("walk")
        return cls(
            id=cid,
            channel=s.get("channel", "rest"),
            mode=ConversationMode(s.get("mode", "BOT")),
            stage=Stage(s.get("stage", "idle")),
            current=s.get("current"),
            options=list(s.get("options") or []),
            situations={k: dict(v) for k, v in (s.get("situations") or {}).items()},
            pending_situation=list(s.get("pending_situation") or []),
            after_situation=s.get("after_situation", ""),
            walk=None
            if not w
            else Walk(w["entry_id"], list(w["queue"]), dict(w["answers"]), bool(w["done"])),
            misses=int(s.get("misses", 0)),
            rating_for=s.get("rating_for"),
            place=s.get("place"),
            slots={str(k): str(v) for k, v in (s.get("slots") or {}).items()},
            reasks=int(s.get("reasks", 0)),
            confirm=str(s.get("confirm") or ""),
        )
