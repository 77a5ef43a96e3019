"""Retrieval benchmark: accuracy on the development set, latency and start-up on the
Harbin guide base, and build time / latency / memory on a synthetic 100k-item guide base.

    .venv/bin/python benchmarks/retrieval.py [--dev FILE] [--synthetic N] [--skip-synthetic]

Prints numbers; the goals (issue 3) are printed beside them. Not a test: nothing here
asserts, so a slow machine gives honest numbers rather than a red build.

The synthetic guide base is built twice, each time in a fresh process so that its peak RSS
is that of a daoban process holding a 100k-item guide base and nothing else: first with an
empty vector cache (every passage encoded), then as a restart finds it (vectors cached).
Its items are validated like loaded ones; all share one template's nested records.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from knowledge.schema import ServiceItem
from knowledge.store import content_hash
from knowledge.validate import GuideBase, load_guide
from nlu.evaluate import evaluate, read_cases
from nlu.understand import Understanding

DEV = Path(__file__).resolve().parents[1] / "nlu" / "data" / "eval" / "dev.jsonl"


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb() -> float:
    """Peak resident set size of this process so far (VmHWM: unlike ru_maxrss, not
    inherited from the parent a benchmark child was forked from)."""
    return _status_mb("VmHWM")


def current_rss_mb() -> float:
    return _status_mb("VmRSS")


def latencies_ms(und: Understanding, qs: list[str]) -> list[float]:
    """understand() time of each question, in milliseconds."""
    out = []
    for q in qs:
        t0 = time.perf_counter()
        und.understand(q)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def bench_dev(dev: Path) -> None:
    print("== development set ==")
    guide = load_guide()
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        Understanding(guide, content_hash(guide), index_dir=Path(d))
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        und = Understanding(guide, content_hash(guide), index_dir=Path(d))
        warm = time.perf_counter() - t0
    cases = read_cases(dev)
    r = evaluate(und, guide, cases)
    s, b = r.system, r.baseline
    print(f"n={r.n} in-scope={r.n_in_scope} out-of-scope={r.n_oos}")
    print(f"top-1 {s.top1:.3f} (goal >= 0.92)   top-3 {s.top3:.3f} (goal >= 0.98)   MRR {s.mrr:.3f}")
    print(f"out-of-scope accuracy {r.oos_accuracy:.3f} (goal >= 0.95)   false rejects {r.false_reject}")
    print(f"baseline plain BM25: top-1 {b.top1:.3f} top-3 {b.top3:.3f} MRR {b.mrr:.3f}")
    print(f"top-1 gain over baseline: {100 * (s.top1 - b.top1):+.1f} points (goal >= +10)")
    print("== Harbin guide base: latency and start-up ==")
    qs = [c.q for c in cases] * 3
    lat = latencies_ms(und, qs)
    print(f"entries {len(guide.items) + len(guide.bundles)}; understand() over {len(qs)} queries: "
          f"p50 {statistics.median(lat):.2f} ms (goal <= 5), p99 {pct(lat, 0.99):.2f} ms (goal <= 20)")
    print(f"start-up (tokenizer + intent model + index): cold {cold:.2f} s, "
          f"with cached vectors {warm:.2f} s (goal <= 5)")


WORDS = ["身份", "户口", "社保", "医保", "公积金", "驾驶", "护照", "营业", "食品", "药品", "运输", "不动产", "婚姻", "残疾", "养老", "失业", "生育", "就业", "教育", "卫生", "消防", "排水", "燃气", "供热", "税务", "发票", "车辆", "船舶", "林木", "草原", "水利", "渔业", "矿产", "土地", "规划", "建筑", "环保", "噪声", "广告", "招牌", "文物", "旅游", "体育", "出版", "广播", "电影", "网络", "档案", "气象", "地震", "测绘", "宗教", "民族", "侨务"]
ACTS = ["申领", "换领", "补领", "变更", "注销", "备案", "许可", "登记", "认定", "审批", "核准", "延续", "查询", "转移", "撤销"]
OBJS = ["证明", "证书", "资格", "执照", "许可证", "登记证", "补贴", "津贴", "待遇", "账户", "关系", "信息", "标志", "凭证", "合同"]


def synthetic(n: int, seed: int = 7) -> GuideBase:
    rnd = random.Random(seed)
    base = load_guide()
    items: dict[str, ServiceItem] = {}
    template = next(iter(base.items.values()))
    fields = {k: getattr(template, k) for k in template.model_fields_set}
    for i in range(n):
        w1, w2 = rnd.sample(WORDS, 2)
        name = f"{w1}{w2}{rnd.choice(OBJS)}{rnd.choice(ACTS)}（第{i}号）"
        summary = (
            f"办理{w1}{rnd.choice(OBJS)}相关的{rnd.choice(ACTS)}事项，需到{rnd.choice(WORDS)}窗口，"
            f"带好{rnd.choice(WORDS)}{rnd.choice(OBJS)}。"
        )
        # Validated like a loaded item (the template's nested records are reused as they are).
        items[f"syn-{i}"] = ServiceItem.model_validate(
            {**fields, "id": f"syn-{i}", "name": name, "aliases": [f"{w2}{rnd.choice(ACTS)}"],
             "summary": summary}
        )
    return GuideBase(base.departments, base.materials, items, {}, {})


def synthetic_run(n: int, index_dir: Path) -> dict[str, float]:
    """One process's life with an n-item guide base: generate, build, search."""
    t0 = time.perf_counter()
    guide = synthetic(n)
    gen = time.perf_counter() - t0
    after_guide = rss_mb()
    t0 = time.perf_counter()
    und = Understanding(guide, f"synthetic-{n}", index_dir=index_dir)
    build = time.perf_counter() - t0
    qs = ["身份证明补领怎么办", "公积金账户转移", "驾驶执照换领要多久", "食品许可证延续",
          "税务发票登记", "残疾补贴申领", "不动产登记证注销", "今天天气怎么样"] * 25
    lat = latencies_ms(und, qs)
    return {"generate_s": gen, "build_s": build, "p50_ms": statistics.median(lat),
            "p99_ms": pct(lat, 0.99), "rss_guide_mb": after_guide, "peak_rss_mb": rss_mb(),
            "rss_now_mb": current_rss_mb()}


def bench_synthetic(n: int) -> None:
    """Each run is its own process (peak RSS is per process): first with an empty vector
    cache (every passage encoded), then again with the cache a restart would find."""
    print(f"== synthetic guide base: {n} items (each run a fresh process) ==")
    with tempfile.TemporaryDirectory() as d:
        for label in ("cold (empty vector cache)", "warm (cached vectors)"):
            out = subprocess.run(
                [sys.executable, __file__, "--synthetic-child", str(n), "--index-dir", d],
                check=True, capture_output=True, text=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f"-- {label}")
            print(f"generate {r['generate_s']:.1f} s; index build {r['build_s']:.1f} s (goal <= 120)")
            print(f"search p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms (goal <= 30)")
            print(f"peak RSS {r['peak_rss_mb']:.0f} MB (goal <= 1024); RSS after the build "
                  f"{r['rss_now_mb']:.0f} MB; before it (imports + the guide base) "
                  f"{r['rss_guide_mb']:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dev", type=Path, default=DEV)
    ap.add_argument("--synthetic", type=int, default=100_000)
    ap.add_argument("--skip-synthetic", action="store_true")
    ap.add_argument("--skip-dev", action="store_true")
    ap.add_argument("--synthetic-child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--index-dir", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.synthetic_child:
        print(json.dumps(synthetic_run(args.synthetic_child, args.index_dir)))
        return
    if not args.skip_dev:
        bench_dev(args.dev)
    if not args.skip_synthetic:
        bench_synthetic(args.synthetic)


if __name__ == "__main__":
    main()
