"""Intent evaluation of NLU backends side by side: accuracy, macro-F1, parse latency, RSS.

Each line of the file is ``{"text": "...", "intent": "..."}`` (default:
``nlu/data/eval/intents_dev.jsonl``, never used for training).
"""

from __future__ import annotations

import json
import resource
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sklearn.metrics import f1_score

from nlu.intents import IntentClassifier

INTENTS_DEV = Path(__file__).parent / "data" / "eval" / "intents_dev.jsonl"


@dataclass(frozen=True)
class IntentReport:
    backend: str
    n: int
    accuracy: float
    macro_f1: float
    p50_ms: float
    p99_ms: float
    rss_mb: float | None

    def as_json(self) -> dict[str, object]:
        return {"backend": self.backend, "n": self.n, "accuracy": round(self.accuracy, 4),
                "macro_f1": round(self.macro_f1, 4), "p50_ms": round(self.p50_ms, 2),
                "p99_ms": round(self.p99_ms, 2),
                "rss_mb": None if self.rss_mb is None else round(self.rss_mb)}


def read_intent_cases(path: Path = INTENTS_DEV) -> list[tuple[str, str]]:
    out = []
    for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        rec = json.loads(line)
        if not isinstance(rec, dict) or not isinstance(rec.get("text"), str) or not isinstance(
            rec.get("intent"), str
        ):
            raise ValueError(f'{path}:{no}: 每行需要 {{"text": "...", "intent": "..."}}')
        out.append((rec["text"], rec["intent"]))
    return out


def process_rss_mb(pid: int | None = None) -> float:
    if pid is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def evaluate_intents(
    backend: str, clf: IntentClassifier, cases: Sequence[tuple[str, str]],
    rss_pid: int | None = None, own_process: bool = True,
) -> IntentReport:
    gold, pred, lat = [], [], []
    for text, intent in cases:
        t0 = time.perf_counter()
        p = clf.parse(text)
        lat.append((time.perf_counter() - t0) * 1000)
        gold.append(intent)
        pred.append(p.intent)
    lat.sort()
    rss = process_rss_mb(rss_pid) if (rss_pid or own_process) else None
    return IntentReport(
        backend=backend,
        n=len(cases),
        accuracy=sum(g == p for g, p in zip(gold, pred, strict=True)) / max(1, len(cases)),
        macro_f1=float(f1_score(gold, pred, average="macro", zero_division=0)),
        p50_ms=statistics.median(lat) if lat else 0.0,
        p99_ms=lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0.0,
        rss_mb=rss,
    )
