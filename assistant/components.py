"""What works: one registry of component states, for ``/health`` and the start-up check.

Every part of daoban that can be missing, or replaced by something weaker, reports here.
The process's registry is ``Services.components`` (channels/app.py); channels/health.py
registers the standard ones (dense retrieval, intent model, Rasa, event bus). To add one:

- a state known at start-up, or whenever it changes (thread-safe, callable from async code)::

      components.report("event_bus", Status.OK, "Redis pub/sub answers")
      components.report("event_bus", Status.OFF, "Redis does not answer (ConnectionError)",
                        fix="start Redis, or unset DAOBAN_REDIS_URL for one process")

- or a probe that ``/health`` calls every time, in a worker thread (so it may block briefly
  on I/O), for a state that changes while serving::

      components.probe("rasa", lambda: rasa_state(classifier))

A later ``report`` or ``probe`` under the same name replaces the earlier one. A component
that is OFF, FALLBACK or STALE makes the process *degraded*: ``daoban serve`` then refuses
to start (``require``: one line naming each fix) unless the operator set
``DAOBAN_ALLOW_DEGRADED=1``, and ``/health`` answers ``"status": "degraded"`` with every
component's state, reason and fix. Reasons and fixes are for operators: never put secrets
(a URL with a password) in them, ``/health`` is public.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

log = logging.getLogger(__name__)


class Status(StrEnum):
    OK = "ok"
    OFF = "off"  # unavailable: its part of the work is not done
    FALLBACK = "fallback"  # unavailable: something weaker does its work
    STALE = "stale"  # answering, from out-of-date data
    NOT_USED = "not_used"  # not configured in this deployment
    UNCHECKED = "unchecked"  # configured; no self-check has reported yet


DEGRADED = frozenset({Status.OFF, Status.FALLBACK, Status.STALE})


@dataclass(frozen=True)
class ComponentState:
    status: Status
    detail: str  # what it is, or why it is not working
    fix: str | None = None  # what an operator does about it

    @property
    def degraded(self) -> bool:
        return self.status in DEGRADED

    def as_dict(self) -> dict[str, str]:
        out = {"state": self.status.value, "detail": self.detail}
        if self.fix:
            out["fix"] = self.fix
        return out


Probe = Callable[[], ComponentState]


class NotReady(Exception):
    """Components are off and the operator did not choose degraded mode."""

    def __init__(self, off: dict[str, ComponentState]) -> None:
        self.off = off
        parts = [f"{name} {s.status.value}: {s.detail}" + (f" → {s.fix}" if s.fix else "")
                 for name, s in off.items()]
        super().__init__(
            "daoban 未启动 (not started): " + "; ".join(parts)
            + "。确需降级运行请设置 DAOBAN_ALLOW_DEGRADED=1 (to serve degraded anyway)"
        )


class Components:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, ComponentState | Probe] = {}

    def report(self, name: str, status: Status, detail: str, *, fix: str | None = None) -> None:
        with self._lock:
            self._entries[name] = ComponentState(status, detail, fix)

    def probe(self, name: str, check: Probe) -> None:
        with self._lock:
            self._entries[name] = check

    def snapshot(self) -> dict[str, ComponentState]:
        """Every component's state now (probes run here: call it off the event loop)."""
        with self._lock:
            entries = dict(self._entries)
        out: dict[str, ComponentState] = {}
        for name, entry in entries.items():
            if isinstance(entry, ComponentState):
                out[name] = entry
                continue
            try:
                out[name] = entry()
            except Exception as exc:
                # A broken probe must not take /health down with it; it shows as off.
                log.exception("health probe %s failed", name)
                out[name] = ComponentState(Status.OFF, f"self-check failed: {type(exc).__name__}")
        return out

    def require(self, allow_degraded: bool) -> dict[str, ComponentState]:
        """The snapshot; raises ``NotReady`` if degraded and ``allow_degraded`` is false."""
        states = self.snapshot()
        off = {name: s for name, s in states.items() if s.degraded}
        if off and not allow_degraded:
            raise NotReady(off)
        for name, s in off.items():
            log.warning("serving degraded (DAOBAN_ALLOW_DEGRADED): %s %s: %s",
                        name, s.status.value, s.detail)
        return states


def overall(states: dict[str, ComponentState]) -> str:
    return "degraded" if any(s.degraded for s in states.values()) else "ok"
