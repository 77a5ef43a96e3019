"""Where to go from a door-sign place: the competent service point for an item, then the
nearest other points that handle it (全城通办), with distance, walking time and a map link."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

from doorplate.places import Place, Places, ServicePoint, demo_mark

WALK_M_PER_MIN = 80  # an unhurried adult, the usual planning figure
CIRCLE_MIN = 15  # the “15分钟政务服务圈”
HOTLINE = "12345"
CITY_HALL = "hrb-citizen-hall"
WINDOW_TYPES = ("社保经办机构", "医保经办机构")


class EntryLike(Protocol):
    """What jurisdiction needs of a guide item or bundle."""

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def where(self) -> WhereLike: ...


class WhereLike(Protocol):
    @property
    def text(self) -> str: ...
    @property
    def point_type(self) -> str: ...


def haversine_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    r = 6_371_000.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def walking_minutes(meters: float) -> int:
    return max(1, math.ceil(meters / WALK_M_PER_MIN))


def map_link(point: ServicePoint) -> str:
    """An AMap marker URI: opens the map app or web page, no API key needed."""
    return (f"https://uri.amap.com/marker?position={point.lng:.6f},{point.lat:.6f}"
            f"&name={quote(point.name)}&src=daoban&coordinate=wgs84&callnative=0")


def osm_link(point: ServicePoint) -> str:
    return (f"https://www.openstreetmap.org/?mlat={point.lat:.6f}&mlon={point.lng:.6f}"
            f"#map=17/{point.lat:.6f}/{point.lng:.6f}")


@dataclass(frozen=True)
class Option:
    point: ServicePoint
    meters: float
    why: str  # why this point: “户籍所在地派出所”, “就近可办（全城通办）”

    @property
    def minutes(self) -> int:
        return walking_minutes(self.meters)

    @property
    def in_circle(self) -> bool:
        return self.minutes <= CIRCLE_MIN


@dataclass(frozen=True)
class Answer:
    entry_id: str
    place: Place
    competent: Option | None
    nearest: list[Option]


def _dist(place: Place, p: ServicePoint) -> float:
    return haversine_m(place.lat, place.lng, p.lat, p.lng)


def competent(places: Places, entry: EntryLike, place: Place) -> Option | None:
    """The point that is competent for ``entry`` at ``place`` (None: not in the data)."""
    ptype = entry.where.point_type
    pts = places.points

    def opt(pid: str, why: str) -> Option | None:
        p = pts.get(pid)
        return Option(p, _dist(place, p), why) if p is not None else None

    if ptype == "派出所":
        return opt(place.police, "户籍所在地派出所（本门牌地址所属辖区）")
    if ptype == "街道便民服务中心":
        return opt(place.center, "本街道便民服务中心")
    if ptype == "社区服务站":
        return opt(place.station, "本社区服务站")
    if ptype in WINDOW_TYPES:
        center = pts.get(place.center)
        if center is not None and entry.id in center.items:
            return Option(center, _dist(place, center), "本街道便民服务中心社保医保窗口")
        hall = pts.get(CITY_HALL)
        if hall is not None and hall.handles(entry.id, ptype):
            return Option(hall, _dist(place, hall), "市民大厦人社、医保窗口")
    handling = [p for p in pts.values() if p.handles(entry.id, ptype)]
    if not handling:
        return None
    best = min(handling, key=lambda p: (p.point_type != ptype, _dist(place, p)))
    return Option(best, _dist(place, best), f"就近的{best.point_type}")


def nearest(places: Places, entry: EntryLike, place: Place, *, exclude: Sequence[str] = (),
            limit: int = 2) -> list[Option]:
    ptype = entry.where.point_type
    others = [p for p in places.points.values()
              if p.id not in exclude and p.handles(entry.id, ptype)]
    others.sort(key=lambda p: _dist(place, p))
    return [Option(p, _dist(place, p), "就近可办（全城通办）") for p in others[:limit]]


def answer(places: Places, entry: EntryLike, place: Place) -> Answer:
    comp = competent(places, entry, place)
    near = nearest(places, entry, place, exclude=[comp.point.id] if comp else [])
    return Answer(entry.id, place, comp, near)


def _distance(o: Option) -> str:
    d = f"{o.meters / 1000:.1f} 公里" if o.meters >= 1000 else f"{round(o.meters, -1):.0f} 米"
    circle = "，在15分钟政务服务圈内" if o.in_circle else ""
    return f"距这里约 {d}，步行约 {o.minutes} 分钟{circle}"


def render(places: Places, entry: EntryLike, ans: Answer) -> list[str]:
    """The “在哪办” reply for a place, one line per string."""
    lines = [f"“{entry.name}”从{ans.place.name}{demo_mark(ans.place)}出发："]
    demo = False
    if ans.competent is not None:
        p = ans.competent.point
        demo |= p.demo
        lines += [f"★ 主管窗口：{p.name}{demo_mark(p)}（{ans.competent.why}）",
                  f"  地址：{p.address}{demo_mark(p)}；{p.hours}",
                  f"  {_distance(ans.competent)}",
                  f"  地图：{map_link(p)}"]
    else:
        lines.append(f"办理地点：{entry.where.text}")
    if ans.nearest:
        lines.append("也可以就近办理（全城通办，能否受理以窗口告知为准）：")
        for o in ans.nearest:
            demo |= o.point.demo
            lines.append(f"· {o.point.name}{demo_mark(o.point)}：{o.point.address}，"
                         f"{_distance(o)}；地图：{map_link(o.point)}")
    if demo:
        lines.append(f"标“示例”的是试点演示数据，地址和时间尚未核实，出发前请拨打 {HOTLINE} 确认。")
    return lines


DEFAULT_POPULAR = ["hukou-birth-registration", "social-security-card-replace",
                   "residence-permit", "id-card-replacement", "offsite-medical-filing"]


class Locator:
    """The assistant's place-awareness (assistant.flows.PlaceAware), backed by the data."""

    def __init__(self, places: Places, top_items: Callable[[str], list[str]] | None = None,
                 known: Callable[[str], EntryLike | None] | None = None) -> None:
        self.places = places
        self.top_items = top_items
        self.known = known

    def place_name(self, place_id: str) -> str | None:
        place = self.places.places.get(place_id)
        return self.places.label(place) if place else None

    def locate(self, entry: EntryLike, place_id: str) -> list[str]:
        place = self.places.places.get(place_id)
        if place is None:
            return []
        return render(self.places, entry, answer(self.places, entry, place))

    def popular(self, place_id: str, n: int = 3) -> list[str]:
        """Entry ids most asked at this place, padded with the district's usual ones."""
        asked = self.top_items(place_id) if self.top_items else []
        out: list[str] = []
        for eid in [*asked, *DEFAULT_POPULAR]:
            if eid not in out and (self.known is None or self.known(eid) is not None):
                out.append(eid)
        return out[:n]
