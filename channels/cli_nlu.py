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


def cmd_eval_nlu(args: argparse.Namespace, settings: Settings) -> int:
    """Intent accuracy, macro-F1, latency and RSS of the NLU backends, in one run."""
    from knowledge.validate import load_guide
    from nlu.evaluate_intents import INTENTS_DEV, evaluate_intents, read_intent_cases
    from nlu.intents import EmbeddedClassifier
    from nlu.rasa_client import RasaClassifier
    from nlu.rasa_project import model_name
    from nlu.tokenizer import Tokenizer

    cases = read_intent_cases(Path(args.file) if args.file else INTENTS_DEV)
    backends = ["embedded", "rasa"] if args.nlu == "both" else [args.nlu]
    tokenizer = Tokenizer(load_guide())
    embedded = EmbeddedClassifier(words=tokenizer.plain_terms)
    reports = []
    for b in backends:
        if b == "embedded":
            reports.append(evaluate_intents("embedded", embedded, cases))
            continue
        rasa = RasaClassifier(settings.rasa_url, embedded, timeout=5.0, max_failures=10**9,
                              expected_model=model_name())
        status = rasa.status()
        if not status.get("reachable"):
            print(f"Rasa 不可用 ({settings.rasa_url}): 先运行 scripts/rasa.sh start", file=sys.stderr)
            return 2
        pid = rasa_pid(settings.rasa_url)
        if pid is None:
            print("提示: 找不到 Rasa 进程号 (scripts/rasa.sh 写的 pid 文件)，内存显示为 n/a",
                  file=sys.stderr)
        before = rasa._state.failures
        report = evaluate_intents("rasa", rasa, cases, rss_pid=pid, own_process=False)
        if rasa._state.failures != before:
            print("Rasa 请求失败，结果不可信", file=sys.stderr)
            return 2
        if status.get("stale"):
            print(f"警告: Rasa 模型 {status.get('model')} 不是用当前数据训练的", file=sys.stderr)
        reports.append(report)
        rasa.close()
    if args.json:
        print(json.dumps([r.as_json() for r in reports], ensure_ascii=False))
        return 0
    print(f"intent development set: {len(cases)} utterances")
    print("| backend | accuracy | macro-F1 | parse p50 | parse p99 | RSS |")
    print("|---|---|---|---|---|---|")
    for r in reports:
        rss = "n/a" if r.rss_mb is None else f"{r.rss_mb:.0f} MB"
        print(f"| {r.backend} | {r.accuracy:.3f} | {r.macro_f1:.3f} | {r.p50_ms:.2f} ms | "
              f"{r.p99_ms:.2f} ms | {rss} |")
    return 0


def rasa_pid(url: str) -> int | None:
    """The pid of the Rasa server ``scripts/rasa.sh start`` started: its pid files are
    ``$DAOBAN_RASA_PIDFILE``, ``~/.cache/daoban/rasa-PORT.pid`` and ``var/rasa/rasa.pid``.
    Only a live process running the ``rasa`` program counts (a stale file is no answer)."""
    import os
    from urllib.parse import urlsplit

    port = urlsplit(url).port or 5005
    candidates = [os.environ.get("DAOBAN_RASA_PIDFILE", ""),
                  str(Path.home() / ".cache" / "daoban" / f"rasa-{port}.pid"),
                  str(Path(os.environ.get("DAOBAN_RASA_PROJECT", "var/rasa")) / "rasa.pid")]
    for name in filter(None, candidates):
        try:
            pid = int(Path(name).read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if any(Path(arg.decode(errors="replace")).name == "rasa" for arg in cmdline.split(b"\0")):
            return pid  # `…/bin/rasa run …`
    return None


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from nlu.evaluate import EvalFileError, evaluate, read_cases

    if args.nlu:
        return cmd_eval_nlu(args, settings)
    if args.dialogues:
        return cmd_eval_dialogues(args, settings)
    if not args.file:
        print("请给出评测文件 (JSONL: q, expect)，或用 --nlu 评测意图识别", file=sys.stderr)
        return 2
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


def cmd_eval_dialogues(args: argparse.Namespace, settings: Settings) -> int:
    """Play dialogues through the REST API: of a running server (--url), or of the real app
    started in this process on a fresh SQLite database."""
    import tempfile

    import httpx

    from channels.dialogue_eval import DialogueFileError, evaluate, print_report, read_dialogues

    try:
        dialogues = read_dialogues([Path(f) for f in args.dialogues])
    except (OSError, DialogueFileError) as exc:
        print(f"评测文件错误: {exc}", file=sys.stderr)
        return 2
    if args.url:
        with httpx.Client(base_url=args.url, timeout=30) as client:
            report = evaluate(client, dialogues)
    else:
        from fastapi.testclient import TestClient

        from channels.app import create_app

        with tempfile.TemporaryDirectory() as tmp:
            # One process playing hundreds of conversations: not a flood to be limited.
            local = settings.model_copy(update={"database_url": f"sqlite:///{tmp}/eval.db",
                                                "rate_limits": False})
            with TestClient(create_app(local)) as client:
                report = evaluate(client, dialogues)
    if args.json:
        print(json.dumps(report.as_json(), ensure_ascii=False))
    else:
        print_report(report, verbose=args.verbose)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("search", help="查询: 问题 → 意图和匹配事项")
    s.add_argument("query", nargs="+")
    s.add_argument("--json", action="store_true")
    s.add_argument("--top", type=int, default=5)
    s.set_defaults(func=cmd_search)
    e = sub.add_parser("eval", help="评测检索效果 (JSONL: q, expect); --nlu: 评测意图识别")
    e.add_argument("file", nargs="?")
    e.add_argument("--nlu", choices=["embedded", "rasa", "both"],
                   help="intent accuracy / macro-F1 / latency / RSS of NLU backends "
                        "(default file: nlu/data/eval/intents_dev.jsonl)")
    e.add_argument("--dialogues", nargs="+", metavar="FILE",
                   help="play multi-turn dialogues (JSONL, docs/dialogue.md) through the REST "
                        "API and report dialogues/turns passed and failures by kind")
    e.add_argument("--url", help="with --dialogues: a running daoban server (default: the app "
                                 "in this process on a fresh SQLite database)")
    e.add_argument("-v", "--verbose", action="store_true", help="list every failed turn")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_eval)
