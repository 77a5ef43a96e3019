"""The WeChat server API daoban calls: the access token, 客服消息 and the menu."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx

log = logging.getLogger(__name__)

# Refresh this long before WeChat's stated expiry: the token is shared by every request,
# and a token that dies mid-flight costs a retry.
REFRESH_MARGIN = 300.0
TOKEN_INVALID = {40001, 40014, 42001}  # invalid credential, invalid token, token expired


class WeChatApiError(Exception):
    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"WeChat API error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class WeChatApi:
    def __init__(
        self,
        base: str,
        app_id: str,
        secret: str,
        client: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.base = base.rstrip("/")
        self.app_id = app_id
        self.secret = secret
        self.client = client
        self.clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        async with self._lock:
            if self._token is None or self.clock() >= self._expires - REFRESH_MARGIN:
                r = await self.client.get(
                    f"{self.base}/cgi-bin/token",
                    params={"grant_type": "client_credential", "appid": self.app_id,
                            "secret": self.secret},
                )
                body = _json(r)
                if "access_token" not in body:
                    raise WeChatApiError(int(body.get("errcode", -1)), str(body.get("errmsg")))
                self._token = str(body["access_token"])
                self._expires = self.clock() + float(body.get("expires_in", 7200))
            return self._token

    def _forget(self, token: str) -> None:
        if self._token == token:
            self._token = None

    async def post(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST with the access token; one retry when WeChat says the token is stale
        (another server with the same AppID may have refreshed it)."""
        for attempt in (1, 2):
            token = await self.token()
            # Chinese unescaped: some WeChat endpoints show "\\u54c8" literally otherwise.
            r = await self.client.post(
                f"{self.base}{path}", params={"access_token": token},
                content=json.dumps(payload, ensure_ascii=False).encode(),
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
            body = _json(r)
            code = int(body.get("errcode", 0))
            if code == 0:
                return body
            if code in TOKEN_INVALID and attempt == 1:
                log.info("WeChat access token rejected (%s); fetching a new one", code)
                self._forget(token)
                continue
            raise WeChatApiError(code, str(body.get("errmsg")))
        raise AssertionError("unreachable")

    async def send_text(self, openid: str, text: str) -> None:
        await self.post("/cgi-bin/message/custom/send",
                        {"touser": openid, "msgtype": "text", "text": {"content": text}})

    async def create_menu(self, menu: dict[str, Any]) -> None:
        await self.post("/cgi-bin/menu/create", menu)


def _json(r: httpx.Response) -> dict[str, Any]:
    if r.status_code != 200:
        raise WeChatApiError(-1, f"HTTP {r.status_code}")
    try:
        body = r.json()
    except ValueError:
        raise WeChatApiError(-1, "response is not JSON") from None
    if not isinstance(body, dict):
        raise WeChatApiError(-1, "response is not a JSON object")
    return body
