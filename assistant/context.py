"""What every dialogue step shares: the guide and its derived lookups (``Ctx``), and what
a step produces (``Outcome``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from assistant.model import Button, Reply
from assistant.render import Entry
from assistant.store import Event
from knowledge.validate import GuideBase
from nlu.cues import DialogueCues, load_cues

MAX_BUTTONS = 5
BRACKET = re.compile(r"[（(]([^）)]+)[）)]")


class PlaceAware(Protocol):
    """Knows the door-sign places (the doorplate package, injected by the composition root:
    the assistant does not import it)."""

    def place_name(self, place_id: str) -> str | None: ...

    def locate(self, entry: Entry, place_id: str) -> list[str]:
        """The “在哪办” reply lines for ``entry`` seen from the place; [] if unknown."""
        ...


def family_key(name: str) -> str:
    """住房公积金提取（租房） → 住房公积金提取: entries told apart by their bracket."""
    return BRACKET.sub("", name).strip()


def mention_terms(e: Entry) -> list[str]:
    """Words whose presence in a question names ``e`` literally."""
    terms = {e.name, family_key(e.name), *e.aliases}
    terms.update(b for b in BRACKET.findall(e.name) if len(b) >= 2)
    return sorted((t.lower() for t in terms if len(t) >= 2), key=len, reverse=True)


@dataclass
class Ctx:
    guide: GuideBase
    suggestions: list[str] = field(default_factory=list)  # entry ids of popular items
    places: PlaceAware | None = None
    cues: DialogueCues = field(default_factory=load_cues)
    families: dict[str, list[str]] = field(default_factory=dict)  # family key -> entry ids
    terms: dict[str, list[str]] = field(default_factory=dict)  # entry id -> mention terms
    bundles_of: dict[str, list[str]] = field(default_factory=dict)  # item id -> bundle ids
    desk_hours: str | None = None  # the desk's office hours in words (DAOBAN_OFFICE_HOURS)

    def __post_init__(self) -> None:
        entries: list[Entry] = [*self.guide.items.values(), *self.guide.bundles.values()]
        fam: dict[str, list[str]] = {}
        for e in entries:
            self.terms[e.id] = mention_terms(e)
            if BRACKET.search(e.name):
                fam.setdefault(family_key(e.name), []).append(e.id)
        for key, ids in fam.items():
            if len(ids) >= 2:
                ids.sort(key=lambda i: -self.popularity(i))
                self.families[key] = ids
        for b in self.guide.bundles.values():
            for m in b.members:
                self.bundles_of.setdefault(m, []).append(b.id)

    def popularity(self, entry_id: str) -> int:
        e = self.guide.entry(entry_id)
        if e is None:
            return 0
        return e.popularity or (50 if e.high_frequency else 0)

    def family(self, entry_id: str) -> list[str]:
        e = self.guide.entry(entry_id)
        return self.families.get(family_key(e.name), []) if e else []

    def bundle_members(self, entry_id: str) -> list[str]:
        b = self.guide.bundles.get(entry_id)
        return list(b.members) if b else []

    def mentions(self, entry_id: str, text: str) -> str | None:
        """The term of ``entry_id`` that ``text`` contains, if any."""
        return next((t for t in self.terms.get(entry_id, []) if t in text), None)


@dataclass
class Outcome:
    replies: list[Reply] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    unanswered: list[tuple[str, str, str]] = field(default_factory=list)
    ratings: list[tuple[str | None, int, str | None]] = field(default_factory=list)
    comment: str | None = None  # attached to this conversation's latest rating

    def say(self, text: str, buttons: tuple[Button, ...] = (),
            card_: dict[str, Any] | None = None) -> None:
        self.replies.append(Reply(text, tuple(buttons[:MAX_BUTTONS]), card_))
