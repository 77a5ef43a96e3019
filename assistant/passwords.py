"""The staff password policy: at least 12 characters and not a password guessers try first.

The bundled list is small on purpose: the most used passwords of published leak studies and
the predictable shapes of an office's passwords (pinyin, keyboard runs, the service's name).
"""

from __future__ import annotations

MIN_LENGTH = 12
COMMON = frozenset((
    "123456789012", "1234567890123", "12345678910", "123456789abc", "1234567890ab",
    "1q2w3e4r5t6y", "1qaz2wsx3edc", "1qaz@wsx3edc", "qwertyuiop12", "qwertyuiop123",
    "qwerty123456", "qwer1234asdf", "asdfghjkl123", "zxcvbnm12345", "zxcvbnm123456",
    "password1234", "password12345", "password123456", "passw0rd1234", "p@ssw0rd1234",
    "p@ssword1234", "iloveyou1234", "woaini1314520", "woaini520520", "woaini123456",
    "5201314520131", "aaaaaaaaaaaa", "abc123456789", "abcd12345678", "abcdefghijkl",
    "a123456789012", "admin1234567", "admin@123456", "administrator", "administrator1",
    "changeme1234", "letmein12345", "welcome12345", "welcome@1234", "football1234",
    "sunshine1234", "princess1234", "dragon123456", "monkey123456", "master123456",
    "qazwsxedcrfv", "1q2w3e4r1q2w3e4r", "88888888888", "888888888888", "666666666666",
    "111111111111", "000000000000", "147258369147", "147258369000", "123123123123",
    "123321123321", "112233445566", "0123456789ab",
))
# A password containing one of these is refused too.
COMMON_PARTS = (
    "password", "daoban", "12345678", "qwerty", "woaini", "admin", "harbin", "haerbin",
    "zhengwu", "abc123",
)


def password_problem(username: str, password: str) -> str | None:
    """Why ``password`` may not be used (in Chinese, for the person choosing it), or None."""
    if len(password) < MIN_LENGTH:
        return f"密码至少 {MIN_LENGTH} 位"
    low = password.lower()
    if low in COMMON or any(p in low for p in COMMON_PARTS) or len(set(low)) <= 3:
        return "这个密码太常见，容易被猜中，请换一个"
    if len(username) >= 3 and username.lower() in low:
        return "密码不能包含用户名"
    return None
