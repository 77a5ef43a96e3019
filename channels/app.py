"""``create_app(settings)``: the composition root. Nothing is built at import time."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from assistant.components import Components, NotReady
from assistant.core import Assistant, ConversationNotFound, MessageRejected
from assistant.store import SqlConversationStore
from assistant.store import migrate as migrate_conversations
from channels.doorplate_web import build_doorplates, doorplate_locator
from channels.health import standard_components
from channels.limits import AddressSlots, BodyLimit, SecurityHeaders
from channels.rest import TokenRequired, token_required_response
from channels.settings import Settings
from channels.staff import StaffRefused
from channels.web import IP_RATE, RateLimiter
from doorplate.service import Doorplates
from knowledge.db import make_engine
from knowledge.db import migrate as migrate_guide
from knowledge.store import ensure_loaded, load_stored, stored_hash
from nlu.understand import Understanding

log = logging.getLogger("daoban")


@dataclass
class Services:
    settings: Settings
    assistant: Assistant
    guide_hash: str
    doorplates: Doorplates | None = None  # the 政务门牌 (QR door-sign) places and tokens
    ip_limiter: RateLimiter = field(init=False)  # derived from settings.ws_ip_limit
    components: Components = field(init=False)  # what works: /health, the start-up check
    ws_slots: AddressSlots = field(init=False)  # open /ws/chat sockets per address

    def __post_init__(self) -> None:
        self.ip_limiter = RateLimiter(self.settings.ws_ip_limit, IP_RATE[1])
        self.ws_slots = AddressSlots(self.settings.ws_per_address)
        self.components = standard_components(self.settings, self.assistant)


def build_services(settings: Settings) -> Services:
    """Blocking set-up (database, guide base, NLU training, index): run in a thread."""
    engine = make_engine(settings.database_url)
    migrate_guide(engine)
    migrate_conversations(engine)
    counts = ensure_loaded(engine, settings.guide_path)
    if counts is not None:
        log.info("loaded the bundled guide base: %s", counts)
    guide = load_stored(engine)
    content = stored_hash(engine) or "unknown"
    understanding = Understanding(guide, content, index_dir=settings.index_dir)
    if settings.nlu == "rasa":
        from nlu.rasa_client import RasaClassifier
        from nlu.rasa_project import model_name

        # Rasa answers intents; the embedded model stands in whenever Rasa is down.
        understanding.classifier = RasaClassifier(
            settings.rasa_url, understanding.classifier, expected_model=model_name(guide)
        )
    doorplates = build_doorplates(settings, engine, guide)
    assistant = Assistant(
        guide, understanding, SqlConversationStore(engine), max_chars=settings.max_message_chars,
        places=doorplate_locator(doorplates, guide), place_log=doorplates,
    )
    # The guide base, jieba's dictionary and the models are millions of long-lived objects;
    # without this every full garbage collection walks them all (100+ ms pauses, measured
    # as the p99 of benchmarks/load_ws.py).
    gc.collect()
    gc.freeze()
    return Services(settings, assistant, content, doorplates=doorplates)


def ready_services(settings: Settings) -> Services:
    """``build_services``, refusing with ``NotReady`` (one line naming each fix) when a
    component is off and the operator did not choose degraded mode (DAOBAN_ALLOW_DEGRADED)."""
    services = build_services(settings)
    try:
        services.components.require(settings.allow_degraded)
    except NotReady:
        services.assistant.store.engine.dispose()
        raise
    return services


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if services is not None:
            app.state.services = services
        else:
            app.state.services = await anyio.to_thread.run_sync(ready_services, settings)
        yield
        app.state.services.assistant.store.engine.dispose()

    docs = settings.api_docs  # the API's own description is not for the public by default
    app = FastAPI(title="daoban 导办", version="0.1.0", lifespan=lifespan,
                  docs_url="/docs" if docs else None, redoc_url=None,
                  openapi_url="/openapi.json" if docs else None)
    _install_errors(app)
    if settings.rate_limits:  # inside the body limit: the bodies it peeks at are bounded
        from channels.ratelimit import RateLimits

        app.add_middleware(RateLimits, settings=settings)
    # Outermost first: the headers go on every response, the 413 included.
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders, frame_ancestors=settings.frame_ancestors)

    from channels import doorplate_web, health, rest, web, wechat

    app.include_router(health.router)
    app.include_router(rest.router)
    app.include_router(web.router)
    app.include_router(doorplate_web.router)
    from channels import checklist_share

    app.include_router(checklist_share.router)
    app.include_router(wechat.router)
    from channels import retention

    app.include_router(retention.router)
    from channels import agent_web  # after wechat: the desk pushes to WeChat citizens

    app.include_router(agent_web.router)
    from channels import dashboard, metrics

    app.include_router(dashboard.router)

    if metrics.enabled(settings):  # outside the others: sees every response and socket
        metrics.install(app, settings)
    from channels import logs

    app.include_router(logs.router)
    app.add_middleware(logs.RequestIds)  # outermost: every log line of a request has its id
    return app


def _error(status: int, message: str, code: str, **extra: object) -> JSONResponse:
    return JSONResponse({"error": message, "code": code, **extra}, status_code=status)


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _error(400, "请求不是合法的 JSON", "invalid_json")
        fields = [
            {"field": ".".join(str(x) for x in e.get("loc", ())[1:]), "problem": e.get("msg")}
            for e in errors
        ]
        return _error(422, "请求缺少字段或字段格式不对", "invalid_request", fields=fields)

    @app.exception_handler(MessageRejected)
    async def rejected(_: Request, exc: MessageRejected) -> JSONResponse:
        return _error(422, str(exc), "message_rejected")

    @app.exception_handler(TokenRequired)
    async def token_required(_: Request, exc: TokenRequired) -> JSONResponse:
        return token_required_response()

    @app.exception_handler(ConversationNotFound)
    async def not_found(_: Request, exc: ConversationNotFound) -> JSONResponse:
        return _error(404, "会话不存在", "conversation_not_found")

    @app.exception_handler(StaffRefused)
    async def refused(_: Request, exc: StaffRefused) -> JSONResponse:
        return _error(exc.status, exc.message, exc.code)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            # FastAPI's answer to a body json cannot read (nested thousands deep, say)
            return _error(400, "请求不是合法的 JSON", "invalid_json")
        msg = {404: "地址不存在", 405: "不支持这种请求方法"}.get(exc.status_code, str(exc.detail))
        return _error(exc.status_code, msg, "http_error")

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        # The one broad except: logged with traceback, the user gets a polite reply.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "服务暂时出了点问题，请稍后再试，或拨打 12345", "internal_error")
