"""Masking of the personal numbers citizens type: 身份证号, 手机号 and bank card numbers.

Everything a citizen said that is kept outside the live transcript (unanswered questions,
door-sign statistics, rating comments, handoff summaries) goes through ``mask`` first: the
people who read statistics need the question, never the number (PIPL data minimisation).
The live transcript an agent works from keeps the original.
"""

from __future__ import annotations

import logging
import re

_D = "0-9０-９"  # citizens on a phone keyboard sometimes type full-width digits
_X = "XxＸｘ"  # an ID number's check character
# A run of 11–19 digits (an ID number may end in X), not part of a longer number.
_COMPACT = re.compile(rf"(?<![{_D}])[{_D}]{{11,19}}[{_X}]?(?![{_D}{_X}])")
# The same written in groups: "138 1234 5678", "6222-0212-3456-7890".
_GROUPED = re.compile(
    rf"(?<![{_D}])[{_D}]{{3,6}}(?:[ \-][{_D}]{{3,6}}){{1,4}}[{_X}]?(?![{_D}{_X}])")
_PHONE = re.compile(rf"^[1１][3-9３-９][{_D}]{{9}}$")
_FULL = str.maketrans("０１２３４５６７８９", "0123456789")


def _digits(s: str) -> str:
    return "".join(c for c in s if c not in " -")


def _masked(run: str) -> str | None:
    """The masked form of one number, or None when it is not personal data."""
    s = _digits(run)
    n = len(s)
    if n == 11 and _PHONE.match(s):  # 手机号: 138****5678
        return s[:3] + "*" * 4 + s[7:]
    if n in (15, 18) and s[:-1].translate(_FULL).isdigit():  # 身份证号 (and the old 15-digit)
        return s[:4] + "*" * (n - 8) + s[-4:]
    if 16 <= n <= 19 and s.translate(_FULL).isdigit():  # bank card
        return s[:4] + "*" * (n - 8) + s[-4:]
    return None


def mask(text: str) -> str:
    """``text`` with every 身份证号, 手机号 and bank card number masked; the rest unchanged.

    >>> mask("身份证230102199001011234，电话13812345678")
    '身份证2301**********1234，电话138****5678'
    """

    def one(m: re.Match[str]) -> str:
        return _masked(m.group(0)) or m.group(0)

    return _GROUPED.sub(one, _COMPACT.sub(one, text))


class MaskingLogFilter(logging.Filter):
    """Masks the numbers in a log line and its traceback (a database error can quote what
    the citizen typed). Put on handlers: a logger's own filters skip propagated records."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True  # a malformed record: let logging report it as usual
        masked = mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask(record.exc_text)
        return True
