"""QR images of door-sign URLs (segno) and a printable sheet of labelled plates."""

from __future__ import annotations

from html import escape
from pathlib import Path

import segno

from doorplate.places import Place, Places, demo_mark

MIN_ERROR = "m"  # M or better: plates outdoors get dirty and scratched


def make(url: str) -> segno.QRCode:
    # boost_error raises the level above M whenever it costs no extra size.
    return segno.make(url, error=MIN_ERROR, micro=False, boost_error=True)


def write(url: str, path: Path, scale: int = 10) -> segno.QRCode:
    if path.suffix.lower() not in (".svg", ".png"):
        raise ValueError(f"{path.name}: the QR file must end in .svg or .png")
    qr = make(url)
    qr.save(str(path), scale=scale, border=4)
    return qr


# A4 in millimetres; two columns of plates, as many rows as needed (pages stack downwards).
PAGE_W, PAGE_H = 210, 297
PLATE_W, PLATE_H = 90, 125
MARGIN_X, MARGIN_Y, GAP = 10, 12, 10
PER_ROW, ROWS_PER_PAGE = 2, 2


def sheet(places: Places, plates: list[tuple[Place, str]]) -> str:
    """An SVG (A4 pages stacked vertically) of plates: title, QR, place, 社区/街道, note."""
    pages = max(1, -(-len(plates) // (PER_ROW * ROWS_PER_PAGE)))
    height = PAGE_H * pages
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{PAGE_W}mm" height="{height}mm" '
           f'viewBox="0 0 {PAGE_W} {height}" font-family="Noto Sans CJK SC, sans-serif">',
           f'<rect width="{PAGE_W}" height="{height}" fill="#fff"/>']
    for i, (place, url) in enumerate(plates):
        page, k = divmod(i, PER_ROW * ROWS_PER_PAGE)
        row, col = divmod(k, PER_ROW)
        x = MARGIN_X + col * (PLATE_W + GAP)
        y = page * PAGE_H + MARGIN_Y + row * (PLATE_H + GAP)
        qr = make(url)
        modules = qr.symbol_size(scale=1, border=2)[0]
        size = 70
        scale = size / modules
        street = places.streets[place.street].name
        community = places.communities[place.community].name
        out.append(f'<g transform="translate({x},{y})">')
        out.append(f'<rect width="{PLATE_W}" height="{PLATE_H}" rx="4" fill="#fff" '
                   'stroke="#b22" stroke-width="1.2"/>')
        out.append(f'<rect width="{PLATE_W}" height="16" rx="4" fill="#b22"/>')
        out.append(f'<text x="{PLATE_W / 2}" y="11" text-anchor="middle" font-size="7" '
                   f'fill="#fff">政务门牌 · {escape(places.district)}</text>')
        out.append(f'<g transform="translate({(PLATE_W - size) / 2},20) scale({scale:.4f})">')
        out.append(qr.svg_inline(scale=1, border=2, omitsize=True).replace(
            "<svg ", f'<svg width="{modules}" height="{modules}" ', 1))
        out.append("</g>")
        out.append(f'<text x="{PLATE_W / 2}" y="100" text-anchor="middle" font-size="6">'
                   f'{escape(place.name + demo_mark(place))}</text>')
        out.append(f'<text x="{PLATE_W / 2}" y="108" text-anchor="middle" font-size="4.5">'
                   f'{escape(street)} · {escape(community)}</text>')
        out.append(f'<text x="{PLATE_W / 2}" y="117" text-anchor="middle" font-size="3.6" '
                   'fill="#444">扫码问办事：去哪办、带什么、多久好 · 热线 12345</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
