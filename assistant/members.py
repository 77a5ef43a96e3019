"""A follow-up on a 一件事 that is about one of its members.

After the card of a 一件事 ("孩子出生了要办啥" → 新生儿出生一件事), citizens go on to one of
its errands: "那先说上户口 去哪上", "丧葬费在哪领", "先登记是吧 在哪登记". The question is then
about that member, not the whole 一件事, and is answered for it. A member is meant when the
turn names it in words no other member (nor the 一件事's name) shares — unless another item
is named in longer words ("能领育儿补贴不"); between members named equally, retrieval's
first with a fair score.
"""

from __future__ import annotations

from assistant.context import Ctx
from assistant.options import reason_words
from knowledge.schema import Bundle
from nlu.understand import Understood

MEMBER_SCORE = 0.35  # a member ranked this well by retrieval is the one asked about
# Words every errand's name may carry: they name no member in particular.
_GENERIC = frozenset({"申领", "申请", "办理", "一件", "件事", "事项", "服务", "手续", "业务",
                      "人员", "个人", "居民", "证明", "材料", "信息", "一次", "一起", "一块",
                      "都办"})


def _pieces(text: str) -> set[str]:
    return {text[i:i + n] for n in (2, 3, 4) for i in range(len(text) - n + 1)}


def _own_words(ctx: Ctx, bundle: Bundle) -> dict[str, set[str]]:
    """For each member: the 2–4 character pieces of its name and aliases that no other
    member and not the 一件事's name carry."""
    words = {m: set().union(*(_pieces(t) for t in ctx.terms.get(m, [])))
             for m in bundle.members if m in ctx.guide.items}
    shared = _pieces(bundle.name)  # its aliases list members' words ("失业登记和失业金一起办")
    own = {}
    for m, ws in words.items():
        others = set().union(set(), *(w for o, w in words.items() if o != m))
        own[m] = {w for w in ws - others - shared - _GENERIC
                  if not any(g in w for g in _GENERIC)}
    return own


def member_asked(bundle: Bundle, u: Understood, ctx: Ctx) -> str | None:
    """The member of ``bundle`` this turn is about, or None (about the 一件事 as a whole)."""
    text = u.normalized
    if ctx.mentions(bundle.id, text) or ctx.cues.act("together", text):
        return None  # "新生儿出生一件事要多久", "能一次都办了不": the 一件事 itself
    own = _own_words(ctx, bundle)
    said = {m: max((len(w) for w in ws if w in text), default=0) for m, ws in own.items()}
    best = max(said.values(), default=0)
    if best == 0:
        return None  # "多久能批", "网上能办不": about the 一件事 as a whole
    hits = (u.hits or u.candidates)[:5]
    if any(h.id not in own and h.id != bundle.id and len(ctx.mentions(h.id, text) or "") > best
           for h in hits):
        return None  # "能领育儿补贴不": another item named in longer words than any member
    named = [m for m, n in said.items() if n == best]
    if len(named) == 1:
        return named[0]
    ranked = [h for h in hits[:3] if h.id in named]  # a tie: the one retrieval ranks first
    return ranked[0].id if ranked and ranked[0].score >= MEMBER_SCORE else None


def same_errand(a: str, b: str) -> bool:
    """Two names of one errand's variants ("义务教育入学（划片）", "随迁子女义务教育入学"):
    they share two characters in a row that are not a generic word. A 居住证 and a
    school place are members of one 一件事, never variants of each other."""
    return any(p in b for p in _pieces(a) if not any(g in p for g in _GENERIC))


def variant_for_reason(name: str, eid: str, text: str, ctx: Ctx) -> str | None:
    """"丢了" said after the card of 出生医学证明首次签发: the item of the same document for
    that case (出生医学证明补发) — one sharing four characters in a row with this one's name
    and naming the case; the strongest case word decides between two."""
    words = reason_words(text, ctx.cues)
    if not words or any(w in name for w in words):
        return None
    stems = {p for p in (name[i:i + 4] for i in range(len(name) - 3))}
    ranked = sorted((min(k for k, w in enumerate(words) if w in i.name), i.id)
                    for i in ctx.guide.items.values()
                    if i.id != eid and any(w in i.name for w in words)
                    and any(p in i.name for p in stems))
    if not ranked or (len(ranked) > 1 and ranked[0][0] == ranked[1][0]):
        return None
    return ranked[0][1]
