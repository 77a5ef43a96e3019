"""Validation at the edge: text every channel accepts before anything else sees it.

PostgreSQL refuses NUL characters in text, and a lone UTF-16 surrogate cannot be encoded
as UTF-8; both once reached the database and came back as a 500 (issue 15, finding 9).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str) -> bool:
    """Whether ``text`` can be stored and sent on as UTF-8 (no NUL, no lone surrogate)."""
    return _UNSTORABLE.search(text) is None


def _check(text: str) -> str:
    if not storable(text):
        raise ValueError("文字里有无法保存的字符（空字符或不成对的代理字符）")
    return text


# A ``str`` field that refuses unstorable characters with a 422, never a 500.
SafeStr = Annotated[str, AfterValidator(_check)]
