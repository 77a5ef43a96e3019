"""Who published a guide entry's source, in one short line a citizen can read.

A provenance source is a URL, a law or document title, a document number or a note
("facts.md §4.12；《不动产登记暂行条例》"). Citizens want the publisher, not the address:
"来源：国务院、国家医保局"; the link stays behind the line on the web page."""

from __future__ import annotations

import re

_URL = re.compile(r"https?://[^\s；;，,）)]+")
# Document numbers and title prefixes → the publisher. The first match wins.
_ISSUERS: tuple[tuple[str, str], ...] = (
    (r"^国办发|^国务院办公厅", "国务院办公厅"),
    (r"^国发|^国务院", "国务院"),
    (r"^全国人大常委会|^《中华人民共和国[^》]*法》", "全国人大常委会"),
    (r"^人社部|^人力资源社会保障部|^劳部发", "人力资源社会保障部"),
    (r"^医保发|^国家医疗保障局|^国家医保", "国家医保局"),
    (r"^财政部|^财税|^财社|^财金", "财政部"),
    (r"^国卫|^国家卫生健康委", "国家卫生健康委"),
    (r"^民发|^民政部", "民政部"),
    (r"^发改", "国家发展改革委"),
    (r"^税总|^国家税务总局", "国家税务总局"),
    (r"^公安部", "公安部"),
    (r"^国家移民管理局", "国家移民管理局"),
    (r"^住房和城乡建设部", "住房城乡建设部"),
    (r"^教育部", "教育部"),
    (r"^中国残联", "中国残联"),
    (r"^国家市场监督管理总局|^市场监管总局", "市场监管总局"),
    (r"^劳动和社会保障部", "人力资源社会保障部"),
    (r"^中共中央办公厅", "中共中央办公厅、国务院办公厅"),
    (r"^《中华人民共和国民法典》", "全国人大"),
    (r"^GB ", "国家标准"),
    (r"^国家民委", "国家民委"),
    (r"^国家能源局", "国家能源局"),
    (r"^哈尔滨", "哈尔滨市有关部门"),
    (r"^《黑龙江省", "黑龙江省人大常委会"),
    (r"^《[^》]*条例[^》]*》", "国务院"),
    (r"^facts\.md", "导办政策资料整理"),
    (r"通行|一般做法|通常约定|^各地", "各地通行做法"),
)
# Government sites by domain; any other site is a third-party page.
_SITES: tuple[tuple[str, str], ...] = (
    ("harbin.gov.cn", "哈尔滨市人民政府"),
    ("hlj.gov.cn", "黑龙江省人民政府"),
    ("www.gov.cn", "中国政府网"),
    ("nhsa.gov.cn", "国家医保局"),
    ("mohrss.gov.cn", "人力资源社会保障部"),
    ("mps.gov.cn", "公安部"),
)
MAX_PUBLISHERS = 3


def _site(url: str) -> str:
    host = re.sub(r"^https?://", "", url).split("/")[0].lower()
    for domain, name in _SITES:
        if host == domain or host.endswith("." + domain):
            return name
    return "其他地区政府网站" if host.endswith(".gov.cn") else "网络公开资料"


def _issuer(part: str) -> str:
    # "《…办法》（民政部，2021）": the note in brackets names the issuer best; then the
    # part itself; then the title's own words ("《国务院关于…的意见》").
    for text in [*re.findall(r"（([^）]+)）", part), part, part.lstrip("《")]:
        for pattern, name in _ISSUERS:
            if re.search(pattern, text):
                return name
    title = re.match(r"^《[^》]{1,30}》", part)
    return title.group(0) if title else part[:20]


def publishers(source: str) -> list[str]:
    """The publishers named by ``source``, in order, each once (at most three)."""
    out: list[str] = []
    for part in re.split(r"[；;]", source):
        part = part.strip()
        if not part:
            continue
        urls = _URL.findall(part)
        rest = _URL.sub("", part).strip(" ，,：:（）()")
        names = [_issuer(rest)] if rest and not re.fullmatch(r"[\w\s]*见", rest) else []
        names += [_site(u) for u in urls]
        for n in names:
            if n and n not in out:
                out.append(n)
    return out[:MAX_PUBLISHERS]


def source_line(source: str) -> str:
    """"来源：国务院、国家医保局": never a raw URL."""
    names = publishers(source)
    return "来源：" + ("、".join(names) if names else "公开资料")


def source_link(source: str) -> str | None:
    """The first web address in ``source``, to put behind the source line on a page."""
    m = _URL.search(source)
    return m.group(0) if m else None
