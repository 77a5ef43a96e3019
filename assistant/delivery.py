"""Agent replies that a channel could not deliver (WeChat 客服消息 refused, a webhook
client's callback URL failing): what the agent is told, and the replies left as 留言 to go
out when the citizen writes again.

Both are events of type ``delivery`` in the conversation's log, shown only in the agent
console: ``{"of": <seq of the agent message>, "ok": false, "code", "text"}`` for a failure,
``{"of", "held": true}`` when the agent leaves the reply as a 留言, ``{"of", "ok": true}``
once it went out.

``Outbound`` sends the desk's pushes (agent replies, notices) to the channels whose
citizens have no socket to wake: in order per conversation, and a queued sink's (a
webhook callback that retries for a while) in the background, so the agent never waits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from assistant.model import Conversation, Reply
from assistant.store import Event

log = logging.getLogger(__name__)

OUTSIDE_WINDOW = 45015  # the citizen has not written for 48 hours
TOO_MANY = 45047  # too many 客服消息 before the citizen replies
LEAVE = "可以把这条回复留作留言，市民下次发消息时自动送达。"


class Undelivered(Exception):
    """A push a channel gave up on, with what the agent reads (``text``) and a code (an
    HTTP status, say) or None. Channels other than WeChat raise this."""

    def __init__(self, code: int | None, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def problem_text(exc: BaseException) -> tuple[int | None, str]:
    """(WeChat error code, a channel's code, or None; what the agent reads on the message)."""
    if isinstance(exc, Undelivered):
        return exc.code, exc.text
    code = getattr(exc, "errcode", None)
    code = code if isinstance(code, int) and code > 0 else None
    if code == OUTSIDE_WINDOW:
        return code, ("微信未送达：市民超过 48 小时没有发消息，微信不允许再主动发给他。"
                      "请等市民再发消息；" + LEAVE)
    if code == TOO_MANY:
        return code, ("微信未送达：市民回复之前，微信只允许连续发送有限条数的客服消息。"
                      "请等市民回复；" + LEAVE)
    what = f"错误码 {code}" if code is not None else "网络或配置问题"
    return code, f"微信未送达（{what}）。请稍后再试，或" + LEAVE


def held(events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The agent messages left as 留言 and not delivered since, in order."""
    by_seq = {e["seq"]: e for e in events if e["type"] == "agent"}
    waiting: dict[int, dict[str, Any]] = {}
    for e in events:
        if e["type"] != "delivery" or e.get("of") not in by_seq:
            continue
        if e.get("held"):
            waiting[int(e["of"])] = by_seq[e["of"]]
        elif e.get("ok"):
            waiting.pop(int(e["of"]), None)
    return [waiting[s] for s in sorted(waiting)]


def failed(events: Sequence[dict[str, Any]], seq: int) -> bool:
    """Whether the agent message ``seq`` failed and is neither delivered nor held."""
    state = None
    for e in events:
        if e["type"] == "delivery" and e.get("of") == seq:
            state = "held" if e.get("held") else ("ok" if e.get("ok") else "failed")
    return state == "failed"


class ReplySink(Protocol):
    """Pushes that do not ride on a request (WeChat 客服消息, a webhook client's callback
    URL). A sink with ``queued = True`` retries by itself for a while: the desk runs its
    pushes in the background, in order per conversation, and records a final failure on
    the message (``delivery``) instead of making the agent wait."""

    async def push(self, conversation_id: str, replies: Sequence[Reply]) -> None: ...


Change = Callable[[str, Callable[[Conversation], list[Event]]], Awaitable[Any]]


class Outbound:
    """The desk's pushes. ``sink``: channel name → where to push (None: the channel's
    citizens read the log through a socket); ``channel_of``: a conversation's channel;
    ``change``: appends events to a conversation's log under its locks."""

    def __init__(self, sink: Callable[[str], ReplySink | None],
                 channel_of: Callable[[str], Awaitable[str | None]], change: Change) -> None:
        self.sink = sink
        self.channel_of = channel_of
        self.change = change
        self._locks: dict[str, asyncio.Lock] = {}  # agent messages leave in the order sent
        self._later: dict[str, asyncio.Lock] = {}  # queued sinks' pushes, in order
        self._tasks: set[asyncio.Task[None]] = set()
        self._resending: set[tuple[str, int | None]] = set()  # held 留言 on their way

    def lock(self, cid: str) -> asyncio.Lock:
        return self._locks.setdefault(cid, asyncio.Lock())

    async def push(self, cid: str, replies: list[Reply], *, of: int | None = None,
                   then: Callable[[], Awaitable[None]] | None = None,
                   mark: bool = True) -> BaseException | None:
        """Push ``replies`` (carrying the event ``of``) if the conversation's channel has a
        sink; what went wrong, or None. A queued sink's push runs in the background: its
        failure is recorded on ``of`` (unless not ``mark``), its success runs ``then``."""
        channel = await self.channel_of(cid)
        sink = self.sink(channel) if channel is not None else None
        if sink is None:
            return None
        if getattr(sink, "queued", False):
            key = (cid, of)
            if then is not None:  # a held 留言 goes once, even if the citizen writes twice
                if key in self._resending:
                    return None
                self._resending.add(key)
            task = asyncio.create_task(self._later_push(sink, cid, replies, of, then, mark))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            if then is not None:
                task.add_done_callback(lambda _: self._resending.discard(key))
            return None
        try:
            await sink.push(cid, replies)
        except Exception as exc:
            # Stored in the log either way; an agent's reply is marked for the agent.
            log.warning("could not push to conversation %s: %s", cid, exc)
            return exc
        if then is not None:
            await then()
        return None

    async def _later_push(self, sink: ReplySink, cid: str, replies: list[Reply],
                          of: int | None, then: Callable[[], Awaitable[None]] | None,
                          mark: bool) -> None:
        # Tasks are created in the order of the pushes and the lock is fair: in order.
        async with self._later.setdefault(cid, asyncio.Lock()):
            try:
                await sink.push(cid, replies)
            except asyncio.CancelledError:
                if mark:  # shutting down: recorded, never dropped silently
                    await self.failed(cid, of, Undelivered(
                        None, "服务重启时这条消息还没有送达。" + LEAVE))
                raise
            except Exception as exc:
                log.warning("could not push to conversation %s: %s", cid, exc)
                if mark:
                    await self.failed(cid, of, exc)
                return
            if then is not None:
                await then()

    async def failed(self, cid: str, of: int | None, exc: BaseException) -> None:
        """A failed push, shown to the agent on the message it carried."""
        code, why = problem_text(exc)
        try:
            await self.change(cid, lambda conv: [Event("delivery", {
                "of": of, "ok": False, "code": code, "text": why})])
        except Exception:
            log.exception("could not record the failed push to conversation %s", cid)

    async def close(self) -> None:
        """Shutting down: pushes still being retried stop and are recorded as not delivered."""
        pending = list(self._tasks)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
