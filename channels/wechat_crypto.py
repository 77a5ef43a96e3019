"""WeChat message signatures and the safe-mode (安全模式) message encryption.

Compatible with WeChat's WXBizMsgCrypt: AES-256-CBC, key = base64(EncodingAESKey + "="),
IV = the key's first 16 bytes, PKCS#7 padding to a 32-byte block, and the plaintext
16 random bytes + 4-byte big-endian length + message + AppID.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32  # WeChat pads to 32 bytes, not AES's 16


class WeChatCryptoError(Exception):
    pass


class BadKey(WeChatCryptoError):
    """The EncodingAESKey is not 43 base64 characters."""


class BadPayload(WeChatCryptoError):
    """The ciphertext does not decrypt to a well-formed payload."""


class WrongAppId(WeChatCryptoError):
    """The payload decrypted, but names another official account."""


def signature(*parts: str) -> str:
    """SHA-1 over the parts sorted and joined: WeChat's ``signature``/``msg_signature``."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def signature_ok(given: str, *parts: str) -> bool:
    # Constant-time compare: the signature is the only thing that authenticates WeChat.
    return hmac.compare_digest(given.lower().encode(), signature(*parts).encode())


def aes_key(encoding_aes_key: str) -> bytes:
    if len(encoding_aes_key) != 43:
        raise BadKey(f"EncodingAESKey must be 43 characters, got {len(encoding_aes_key)}")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error as exc:
        raise BadKey(f"EncodingAESKey is not base64: {exc}") from None
    if len(key) != 32:
        raise BadKey("EncodingAESKey does not decode to 32 bytes")
    return key


class WeChatCrypto:
    def __init__(self, token: str, encoding_aes_key: str, app_id: str) -> None:
        self.token = token
        self.key = aes_key(encoding_aes_key)
        self.app_id = app_id

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def encrypt(self, message: str, *, random16: bytes | None = None) -> str:
        body = message.encode()
        plain = (random16 or os.urandom(16)) + struct.pack(">I", len(body)) + body
        plain += self.app_id.encode()
        pad = BLOCK - len(plain) % BLOCK
        plain += bytes([pad]) * pad
        enc = self._cipher().encryptor()
        return base64.b64encode(enc.update(plain) + enc.finalize()).decode()

    def decrypt(self, encrypted: str) -> str:
        try:
            data = base64.b64decode(encrypted, validate=True)
        except binascii.Error:
            raise BadPayload("ciphertext is not base64") from None
        if not data or len(data) % 16:
            raise BadPayload("ciphertext length is not a multiple of the AES block")
        dec = self._cipher().decryptor()
        plain = dec.update(data) + dec.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise BadPayload("bad padding")
        plain = plain[:-pad]
        if len(plain) < 20:
            raise BadPayload("payload too short")
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise BadPayload("payload length is out of range")
        message, app_id = plain[20 : 20 + length], plain[20 + length :]
        if not hmac.compare_digest(app_id, self.app_id.encode()):
            raise WrongAppId("the payload is for another AppID")
        try:
            return message.decode()
        except UnicodeDecodeError:
            raise BadPayload("message is not UTF-8") from None

    def msg_signature(self, timestamp: str, nonce: str, encrypted: str) -> str:
        return signature(self.token, timestamp, nonce, encrypted)
