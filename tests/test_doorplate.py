"""政务门牌: places data, jurisdiction, signed tokens, QR images, the /d/{token} routes and
statistics — real code, a real SQLite database, the real assistant."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import subprocess
import sys
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from assistant.agents import Role
from assistant.core import Assistant
from assistant.desk import AgentDesk
from assistant.model import UserMessage
from channels.staff import safe_next
from doorplate import jurisdiction, qr, tokens
from doorplate.places import BUNDLED, PlacesInvalid, export, load, parse
from doorplate.service import Doorplates, open_doorplates
from doorplate.tokens import (
    KeyConfigError,
    Keyring,
    TokenForged,
    TokenKeyRetired,
    TokenMalformed,
    TokenRevoked,
)
from knowledge.db import make_engine
from knowledge.validate import GuideBase, load_guide
from tests.consoles import PASSWORD
from tests.harness import doorplate_app
from tests.servers import add_agent, daoban_server, launch_chromium, require_chromium

ROOT = Path(__file__).resolve().parents[1]
K1 = "k1:first-secret-0123456789"
K2 = "k2:second-secret-0123456789"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def guide() -> GuideBase:
    return load_guide()


def _doorplates(url: str, keys: str = K1, clock: Clock | None = None,
                grace: int = 30) -> Doorplates:
    return open_doorplates(make_engine(url), Keyring.parse(keys), grace_days=grace,
                           public_url="https://daoban.example.gov.cn", clock=clock or Clock())


# --- places data -------------------------------------------------------------------------


def test_bundled_places_valid_and_only_sourced_facts_are_not_demo(guide: GuideBase) -> None:
    places = load(known_entries={*guide.items, *guide.bundles})
    real = {p.id: p.address for p in places.points.values() if not p.demo}
    assert real == {"hrb-citizen-hall": "哈尔滨市南岗区中山路181号",
                    "hrb-exit-entry-hall": "哈尔滨市道里区经纬头道街6号"}
    assert all(p.demo for p in places.places.values())
    assert places.label(places.places["jw-anping-18"]) == "经纬街道 安平社区 安平街18号楼（示例）"


def test_places_validation_names_record_and_field() -> None:
    raw = yaml.safe_load(BUNDLED.read_text(encoding="utf-8"))
    raw["places"][0]["police"] = "center-jingwei"  # a 街道便民服务中心, not a 派出所
    raw["places"][1]["community"] = "nowhere"
    raw["places"][2]["plate"] = raw["places"][3]["plate"]
    raw["service_points"][2]["demo"] = False  # unverified: needs a source
    raw["service_points"][3]["items"] = ["no-such-item"]
    with pytest.raises(PlacesInvalid) as exc:
        parse(raw, "daoli.yaml", known_entries={"hukou-birth-registration"})
    text = "\n".join(str(p) for p in exc.value.problems)
    assert "service_points[2] (daoli-service-center): -: Value error, demo: false needs a source" in text
    raw["service_points"][2]["demo"] = True
    with pytest.raises(PlacesInvalid) as exc:
        parse(raw, "daoli.yaml", known_entries={"hukou-birth-registration"})
    text = "\n".join(str(p) for p in exc.value.problems)
    assert "jw-anping-18: police: 'center-jingwei' is a 街道便民服务中心, expected a 派出所" in text
    assert "jw-toudao-25: community: unknown community 'nowhere'" in text
    assert "sz-xinhua-33: plate: plate number 1004 already used by sz-hongxing-7" in text
    assert "daoli-realestate-hall: items: unknown guide item or bundle 'no-such-item'" in text


def test_export_import_round_trip(tmp_path: Path) -> None:
    places = load()
    for fmt, name in (("yaml", "p.yaml"), ("json", "p.json")):
        f = tmp_path / name
        f.write_text(export(places, fmt), encoding="utf-8")
        again = load(f)
        assert again.doc == places.doc


# --- jurisdiction ------------------------------------------------------------------------


def _answer(guide: GuideBase, item: str, place: str) -> jurisdiction.Answer:
    places = load()
    e = guide.entry(item)
    assert e is not None
    return jurisdiction.answer(places, e, places.places[place])


def test_hukou_goes_to_the_place_police_station_then_nearest(guide: GuideBase) -> None:
    a = _answer(guide, "hukou-birth-registration", "jw-anping-18")
    assert a.competent is not None and a.competent.point.id == "police-jingwei"
    assert a.competent.in_circle and a.competent.minutes <= 5
    assert [o.point.id for o in a.nearest] == ["police-shangzhi", "police-zhaolin"]
    assert a.nearest[0].meters <= a.nearest[1].meters
    far = _answer(guide, "hukou-birth-registration", "ql-hupan-5")
    assert far.competent is not None and far.competent.point.id == "police-qunli"
    assert not far.nearest[0].in_circle  # 群力 to 经纬/尚志: several kilometres


def test_social_security_window_street_station_or_city_hall(guide: GuideBase) -> None:
    a = _answer(guide, "social-security-card-replace", "jw-anping-18")
    assert a.competent is not None and a.competent.point.id == "center-jingwei"
    assert "hrb-citizen-hall" in [o.point.id for o in a.nearest] or len(a.nearest) == 2
    b = _answer(guide, "social-security-card-replace", "sz-hongxing-7")
    assert b.competent is not None and b.competent.point.id == "hrb-citizen-hall"
    assert b.competent.point.demo is False
    # 全城通办: the nearest other points that handle it, nearest first.
    assert [o.point.id for o in b.nearest] == ["daoli-service-center", "center-jingwei"]
    assert b.nearest[0].meters <= b.nearest[1].meters


def test_property_street_and_other_point_types(guide: GuideBase) -> None:
    assert _answer(guide, "property-transfer-secondhand",
                   "zl-gongyuan-2").competent.point.id == "daoli-realestate-hall"  # type: ignore[union-attr]
    assert _answer(guide, "elderly-allowance", "sz-xinhua-33").competent.point.id == "center-shangzhi"  # type: ignore[union-attr]
    assert _answer(guide, "pension-qualification-certification",
                   "ql-yuanbo-21").competent.point.id == "station-qunli-yuanbo"  # type: ignore[union-attr]
    passport = _answer(guide, "passport", "zl-jiangpan-16")
    assert passport.competent is not None
    assert passport.competent.point.id == "hrb-exit-entry-hall" and passport.nearest == []
    assert _answer(guide, "marriage-registration", "jw-anping-18").competent is None


def test_render_distance_walking_time_map_link_and_demo_label(guide: GuideBase) -> None:
    places = load()
    e = guide.entry("hukou-birth-registration")
    assert e is not None
    lines = jurisdiction.Locator(places).locate(e, "jw-anping-18")
    text = "\n".join(lines)
    assert "主管窗口：经纬派出所（示例）（户籍所在地派出所" in text
    assert "步行约" in text and "15分钟政务服务圈" in text
    assert "https://uri.amap.com/marker?position=126.610200,45.771900&name=" in text
    assert "示例" in lines[-1] and "12345" in lines[-1]
    # Distances: 1° of latitude is ~111.2 km; walking at 80 m/min.
    assert jurisdiction.haversine_m(45.0, 126.0, 46.0, 126.0) == pytest.approx(111_195, rel=1e-3)
    assert jurisdiction.walking_minutes(1200) == 15 and jurisdiction.walking_minutes(1201) == 16
    passport = guide.entry("passport")
    assert passport is not None
    ptext = "\n".join(jurisdiction.Locator(places).locate(passport, "jw-anping-18"))
    assert "哈尔滨市公安局出入境接待大厅：" not in ptext  # competent, not a nearest bullet
    assert "地址：哈尔滨市道里区经纬头道街6号；" in ptext  # sourced: no 示例 mark


# --- tokens ------------------------------------------------------------------------------


def test_keyring_rejects_bad_configuration() -> None:
    for spec, words in (("", "empty"), ("k1", "kid:secret"), ("k1:short", "16"),
                        (f"{K1},{K1}", "twice"), ("bad id!:0123456789abcdefg", "kid:secret")):
        with pytest.raises(KeyConfigError, match=words):
            Keyring.parse(spec)
    ring = Keyring.parse(f" {K2} , {K1} ")
    assert ring.current == "k2" and ring.secret("k1") == b"first-secret-0123456789"


def test_token_sign_verify_and_refuse_forgeries(sqlite_url: str) -> None:
    dp = _doorplates(sqlite_url)
    place = dp.places.places["jw-anping-18"]
    token = dp.issue(place)
    assert dp.verify(token).id == "jw-anping-18"
    assert len(dp.url(token)) < 80 and len(token) <= 40
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    for clear in (place.id, place.address, "安平", "jw"):
        assert clear.encode() not in raw  # opaque: no place id or address in clear
    # Flipping any signed byte (plate, time, key id) or the MAC is refused.
    for i in range(2, len(raw)):
        bad = bytearray(raw)
        bad[i] ^= 0x01
        forged = base64.urlsafe_b64encode(bytes(bad)).rstrip(b"=").decode()
        with pytest.raises((TokenForged, TokenMalformed)):
            dp.verify(forged)
    # Another plate number signed with a key we do not hold:
    other = Keyring.parse("k1:someone-elses-secret-000")
    with pytest.raises(TokenForged):
        dp.verify(tokens.sign(other, 1002, T0))
    for garbage in ("", "x", "!!!!", "AQJrMQ", "a" * 200, "../etc/passwd", "AQ==", "测试"):
        with pytest.raises(TokenMalformed):
            dp.verify(garbage)
    assert dp.resolve("garbage") is None and dp.resolve(token) == "jw-anping-18"


def test_revocation_is_per_plate_and_a_reprint_works(sqlite_url: str) -> None:
    clock = Clock()
    dp = _doorplates(sqlite_url, clock=clock)
    a = dp.places.places["jw-anping-18"]
    b = dp.places.places["jw-toudao-25"]
    old, other = dp.issue(a), dp.issue(b)
    clock.now += timedelta(days=3)
    dp.revoke(a, "plate stolen")
    with pytest.raises(TokenRevoked):
        dp.verify(old)
    assert dp.verify(other).id == b.id
    fresh = dp.issue(a)  # the same minute as the revocation
    assert dp.verify(fresh).id == a.id
    # The revocation list lives in the database: a new process sees it.
    again = _doorplates(sqlite_url, clock=clock)
    with pytest.raises(TokenRevoked):
        again.verify(old)


def test_key_rotation_accepts_old_plates_within_the_window_only(sqlite_url: str) -> None:
    clock = Clock()
    first = _doorplates(sqlite_url, K1, clock, grace=30)
    place = first.places.places["sz-hongxing-7"]
    old_token = first.issue(place)
    clock.now = T0 + timedelta(days=100)  # k1 in use for a long time, then rotated
    rotated = _doorplates(sqlite_url, f"{K2},{K1}", clock, grace=30)
    new_token = rotated.issue(place)
    assert tokens.unpack(new_token)[0].kid == "k2"
    clock.now = T0 + timedelta(days=100 + 29)
    assert rotated.verify(old_token).id == place.id  # inside the transition window
    assert rotated.verify(new_token).id == place.id
    clock.now = T0 + timedelta(days=100 + 31)
    with pytest.raises(TokenKeyRetired):
        rotated.verify(old_token)
    assert rotated.verify(new_token).id == place.id
    # A restart after the window still remembers when k1 was retired.
    with pytest.raises(TokenKeyRetired):
        _doorplates(sqlite_url, f"{K2},{K1}", clock, grace=30).verify(old_token)
    # Dropping k1 from the configuration refuses its plates outright.
    with pytest.raises(TokenForged):
        _doorplates(sqlite_url, K2, clock).verify(old_token)


# --- QR ----------------------------------------------------------------------------------


def _read_png(path: Path) -> np.ndarray[Any, Any]:
    """A minimal PNG reader for segno's output (greyscale, bit depth 1 or 8)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    i, idat, ihdr = 8, b"", b""
    while i < len(data):
        (n,) = struct.unpack(">I", data[i : i + 4])
        kind, body = data[i + 4 : i + 8], data[i + 8 : i + 8 + n]
        if kind == b"IHDR":
            ihdr = body
        elif kind == b"IDAT":
            idat += body
        i += 12 + n
    w, h, depth, color = struct.unpack(">IIBB", ihdr[:10])
    assert color == 0 and depth in (1, 8)
    stride = (w * depth + 7) // 8
    raw = zlib.decompress(idat)
    rows, prev = [], bytearray(stride)
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - 1] if x else 0
            up, ul = prev[x], prev[x - 1] if x else 0
            if f == 1:
                line[x] = (line[x] + left) & 0xFF
            elif f == 2:
                line[x] = (line[x] + up) & 0xFF
            elif f == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif f == 4:
                p = left + up - ul
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - ul)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else ul
                line[x] = (line[x] + pred) & 0xFF
        rows.append(bytes(line))
        prev = line
    arr = np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(h, stride)
    if depth == 1:
        arr = np.unpackbits(arr, axis=1)[:, :w] * 255
    return np.ascontiguousarray(arr.astype(np.uint8))


def test_qr_png_decodes_back_to_the_url(sqlite_url: str, tmp_path: Path) -> None:
    import zxingcpp

    dp = _doorplates(sqlite_url)
    for pid in ("jw-anping-18", "ql-yuanbo-21"):
        url = dp.url(dp.issue(dp.places.places[pid]))
        png = tmp_path / f"{pid}.png"
        code = qr.write(url, png)
        assert code.error in ("M", "Q", "H") and int(code.version) <= 5
        found = zxingcpp.read_barcodes(_read_png(png))
        assert [r.text for r in found] == [url]
        assert dp.verify(url.rsplit("/", 1)[1]).id == pid
    with pytest.raises(ValueError, match=r"svg or \.png"):
        qr.write("https://x", tmp_path / "a.gif")


def test_cli_qr_sheet_revoke_stats(tmp_path: Path) -> None:
    env = {"DAOBAN_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
           "DAOBAN_DOORPLATE_KEYS": K1, "DAOBAN_PUBLIC_URL": "https://daoban.example.gov.cn",
           "PATH": "/usr/bin:/bin"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", "from channels.cli_doorplate import register;"
                               "import argparse,sys;from channels.settings import Settings;"
                               "p=argparse.ArgumentParser();s=p.add_subparsers();register(s);"
                               "a=p.parse_args(sys.argv[1:]);sys.exit(a.func(a,Settings()))",
                               *args], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=60)

    r = run("doorplate", "qr", "1001", "-o", str(tmp_path / "p.svg"))
    assert r.returncode == 0, r.stderr
    assert "https://daoban.example.gov.cn/d/" in r.stdout
    assert (tmp_path / "p.svg").read_text().lstrip().startswith("<?xml")
    r = run("doorplate", "sheet", "--street", "群力街道", "-o", str(tmp_path / "s.svg"))
    assert r.returncode == 0, r.stderr
    sheet = (tmp_path / "s.svg").read_text(encoding="utf-8")
    assert "湖畔路5号楼（示例）" in sheet and "远博路21号楼（示例）" in sheet
    assert "安平街18号楼" not in sheet and sheet.count('class="segno"') == 2
    assert run("doorplate", "revoke", "jw-anping-18").returncode == 0
    r = run("doorplate", "qr", "nowhere")
    assert r.returncode == 1 and "没有这个门牌" in r.stderr
    r = run("doorplate", "stats", "--csv")
    assert r.returncode == 0 and r.stdout.startswith("dimension,key,name,count")
    env["DAOBAN_DOORPLATE_KEYS"] = ""
    r = run("doorplate", "qr", "1001", "-o", str(tmp_path / "q.svg"))
    assert r.returncode == 1 and "DAOBAN_DOORPLATE_KEYS" in r.stderr


# --- the assistant and the web routes ----------------------------------------------------


@pytest.fixture(scope="module")
def app_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Doorplates]]:
    d = tmp_path_factory.mktemp("doorplate")
    app, dp = doorplate_app(d, "dp", K1)
    with TestClient(app) as c:
        staff = _desk(c).agents
        staff.add("wang", PASSWORD, display_name="王帮办", skills=("公安",))
        staff.add("boss", PASSWORD, display_name="李值班长", role=Role.SUPERVISOR)
        staff.add("root", PASSWORD, display_name="管理员", role=Role.ADMIN)
        yield c, dp


def _desk(client: TestClient) -> AgentDesk:
    desk: AgentDesk = client.app.state.desk  # type: ignore[attr-defined]
    return desk


def _bearer(client: TestClient, user: str, ttl: timedelta = timedelta(hours=1)) -> dict[str, str]:
    got = _desk(client).agents.login(user, PASSWORD, ttl)
    assert got is not None
    return {"Authorization": f"Bearer {got[0]}"}


def test_scoped_where_answer_in_the_assistant(app_env: tuple[TestClient, Doorplates]) -> None:
    client, dp = app_env
    assistant: Assistant = client.app.state.services.assistant  # type: ignore[attr-defined]

    async def ask(cid: str, text: str, place: str | None) -> str:
        replies = await assistant.handle(UserMessage(cid, text, channel="test", place=place),
                                         create=True)
        return "\n".join(r.text for r in replies)

    here = asyncio.run(ask("dp-a", "出生登记在哪办", "ql-hupan-5"))
    assert "群力派出所（示例）" in here and "步行约" in here and "uri.amap.com" in here
    # Without a place the generic answer stays as before.
    plain = asyncio.run(ask("dp-b", "出生登记在哪办", None))
    assert "群力派出所" not in plain and "步行约" not in plain
    assert "hukou-birth-registration" in dp.store.top_items("ql-hupan-5")


def test_scan_page_greets_with_the_place(app_env: tuple[TestClient, Doorplates]) -> None:
    client, dp = app_env
    token = dp.issue(dp.places.places["zl-jiangpan-16"])
    r = client.get(f"/d/{token}")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert "兆麟街道 江畔社区 江畔路16号楼（示例）" in r.text
    assert 'data-text="出生登记（新生儿落户）在哪办"' in r.text
    assert "/static/chat.js" in r.text
    boss = _bearer(client, "boss")
    stats = client.get("/doorplate/stats", headers=boss)
    assert stats.status_code == 200 and "江畔路16号楼" in stats.text
    csv_text = client.get("/doorplate/stats.csv", headers=boss).text
    assert "plate,zl-jiangpan-16," in csv_text and "street,zhaolin,兆麟街道," in csv_text


# --- the statistics are for supervisors and admins only ------------------------------------


def test_stats_refuse_anonymous_visitors_and_agents(
    app_env: tuple[TestClient, Doorplates],
) -> None:
    client, dp = app_env
    dp.record_scan("jw-anping-18")
    anon = TestClient(client.app)  # no cookie
    for headers in ({}, {"Authorization": "Bearer forged-token"}):
        page = anon.get("/doorplate/stats", headers=headers, follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"] == "/agent?next=/doorplate/stats"
        assert "安平" not in page.text
        csv = anon.get("/doorplate/stats.csv", headers=headers)
        assert csv.status_code == 401 and "安平" not in csv.text
        assert csv.json() == {"error": "请先登录，或登录已过期", "code": "unauthorized"}
    wang = _bearer(client, "wang")  # role agent
    page = anon.get("/doorplate/stats", headers=wang, follow_redirects=False)
    assert page.status_code == 403 and page.headers["content-type"].startswith("text/html")
    assert "没有查看政务门牌统计的权限" in page.text and "值班长" in page.text
    assert "安平" not in page.text and "Traceback" not in page.text
    csv = anon.get("/doorplate/stats.csv", headers=wang)
    assert csv.status_code == 403
    assert csv.json() == {"error": "只有值班长或管理员可以查看", "code": "forbidden"}


def test_stats_for_supervisors_and_admins(app_env: tuple[TestClient, Doorplates]) -> None:
    client, dp = app_env
    dp.record_scan("jw-anping-18")
    for user in ("boss", "root"):
        page = client.get("/doorplate/stats", headers=_bearer(client, user))
        assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
        assert "政务门牌统计" in page.text and "<table>" in page.text
        assert "安平街18号楼（示例）" in page.text
        csv = client.get("/doorplate/stats.csv", headers=_bearer(client, user))
        assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
        assert csv.text.startswith("dimension,key,name,count")
        assert "plate,jw-anping-18," in csv.text


def test_stats_refuse_expired_sessions_and_disabled_accounts(
    app_env: tuple[TestClient, Doorplates],
) -> None:
    client, _ = app_env
    staff = _desk(client).agents
    expired = _bearer(client, "boss", timedelta(seconds=-1))
    assert client.get("/doorplate/stats", headers=expired,
                      follow_redirects=False).status_code == 303
    assert client.get("/doorplate/stats.csv", headers=expired).status_code == 401
    staff.add("zhou", PASSWORD, display_name="周值班长", role=Role.SUPERVISOR)
    browser = TestClient(client.app)
    assert browser.post("/agent/login", json={"username": "zhou", "password": PASSWORD}
                        ).status_code == 200  # the HttpOnly cookie, as a browser signs in
    assert browser.get("/doorplate/stats").status_code == 200
    assert browser.get("/doorplate/stats.csv").status_code == 200
    staff.disable("zhou")
    page = browser.get("/doorplate/stats", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/agent?next=")
    assert browser.get("/doorplate/stats.csv").status_code == 401
    assert browser.post("/agent/login", json={"username": "zhou", "password": PASSWORD}
                        ).status_code == 401


def test_sign_in_comes_back_to_the_stats_page(app_env: tuple[TestClient, Doorplates]) -> None:
    client, _ = app_env
    browser = TestClient(client.app)
    landed = browser.get("/doorplate/stats")  # follows the redirect
    assert str(landed.url).endswith("/agent?next=/doorplate/stats")
    assert landed.status_code == 200 and "帮办人员登录" in landed.text
    assert 'data-next="/doorplate/stats"' in landed.text
    assert browser.post("/agent/login", json={"username": "boss", "password": PASSWORD}
                        ).status_code == 200
    assert "政务门牌统计" in browser.get("/doorplate/stats").text


def test_sign_in_page_keeps_only_a_path_on_this_site() -> None:
    for good in ("/doorplate/stats", "/doorplate/stats.csv", "/agent", "/a?b=1&c=%2F%2Fx"):
        assert safe_next(good) == good
    hostile = ["//evil.com", "///evil.com", "/\\evil.com", "/\\/evil.com", "\\\\evil.com",
               "https://evil.com", "http:/evil.com", "HTTPS://evil.com/doorplate/stats",
               "javascript:alert(1)", " /doorplate/stats", "/\t/evil.com", "/\n/evil.com",
               "/doorplate/stats\r\nSet-Cookie: x=1", "evil.com", "doorplate/stats",
               "data:text/html,<script>alert(1)</script>", "", None, "/" + "a" * 600]
    for bad in hostile:
        assert safe_next(bad) is None, bad


def test_sign_in_page_drops_a_hostile_next(app_env: tuple[TestClient, Doorplates]) -> None:
    client, _ = app_env
    ok = client.get("/agent", params={"next": "/doorplate/stats"})
    assert ok.status_code == 200 and 'data-next="/doorplate/stats"' in ok.text
    for bad in ("//evil.com", "/\\evil.com", "https://evil.com", "javascript:alert(1)",
                "/\t/evil.com"):
        page = client.get("/agent", params={"next": bad})
        assert page.status_code == 200 and 'data-next=""' in page.text, bad
        assert "evil.com" not in page.text and "javascript:" not in page.text
    # A same-site path is written into the page escaped: it cannot break out of the attribute.
    quoted = client.get("/agent", params={"next": '/x"><script>alert(1)</script>'})
    assert "<script>alert" not in quoted.text
    assert 'data-next="/x&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in quoted.text


def test_bad_tokens_get_a_friendly_page_that_leaks_nothing(
    app_env: tuple[TestClient, Doorplates],
) -> None:
    client, dp = app_env
    place = dp.places.places["sz-xinhua-33"]
    revoked = dp.issue(place)
    dp.revoke(place)
    good = dp.issue(dp.places.places["jw-toudao-25"])
    forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
    pages = {}
    for token, status in ((forged, 404), ("garbage", 404), ("A" * 300, 404),
                          ("%E6%B5%8B", 404), (revoked, 404)):
        r = client.get(f"/d/{token}")
        assert r.status_code == status, token
        assert "二维码暂时无法使用" in r.text and "12345" in r.text
        for leak in ("新华", "尚志", "sz-xinhua", "revoked", "forged", "signature", token[:20]):
            assert leak not in r.text
        pages[token] = r.text
    assert len(set(pages.values())) == 1  # one page for every failure


def test_web_chat_trusts_only_a_verified_token(app_env: tuple[TestClient, Doorplates]) -> None:
    client, dp = app_env
    good = dp.issue(dp.places.places["jw-anping-18"])
    forged = tokens.sign(Keyring.parse("k1:an-attackers-secret-123"), 1001, T0)

    def chat(place: str) -> str:
        with client.websocket_connect("/ws/chat") as ws:
            ws.send_text(json.dumps({"type": "hello", "conversation_id": None, "place": place}))
            welcome = json.loads(ws.receive_text())
            ws.send_text(json.dumps({"type": "message", "client_id": "m1",
                                     "text": "出生登记在哪办"}))
            texts = []
            for _ in range(20):
                f = json.loads(ws.receive_text())
                if f.get("type") == "message" and f.get("from") == "bot":
                    texts.append(f["text"])
                    if "咨询电话" in f["text"]:
                        break
            state = client.get(f"/api/conversations/{welcome['conversation_id']}")
            assert state.status_code in (200, 404)
            return "\n".join(texts)

    assert "经纬派出所（示例）" in chat(good)
    assert "经纬派出所" not in chat(forged)


# --- scan → scoped chat in a real browser (fixture pattern of test_web_browser.py) --------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_chromium()
    work = tmp_path_factory.mktemp("dpbrowser")
    add_agent(work, "boss", "--name", "李值班长", "--role", "supervisor")
    with daoban_server(work, DAOBAN_DOORPLATE_KEYS=K1) as base:
        yield base


@pytest.mark.browser
def test_browser_scan_opens_the_scoped_chat(server: str) -> None:
    from playwright.sync_api import sync_playwright

    token = tokens.sign(Keyring.parse(K1), 1003, datetime.now(UTC))  # 红星街7号楼
    with sync_playwright() as p:
        b = launch_chromium(p)
        try:
            ctx = b.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
            page = ctx.new_page()
            page.goto(f"{server}/d/{token}")
            page.wait_for_function("() => window.daoban && window.daoban.state().connected")
            greeting = page.locator(".intro .place-greeting").inner_text()
            assert "尚志街道 红星社区 红星街7号楼（示例）" in greeting
            assert page.locator(".intro button").count() >= 1
            page.fill("#msg", "出生登记在哪办")
            page.keyboard.press("Enter")
            answer = page.locator(".row.bot:not(.intro)", has_text="尚志派出所")
            answer.first.wait_for(timeout=15_000)
            text = answer.first.inner_text()
            assert "户籍所在地派出所" in text and "步行约" in text
            # A forged plate: the friendly page, no chat.
            resp = page.goto(f"{server}/d/{token[:-3]}xyz")
            assert resp is not None and resp.status == 404
            assert "二维码暂时无法使用" in page.inner_text("body")
            ctx.close()
        finally:
            b.close()


@pytest.mark.browser
def test_browser_stats_sign_in_and_come_back(server: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
        try:
            page = b.new_page(locale="zh-CN")
            page.goto(f"{server}/doorplate/stats")
            assert page.url == f"{server}/agent?next=/doorplate/stats"
            page.get_by_text("登录后将回到您刚才要打开的页面").wait_for()
            page.fill("#username", "boss")
            page.fill("#password", PASSWORD)
            page.get_by_role("button", name="登录").click()
            page.wait_for_url(f"{server}/doorplate/stats")
            assert page.locator("h1").inner_text() == "政务门牌统计（道里区试点）"
            assert page.locator("h2", has_text="按门牌").count() == 1
            # Signed in, a next that leaves the site is ignored: the console opens.
            page.goto(f"{server}/agent?next=//example.com/")
            page.locator("#desk").wait_for()
            assert page.url == f"{server}/agent?next=//example.com/"
        finally:
            b.close()
