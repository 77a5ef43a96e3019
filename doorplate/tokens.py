"""Door-sign tokens: short, URL-safe, opaque and signed.

Layout (before URL-safe base64 without padding)::

    version(1) | len(kid)(1) | kid | plate(4, big-endian) | issued minute(4) | HMAC-SHA256[:12]

The plate number is an index into the places data, not an address. The key id lets the
verifier pick the right key after a rotation; the issue minute lets a revocation reject
every plate printed before it while a reprinted plate for the same place stays valid.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from doorplate.places import DoorplateError

VERSION = 1
MAC_BYTES = 12  # 96 bits: forging one needs ~2^96 tries; keeps the QR small
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
_KID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
MIN_SECRET = 16
MAX_TOKEN = 80


class TokenError(DoorplateError):
    """A token that must be refused; ``reason`` is for logs and statistics only."""

    reason = "invalid"


class TokenMalformed(TokenError):
    reason = "malformed"


class TokenForged(TokenError):
    reason = "forged"


class TokenKeyRetired(TokenError):
    reason = "key_retired"


class TokenRevoked(TokenError):
    reason = "revoked"


class KeyConfigError(DoorplateError):
    pass


@dataclass(frozen=True)
class Keyring:
    """Signing keys, newest first: the first signs, the others only verify (for a while)."""

    keys: tuple[tuple[str, bytes], ...]

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        """``"kid1:secret1,kid2:secret2"`` — the first key is the current one."""
        keys: list[tuple[str, bytes]] = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            kid, sep, secret = part.partition(":")
            if not sep or not _KID.match(kid):
                raise KeyConfigError(
                    f"DAOBAN_DOORPLATE_KEYS: {kid or part[:8]!r}: expected kid:secret with a "
                    "key id of 1-16 letters, digits, - or _")
            if len(secret) < MIN_SECRET:
                raise KeyConfigError(
                    f"DAOBAN_DOORPLATE_KEYS: key {kid!r}: the secret must have at least "
                    f"{MIN_SECRET} characters")
            if any(k == kid for k, _ in keys):
                raise KeyConfigError(f"DAOBAN_DOORPLATE_KEYS: key id {kid!r} appears twice")
            keys.append((kid, secret.encode()))
        if not keys:
            raise KeyConfigError("DAOBAN_DOORPLATE_KEYS is empty: set kid:secret (see docs/doorplate.md)")
        return cls(tuple(keys))

    @property
    def current(self) -> str:
        return self.keys[0][0]

    def secret(self, kid: str) -> bytes | None:
        return next((s for k, s in self.keys if k == kid), None)


@dataclass(frozen=True)
class Claims:
    kid: str
    plate: int
    issued: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(token: str) -> bytes:
    if not token or len(token) > MAX_TOKEN or not re.fullmatch(r"[A-Za-z0-9_-]+", token):
        raise TokenMalformed("not a door-sign token")
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise TokenMalformed("not base64") from None


def _mac(secret: bytes, body: bytes) -> bytes:
    return hmac.new(secret, body, hashlib.sha256).digest()[:MAC_BYTES]


def sign(keyring: Keyring, plate: int, now: datetime) -> str:
    kid = keyring.current
    secret = keyring.secret(kid)
    assert secret is not None
    minute = int((now - EPOCH).total_seconds() // 60)
    body = bytes([VERSION, len(kid)]) + kid.encode() + struct.pack(">II", plate, minute)
    return _b64(body + _mac(secret, body))


def unpack(token: str) -> tuple[Claims, bytes, bytes]:
    """Claims, signed body and MAC — not yet checked."""
    raw = _unb64(token)
    if len(raw) < 2 or raw[0] != VERSION:
        raise TokenMalformed("unknown token version")
    n = raw[1]
    if len(raw) != 2 + n + 8 + MAC_BYTES:
        raise TokenMalformed("wrong token length")
    body, mac = raw[: 2 + n + 8], raw[2 + n + 8 :]
    try:
        kid = raw[2 : 2 + n].decode("ascii")
    except UnicodeDecodeError:
        raise TokenMalformed("bad key id") from None
    plate, minute = struct.unpack(">II", raw[2 + n : 2 + n + 8])
    try:
        issued = EPOCH + timedelta(minutes=minute)
    except OverflowError:  # an unsigned minute past year 9999: forged, not yet checked
        raise TokenMalformed("issue time out of range") from None
    return Claims(kid, plate, issued), body, mac


def check_signature(keyring: Keyring, token: str) -> Claims:
    """Claims of a token signed by one of the keys (key retirement checked by the caller)."""
    claims, body, mac = unpack(token)
    secret = keyring.secret(claims.kid)
    if secret is None or not hmac.compare_digest(mac, _mac(secret, body)):
        raise TokenForged("bad signature")
    return claims
