"""All of daoban's settings: one object, environment prefix ``DAOBAN_``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from assistant.desk_hours import OfficeHours


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DAOBAN_", extra="ignore")

    database_url: str = "sqlite:///var/daoban.db"
    guide_path: Path | None = None  # None: the bundled Harbin guide base
    index_dir: Path = Path("var/index")  # cached vectors, keyed by content hash
    host: str = "127.0.0.1"
    port: int = 8000
    nlu: Literal["embedded", "rasa"] = "embedded"
    rasa_url: str = "http://127.0.0.1:5005"
    # ``serve`` refuses to start while a component is off (the encoder weights missing, Rasa
    # or Redis not answering: assistant/components.py); True serves anyway, with /health
    # saying "degraded" and why.
    allow_degraded: bool = False
    redis_url: str | None = None
    redis_prefix: str = "daoban:"  # pub/sub channel prefix: keeps deployments apart
    # Human 帮办 desk: how long a citizen waits in the queue before being told (留言 +
    # 12345), how long a disconnected agent keeps its chats, how long a sign-in lasts.
    agent_wait_limit: float = 180.0  # seconds
    agent_grace_seconds: float = 30.0
    agent_session_hours: float = 12.0
    agent_sweep_seconds: float = 1.0  # how often each process checks waits and graces
    # Each process renews a lease on its console sockets every heartbeat; a process that
    # misses it for agent_lease_seconds (crashed, killed, cut off) loses them, and their
    # agents' grace periods start at the lease's expiry.
    agent_heartbeat_seconds: float = 5.0
    agent_lease_seconds: float = 20.0
    # A console socket is pinged every agent_ping_seconds; one that has answered a ping and
    # then says nothing for agent_ping_timeout seconds (a dead network, a sleeping laptop)
    # is closed: its agent's grace period starts (a lost console is noticed within
    # timeout + one ping period: 9 s). Citizens of an agent without a console for
    # agent_away_seconds are told at once (not only when the grace period ends).
    agent_ping_seconds: float = 2.0
    agent_ping_timeout: float = 7.0
    agent_away_seconds: float = 3.0
    # When the desk is staffed (assistant/desk_hours.py), e.g. "mon-fri 09:00-17:00" or
    # "mon-fri 09:00-12:00,13:30-17:00; sat 09:00-12:00"; holidays and workdays (调休) are
    # comma-separated dates (2026-10-01,2026-10-02). Empty: no clock check, the citizen is
    # told "nobody online" with the placeholder hours.
    office_hours: str = ""
    holidays: str = ""
    workdays: str = ""
    timezone: str = "Asia/Shanghai"
    # Staff sign-in: failed attempts are counted per account and per address (all
    # processes); past the free ones every further failure doubles the wait, and while
    # locked no password is checked, the right one included.
    staff_lockout_after: int = 5  # failures of one account before the first wait
    staff_address_lockout_after: int = 20  # failures from one address before the first wait
    staff_lockout_seconds: float = 2.0  # the first wait
    staff_lockout_max_seconds: float = 900.0
    agent_idle_minutes: float = 30.0  # a console session unused this long is signed out
    # Reverse proxies that terminate TLS, comma-separated addresses. Set: the staff cookie
    # is Secure, and a request from one of them is from the X-Forwarded-For client.
    trusted_proxies: str = ""
    max_message_chars: int = 1000
    # Retention: conversations (transcript, handoffs, ratings, unanswered questions) with no
    # activity for this many days are deleted by every server process, once at start and
    # then every retention_every seconds. 0: kept until `daoban purge`.
    retention_days: int = 0
    retention_every: float = 86400.0
    # Rate limits (channels/ratelimit.py), per minute; 0 turns one off. Per client address
    # unless named per conversation; shared through Redis when DAOBAN_REDIS_URL is set.
    rate_limits: bool = True
    limit_new_conversations: float = 30.0
    limit_messages: float = 120.0
    limit_conversation_messages: float = 30.0  # per conversation
    limit_chat_connections: float = 60.0  # web chat sockets opened (each says hello)
    limit_human_requests: float = 6.0  # 转人工
    # Web chat messages per 10 s from one client address (a government office behind one
    # NAT address may need more).
    ws_ip_limit: int = 60
    # Web chat messages per 10 s on one connection (None: the built-in 20).
    ws_conn_limit: int | None = None
    # Door-sign (政务门牌) QR tokens: "kid1:secret1,kid2:secret2", the first signs. Empty:
    # ``serve`` uses a random key per process (plates then stop working on restart) and the
    # ``doorplate`` commands refuse to print plates. No default secret on purpose.
    doorplate_keys: str = ""
    doorplate_key_grace_days: int = 30  # old keys still verify this long after a rotation
    doorplate_data: Path | None = None  # None: the bundled 道里区 places (demo data)
    public_url: str = "http://127.0.0.1:8000"  # what the QR codes point to
    # WeChat official account (docs/wechat.md). No token: the /wechat channel is off.
    wechat_token: str | None = None
    wechat_appid: str | None = None
    wechat_appsecret: str | None = None  # needed for 客服消息 (late answers, agents)
    wechat_aes_key: str | None = None  # the 43-character EncodingAESKey: safe mode
    wechat_api_base: str = "https://api.weixin.qq.com"
    # WeChat gives up after 5 s; answers later than this go out as 客服消息.
    wechat_reply_timeout: float = 4.5
    # Replay protection: a signed request whose timestamp is further than this from the
    # server's clock is refused, and each (timestamp, nonce) is accepted once in that window.
    wechat_max_clock_skew: float = 300.0  # seconds

    # Rasa's callback convention for webhook clients (channels/callback.py): the agent's
    # messages and the desk's notices for ``rasa:<sender>`` conversations are POSTed here,
    # signed with the secret (HMAC-SHA256), retried callback_attempts times with back-off
    # doubling from callback_backoff seconds. No URL: webhook clients get replies only in
    # the answers to their own requests.
    callback_url: str | None = None
    callback_secret: str | None = None
    callback_attempts: int = 5
    callback_backoff: float = 1.0  # seconds before the second attempt; doubles each time
    callback_timeout: float = 5.0  # seconds per attempt

    # --- Security (docs/security.md) ---
    # The server's API token: opens every conversation through the REST API (as Rasa's
    # ``?token=``), webhook ones included. None: only each conversation's own token does.
    api_token: str | None = None
    max_body_bytes: int = 64 * 1024  # HTTP request bodies, counted while reading (413)
    ws_max_bytes: int = 16 * 1024  # websocket messages, refused by the protocol (1009)
    ws_per_address: int = 20  # concurrent /ws/chat sockets from one client address
    header_timeout: float = 10.0  # seconds to send a request's headers
    keep_alive_seconds: int = 5  # an idle keep-alive connection is closed after this
    max_connections: int | None = None  # uvicorn limit_concurrency (503 beyond); None: off
    # Who may frame the chat page (the widget's iframe): a CSP frame-ancestors source list,
    # e.g. "https://www.example.gov.cn https://*.example.gov.cn". "*": any site.
    frame_ancestors: str = "*"
    api_docs: bool = False  # /docs and /openapi.json (off in production)

    # --- Operations (docs/operations.md) ---
    # GET /metrics (Prometheus) is off (404) unless one of these is set; with both, a scrape
    # needs both. The token is sent as "Authorization: Bearer <token>"; the allow list is
    # addresses or networks, comma-separated ("10.0.0.5, 10.1.0.0/16").
    metrics_token: str | None = None
    metrics_allow: str = ""
    # "json": one JSON object per log line, each with the request id (channels/logs.py).
    log_format: Literal["text", "json"] = "text"

    def desk_hours(self) -> OfficeHours | None:
        """The office hours, or None when none are configured."""
        if not self.office_hours.strip():
            return None
        from assistant.desk_hours import OfficeHours  # not at import: settings stay light

        return OfficeHours.parse(self.office_hours, self.holidays, self.workdays, self.timezone)

    @model_validator(mode="after")
    def _hours_readable(self) -> Settings:
        if not self.office_hours.strip():
            return self
        from assistant.desk_hours import BadHours

        try:
            self.desk_hours()
        except BadHours as exc:  # fails loudly at start-up, naming the setting
            raise ValueError(f"DAOBAN_OFFICE_HOURS / HOLIDAYS / WORKDAYS / TIMEZONE: {exc}") from exc
        return self

    @model_validator(mode="after")
    def _callback_is_http(self) -> Settings:
        url = self.callback_url
        if url and not url.startswith(("http://", "https://")):
            raise ValueError("DAOBAN_CALLBACK_URL must be an http:// or https:// URL")
        return self

    @model_validator(mode="after")
    def _lease_outlives_heartbeats(self) -> Settings:
        if not 0 < self.agent_heartbeat_seconds < self.agent_lease_seconds:
            raise ValueError("DAOBAN_AGENT_LEASE_SECONDS must be longer than "
                             "DAOBAN_AGENT_HEARTBEAT_SECONDS (and both above 0)")
        return self
