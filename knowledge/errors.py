"""The knowledge package's exceptions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class KnowledgeError(Exception):
    """Base of every error the knowledge package raises."""


@dataclass(frozen=True)
class Problem:
    """One validation problem, located by file, record id and field."""

    file: str
    record: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.record}: {self.field}: {self.message}"


class GuideInvalid(KnowledgeError):
    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(f"guide base invalid: {len(self.problems)} problem(s)")


class ItemNotFound(KnowledgeError):
    pass
