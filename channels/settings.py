"""All of daoban's settings: one object, environment prefix ``DAOBAN_``."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DAOBAN_", extra="ignore")

    database_url: str = "sqlite:///var/daoban.db"
    guide_path: Path | None = None  # None: the bundled Harbin guide base
    index_dir: Path = Path("var/index")  # cached vectors, keyed by content hash
    host: str = "127.0.0.1"
    port: int = 8000
    nlu: Literal["embedded", "rasa"] = "embedded"
    rasa_url: str = "http://127.0.0.1:5005"
    redis_url: str | None = None
    max_message_chars: int = 1000
    # Web chat messages per 10 s from one client address (a government office behind one
    # NAT address may need more).
    ws_ip_limit: int = 60
