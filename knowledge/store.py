"""Guide base ⇄ database: upsert import (one transaction), load, export, content hash."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session, selectinload

from knowledge.bundles import bundle_materials
from knowledge.db import serialise
from knowledge.models import (
    BundleMemberRow,
    DepartmentRow,
    EntryRow,
    ItemMaterialRow,
    MaterialRow,
    MetaRow,
    ServicePointItemRow,
    ServicePointRow,
    SituationRow,
)
from knowledge.schema import (
    FORMAT,
    Bundle,
    Department,
    Material,
    ServiceItem,
    ServicePoint,
)
from knowledge.validate import GuideBase, load_guide

HASH_KEY = "content_hash"


@dataclass(frozen=True)
class ImportCounts:
    departments: int
    materials: int
    items: int
    bundles: int
    service_points: int

    def __str__(self) -> str:
        return (
            f"{self.items} items, {self.bundles} bundles, {self.materials} materials, "
            f"{self.departments} departments, {self.service_points} service points"
        )


def _entry_row(e: ServiceItem | Bundle) -> EntryRow:
    d = e.model_dump(mode="json")
    common = {
        k: d[k]
        for k in (
            "id", "kind", "name", "summary", "aliases", "audience", "conditions", "time_limit",
            "fee", "channels", "where", "visits", "phone", "faq", "provenance",
            "high_frequency", "answers", "windows", "eligibility", "popularity",
        )
    }
    if isinstance(e, ServiceItem):
        return EntryRow(
            **common,
            code=e.code,
            item_type=e.item_type,
            department_id=e.department,
            result=e.result,
            flags=d["flags"],
            legal_basis=d["legal_basis"],
            reductions=[],
            confidence=e.provenance.confidence.value,
            materials=[
                ItemMaterialRow(
                    position=i,
                    material_id=m["ref"],
                    **{k: m[k] for k in ("copies", "form", "medium", "source", "necessity")},
                    note=m["note"],
                    when=m["when"],
                )
                for i, m in enumerate(d["materials"])
            ],
            situations=[
                SituationRow(id=s["id"], position=i, question=s["question"], options=s["options"])
                for i, s in enumerate(d["situations"])
            ],
        )
    return EntryRow(
        **common,
        code=None,
        item_type=None,
        department_id=e.lead_department,
        result=None,
        flags=None,
        legal_basis=[],
        reductions=d["reductions"],
        confidence=e.provenance.confidence.value,
        members=[BundleMemberRow(position=i, item_id=m) for i, m in enumerate(e.members)],
    )


def content_hash(base: GuideBase) -> str:
    """A stable hash of the guide content: the search index is keyed by it."""
    return hashlib.sha256(
        json.dumps(to_document(base), ensure_ascii=False, sort_keys=True).encode()
    ).hexdigest()[:32]


GUIDE_LOCK = "guide-base"  # serialises writers of the guide base across processes


def import_guide(engine: Engine, base: GuideBase) -> ImportCounts:
    """Upsert every record by id in one transaction; records not in ``base`` stay."""
    with Session(engine) as s, s.begin():
        serialise(s.connection(), GUIDE_LOCK)
        _upsert(s, base)
    return _counts(base)


def _upsert(s: Session, base: GuideBase) -> None:
    for d in base.departments.values():
        s.merge(DepartmentRow(**d.model_dump(mode="json")))
    for m in base.materials.values():
        s.merge(MaterialRow(**m.model_dump(mode="json")))
    s.flush()
    entries = [*base.items.values(), *base.bundles.values()]
    ids = [e.id for e in entries]
    # Children are replaced, not merged: positions may have moved.
    for chunk in _chunks(ids):
        s.execute(delete(ItemMaterialRow).where(ItemMaterialRow.entry_id.in_(chunk)))
        s.execute(delete(SituationRow).where(SituationRow.entry_id.in_(chunk)))
        s.execute(delete(BundleMemberRow).where(BundleMemberRow.bundle_id.in_(chunk)))
    s.flush()
    existing = {
        r.id: r
        for chunk in _chunks(ids)
        for r in s.scalars(select(EntryRow).where(EntryRow.id.in_(chunk)))
    }
    # A renamed entry may take a name another stored entry gives up in this import.
    for e in entries:
        if e.id in existing and existing[e.id].name != e.name:
            existing[e.id].name = f"~renaming~{e.id}"
    s.flush()
    for item in base.items.values():
        _put(s, existing, _entry_row(item))
    s.flush()
    for bundle in base.bundles.values():
        _put(s, existing, _entry_row(bundle))
    for sp in base.service_points.values():
        spd = sp.model_dump(mode="json")
        s.execute(delete(ServicePointItemRow).where(ServicePointItemRow.point_id == sp.id))
        row = ServicePointRow(**{k: v for k, v in spd.items() if k != "items"})
        row.items = [
            ServicePointItemRow(position=i, item_id=iid) for i, iid in enumerate(sp.items)
        ]
        s.merge(row)
    s.flush()
    stored = _load(s)
    _set_meta(s, HASH_KEY, content_hash(stored))


def _counts(base: GuideBase) -> ImportCounts:
    return ImportCounts(
        len(base.departments),
        len(base.materials),
        len(base.items),
        len(base.bundles),
        len(base.service_points),
    )


def _chunks(ids: list[str], size: int = 500) -> list[list[str]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)] or [[]]


def _put(s: Session, existing: dict[str, EntryRow], row: EntryRow) -> None:
    old = existing.get(row.id)
    if old is None:
        s.add(row)
        return
    for col in EntryRow.__table__.columns.keys():  # noqa: SIM118 (a ColumnCollection)
        setattr(old, col, getattr(row, col))
    old.materials = row.materials
    old.situations = row.situations
    old.members = row.members


def _set_meta(s: Session, key: str, value: str) -> None:
    s.merge(MetaRow(key=key, value=value))


def stored_hash(engine: Engine) -> str | None:
    with Session(engine) as s:
        row = s.get(MetaRow, HASH_KEY)
        return row.value if row else None


def is_empty(engine: Engine) -> bool:
    with Session(engine) as s:
        return (s.scalar(select(func.count()).select_from(EntryRow)) or 0) == 0


def _entry_model(r: EntryRow) -> ServiceItem | Bundle:
    common: dict[str, Any] = {
        "id": r.id, "name": r.name, "aliases": r.aliases, "summary": r.summary,
        "audience": r.audience, "conditions": r.conditions, "time_limit": r.time_limit,
        "fee": r.fee, "channels": r.channels, "where": r.where, "visits": r.visits,
        "phone": r.phone, "faq": r.faq, "provenance": r.provenance,
        "high_frequency": r.high_frequency,
        "answers": r.answers or {}, "windows": r.windows or [],
        "eligibility": r.eligibility or [], "popularity": r.popularity or 0,
    }
    if r.kind == "bundle":
        return Bundle.model_validate(
            {
                **common,
                "kind": "bundle",
                "lead_department": r.department_id,
                "members": [m.item_id for m in r.members],
                "reductions": r.reductions,
            }
        )
    return ServiceItem.model_validate(
        {
            **common,
            "kind": "item",
            "code": r.code,
            "item_type": r.item_type,
            "department": r.department_id,
            "result": r.result,
            "flags": r.flags or {},
            "legal_basis": r.legal_basis,
            "situations": [
                {"id": s.id, "question": s.question, "options": s.options} for s in r.situations
            ],
            "materials": [
                {
                    "ref": m.material_id, "copies": m.copies, "form": m.form, "medium": m.medium,
                    "source": m.source, "necessity": m.necessity, "note": m.note, "when": m.when,
                }
                for m in r.materials
            ],
        }
    )


def _load(s: Session) -> GuideBase:
    base = GuideBase()
    for d in s.scalars(select(DepartmentRow).order_by(DepartmentRow.id)):
        base.departments[d.id] = Department.model_validate(
            {"id": d.id, "name": d.name, "short": d.short, "phone": d.phone,
             "provenance": d.provenance}
        )
    for m in s.scalars(select(MaterialRow).order_by(MaterialRow.id)):
        base.materials[m.id] = Material.model_validate(
            {"id": m.id, "name": m.name, "how_to_get": m.how_to_get,
             "description": m.description}
        )
    rows = s.scalars(
        select(EntryRow)
        .order_by(EntryRow.id)
        .options(
            selectinload(EntryRow.materials),
            selectinload(EntryRow.situations),
            selectinload(EntryRow.members),
        )
    )
    for r in rows:
        e = _entry_model(r)
        if isinstance(e, Bundle):
            base.bundles[e.id] = e
        else:
            base.items[e.id] = e
    points = s.scalars(
        select(ServicePointRow)
        .order_by(ServicePointRow.id)
        .options(selectinload(ServicePointRow.items))
    )
    for p in points:
        base.service_points[p.id] = ServicePoint.model_validate(
            {
                "id": p.id, "name": p.name, "address": p.address, "district": p.district,
                "street": p.street, "hours": p.hours, "phone": p.phone, "lat": p.lat,
                "lng": p.lng, "point_type": p.point_type, "windows": p.windows,
                "placeholder": p.placeholder, "provenance": p.provenance,
                "items": [i.item_id for i in p.items],
            }
        )
    return base


def load_stored(engine: Engine) -> GuideBase:
    with Session(engine) as s:
        return _load(s)


# Keys that export adds for readers; ``parse_file`` drops them on import.
DERIVED_KEYS = ("source", "confidence")


def to_document(base: GuideBase) -> dict[str, Any]:
    """The export document: the file format, plus derived fields for readers.

    Every entry carries ``source`` and ``confidence`` (copied from provenance); a bundle
    carries ``materials``, its merged list. Both are ignored when the document is imported.
    """
    items: list[dict[str, Any]] = []
    for e in [*base.items.values(), *base.bundles.values()]:
        d = e.model_dump(mode="json", exclude_none=True)
        d["source"] = e.provenance.source
        d["confidence"] = e.provenance.confidence.value
        if isinstance(e, Bundle):
            d["materials"] = [
                {
                    **m.use.model_dump(mode="json", exclude_none=True, exclude={"when"}),
                    "name": m.name,
                    "used_by": m.used_by,
                    "conditions": [{"item": c.item_id, "when": c.when} for c in m.conditions],
                }
                for m in bundle_materials(base, e)
            ]
        items.append(d)
    return {
        "format": FORMAT,
        "departments": [d.model_dump(mode="json", exclude_none=True)
                        for d in base.departments.values()],
        "materials": [m.model_dump(mode="json", exclude_none=True)
                      for m in base.materials.values()],
        "items": items,
        "service_points": [p.model_dump(mode="json", exclude_none=True)
                           for p in base.service_points.values()],
    }


def ensure_loaded(engine: Engine, path: Path | None = None) -> ImportCounts | None:
    """Load the bundled (or given) guide base into an empty database; no-op otherwise."""
    if not is_empty(engine):
        return None
    base = load_guide(path)
    with Session(engine) as s, s.begin():
        serialise(s.connection(), GUIDE_LOCK)
        # Another process starting on the same empty database may have loaded it meanwhile.
        if s.scalar(select(EntryRow.id).limit(1)) is not None:
            return None
        _upsert(s, base)
    return _counts(base)
