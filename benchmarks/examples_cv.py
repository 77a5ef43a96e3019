"""How much the example bank (nlu/data/questions.yml) helps on questions it has not seen.

    .venv/bin/python benchmarks/examples_cv.py [--weights 0.2,0.4,0.6] [--floors 0.5,0.6,0.7]

Leave one development set out: the bank is rebuilt from the other sets (and the first
turns of the development dialogues), and the held-out set is scored with and without it,
for each weight and floor (knowledge.index.W_EXAMPLE / EXAMPLE_FLOOR). Then the blind set
(nlu/data/eval/check3.jsonl, in no bank) is scored with the bundled bank. Prints numbers,
asserts nothing. Top-1 is over in-scope questions.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from knowledge import index as kindex  # noqa: E402
from knowledge.store import content_hash  # noqa: E402
from knowledge.validate import load_guide  # noqa: E402
from nlu.evaluate import evaluate, read_cases, resolve  # noqa: E402
from nlu.understand import Understanding  # noqa: E402

EVAL = ROOT / "nlu" / "data" / "eval"
SETS = [EVAL / "dev.jsonl", EVAL / "check.jsonl", EVAL / "check2.jsonl"]
BLIND = EVAL / "check3.jsonl"
DIALOGUES = [ROOT / "tests" / "dialogues" / f for f in ("dev.jsonl", "dev2.jsonl", "blind.jsonl")]


def openers() -> list[tuple[str, list[str]]]:
    out = []
    for path in DIALOGUES:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                first = json.loads(line)["turns"][0]
                if "user" in first and first.get("item"):
                    out.append((first["user"], [first["item"], *first.get("any_item", [])]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", default="0.2,0.4,0.6")
    ap.add_argument("--floors", default="0.5,0.6,0.7")
    args = ap.parse_args()
    guide = load_guide()
    und = Understanding(guide, content_hash(guide), index_dir=Path(tempfile.mkdtemp()))
    labelled = {p.name: [(c.q, sorted(resolve(guide, c.expect))) for c in read_cases(p)]
                for p in SETS}
    labelled["dialogue openers"] = openers()

    def bank(leave_out: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, cases in labelled.items():
            if name != leave_out:
                for q, ids in cases:
                    for i in ids:
                        out.setdefault(i, []).append(und.tokenizer.normalize(q))
        return out

    def top1(examples: dict[str, list[str]], w: float, floor: float, held: str) -> float:
        und.examples = examples
        with mock.patch.object(kindex, "W_EXAMPLE", w), \
                mock.patch.object(kindex, "EXAMPLE_FLOOR", floor):
            und.search_service.refresh(guide, f"cv-{held}-{len(examples)}")
            scored = [(und.search(q, k=1), ids) for q, ids in labelled[held] if ids]
        return sum(bool(h) and h[0].id in ids for h, ids in scored) / len(scored)

    grid = [(float(w), float(f)) for w in args.weights.split(",") for f in args.floors.split(",")]
    print("held-out set".ljust(22), "no bank", *(f"w{w}/f{f}" for w, f in grid))
    for held in labelled:
        ex = bank(held)
        row = [top1({}, 0.0, 1.0, held)] + [top1(ex, w, f, held) for w, f in grid]
        print(held.ljust(22), *(f"{x:.3f}".rjust(7) for x in row))
    und.examples = bank("")
    und.search_service.refresh(guide, "cv-all")
    report = evaluate(und, guide, read_cases(BLIND)).as_json()
    print(f"blind {BLIND.name} with the full bank (W={kindex.W_EXAMPLE}, "
          f"floor={kindex.EXAMPLE_FLOOR}): top-1 {report['top1']} top-3 {report['top3']} "
          f"out-of-scope {report['oos_accuracy']}")


if __name__ == "__main__":
    main()
