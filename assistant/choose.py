"""Which item a set of retrieval hits means: the 一件事 or one member, a variant chosen by a
stated fact, or a choice to offer (ordered by how often people mean each). Pure decisions:
nothing here replies; ``assistant/flows.py`` acts on them."""

from __future__ import annotations

from assistant.context import Ctx, family_key
from assistant.model import Conversation
from assistant.render import Entry
from knowledge.index import Hit
from nlu.understand import Understood

CLARIFY_MARGIN = 0.03  # candidates this close to the best one are offered as a choice
VAGUE_MARGIN = 0.12  # a vague opener: more of the domain's items are offered
VAGUE_LENGTH = 12
VARIANT_MARGIN = 0.15  # candidates this close may be chosen by a remembered fact


def vague(u: Understood, ctx: Ctx) -> bool:
    """"户口的事", "医保的事咨询下": a domain named, no item: offer a choice."""
    return len(u.normalized) <= VAGUE_LENGTH and ctx.cues.act("vague", u.normalized)


def family_words(ctx: Ctx, entry_id: str) -> set[str]:
    """Terms shared by the whole family (住房公积金提取): they name no variant."""
    e = ctx.guide.entry(entry_id)
    if e is None:
        return set()
    key = family_key(e.name).lower()
    return {t for t in ctx.terms.get(entry_id, []) if t in key or key in t}


def family_words_only(close: list[Hit], named: str, u: Understood, ctx: Ctx) -> bool:
    """Is the named entry only named by words its family shares (住房公积金提取), with a
    sibling among the close candidates?"""
    fam = ctx.family(named)
    return bool(fam) and not names_variant(named, u.normalized, ctx) \
        and any(h.id in fam for h in close if h.id != named)


def names_variant(entry_id: str, text: str, ctx: Ctx) -> bool:
    shared = family_words(ctx, entry_id)
    return any(t in text for t in ctx.terms.get(entry_id, []) if t not in shared)


def ordered(ids: list[str], ctx: Ctx) -> list[str]:
    seen: list[str] = []
    for i in ids:
        if i not in seen and ctx.guide.entry(i) is not None:
            seen.append(i)
    first = seen[:1]
    rest = sorted(seen[1:], key=lambda i: -ctx.popularity(i))
    # The best match stays in front unless a sibling is clearly more common.
    if first and rest and ctx.popularity(rest[0]) > ctx.popularity(first[0]) + 20:
        return sorted(seen, key=lambda i: -ctx.popularity(i))
    return first + rest


def close_to_best(hits: list[Hit], u: Understood, ctx: Ctx) -> list[Hit]:
    """The candidates near enough to the best to be meant as well (wider for a vague opener)."""
    margin = VAGUE_MARGIN if vague(u, ctx) else CLARIFY_MARGIN
    return [h for h in hits[:5] if h.score >= hits[0].score - margin]


def bundle_or_member(hits: list[Hit], close: list[Hit], u: Understood, ctx: Ctx, *,
                     together: bool) -> str | None:
    """Several members of one 一件事 named ("执照 食品许可证 消防 招牌都得办吧"), or "一起办"
    → the bundle; one member named → that member (the bundle is offered beside it).
    ``close``: ``close_to_best(hits, …)``."""
    text = u.normalized
    top = hits[0]
    bundles: list[str] = []
    for h in [*close, *(h for part in u.parts for h in part)]:
        for b in ([h.id] if h.kind == "bundle" else ctx.bundles_of.get(h.id, [])):
            if b not in bundles:
                bundles.append(b)
    for b in bundles:
        bundle = ctx.guide.bundles.get(b)
        if bundle is None:
            continue
        named = {m for m in bundle.members if ctx.mentions(m, text)}
        # clauses that each name a different member: "养老金 医保 公积金这些得咋办"
        by_clause = [next((h.id for h in part if h.id in bundle.members), None)
                     for part in u.parts]
        if len(named) >= 2 or len({m for m in by_clause if m}) >= 2:
            return b
        if together and (named or b in {h.id for h in close}):
            return b
        if b in {h.id for h in hits[:3]} and ctx.cues.act("whole_event", text):
            return b  # "下个月到岁数了 退休都要办啥"
        if top.id == b and len(named) == 1 and not ctx.mentions(b, text):
            return named.pop()  # "生育津贴咋领": the member, the 一件事 offered beside it
    if top.kind == "bundle":
        bundle = ctx.guide.bundles.get(top.id)
        member = next((h.id for h in close[1:] if bundle and h.id in bundle.members
                       and ctx.mentions(h.id, text)), None)
        if member is not None and not ctx.mentions(top.id, text):
            return member
    return None


def related(e: Entry, ctx: Ctx) -> list[str]:
    """Items of the same bundles: where variants of one life event live."""
    out: list[str] = []
    for b in ctx.bundles_of.get(e.id, []):
        bundle = ctx.guide.bundles.get(b)
        if bundle is not None:
            out.extend(bundle.members)
    return out


def variant_by_slots(conv: Conversation, ids: list[str], ctx: Ctx) -> str | None:
    if not conv.slots:
        return None
    matched = []
    for eid in ids:
        terms = " ".join(ctx.terms.get(eid, []))
        if any(w in terms for (slot, value), words in ctx.cues.variants.items()
               if conv.slots.get(slot) == value for w in words):
            matched.append(eid)
    return matched[0] if len(matched) == 1 else None
