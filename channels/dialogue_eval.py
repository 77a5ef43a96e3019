"""Play multi-turn dialogues (JSONL) through the REST API and check every turn.

File format (docs/dialogue.md): one dialogue per line —
``{"id", "kinds": [...], "turns": [{"user" | "press", "item", "any_item", "must",
"must_not", "mode", "fallback_ok"}]}``. ``must`` is a list of requirements, each a string or
a list of alternatives; ``must_not`` a list of strings. A turn also fails when the reply is
the generic "did not understand" fallback, unless ``fallback_ok`` is set.

The client is anything with httpx's ``post``/``get`` (an in-process ``TestClient`` over the
real app, or an ``httpx.Client`` pointed at a running server).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nlu.evaluate import EvalFileError, read_jsonl

FALLBACK_MARKERS = ("没太明白", "帮不上忙", "您想问哪个事项", "还是没找到合适的事项")
KINDS = ("follow_up", "option_answer", "question_type", "opener_question", "clarify", "slots",
         "bundle", "checklist", "queue_rating", "bad_input")


class DialogueFileError(EvalFileError):
    pass


class HttpClient(Protocol):
    def post(self, url: str, *, json: Any = None, headers: dict[str, str] | None = None
             ) -> Any: ...
    def get(self, url: str, *, headers: dict[str, str] | None = None) -> Any: ...


@dataclass
class TurnResult:
    dialogue: str
    index: int
    user: str
    ok: bool
    reasons: list[str]
    reply: str
    item: str | None


@dataclass
class Report:
    dialogues: int = 0
    dialogues_passed: int = 0
    turns: int = 0
    turns_passed: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)  # dialogues per kind
    failed_by_kind: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    failures: list[TurnResult] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        lat = sorted(self.latency_ms) or [0.0]
        return {
            "dialogues": self.dialogues, "dialogues_passed": self.dialogues_passed,
            "dialogue_rate": round(self.dialogues_passed / max(1, self.dialogues), 4),
            "turns": self.turns, "turns_passed": self.turns_passed,
            "turn_rate": round(self.turns_passed / max(1, self.turns), 4),
            "by_kind": {k: {"dialogues": self.by_kind[k], "failed": self.failed_by_kind[k]}
                        for k in sorted(self.by_kind)},
            "reasons": dict(self.reasons.most_common()),
            "latency_ms_p50": round(lat[len(lat) // 2], 2),
        }


def read_dialogues(paths: list[Path]) -> list[dict[str, Any]]:
    out = []
    for path in paths:
        for n, d in read_jsonl(path):
            if not isinstance(d, dict) or not isinstance(d.get("turns"), list) or not d["turns"]:
                raise DialogueFileError(f"{path}:{n}: a dialogue needs a non-empty 'turns' list")
            for t in d["turns"]:
                if not isinstance(t, dict) or not (isinstance(t.get("user"), str)
                                                   or isinstance(t.get("press"), str)):
                    raise DialogueFileError(f"{path}:{n}: every turn needs 'user' or 'press'")
            d.setdefault("id", f"{path.name}:{n}")
            out.append(d)
    return out


def _reply_text(replies: list[dict[str, Any]]) -> str:
    parts = []
    for r in replies:
        parts.append(str(r.get("text", "")))
        parts.extend(str(b.get("title", "")) for b in r.get("buttons") or [])
    return "\n".join(parts)


# Plain names a dialogue may use for the conversation's mode (the API's are upper case).
MODE_NAMES = {"bot": "BOT", "waiting": "WAITING_AGENT", "queued": "WAITING_AGENT",
              "agent": "WITH_AGENT", "with_agent": "WITH_AGENT", "closed": "CLOSED"}


def check_turn(turn: dict[str, Any], reply: str, item: str | None, mode: str) -> list[str]:
    reasons = []
    for req in turn.get("must") or []:
        alts = [req] if isinstance(req, str) else list(req)
        if not any(a in reply for a in alts):
            reasons.append("missing:" + "|".join(alts))
    for bad in turn.get("must_not") or []:
        if bad in reply:
            reasons.append("forbidden:" + bad)
    want = [turn["item"]] if turn.get("item") else list(turn.get("any_item") or [])
    if want and item not in want:
        reasons.append(f"item:{item}≠{'|'.join(want)}")
    if turn.get("mode") and MODE_NAMES.get(turn["mode"].lower(), turn["mode"]) != mode:
        reasons.append(f"mode:{mode}≠{turn['mode']}")
    if not turn.get("fallback_ok") and any(m in reply for m in FALLBACK_MARKERS):
        reasons.append("fallback")
    return reasons


def play(client: HttpClient, dialogue: dict[str, Any], report: Report) -> list[TurnResult]:
    created = client.post("/api/v1/conversations", json={"channel": "rest"}).json()
    cid = created["id"]
    auth = {"Authorization": f"Bearer {created['token']}"}  # the conversation's capability
    last: list[dict[str, Any]] = []
    results = []
    for i, turn in enumerate(dialogue["turns"]):
        text = turn.get("user")
        if text is None:
            title = turn["press"]
            buttons = [b for r in last for b in r.get("buttons") or []]
            hit = next((b for b in buttons if title in b["title"]), None)
            text = hit["payload"] if hit else title
        t0 = time.perf_counter()
        r = client.post(f"/api/v1/conversations/{cid}/messages", json={"text": text},
                        headers=auth)
        report.latency_ms.append((time.perf_counter() - t0) * 1000)
        body = r.json()
        refused = 400 <= r.status_code < 500  # "消息太长了": a polite answer, but no answer
        if r.status_code >= 500:
            last, reply = [], f"HTTP {r.status_code}"
        elif refused:
            last, reply = [], str(body.get("error", ""))
        else:
            last = body["replies"]
            reply = _reply_text(last)
        state = client.get(f"/api/v1/conversations/{cid}", headers=auth).json()
        item = (state.get("current_item") or {}).get("id")
        reasons = check_turn(turn, reply, item, state.get("mode", ""))
        if refused and not turn.get("fallback_ok") and "fallback" not in reasons:
            reasons.append("fallback")
        results.append(TurnResult(str(dialogue["id"]), i, text, not reasons, reasons, reply,
                                  item))
    return results


def evaluate(client: HttpClient, dialogues: list[dict[str, Any]]) -> Report:
    report = Report()
    for d in dialogues:
        results = play(client, d, report)
        report.dialogues += 1
        report.turns += len(results)
        passed = [r for r in results if r.ok]
        report.turns_passed += len(passed)
        kinds = d.get("kinds") or ["unlabelled"]
        for k in kinds:
            report.by_kind[k] += 1
        if len(passed) == len(results):
            report.dialogues_passed += 1
        else:
            for k in kinds:
                report.failed_by_kind[k] += 1
        for r in results:
            if not r.ok:
                report.failures.append(r)
                for reason in r.reasons:
                    report.reasons[reason.split(":")[0]] += 1
    return report


def print_report(report: Report, *, verbose: bool = False) -> None:
    j = report.as_json()
    print(f"dialogues passed {report.dialogues_passed}/{report.dialogues} "
          f"({j['dialogue_rate']:.1%})  turns passed {report.turns_passed}/{report.turns} "
          f"({j['turn_rate']:.1%})  message p50 {j['latency_ms_p50']} ms")
    print("failed dialogues by kind:")
    for k in sorted(report.by_kind):
        n, f = report.by_kind[k], report.failed_by_kind[k]
        print(f"  {k:16s} {f:3d} of {n:3d} failed")
    print("failed turns by reason: " + ", ".join(f"{k} {v}" for k, v in report.reasons.items()))
    if verbose:
        for r in report.failures:
            short = r.reply.replace("\n", " / ")[:300]
            print(f"- {r.dialogue}#{r.index} 「{r.user[:60]}」 {'; '.join(r.reasons)}\n    "
                  f"item={r.item} reply: {short}")
