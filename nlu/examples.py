"""Citizens' own wordings of a question, by the entry they mean (``nlu/data/questions.yml``).

Retrieval compares each question with these (``knowledge.index.W_EXAMPLE``): a paraphrase
of something a citizen said before is a better guide to the item than the item's official
name. The file is data an editor can extend; a malformed file is a clear error naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml

QUESTIONS_FILE = Path(__file__).parent / "data" / "questions.yml"


class ExamplesError(ValueError):
    pass


def load_examples(
    path: Path = QUESTIONS_FILE, *, normalize: Callable[[str], str] = str.strip
) -> dict[str, list[str]]:
    """Entry id → its example questions (normalised, deduplicated, in file order)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ExamplesError(f"{path}: {exc}") from exc
    questions = raw.get("questions") if isinstance(raw, dict) else None
    if not isinstance(questions, dict):
        raise ExamplesError(f"{path}: expected a mapping 'questions: {{id: [question, ...]}}'")
    out: dict[str, list[str]] = {}
    for entry_id, said in questions.items():
        if not isinstance(entry_id, str) or not isinstance(said, list) or not all(
            isinstance(q, str) for q in said
        ):
            raise ExamplesError(f"{path}: {entry_id!r}: expected a list of questions")
        clean = list(dict.fromkeys(n for q in said if (n := normalize(q))))
        if clean:
            out[entry_id] = clean
    return out
