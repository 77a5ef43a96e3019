"""What a REST citizen has not seen yet: ``GET /api/v1/conversations/{id}/events``.

A REST client gets the bot's replies in the answer to its POST, but an agent's messages
(and the desk's notices) arrive later, from another request or another server process.
It asks for the conversation's events after the last sequence number it saw; with
``wait`` the request is held (long-poll) until something the citizen may see is stored,
or the wait runs out. The wake-up comes from the event bus (in-process or Redis), and the
events are read from the database: a lost or repeated wake-up never loses or repeats a
message, and the log is re-read every ``RECHECK`` seconds anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import anyio
from fastapi import Request

from assistant.core import Assistant
from assistant.desk import conv_topic
from channels.web import SHOWN, frame_of

MAX_WAIT = 30.0  # seconds a poll may be held; longer asks are cut to this
RECHECK = 5.0  # seconds between re-reads of the log (and checks that the client is still there)


async def events_since(request: Request, cid: str, after: int, wait: float) -> dict[str, Any]:
    """``{"events": [frames as the web page gets them], "last_seq": N}``: the events the
    citizen's page would show (the same filter and frames as ``/ws/chat``) after ``after``;
    ``last_seq`` is the highest sequence number read (hidden events included), the
    ``after`` of the next poll."""
    assistant: Assistant = request.app.state.services.assistant
    desk = getattr(request.app.state, "desk", None)
    woken = asyncio.Event()

    async def wake(_: dict[str, Any]) -> None:
        woken.set()

    # Subscribed before the first read: a message stored after that read wakes this poll.
    unsubscribe = desk.bus.subscribe(conv_topic(cid), wake) if desk is not None else None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(max(wait, 0.0), MAX_WAIT)
    seen, frames = after, []
    try:
        while True:
            woken.clear()
            events = await anyio.to_thread.run_sync(
                assistant.store.events_after, cid, seen, None, limiter=assistant.limiter)
            if events:
                seen = max(seen, int(events[-1]["seq"]))
            frames = [frame_of(e) for e in events if e["type"] in SHOWN]
            left = deadline - loop.time()
            if frames or left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), min(left, RECHECK))
            if not woken.is_set() and await request.is_disconnected():
                break  # nobody to answer
    finally:
        if unsubscribe is not None:
            unsubscribe()
    return {"events": frames, "last_seq": seen}
