"""``Doorplates``: places + keys + the revocation list + statistics, for the web routes
and the command line. Synchronous (database calls): call it from a worker thread."""

from __future__ import annotations

import csv
import io
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from doorplate import tokens
from doorplate.places import Place, Places, load
from doorplate.store import SqlDoorplateStore, migrate
from doorplate.tokens import Keyring, TokenKeyRetired, TokenMalformed, TokenRevoked

log = logging.getLogger(__name__)
CHINA = timezone(timedelta(hours=8))  # statistics days are Harbin days
SCAN_WINDOW = timedelta(hours=1)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Stats:
    plates: list[tuple[str, str, int, int]]  # place id, label, scans, messages
    communities: list[tuple[str, str, int]]
    streets: list[tuple[str, str, int]]
    days: list[tuple[str, int]]
    questions: dict[str, list[tuple[str, int]]]  # place id → top questions
    items: dict[str, list[tuple[str, int]]]  # place id → top entry ids


class Doorplates:
    def __init__(self, places: Places, keyring: Keyring, store: SqlDoorplateStore, *,
                 grace_days: int = 30, public_url: str = "http://127.0.0.1:8000",
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self.places = places
        self.keyring = keyring
        self.store = store
        self.grace = timedelta(days=grace_days)
        self.public_url = public_url.rstrip("/")
        self.clock = clock
        self._retired = store.sync_keys([k for k, _ in keyring.keys], clock())
        self._scanned: dict[tuple[str, str], datetime] = {}  # (client, place) → counted at

    # --- plates ---
    def issue(self, place: Place) -> str:
        now = self.clock()
        revoked = self.store.revoked_at(place.id)
        if revoked is not None and now - revoked < timedelta(minutes=1):
            # Tokens carry the issue minute: a plate reprinted in the minute of a
            # revocation must not fall under it.
            now = revoked + timedelta(minutes=1)
        return tokens.sign(self.keyring, place.plate, now)

    def url(self, token: str) -> str:
        return f"{self.public_url}/d/{token}"

    def verify(self, token: str) -> Place:
        """The place of a valid token; raises a ``TokenError`` otherwise."""
        claims = tokens.check_signature(self.keyring, token)
        now = self.clock()
        if claims.kid != self.keyring.current:
            retired = self._retired.get(claims.kid)
            if retired is None or now > retired + self.grace:
                raise TokenKeyRetired(claims.kid)
        place = self.places.by_plate.get(claims.plate)
        if place is None:
            raise TokenMalformed("no such plate")  # validly signed, plate since removed
        revoked = self.store.revoked_at(place.id)
        if revoked is not None and claims.issued <= revoked:
            raise TokenRevoked(place.id)
        return place

    def resolve(self, token: str) -> str | None:
        """The place id of a valid token, None for anything else (the web chat's check)."""
        try:
            return self.verify(token).id
        except tokens.TokenError:
            return None

    def revoke(self, place: Place, reason: str | None = None) -> None:
        self.store.revoke(place.id, self.clock(), reason)

    # --- statistics ---
    def record_scan(self, place_id: str, client: str | None = None) -> None:
        """Counts a scan; the same client (address) on the same plate counts once an hour,
        so reloading a page cannot inflate the statistics (this process's memory)."""
        now = self.clock()
        if client is not None:
            key = (client, place_id)
            seen = self._scanned.get(key)
            if seen is not None and now - seen < SCAN_WINDOW:
                return
            if len(self._scanned) > 100_000:  # forget expired entries
                self._scanned = {k: t for k, t in self._scanned.items()
                                 if now - t < SCAN_WINDOW}
            self._scanned[key] = now
        self.store.record(place_id, "scan", now, now.astimezone(CHINA).date().isoformat())

    def record_message(self, place_id: str, text: str, entry_id: str | None) -> None:
        if place_id not in self.places.places:
            return
        now = self.clock()
        question = None if text.startswith("/") else text.strip()
        try:
            self.store.record(place_id, "message", now,
                              now.astimezone(CHINA).date().isoformat(), question, entry_id)
        except SQLAlchemyError:
            # Statistics never cost the citizen an answer.
            log.exception("doorplate statistics not recorded (place %s)", place_id)

    def stats(self, top: int = 5) -> Stats:
        per, days = self.store.counts()
        pl = self.places
        plates = sorted(((pid, pl.label(pl.places[pid]) if pid in pl.places else pid,
                          c.scans, c.messages) for pid, c in per.items()),
                        key=lambda r: (-r[2], r[0]))
        comm: Counter[str] = Counter()
        street: Counter[str] = Counter()
        for pid, c in per.items():
            p = pl.places.get(pid)
            if p is not None:
                comm[p.community] += c.scans
                street[p.street] += c.scans
        by_day: Counter[str] = Counter()
        for (_, day), n in days.items():
            by_day[day] += n
        return Stats(
            plates=plates,
            communities=[(k, pl.communities[k].name, n) for k, n in comm.most_common()],
            streets=[(k, pl.streets[k].name, n) for k, n in street.most_common()],
            days=sorted(by_day.items()),
            questions={pid: c.questions.most_common(top) for pid, c in per.items()},
            items={pid: c.items.most_common(top) for pid, c in per.items()},
        )

    def stats_csv(self, names: Callable[[str], str] | None = None) -> str:
        """One table: dimension, key, name, count (dimension: plate, community, street, day,
        question, item; for the last two the key is the place id)."""
        s = self.stats()
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["dimension", "key", "name", "count"])
        for pid, label, scans, _ in s.plates:
            w.writerow(["plate", pid, label, scans])
        for k, n_, n in s.communities:
            w.writerow(["community", k, n_, n])
        for k, n_, n in s.streets:
            w.writerow(["street", k, n_, n])
        for day, n in s.days:
            w.writerow(["day", day, day, n])
        for pid, qs in sorted(s.questions.items()):
            for q, n in qs:
                w.writerow(["question", pid, q, n])
        for pid, its in sorted(s.items.items()):
            for i, n in its:
                w.writerow(["item", pid, names(i) if names else i, n])
        return buf.getvalue()


def open_doorplates(engine: Engine, keys: Keyring, *, data: Path | None = None,
                    known_entries: set[str] | None = None, grace_days: int = 30,
                    public_url: str = "http://127.0.0.1:8000",
                    clock: Callable[[], datetime] = _utcnow) -> Doorplates:
    """Migrated tables, validated places (raises ``PlacesInvalid``), synced keys."""
    migrate(engine)
    return Doorplates(load(data, known_entries), keys, SqlDoorplateStore(engine),
                      grace_days=grace_days, public_url=public_url, clock=clock)
