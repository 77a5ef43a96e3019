"""Agent replies that a channel could not deliver (WeChat 客服消息 refused, a webhook
client's callback URL failing): what the agent is told, and the replies left as 留言 to go
out when the citizen writes again.

Both are events of type ``delivery`` in the conversation's log, shown only in the agent
console: ``{"of": <seq of the agent message>, "ok": false, "code", "text"}`` for a failure,
``{"of", "held": true}`` when the agent leaves the reply as a 留言, ``{"of", "ok": true}``
once it went out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
