"""The agent console: ``GET /agent`` (page), ``POST /agent/login``, ``/ws/agent``, and the
desk's start-up (bus, lease, sweeps, bus monitor). One console socket's frames are
``channels/agent_session.py``; the protocol is docs/agent-protocol.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from html import escape
from typing import Annotated, Any
from urllib.parse import urlsplit

import anyio
from fastapi import (
    APIRouter,
    FastAPI,
    HTTPException,
    Query,
    Request,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.exc import SQLAlchemyError

from assistant.agents import SqlAgentStore
from assistant.agents import migrate as migrate_agents
from assistant.bus import BEAT, BusMonitor, Peer, make_bus
from assistant.desk import AgentDesk, ReplySink, conv_topic
from assistant.signin import Backoff, SignInThrottle
from channels.agent_canned import router as canned_router
from channels.agent_session import TYPING, AgentSession, newer, search_items, typing_topic
from channels.callback import CallbackSink
from channels.staff import (
    COOKIE,
    Staff,
    Supervisor,
    client_address,
    safe_next,
    secure_cookie,
    session_token,
    trusted_proxies,
)
from channels.web import STATIC, ChatSession

log = logging.getLogger(__name__)


class CitizenSockets:
    """Citizens' open sockets in this process, woken through the bus; typing indicators
    between a citizen and the console (topics ``typing`` and ``typing:<conversation>``)."""

    TYPING_EVERY = 1.5  # seconds: a citizen's typing is passed on at most this often

    def __init__(self, desk: AgentDesk) -> None:
        self.desk = desk
        self._subs: dict[int, tuple[str, Callable[[], None]]] = {}
        self._count: dict[str, int] = {}
        self._typed: dict[int, float] = {}

    async def watch(self, session: ChatSession) -> None:
        await self.leave(session)
        cid = session.cid

        async def wake(message: dict[str, Any]) -> None:
            if newer(message, session.sent):
                with contextlib.suppress(Exception):  # a closed socket: nothing to wake
                    await session.flush()

        async def typing(message: dict[str, Any]) -> None:
            with contextlib.suppress(Exception):
                await session.send({"type": "typing"})

        subs = (self.desk.bus.subscribe(conv_topic(cid), wake),
                self.desk.bus.subscribe(typing_topic(cid), typing))

        def unsubscribe() -> None:
            for u in subs:
                u()

        self._subs[id(session)] = (cid, unsubscribe)
        self._count[cid] = self._count.get(cid, 0) + 1
        if self._count[cid] == 1:
            await self.desk.citizen_presence(cid, True)

    async def typing(self, session: ChatSession) -> None:
        """The citizen is typing: the consoles watching the conversation show it."""
        now = time.monotonic()
        if not session.cid or now - self._typed.get(id(session), -1e9) < self.TYPING_EVERY:
            return
        self._typed[id(session)] = now
        await self.desk.bus.publish(TYPING, {"cid": session.cid, "from": "citizen"})

    async def leave(self, session: ChatSession) -> None:
        self._typed.pop(id(session), None)
        sub = self._subs.pop(id(session), None)
        if sub is None:
            return
        cid, unsubscribe = sub
        unsubscribe()
        self._count[cid] -= 1
        if self._count[cid] <= 0:
            del self._count[cid]
            await self.desk.citizen_presence(cid, False)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    services = app.state.services
    settings = services.settings
    engine = services.assistant.store.engine
    try:
        await anyio.to_thread.run_sync(migrate_agents, engine)
    except SQLAlchemyError:
        # The rest of the app answers politely when the database is broken; the desk's
        # actions then fail the same way, one request at a time.
        log.exception("could not migrate the agent-desk tables")
    bus = make_bus(settings.redis_url, settings.redis_prefix)
    await bus.start()

    callback = CallbackSink.from_settings(settings)  # webhook clients' DAOBAN_CALLBACK_URL

    def sink(channel: str) -> ReplySink | None:
        wechat: ReplySink | None = getattr(app.state, "wechat", None)
        return wechat if channel == "wechat" else callback if channel == "rasa" else None

    idle = timedelta(minutes=settings.agent_idle_minutes)
    hours = settings.desk_hours()
    if hours is not None:  # the bot's 转人工 reply names the configured hours too
        services.assistant.ctx.desk_hours = hours.describe()
    desk = AgentDesk(services.assistant, SqlAgentStore(engine, idle), bus,
                     wait_limit=settings.agent_wait_limit, grace=settings.agent_grace_seconds,
                     lease=settings.agent_lease_seconds, sink=sink,
                     hours=hours, away_after=settings.agent_away_seconds)
    try:
        await desk.heartbeat()  # the lease exists before the first console socket
    except SQLAlchemyError:
        log.exception("could not register this process with the agent desk")

    async def citizen(message: dict[str, Any]) -> None:
        desk.citizens[str(message.get("cid"))] = bool(message.get("online"))

    unsubscribe = bus.subscribe("citizen", citizen)
    # Is the bus carrying messages between the processes? (/health: "event_bus")
    monitor = BusMonitor(bus, desk.process_id, settings.agent_heartbeat_seconds)
    unsubscribe_beat = bus.subscribe(BEAT, monitor.on_beat)

    async def peers() -> list[Peer]:
        rows = await anyio.to_thread.run_sync(desk.agents.processes)
        return [Peer(*row) for row in rows]

    components = getattr(services, "components", None)  # the /health registry
    if components is not None:
        from assistant.components import ComponentState, Status

        def bus_state() -> ComponentState:
            works, detail, fix = monitor.state()
            return ComponentState(Status.OK if works else Status.OFF, detail, fix)

        components.probe("event_bus", bus_state)
    app.state.bus_monitor = monitor
    services.assistant.desk = desk
    app.state.desk = desk
    app.state.citizens = CitizenSockets(desk)
    sweeper = asyncio.create_task(desk.run_sweeper(settings.agent_sweep_seconds))
    heart = asyncio.create_task(desk.run_heartbeat(settings.agent_heartbeat_seconds))
    checker = asyncio.create_task(monitor.run(peers))
    try:
        yield
    finally:
        unsubscribe_beat()
        for task in (sweeper, heart, checker):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        try:
            await desk.release()
        except SQLAlchemyError:
            log.exception("could not release this process's agent-desk lease")
        unsubscribe()
        services.assistant.desk = None
        await bus.close()
        if callback is not None:
            await callback.close()


router = APIRouter(lifespan=lifespan)
router.include_router(canned_router)


class ConsoleSettings(BaseSettings):
    """The console's own settings (``DAOBAN_SLA_SECONDS``): a chat whose citizen has
    waited longer than this is highlighted, in the queue and in the chat lists."""

    model_config = SettingsConfigDict(env_prefix="DAOBAN_", extra="ignore")
    sla_seconds: float = Field(default=120.0, gt=0)


def _console_settings(app: Any) -> ConsoleSettings:
    got: ConsoleSettings | None = getattr(app.state, "console_settings", None)
    if got is None:
        got = app.state.console_settings = ConsoleSettings()
    return got


class Login(BaseModel):
    model_config = ConfigDict(extra="ignore")
    username: str = Field(min_length=1, max_length=60)
    password: str = Field(min_length=1, max_length=200)


def _desk(app: Any) -> AgentDesk:
    desk: AgentDesk = app.state.desk
    return desk


@router.get("/agent", include_in_schema=False)
async def console_page(
    next_page: Annotated[str | None, Query(alias="next")] = None,
) -> HTMLResponse:
    """The console and its sign-in form; ``?next=/path`` (a path on this site only) is
    where the page goes once signed in."""
    html = await anyio.Path(STATIC / "agent.html").read_text(encoding="utf-8")
    target = safe_next(next_page)
    if target is not None:
        html = html.replace('data-next=""', f'data-next="{escape(target, quote=True)}"', 1)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.post("/agent/login")
async def login(request: Request, body: Login) -> JSONResponse:
    settings = request.app.state.services.settings
    proxies = trusted_proxies(settings)
    ip = client_address(request, proxies)
    desk = _desk(request.app)
    throttle = _throttle(request.app, desk)
    # Counted before the password is checked; while locked it is not checked at all.
    wait = await anyio.to_thread.run_sync(throttle.reserve, body.username, ip)
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        return JSONResponse({"error": f"登录失败次数太多，请 {seconds} 秒后再试",
                             "code": "too_many_sign_in_failures"},
                            status_code=429, headers={"Retry-After": str(seconds)})
    hours = settings.agent_session_hours
    got = await anyio.to_thread.run_sync(desk.agents.login, body.username, body.password,
                                         timedelta(hours=hours))
    if got is None:
        raise HTTPException(401, "用户名或密码不对，或账号已停用")
    await anyio.to_thread.run_sync(throttle.succeeded, body.username, ip)
    token, agent = got
    # The token goes in the HttpOnly cookie only: page scripts never see it.
    resp = JSONResponse({"agent": agent.as_dict(), "expires_in": int(hours * 3600)})
    resp.set_cookie(COOKIE, token, max_age=int(hours * 3600), httponly=True, samesite="strict",
                    secure=secure_cookie(request, proxies))
    return resp


def _throttle(app: FastAPI, desk: AgentDesk) -> SignInThrottle:
    throttle: SignInThrottle | None = getattr(app.state, "sign_in_throttle", None)
    if throttle is None:
        s = app.state.services.settings
        cap = s.staff_lockout_max_seconds
        throttle = SignInThrottle(
            desk.agents.engine,
            account=Backoff(s.staff_lockout_after, s.staff_lockout_seconds, cap),
            address=Backoff(s.staff_address_lockout_after, s.staff_lockout_seconds, cap))
        app.state.sign_in_throttle = throttle
    return throttle


@router.post("/agent/logout")
async def logout(request: Request) -> JSONResponse:
    token = session_token(request.headers, request.cookies)
    if token:
        await anyio.to_thread.run_sync(_desk(request.app).agents.logout, token)
    resp = JSONResponse({"ok": True})
    resp.delete_cookie(COOKIE)
    return resp


@router.get("/agent/api/me")
async def me(request: Request, agent: Staff) -> dict[str, Any]:
    return {**agent.as_dict(), "sla_seconds": _console_settings(request.app).sla_seconds}


@router.get("/agent/api/items")
async def items(request: Request, _: Staff, q: str = "") -> list[dict[str, Any]]:
    return search_items(_desk(request.app), q)


@router.get("/agent/api/metrics")
async def metrics(request: Request, _: Supervisor) -> list[dict[str, Any]]:
    return await _desk(request.app).metrics()


def _origin_ok(ws: WebSocket) -> bool:
    """Browsers send Origin: a page on another site must not use the agent's cookie."""
    origin = ws.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == ws.headers.get("host")


@router.websocket("/ws/agent")
async def agent_socket(ws: WebSocket) -> None:
    desk = _desk(ws.app)
    token = session_token(ws.headers, ws.cookies)
    agent = None
    if token and _origin_ok(ws):
        agent = await anyio.to_thread.run_sync(desk.agents.authenticate, token)
    if agent is None or token is None:
        await ws.close(code=4401)  # before accept: the handshake is refused
        return
    await ws.accept()
    session = AgentSession(ws, desk, agent, token)
    try:
        await session.start()
        await session.run()
    except WebSocketDisconnect:
        pass
    except Exception:
        log.exception("agent socket failed (agent %s)", agent.username)
        with contextlib.suppress(Exception):
            await session.error("internal", "服务出了点问题，正在重新连接……")
            await ws.close(code=1011)
    finally:
        await session.stop()
