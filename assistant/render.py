"""Cards and short texts for one guide entry: what a citizen reads.

Short sentences, no more than five buttons, nothing that needs scrolling on a phone.
"""

from __future__ import annotations

import re
from typing import Any

from assistant.model import Button
from assistant.sources import source_line, source_link
from knowledge.bundles import MergedMaterial, merge_materials
from knowledge.schema import (
    Bundle,
    ChannelType,
    Confidence,
    Form,
    MaterialSource,
    MaterialUse,
    Necessity,
    ServiceItem,
)
from knowledge.validate import GuideBase

Entry = ServiceItem | Bundle
CAVEAT = "以窗口最新告知为准"
HOTLINE = "12345"

CARD_BUTTONS = (
    Button("查看材料", "/materials"),
    Button("逐项核对材料", "/walk"),
    Button("在哪办", "/where"),
    Button("转人工", "/human"),
)


def book(name: str) -> str:
    return f"《{name}》"


def plain_name(e: Entry) -> str | None:
    return e.aliases[0] if e.aliases else None


def caveat(e: Entry) -> str | None:
    if e.provenance.confidence is Confidence.OFFICIAL:
        return None
    return f"以上信息依据{'公开资料' if e.provenance.confidence is Confidence.THIRD_PARTY else '通用规定'}整理，{CAVEAT}。"


def online_channels(e: Entry) -> list[str]:
    return [
        f"{c.type.value}：{c.name}"
        for c in e.channels
        if c.type in (ChannelType.ONLINE, ChannelType.MOBILE, ChannelType.KIOSK, ChannelType.POST)
    ]


def members(guide: GuideBase, e: Entry) -> list[ServiceItem]:
    if isinstance(e, ServiceItem):
        return [e]
    return [guide.items[m] for m in e.members if m in guide.items]


def situations_needed(guide: GuideBase, e: Entry) -> list[tuple[str, str]]:
    """(item id, situation id) pairs that change the material list: asked only then."""
    out: list[tuple[str, str]] = []
    for item in members(guide, e):
        used = {sid for m in item.materials for sid in m.when}
        out.extend((item.id, s.id) for s in item.situations if s.id in used)
    return out


def applicable(
    guide: GuideBase, e: Entry, answers: dict[str, dict[str, str]]
) -> list[MergedMaterial]:
    """The materials this citizen needs, given the 办事情形 answered so far.

    A material whose situation is not answered yet is kept (better one too many)."""
    items = []
    for item in members(guide, e):
        given = answers.get(item.id, {})
        uses = [
            m for m in item.materials
            if all(given.get(sid) in opts or sid not in given for sid, opts in m.when.items())
        ]
        items.append(item.model_copy(update={"materials": uses}))
    return merge_materials(guide, items)


def amount(u: MaterialUse) -> str:
    """How many of what, never ambiguous: "原件1份、复印件2份" — not "原件2份"."""
    if u.form is Form.ORIGINAL_AND_COPY:
        return f"原件1份、复印件{u.copies}份（原件核验后退还）"
    if u.form is Form.COPY:
        return f"复印件{u.copies}份"
    if u.form is Form.FILLED:
        return "现场或网上填写" if u.copies == 1 else f"填写{u.copies}份"
    return f"原件{u.copies}份"


def material_line(guide: GuideBase, m: MergedMaterial, *, conditional: bool = True) -> str:
    u = m.use
    parts = [f"{book(m.name)}：{amount(u)}"]
    tags = []
    if u.source is MaterialSource.SHARED:
        tags.append("部门共享，免提交")
    elif u.source is MaterialSource.E_LICENSE:
        tags.append("可调取电子证照")
    if u.necessity is Necessity.DEFERRABLE:
        tags.append("可容缺后补")
    elif u.necessity is Necessity.COMMITMENT:
        tags.append("可用告知承诺代替")
    if conditional and m.conditions:
        tags.append("特定情形需要")
    if tags:
        parts.append(f"（{'，'.join(tags)}）")
    return "".join(parts)


def skip_reason(use: MaterialUse) -> str | None:
    """Why a material need not be brought at all, or None when it must be."""
    if use.source is MaterialSource.SHARED:
        return "部门之间已共享这项信息，不用您提交"
    if use.source is MaterialSource.E_LICENSE:
        return "窗口可以调取电子证照，可不带纸质件（带上更稳妥）"
    return None


def elsewhere(e: Entry) -> list[str]:
    """Published reductions measured in other places, one line per place: never shown as
    Harbin's facts, always under "其他地方的做法"."""
    if not isinstance(e, Bundle):
        return []
    by_place: dict[str, list[str]] = {}
    for r in e.reductions:
        by_place.setdefault(r.place, []).append(
            f"{r.what}从{r.before}{r.unit}减到{r.after}{r.unit}")
    return [f"{place}：{'、'.join(facts)}" for place, facts in by_place.items()]


def card(guide: GuideBase, e: Entry, n_materials: int) -> dict[str, Any]:
    d: dict[str, Any] = {
        "type": e.kind,
        "id": e.id,
        "name": e.name,
        "plain_name": plain_name(e),
        "brief": brief(e.summary),
        "summary": e.summary,
        "where": e.where.text,
        "time_limit": e.time_limit.text,
        "fee": e.fee.text,
        "online": online_channels(e),
        "visits": e.visits,
        "audience": [a.value for a in e.audience],
        "conditions": e.conditions[:3],
        "materials_count": n_materials,
        "caveat": caveat(e),
        "source": source_line(e.provenance.source),
        "source_url": source_link(e.provenance.source),
    }
    if isinstance(e, Bundle):
        d["members"] = [{"id": m.id, "name": m.name} for m in members(guide, e)]
        d["reductions"] = [
            f"{r.place}：{r.what}从{r.before}{r.unit}减到{r.after}{r.unit}" for r in e.reductions
        ]
        d["elsewhere"] = elsewhere(e)
    return d


def brief(text: str, want: int = 60, cap: int = 150) -> str:
    """The first sentences of ``text`` (at least ``want`` characters when there are that
    many, at most ``cap``): a phone shows the card's facts without scrolling; the full
    summary stays in the structured card."""
    out = ""
    for sentence in re.findall(r"[^。！？]+[。！？]?", text):
        if out and (len(out) >= want or len(out) + len(sentence) > cap):
            break
        out += sentence
    return out if len(out) <= cap else out[: cap - 1] + "…"


def card_text(guide: GuideBase, e: Entry, n_materials: int) -> str:
    """What, where, how long, cost, online or not first: the Harbin facts a citizen acts
    on; other places' published figures last, labelled as such; sources as one line."""
    lines = [f"【{e.name}】" + (f"（俗称：{plain_name(e)}）" if plain_name(e) else "")]
    lines.append(brief(e.summary))
    lines.append(f"在哪办：{e.where.text}")
    lines.append(f"多久办好：{e.time_limit.text}")
    lines.append(f"收费：{e.fee.text}")
    online = online_channels(e)
    lines.append("网上/掌上办：" + ("；".join(online) if online else "暂不支持，需到现场"))
    lines.append(f"到现场次数：{e.visits}次" if e.visits else "到现场次数：0次（不用跑）")
    who = "、".join(a.value for a in e.audience)
    lines.append(f"谁能办：{who}" + (f"；{e.conditions[0]}" if e.conditions else ""))
    if isinstance(e, Bundle):
        lines.append("一次办好这些事：" + "、".join(m.name for m in members(guide, e)))
    lines.append(f"需要材料：{n_materials}项")
    other = elsewhere(e)[:2]  # the card stays short on a phone
    if other:
        lines.append("其他地方的做法（不是哈尔滨的数据）：" + "；".join(other))
    c = caveat(e)
    if c:
        lines.append(c)
    lines.append(source_line(e.provenance.source))
    return "\n".join(lines)
