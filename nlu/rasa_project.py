"""Generate the Rasa 3.6 NLU project from daoban's own files.

Rasa never shares daoban's environment (it needs Python 3.10 and old pins): this module only
writes files — ``config.yml``, ``data/nlu.yml`` and a jieba user dictionary — that the
separate Rasa virtualenv trains on. The model name carries a hash of everything it was
trained from, so a model trained on stale data is detected (``training_hash``).

    python -m nlu.rasa_project OUT_DIR     # prints the model name to train as
"""

from __future__ import annotations

import hashlib
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


if __name__ == "__main__":
    print(write_project(Path(sys.argv[1])))
