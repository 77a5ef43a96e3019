"""Evaluation harness: does a citizen's own wording reach the right item?

Each line of the file is ``{"q": "...", "expect": ["name or id", ...]}``; any listed entry
counts; an empty list means the question is out of scope and must get no match. The same
run scores a plain BM25 baseline (jieba words only, no normalisation, synonyms or vectors).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from knowledge.index import BM25
from knowledge.validate import GuideBase
from nlu.understand import Understanding


class EvalFileError(ValueError):
    pass


@dataclass(frozen=True)
class Case:
    q: str
    expect: list[str]


@dataclass
class Scores:
    n: int = 0
    top1: float = 0.0
    top3: float = 0.0
    mrr: float = 0.0


@dataclass
class Report:
    n: int
    n_in_scope: int
    n_oos: int
    system: Scores
    baseline: Scores
    oos_accuracy: float
    false_reject: int
    misses: list[dict[str, Any]] = field(default_factory=list)
    latency_ms_p50: float = 0.0
    latency_ms_p99: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "top1": round(self.system.top1, 4),
            "top3": round(self.system.top3, 4),
            "mrr": round(self.system.mrr, 4),
            "oos_accuracy": round(self.oos_accuracy, 4),
            "baseline": {
                "top1": round(self.baseline.top1, 4),
                "top3": round(self.baseline.top3, 4),
                "mrr": round(self.baseline.mrr, 4),
            },
            "n_in_scope": self.n_in_scope,
            "n_oos": self.n_oos,
            "false_reject": self.false_reject,
            "latency_ms": {"p50": round(self.latency_ms_p50, 2), "p99": round(self.latency_ms_p99, 2)},
        }


def read_jsonl(path: Path) -> list[tuple[int, Any]]:
    """(line number, record) for each non-blank line; ``EvalFileError`` names a bad line."""
    out: list[tuple[int, Any]] = []
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((no, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise EvalFileError(f"{path}:{no}: JSON 格式错误: {exc.msg}") from exc
    return out


def read_cases(path: Path) -> list[Case]:
    cases: list[Case] = []
    for no, rec in read_jsonl(path):
        if not isinstance(rec, dict) or not isinstance(rec.get("q"), str):
            raise EvalFileError(f'{path}:{no}: 每行需要 {{"q": "...", "expect": [...]}}')
        expect = rec.get("expect", [])
        if not isinstance(expect, list) or not all(isinstance(x, str) for x in expect):
            raise EvalFileError(f"{path}:{no}: expect 必须是字符串列表")
        cases.append(Case(rec["q"], expect))
    return cases


def resolve(guide: GuideBase, names: Sequence[str]) -> set[str]:
    by_name = {e.name: e.id for e in [*guide.items.values(), *guide.bundles.values()]}
    out = set()
    for n in names:
        if guide.entry(n) is not None:
            out.add(n)
        elif n in by_name:
            out.add(by_name[n])
        else:
            raise EvalFileError(f"expect 中的事项不存在: {n}")
    return out


def _rank(ids: Sequence[str], want: set[str]) -> int | None:
    for i, x in enumerate(ids):
        if x in want:
            return i + 1
    return None


def _score(ranks: list[int | None]) -> Scores:
    n = len(ranks)
    if n == 0:
        return Scores()
    return Scores(
        n=n,
        top1=sum(1 for r in ranks if r == 1) / n,
        top3=sum(1 for r in ranks if r is not None and r <= 3) / n,
        mrr=sum(1 / r for r in ranks if r is not None) / n,
    )


class Baseline:
    """Plain BM25 over jieba words of name, aliases and summary."""

    def __init__(self, guide: GuideBase, und: Understanding) -> None:
        self.words = und.tokenizer.plain_terms
        self.entries = [*guide.items.values(), *guide.bundles.values()]
        self.bm25 = BM25(
            [self.words(" ".join([e.name, *e.aliases, e.summary])) for e in self.entries]
        )

    def search(self, q: str, k: int = 10) -> list[str]:
        scores, _ = self.bm25.scores(self.words(q))
        order = scores.argsort()[::-1][:k]
        return [self.entries[int(i)].id for i in order if scores[int(i)] > 0]


def evaluate(und: Understanding, guide: GuideBase, cases: Sequence[Case]) -> Report:
    baseline = Baseline(guide, und)
    sys_ranks: list[int | None] = []
    base_ranks: list[int | None] = []
    oos_ok = 0
    n_oos = 0
    false_reject = 0
    misses: list[dict[str, Any]] = []
    lat: list[float] = []
    for c in cases:
        t0 = time.perf_counter()
        u = und.understand(c.q, k=10)
        lat.append((time.perf_counter() - t0) * 1000)
        ids = [h.id for h in u.hits]
        if not c.expect:
            n_oos += 1
            if not ids:
                oos_ok += 1
            else:
                misses.append({"q": c.q, "expect": [], "got": [h.name for h in u.hits[:3]],
                               "score": round(u.hits[0].score, 3), "intent": u.intent.intent})
            continue
        want = resolve(guide, c.expect)
        r = _rank(ids, want)
        sys_ranks.append(r)
        base_ranks.append(_rank(baseline.search(c.q), want))
        if not ids:
            false_reject += 1
        if r != 1:
            misses.append({
                "q": c.q, "expect": c.expect, "got": [h.name for h in u.hits[:3]],
                "score": round(u.hits[0].score, 3) if u.hits else None,
                "intent": u.intent.intent,
            })
    lat.sort()
    return Report(
        n=len(cases),
        n_in_scope=len(sys_ranks),
        n_oos=n_oos,
        system=_score(sys_ranks),
        baseline=_score(base_ranks),
        oos_accuracy=oos_ok / n_oos if n_oos else 1.0,
        false_reject=false_reject,
        misses=misses,
        latency_ms_p50=statistics.median(lat) if lat else 0.0,
        latency_ms_p99=lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0.0,
    )
