"""``daoban doorplate qr|sheet|revoke|stats|validate|export`` — the 政务门牌 plates."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from channels.settings import Settings


def _open(settings: Settings, *, signing: bool = True):  # type: ignore[no-untyped-def]
    from doorplate.service import open_doorplates
    from doorplate.tokens import KeyConfigError, Keyring
    from knowledge.db import make_engine

    spec = settings.doorplate_keys
    if not spec:
        if signing:
            raise KeyConfigError(
                "DAOBAN_DOORPLATE_KEYS is not set: plates need a signing key (kid:secret), "
                "see docs/doorplate.md")
        spec = "none:" + "x" * 32  # statistics and revocation only; never signs
    return open_doorplates(make_engine(settings.database_url), Keyring.parse(spec),
                           data=settings.doorplate_data,
                           grace_days=settings.doorplate_key_grace_days,
                           public_url=settings.public_url)


def _place(dp, key: str):  # type: ignore[no-untyped-def]
    place = dp.places.place(key)
    if place is None:
        print(f"没有这个门牌: {key!r} (use a place id or plate number; "
              f"e.g. {next(iter(dp.places.places))})", file=sys.stderr)
    return place


def cmd_qr(args: argparse.Namespace, settings: Settings) -> int:
    from doorplate import qr

    dp = _open(settings)
    place = _place(dp, args.place)
    if place is None:
        return 1
    url = dp.url(dp.issue(place))
    out = Path(args.output or f"doorplate-{place.id}.svg")
    code = qr.write(url, out)
    print(f"{out}: {url} (QR version {code.version}, error correction {code.error})")
    return 0


def cmd_sheet(args: argparse.Namespace, settings: Settings) -> int:
    from doorplate import qr

    dp = _open(settings)
    places = [p for p in dp.places.places.values()
              if args.street in (None, p.street, dp.places.streets[p.street].name)]
    if not places:
        print(f"没有街道 {args.street!r} 的门牌 (streets: "
              f"{', '.join(dp.places.streets)})", file=sys.stderr)
        return 1
    svg = qr.sheet(dp.places, [(p, dp.url(dp.issue(p))) for p in places])
    Path(args.output).write_text(svg, encoding="utf-8")
    print(f"{args.output}: {len(places)} plates")
    return 0


def cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    dp = _open(settings, signing=False)
    place = _place(dp, args.place)
    if place is None:
        return 1
    dp.revoke(place, args.reason)
    print(f"已停用 {place.id} 此前印制的全部门牌二维码；重新印制: daoban doorplate qr {place.id}")
    return 0


def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    dp = _open(settings, signing=False)
    if args.csv:
        sys.stdout.write(dp.stats_csv())
        return 0
    s = dp.stats()
    print("门牌\t扫码\t提问")
    for pid, label, scans, messages in s.plates:
        print(f"{pid}\t{scans}\t{messages}\t{label}")
    for title, rows in (("社区", s.communities), ("街道", s.streets)):
        print(f"\n{title}\t扫码")
        for _, name, n in rows:
            print(f"{name}\t{n}")
    print("\n日期\t扫码")
    for day, n in s.days:
        print(f"{day}\t{n}")
    return 0


def cmd_validate(args: argparse.Namespace, settings: Settings) -> int:
    from doorplate.places import PlacesInvalid, load
    from knowledge.validate import load_guide

    guide = load_guide(settings.guide_path)
    path = Path(args.path) if args.path else settings.doorplate_data
    try:
        places = load(path, {*guide.items, *guide.bundles})
    except PlacesInvalid as exc:
        for p in exc.problems:
            print(str(p), file=sys.stderr)
        print(f"共 {len(exc.problems)} 个问题 ({len(exc.problems)} problem(s))", file=sys.stderr)
        return 1
    demo = sum(r.demo for r in [*places.points.values(), *places.places.values()])
    print(f"校验通过 (valid): {len(places.streets)} streets, {len(places.communities)} "
          f"communities, {len(places.points)} service points, {len(places.places)} places "
          f"({demo} demo records)")
    return 0


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from doorplate.places import export, load

    text = export(load(settings.doorplate_data), "json" if args.json else "yaml")
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"已导出到 {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


Command = Callable[[argparse.Namespace, Settings], int]


def _guarded(func: Command) -> Command:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        from doorplate.places import DoorplateError, PlacesInvalid

        try:
            return int(func(args, settings))
        except PlacesInvalid as exc:
            for p in exc.problems:
                print(str(p), file=sys.stderr)
            return 1
        except (DoorplateError, ValueError) as exc:
            print(f"错误: {exc}", file=sys.stderr)
            return 1

    return run


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    d = sub.add_parser("doorplate", help="政务门牌: qr / sheet / revoke / stats / validate / export")
    ds = d.add_subparsers(dest="doorplate_command", required=True)
    q = ds.add_parser("qr", help="一个门牌的二维码 (SVG 或 PNG)")
    q.add_argument("place", help="place id or plate number")
    q.add_argument("-o", "--output", help="file.svg or file.png")
    q.set_defaults(func=_guarded(cmd_qr))
    s = ds.add_parser("sheet", help="可打印的门牌页 (SVG, A4)")
    s.add_argument("--street", help="street id or name (default: all)")
    s.add_argument("-o", "--output", required=True)
    s.set_defaults(func=_guarded(cmd_sheet))
    r = ds.add_parser("revoke", help="停用一个门牌此前印制的全部二维码")
    r.add_argument("place")
    r.add_argument("--reason")
    r.set_defaults(func=_guarded(cmd_revoke))
    st = ds.add_parser("stats", help="扫码与提问统计")
    st.add_argument("--csv", action="store_true")
    st.set_defaults(func=_guarded(cmd_stats))
    v = ds.add_parser("validate", help="校验门牌数据文件")
    v.add_argument("path", nargs="?")
    v.set_defaults(func=_guarded(cmd_validate))
    e = ds.add_parser("export", help="导出门牌数据 (YAML, or --json)")
    e.add_argument("--json", action="store_true")
    e.add_argument("-o", "--output")
    e.set_defaults(func=_guarded(cmd_export))
