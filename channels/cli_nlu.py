"""CLI commands that need the NLU and search stack: search, eval."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from channels.settings import Settings


def build_understanding(settings: Settings):  # type: ignore[no-untyped-def]
    """Guide base from the database (bundled on first run) → NLU + search index."""
    from channels.cli import open_db
    from knowledge.store import load_stored, stored_hash
    from nlu.understand import Understanding

    engine = open_db(settings)
    try:
        guide = load_stored(engine)
        content = stored_hash(engine) or "unknown"
    finally:
        engine.dispose()
    return guide, Understanding(guide, content, index_dir=settings.index_dir)


def cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    query = " ".join(args.query).strip()
    if not query:
        print("请输入要查询的问题", file=sys.stderr)
        return 2
    _, und = build_understanding(settings)
    u = und.understand(query, k=args.top)
    out: dict[str, Any] = {
        "query": query,
        "intent": {"name": u.intent.intent, "confidence": round(u.intent.confidence, 4)},
        "items": [
            {"id": h.id, "name": h.name, "kind": h.kind, "score": round(h.score, 4)}
            for h in u.hits
        ],
    }
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(f"意图: {out['intent']['name']} ({out['intent']['confidence']:.2f})")
        if not u.hits:
            print("没有找到匹配的事项")
        for i, h in enumerate(u.hits, 1):
            print(f"{i}. {h.name} [{h.kind}] {h.score:.3f}")
    return 0


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from nlu.evaluate import EvalFileError, evaluate, read_cases

    try:
        cases = read_cases(Path(args.file))
    except (OSError, EvalFileError) as exc:
        print(f"评测文件错误: {exc}", file=sys.stderr)
        return 2
    guide, und = build_understanding(settings)
    try:
        report = evaluate(und, guide, cases)
    except EvalFileError as exc:
        print(f"评测文件错误: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.as_json(), ensure_ascii=False))
        return 0
    s, b = report.system, report.baseline
    print(f"n={report.n} (in scope {report.n_in_scope}, out of scope {report.n_oos})")
    print(f"top-1 {s.top1:.3f}  top-3 {s.top3:.3f}  MRR {s.mrr:.3f}  "
          f"out-of-scope accuracy {report.oos_accuracy:.3f}  false rejects {report.false_reject}")
    print(f"baseline (plain BM25, jieba words): top-1 {b.top1:.3f}  top-3 {b.top3:.3f}  "
          f"MRR {b.mrr:.3f}")
    print(f"latency p50 {report.latency_ms_p50:.2f} ms  p99 {report.latency_ms_p99:.2f} ms")
    if report.misses:
        print(f"\nmisses ({len(report.misses)}):")
        for m in report.misses:
            print(f"- {m['q']} → expect {m['expect']} got {m['got']} "
                  f"(score {m['score']}, intent {m['intent']})")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("search", help="查询: 问题 → 意图和匹配事项")
    s.add_argument("query", nargs="+")
    s.add_argument("--json", action="store_true")
    s.add_argument("--top", type=int, default=5)
    s.set_defaults(func=cmd_search)
    e = sub.add_parser("eval", help="评测检索效果 (JSONL: q, expect)")
    e.add_argument("file")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval)
