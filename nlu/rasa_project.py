"""Generate the Rasa 3.6 NLU project from daoban's own files.

Rasa never shares daoban's environment (it needs Python 3.10 and old pins): this module only
writes files — ``config.yml``, ``data/nlu.yml`` and a jieba user dictionary — that the
separate Rasa virtualenv trains on. The model name carries a hash of everything it was
trained from, so a model trained on stale data is detected (``training_hash``).

    python -m nlu.rasa_project OUT_DIR         # prints the model name to train as
    python -m nlu.rasa_project --bot OUT_DIR   # the benchmark bot (benchmarks/vs_rasa.py)
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import yaml

from knowledge.validate import GuideBase, load_guide
from nlu.intents import NLU_FILE
from nlu.tokenizer import LEXICON, PUNCT, Lexicon, guide_vocabulary

MODEL_PREFIX = "daoban-nlu-"

CONFIG = {
    "recipe": "default.v1",
    "language": "zh",
    "assistant_id": "daoban",
    "pipeline": [
        {"name": "JiebaTokenizer", "dictionary_path": "userdict"},
        {"name": "RegexFeaturizer", "use_lookup_tables": True},
        {"name": "LexicalSyntacticFeaturizer"},
        {"name": "CountVectorsFeaturizer"},
        {"name": "CountVectorsFeaturizer", "analyzer": "char_wb", "min_ngram": 1,
         "max_ngram": 3},
        {"name": "DIETClassifier", "epochs": 60, "constrain_similarities": True,
         "random_seed": 7},
        {"name": "EntitySynonymMapper"},
    ],
    "policies": None,
}


def user_dictionary(guide: GuideBase, lexicon: Lexicon) -> str:
    """jieba's user-dictionary format: one ``word freq`` per line, sorted: the guide base
    read from the database lists its entries in another order than the YAML files, and the
    model's name (the hash of this text) must not depend on where the guide was read from."""
    words = {*guide_vocabulary(guide), *lexicon.words, *lexicon.synonyms}
    lines = [f"{w} 20000" for w in sorted(words)
             if 2 <= len(w) <= 20 and not PUNCT.search(w)]
    return "\n".join(lines) + "\n"


def training_hash(guide: GuideBase | None = None) -> str:
    """Hash of the NLU data, the user dictionary and the pipeline."""
    guide = guide or load_guide()
    h = hashlib.sha256()
    h.update(NLU_FILE.read_bytes())
    h.update(user_dictionary(guide, Lexicon.load(LEXICON)).encode())
    h.update(yaml.safe_dump(CONFIG, sort_keys=True).encode())
    return h.hexdigest()[:12]


def model_name(guide: GuideBase | None = None) -> str:
    return MODEL_PREFIX + training_hash(guide)


def write_project(out: Path, guide: GuideBase | None = None) -> str:
    guide = guide or load_guide()
    (out / "data").mkdir(parents=True, exist_ok=True)
    (out / "userdict").mkdir(exist_ok=True)
    (out / "data" / "nlu.yml").write_bytes(NLU_FILE.read_bytes())
    (out / "userdict" / "daoban.txt").write_text(
        user_dictionary(guide, Lexicon.load(LEXICON)), encoding="utf-8"
    )
    config = {k: v for k, v in CONFIG.items() if v is not None}
    (out / "config.yml").write_text(
        yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    intents = sorted({
        str(b["intent"])
        for b in (yaml.safe_load(NLU_FILE.read_text(encoding="utf-8")) or {}).get("nlu", [])
        if "intent" in b
    })
    (out / "domain.yml").write_text(
        yaml.safe_dump({"version": "3.1", "intents": intents,
                        "entities": ["district", "street", "audience"]},
                       allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    return model_name(guide)


BOT_PREFIX = "daoban-bot-"
BOT_POLICIES = [{"name": "RulePolicy", "core_fallback_threshold": 0.3}]


def write_bot(out: Path, guide: GuideBase | None = None, epochs: int | None = None) -> str:
    """A small Rasa bot for benchmarks/vs_rasa.py: the NLU project above plus one rule per
    intent answering with a fixed reply (``utter_<intent>``) and the REST channel. Its NLU
    part has the same pipeline and data as the NLU model, so Rasa's training cache (when
    shared) reuses the trained DIETClassifier. Returns the model name to train as."""
    nlu_name = write_project(out, guide)
    domain = yaml.safe_load((out / "domain.yml").read_text(encoding="utf-8"))
    intents: list[str] = domain["intents"]
    domain["responses"] = {f"utter_{i}": [{"text": f"[{i}] 收到"}] for i in intents}
    domain["actions"] = list(domain["responses"])
    (out / "domain.yml").write_text(
        yaml.safe_dump(domain, allow_unicode=True, sort_keys=False), encoding="utf-8")
    rules = {"version": "3.1", "rules": [
        {"rule": f"answer {i}", "steps": [{"intent": i}, {"action": f"utter_{i}"}]}
        for i in intents
    ]}
    (out / "data" / "rules.yml").write_text(
        yaml.safe_dump(rules, allow_unicode=True, sort_keys=False), encoding="utf-8")
    config = yaml.safe_load((out / "config.yml").read_text(encoding="utf-8"))
    config["policies"] = BOT_POLICIES
    if epochs:  # fewer epochs: a quicker training, the same network (same cost per message)
        for component in config["pipeline"]:
            if component["name"] == "DIETClassifier":
                component["epochs"] = epochs
    (out / "config.yml").write_text(
        yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    (out / "credentials.yml").write_text("rest:\n", encoding="utf-8")
    h = hashlib.sha256(nlu_name.encode())
    for f in ("domain.yml", "config.yml", "data/rules.yml"):
        h.update((out / f).read_bytes())
    return BOT_PREFIX + h.hexdigest()[:12]


if __name__ == "__main__":
    if sys.argv[1] == "--bot":
        epochs = os.environ.get("DAOBAN_RASA_BOT_EPOCHS")
        print(write_bot(Path(sys.argv[2]), epochs=int(epochs) if epochs else None))
    else:
        print(write_project(Path(sys.argv[1])))
