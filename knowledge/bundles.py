"""The material list of a 一件事 bundle: the de-duplicated union of its members' lists.

A material used by two members appears once; the stricter use wins, because the
citizen must satisfy both members with one document.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from knowledge.schema import Bundle, Form, MaterialSource, MaterialUse, Necessity, ServiceItem
from knowledge.validate import GuideBase

# Higher is stricter.
_FORM = {Form.COPY: 0, Form.FILLED: 1, Form.ORIGINAL: 2, Form.ORIGINAL_AND_COPY: 3}
_NECESSITY = {Necessity.COMMITMENT: 0, Necessity.DEFERRABLE: 1, Necessity.REQUIRED: 2}
_SOURCE = {
    MaterialSource.SHARED: 0,
    MaterialSource.E_LICENSE: 1,
    MaterialSource.ISSUED: 2,
    MaterialSource.SELF: 3,
}


@dataclass(frozen=True)
class Condition:
    """The material is needed for ``item_id`` only when ``when`` matches its situations."""

    item_id: str
    when: dict[str, list[str]]


@dataclass
class MergedMaterial:
    ref: str
    name: str
    use: MaterialUse
    used_by: list[str] = field(default_factory=list)
    # Empty: always needed. Otherwise needed when any one condition holds.
    conditions: list[Condition] = field(default_factory=list)


def _stricter(a: MaterialUse, b: MaterialUse) -> MaterialUse:
    notes = [n for n in (a.note, b.note) if n]
    return a.model_copy(
        update={
            "copies": max(a.copies, b.copies),
            "form": max(a.form, b.form, key=_FORM.__getitem__),
            "necessity": max(a.necessity, b.necessity, key=_NECESSITY.__getitem__),
            "source": max(a.source, b.source, key=_SOURCE.__getitem__),
            "note": "；".join(dict.fromkeys(notes)) or None,
            "when": {},
        }
    )


def merge_materials(base: GuideBase, members: list[ServiceItem]) -> list[MergedMaterial]:
    merged: dict[str, MergedMaterial] = {}
    always: set[str] = set()
    for item in members:
        for use in item.materials:
            name = base.materials[use.ref].name if use.ref in base.materials else use.ref
            cur = merged.get(use.ref)
            if cur is None:
                cur = merged[use.ref] = MergedMaterial(
                    use.ref, name, use.model_copy(update={"when": {}})
                )
            else:
                cur.use = _stricter(cur.use, use)
            if item.id not in cur.used_by:
                cur.used_by.append(item.id)
            if use.when:
                cur.conditions.append(Condition(item.id, dict(use.when)))
            else:
                always.add(use.ref)
    for ref in always:
        merged[ref].conditions = []
    return list(merged.values())


def bundle_materials(base: GuideBase, bundle: Bundle) -> list[MergedMaterial]:
    return merge_materials(base, [base.items[m] for m in bundle.members if m in base.items])
