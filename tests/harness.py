"""A real Assistant over the bundled guide base, for transcript tests (errbot-style)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from assistant.core import Assistant
from assistant.model import Reply, UserMessage
from assistant.store import SqlConversationStore
from assistant.store import migrate as migrate_conversations
from knowledge.db import make_engine
from knowledge.store import content_hash
from knowledge.validate import GuideBase, load_guide
from nlu.understand import Understanding

_shared: dict[str, object] = {}
_ids = itertools.count(1)


def shared_understanding(index_dir: Path) -> tuple[GuideBase, Understanding]:
    """Built once per test session: training the intent model takes a few seconds."""
    if "und" not in _shared:
        guide = load_guide()
        _shared["guide"] = guide
        _shared["und"] = Understanding(guide, content_hash(guide), index_dir=index_dir)
    return _shared["guide"], _shared["und"]  # type: ignore[return-value]


def make_assistant(db_url: str, index_dir: Path) -> Assistant:
    guide, und = shared_understanding(index_dir)
    engine = make_engine(db_url)
    migrate_conversations(engine)
    return Assistant(guide, und, SqlConversationStore(engine))


def app_for(settings: Any) -> Any:
    """The real app for ``settings``, over the shared understanding."""
    from channels.app import Services, create_app  # channels build on everything above

    assistant = make_assistant(settings.database_url, settings.index_dir)
    return create_app(settings, Services(settings, assistant, "test"))


def play_turns(client: TestClient, *turns: dict[str, Any]) -> None:
    """Plays ``turns`` (the dialogue-set format, docs/dialogue.md) as one conversation
    through the REST API and fails with every turn that missed, and its reply."""
    from channels.dialogue_eval import Report, play  # channels build on everything above

    results = play(client, {"id": "t", "turns": list(turns)}, Report())
    bad = [f"#{r.index} 「{r.user[:40]}」 {r.reasons}\n  {r.reply[:500]}"
           for r in results if not r.ok]
    assert not bad, "\n".join(bad)


@contextmanager
def rest_client(folder: Path, name: str, **options: Any) -> Iterator[TestClient]:
    """The real app over a SQLite database in ``folder`` and the shared understanding
    (``options``: more settings)."""
    from channels.settings import Settings

    settings = Settings(database_url=f"sqlite:///{folder / (name + '.db')}",
                        index_dir=folder / "idx", **options)
    with TestClient(app_for(settings), raise_server_exceptions=False) as c:
        yield c


def doorplate_app(folder: Path, name: str, keys: str, **options: Any) -> tuple[Any, Any]:
    """The real app with door-signs (signed with ``keys``) over SQLite in ``folder``:
    (the ASGI app, its ``Doorplates``)."""
    from channels.app import Services, create_app
    from channels.doorplate_web import doorplate_locator
    from channels.settings import Settings
    from doorplate.service import open_doorplates
    from doorplate.tokens import Keyring

    settings = Settings(database_url=f"sqlite:///{folder / (name + '.db')}",
                        index_dir=folder / "idx", doorplate_keys=keys, **options)
    guide, und = shared_understanding(settings.index_dir)
    engine = make_engine(settings.database_url)
    migrate_conversations(engine)
    dp = open_doorplates(engine, Keyring.parse(keys))
    assistant = Assistant(guide, und, SqlConversationStore(engine),
                          places=doorplate_locator(dp, guide), place_log=dp)
    return create_app(settings, Services(settings, assistant, "t", doorplates=dp)), dp


def rest_conversation(client: TestClient) -> tuple[str, dict[str, str]]:
    """``POST /api/v1/conversations``: the new id and the headers that open it (its token)."""
    r = client.post("/api/v1/conversations")
    assert r.status_code == 201, r.text
    body = r.json()
    return str(body["id"]), {"Authorization": f"Bearer {body['token']}"}


@dataclass
class Chat:
    """One scripted conversation: ``say`` returns the joined reply text."""

    assistant: Assistant
    cid: str = ""
    last: list[Reply] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cid = f"t{next(_ids)}"

    def send(self, text: str, message_id: str | None = None) -> list[Reply]:
        self.last = asyncio.run(
            self.assistant.handle(UserMessage(self.cid, text, message_id=message_id), create=True)
        )
        return self.last

    def say(self, text: str) -> str:
        return "\n".join(r.text for r in self.send(text))

    def click(self, title: str) -> str:
        """Press the button titled ``title`` among the last replies' buttons."""
        for r in self.last:
            for b in r.buttons:
                if b.title == title:
                    return self.say(b.payload)
        raise AssertionError(f"no button {title!r} in {[b.title for r in self.last for b in r.buttons]}")

    @property
    def buttons(self) -> list[str]:
        return [b.title for r in self.last for b in r.buttons]

    @property
    def cards(self) -> list[dict]:  # type: ignore[type-arg]
        return [r.card for r in self.last if r.card]

    def state(self) -> dict:  # type: ignore[type-arg]
        return asyncio.run(self.assistant.state(self.cid))
