"""道里区 as data: streets (街道), communities (社区), service points and door-sign places.

Format ``daoban-places/1`` (docs/doorplate.md), YAML or JSON. Every record carries
``demo``: ``false`` only with a ``source`` for a verified fact; everything else is shown to
citizens as “示例”.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from knowledge.errors import Problem  # one located-problem type for all data files

FORMAT = "daoban-places/1"

BUNDLED = Path(__file__).parent / "data" / "daoli.yaml"


class DoorplateError(Exception):
    """Base of every error the doorplate package raises."""


class PlacesInvalid(DoorplateError):
    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__(f"places data invalid: {len(self.problems)} problem(s)")


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,79}$")
    name: str = Field(min_length=1, max_length=120)
    demo: bool = True  # not a verified fact: shown as “示例”
    source: str | None = None

    @model_validator(mode="after")
    def _sourced(self) -> _Record:
        if not self.demo and not self.source:
            raise ValueError("demo: false needs a source (where the fact was verified)")
        return self


class Street(_Record):
    """A 街道 (or 镇) of the district."""


class Community(_Record):
    street: str


class ServicePoint(_Record):
    address: str
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)
    hours: str
    point_type: str  # the guide base's where.point_type: 派出所, 街道便民服务中心 …
    street: str | None = None
    community: str | None = None
    serves: list[str] = Field(default_factory=list)  # more point types handled here
    items: list[str] = Field(default_factory=list)  # item / bundle ids handled here

    def handles(self, entry_id: str, point_type: str) -> bool:
        return entry_id in self.items or point_type == self.point_type or point_type in self.serves


class Place(_Record):
    """A door-sign place: a building or a door (门牌) address."""

    plate: int = Field(ge=1, le=2**31)  # the number a token carries (no address in clear)
    address: str
    community: str
    street: str
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)
    police: str  # the 派出所 whose 户籍 jurisdiction covers this address
    station: str  # the 社区服务站
    center: str  # the 街道便民服务中心


class PlacesDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: str
    district: str
    streets: list[Street] = Field(default_factory=list)
    communities: list[Community] = Field(default_factory=list)
    service_points: list[ServicePoint] = Field(default_factory=list)
    places: list[Place] = Field(default_factory=list)


def demo_mark(record: _Record) -> str:
    return "（示例）" if record.demo else ""


class Places:
    """The validated, indexed places of one district."""

    def __init__(self, doc: PlacesDoc) -> None:
        self.doc = doc
        self.district = doc.district
        self.streets = {s.id: s for s in doc.streets}
        self.communities = {c.id: c for c in doc.communities}
        self.points = {p.id: p for p in doc.service_points}
        self.places = {p.id: p for p in doc.places}
        self.by_plate = {p.plate: p for p in doc.places}

    def place(self, key: str) -> Place | None:
        """By id, or by plate number given as digits."""
        if key in self.places:
            return self.places[key]
        return self.by_plate.get(int(key)) if key.isdigit() else None

    def label(self, place: Place) -> str:
        """“经纬街道 安平社区 经纬二道街18号（示例）”"""
        street = self.streets[place.street].name
        community = self.communities[place.community].name
        return f"{street} {community} {place.name}{demo_mark(place)}"


def _problems(file: str, exc: ValidationError, raw: dict[str, Any]) -> list[Problem]:
    out = []
    for e in exc.errors():
        loc = list(e.get("loc", ()))
        record = "-"
        if len(loc) >= 2 and isinstance(loc[0], str) and isinstance(loc[1], int):
            rows = raw.get(loc[0]) or []
            row = rows[loc[1]] if loc[1] < len(rows) else {}
            rid = row.get("id") if isinstance(row, dict) else None
            record = f"{loc[0]}[{loc[1]}]" + (f" ({rid})" if rid else "")
            loc = loc[2:]
        out.append(Problem(file, record, ".".join(str(x) for x in loc) or "-", e["msg"]))
    return out


def check(doc: PlacesDoc, file: str, known_entries: set[str] | None = None) -> list[Problem]:
    """Cross-references: ids unique, every reference resolves to the right kind."""
    out: list[Problem] = []

    def bad(record: str, field: str, message: str) -> None:
        out.append(Problem(file, record, field, message))

    if doc.format != FORMAT:
        bad("-", "format", f"expected {FORMAT!r}, got {doc.format!r}")
    seen: dict[str, str] = {}
    for kind, rows in (("streets", doc.streets), ("communities", doc.communities),
                       ("service_points", doc.service_points), ("places", doc.places)):
        for r in rows:
            if r.id in seen:
                bad(r.id, "id", f"duplicate id (also in {seen[r.id]})")
            seen[r.id] = kind
    streets = {s.id for s in doc.streets}
    communities = {c.id: c for c in doc.communities}
    points = {p.id: p for p in doc.service_points}
    for c in doc.communities:
        if c.street not in streets:
            bad(c.id, "street", f"unknown street {c.street!r}")
    for p in doc.service_points:
        if p.street is not None and p.street not in streets:
            bad(p.id, "street", f"unknown street {p.street!r}")
        if p.community is not None and p.community not in communities:
            bad(p.id, "community", f"unknown community {p.community!r}")
        for i in p.items:
            if known_entries is not None and i not in known_entries:
                bad(p.id, "items", f"unknown guide item or bundle {i!r}")
    plates: dict[int, str] = {}
    for pl in doc.places:
        if pl.plate in plates:
            bad(pl.id, "plate", f"plate number {pl.plate} already used by {plates[pl.plate]}")
        plates[pl.plate] = pl.id
        if pl.street not in streets:
            bad(pl.id, "street", f"unknown street {pl.street!r}")
        comm = communities.get(pl.community)
        if comm is None:
            bad(pl.id, "community", f"unknown community {pl.community!r}")
        elif comm.street != pl.street:
            bad(pl.id, "community", f"{pl.community!r} belongs to street {comm.street!r}, "
                                    f"not {pl.street!r}")
        for field, want in (("police", "派出所"), ("station", "社区服务站"),
                            ("center", "街道便民服务中心")):
            ref = getattr(pl, field)
            point = points.get(ref)
            if point is None:
                bad(pl.id, field, f"unknown service point {ref!r}")
            elif point.point_type != want:
                bad(pl.id, field, f"{ref!r} is a {point.point_type}, expected a {want}")
    return out


def parse(raw: object, file: str = "<data>", known_entries: set[str] | None = None) -> Places:
    if not isinstance(raw, dict):
        raise PlacesInvalid([Problem(file, "-", "-", "the document must be a mapping")])
    try:
        doc = PlacesDoc.model_validate(raw)
    except ValidationError as exc:
        raise PlacesInvalid(_problems(file, exc, raw)) from None
    problems = check(doc, file, known_entries)
    if problems:
        raise PlacesInvalid(problems)
    return Places(doc)


def load(path: Path | None = None, known_entries: set[str] | None = None) -> Places:
    """Load and validate a YAML or JSON places file (default: the bundled 道里区 data)."""
    path = path or BUNDLED
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, yaml.YAMLError, json.JSONDecodeError) as exc:
        raise PlacesInvalid([Problem(str(path), "-", "-", f"cannot read: {exc}")]) from None
    return parse(raw, path.name, known_entries)


def export(places: Places, fmt: str = "yaml") -> str:
    data = places.doc.model_dump(mode="json", exclude_defaults=False)
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False, indent=1) + "\n"
    return str(yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100))
