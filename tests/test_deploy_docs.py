"""docs/deploy.md lists every setting of channels/settings.py, as deploy/settings_doc.py
generates the table (so the list can neither miss a setting nor invent one)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from channels.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_the_settings_table_is_generated_from_the_settings() -> None:
    spec = importlib.util.spec_from_file_location("settings_doc", ROOT / "deploy/settings_doc.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    table = generator.table()
    for name in Settings.model_fields:
        assert f"`DAOBAN_{name.upper()}`" in table
    assert table in (ROOT / "docs/deploy.md").read_text(encoding="utf-8"), (
        "docs/deploy.md's settings table is out of date: python deploy/settings_doc.py --write")
