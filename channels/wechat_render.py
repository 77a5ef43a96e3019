"""Replies as WeChat text: numbered options instead of buttons, within WeChat's size limit.

WeChat text messages cannot carry buttons or cards, so buttons become "回复 1 查看材料" and
a bare "1" from the citizen is read back against the last options offered (kept in the
conversation's own stored bot events, so it survives restarts and late delivery).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from html import escape
from typing import Any

from assistant import checklist
from assistant.core import Assistant
from assistant.model import Button, Reply

MAX_BYTES = 2048  # WeChat's limit for a text message's content, UTF-8 bytes
_NUMBER = re.compile(r"^\s*(\d{1,2})\s*$")
# Typed (or pressed as a menu click) to get the whole checklist as one message.
CHECKLIST_COMMANDS = frozenset({"清单", "发清单", "发送清单", "材料清单", "打印清单", "/checklist"})
CHECKLIST_HINT = "回复“清单”，把完整的材料清单作为一条消息发给您，方便转发给家人。"
NO_CHECKLIST = "还没有材料清单。请先说说您要办的事，再回复“查看材料”或“逐项核对材料”。"


def offered(replies: Sequence[Reply]) -> list[Button]:
    """The buttons of a batch of replies, in order, each payload once: option n is n-1."""
    seen: set[str] = set()
    out: list[Button] = []
    for r in replies:
        for b in r.buttons:
            if b.payload not in seen:
                seen.add(b.payload)
                out.append(b)
    return out


def render(replies: Sequence[Reply], web_url: str | None = None, lead: str = "") -> list[str]:
    """The texts to send, each within ``MAX_BYTES``; usually one. ``lead`` goes first."""
    parts = [t for t in (lead.strip(), *(r.text.strip() for r in replies)) if t]
    options = offered(replies)
    if options:
        parts.append("\n".join(f"回复 {i} {b.title}" for i, b in enumerate(options, 1)))
    if any(r.card for r in replies):
        parts.append(CHECKLIST_HINT)
    if web_url and any(r.card for r in replies):
        # A card (the guide entry, the checklist) reads better on a page than in a bubble.
        # A link behind words, never a raw address in the text.
        parts.append(f'<a href="{escape(web_url, quote=True)}">在网页上查看完整办事指南</a>')
    return split("\n\n".join(parts)) if parts else []


def is_checklist_command(text: str) -> bool:
    return unicodedata.normalize("NFKC", text).strip().strip("。！!") in CHECKLIST_COMMANDS


def checklist_messages(snap: dict[str, Any] | None) -> list[str]:
    """The whole checklist as one text message; when longer than WeChat allows, cut at
    line boundaries into numbered parts, each within ``MAX_BYTES``."""
    if snap is None:
        return [NO_CHECKLIST]
    parts = split(checklist.text(snap), MAX_BYTES - 16)
    if len(parts) == 1:
        return parts
    return [f"（{i}/{len(parts)}）\n{p}" for i, p in enumerate(parts, 1)]


def checklist_reply(assistant: Assistant, conversation_id: str) -> list[str]:
    """Blocking (store read): the checklist of the conversation's entry in hand."""
    conv = assistant.store.load(conversation_id)
    return checklist_messages(checklist.snapshot(conv, assistant.ctx) if conv else None)


def split(text: str, limit: int = MAX_BYTES) -> list[str]:
    """Chunks of at most ``limit`` UTF-8 bytes, cut at paragraph, then line, then character
    boundaries (never inside a character)."""
    if _size(text) <= limit:
        return [text]
    out: list[str] = []
    cur = ""
    for piece in _pieces(text, limit):
        joined = f"{cur}\n{piece}" if cur else piece
        if _size(joined) <= limit:
            cur = joined
        else:
            out.append(cur)
            cur = piece
    if cur:
        out.append(cur)
    return [c.strip("\n") for c in out if c.strip()]


def _pieces(text: str, limit: int) -> list[str]:
    pieces: list[str] = []
    for line in text.split("\n"):
        while _size(line) > limit:
            cut = _cut(line, limit)
            pieces.append(line[:cut])
            line = line[cut:]
        pieces.append(line)
    return pieces


def _cut(line: str, limit: int) -> int:
    n = 0
    for i, ch in enumerate(line):
        n += _size(ch)
        if n > limit:
            return i
    return len(line)


def _size(s: str) -> int:
    return len(s.encode())


def is_choice(text: str) -> bool:
    return _NUMBER.match(unicodedata.normalize("NFKC", text)) is not None


def choice(text: str, recent: Sequence[dict[str, Any]]) -> str:
    """``text`` itself, or the payload of option n when the citizen sent a bare number
    right after being offered options. ``recent`` are the conversation's latest stored
    events (types user, bot, agent), oldest first."""
    m = _NUMBER.match(unicodedata.normalize("NFKC", text))
    if m is None:
        return text
    # The options are those of the bot's latest turn: its messages after the last one of
    # a person (citizen or agent). An agent's words before the hand-back's rating options
    # do not make them stale; an agent's words after them do.
    last_person = max((i for i, e in enumerate(recent) if e["type"] != "bot"), default=-1)
    options = offered([Reply.from_dict(e) for e in recent[last_person + 1 :]])
    n = int(m.group(1))
    return options[n - 1].payload if 1 <= n <= len(options) else text
