"""The guide-base file format (``daoban-guide/2``), as pydantic models.

This is the shape a city's exported 办事指南 catalogue is converted into; the bundled
Harbin guide base is written in it (YAML), and ``daoban kb export`` writes it (JSON).
``docs/guide-format.md`` documents every field. Shape errors are reported by pydantic;
cross-record checks (unknown references, duplicate ids, …) live in ``validate.py``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FORMAT: Literal["daoban-guide/2"] = "daoban-guide/2"
# Version 1 files (no practical answers, windows or eligibility) are still read: every
# new field is optional and means "unknown" when absent.
FORMATS = ("daoban-guide/1", "daoban-guide/2")
ID_PATTERN = r"^[a-z0-9][a-z0-9-]{1,79}$"
_ID_RE = re.compile(ID_PATTERN)

Id = Annotated[str, Field(pattern=ID_PATTERN)]
Text = Annotated[str, Field(min_length=1, max_length=4000)]
Name = Annotated[str, Field(min_length=1, max_length=120)]


# pydantic gives every model its own set of the field names it was given (2 KB for an
# item); these models are frozen, so that set never changes and identical ones can be
# shared: a 100k-item guide base is ~220 MB smaller (benchmarks/retrieval.py).
_FIELDS_SETS: dict[frozenset[str], set[str]] = {}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    def model_post_init(self, context: Any, /) -> None:
        names = frozenset(self.__pydantic_fields_set__)
        shared = _FIELDS_SETS.setdefault(names, set(names))
        object.__setattr__(self, "__pydantic_fields_set__", shared)


class Audience(StrEnum):
    PERSON = "个人"
    LEGAL = "法人"


class Confidence(StrEnum):
    OFFICIAL = "official"  # read on an official page or a faithful copy
    THIRD_PARTY = "third-party"  # read on an aggregator / news page
    TYPICAL = "typical"  # a typical national rule, not verified for Harbin


class ChannelType(StrEnum):
    WINDOW = "窗口"
    ONLINE = "网上"
    MOBILE = "掌上"
    KIOSK = "自助终端"
    POST = "邮寄"


class MaterialSource(StrEnum):
    SELF = "申请人自备"
    ISSUED = "部门核发"
    E_LICENSE = "电子证照可调取"
    SHARED = "共享免提交"


class Necessity(StrEnum):
    REQUIRED = "必要"
    DEFERRABLE = "容缺可后补"
    COMMITMENT = "告知承诺可替代"


class Form(StrEnum):
    ORIGINAL = "原件"
    COPY = "复印件"
    ORIGINAL_AND_COPY = "原件和复印件"
    FILLED = "填写"  # a form filled in on site or online


class Medium(StrEnum):
    PAPER = "纸质"
    ELECTRONIC = "电子"
    EITHER = "纸质或电子"


class Provenance(Strict):
    source: Text  # a URL, or the name of the rule/law the fact comes from
    verified: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")  # date the source was read
    confidence: Confidence
    note: str | None = None


class TimeLimit(Strict):
    """Working days. ``instant`` means 即办 (done on the spot)."""

    legal_days: int | None = Field(default=None, ge=0, le=365)
    promised_days: int | None = Field(default=None, ge=0, le=365)
    instant: bool = False
    text: Text  # how to say it to a citizen, e.g. "即办；材料齐全当场办结"

    @model_validator(mode="after")
    def _some_limit(self) -> TimeLimit:
        if not self.instant and self.legal_days is None and self.promised_days is None:
            raise ValueError("time limit needs legal_days, promised_days or instant: true")
        if (
            self.legal_days is not None
            and self.promised_days is not None
            and self.promised_days > self.legal_days
        ):
            raise ValueError("promised_days must not exceed legal_days")
        return self


class Fee(Strict):
    free: bool
    text: Text  # "不收费" or "工本费20元"
    basis: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Fee:
        if self.free and re.search(r"\d+\s*元", self.text):
            raise ValueError("a free item's fee text must not name a price")
        return self


class Channel(Strict):
    type: ChannelType
    name: Text  # the hall, platform or app, e.g. "黑龙江政务服务网", "交管12123 APP"
    note: str | None = None


class Flags(Strict):
    province_wide: bool = False  # 全省通办
    cross_province: bool = False  # 跨省通办
    no_application: bool = False  # 免申即享
    commitment: bool = False  # 告知承诺制
    tolerance: bool = False  # 容缺受理


class Faq(Strict):
    q: Text
    a: Text


class Where(Strict):
    """Where to go. ``point_type`` links to service points for jurisdiction."""

    text: Text  # "父或母常住户口所在地派出所户籍窗口"
    point_type: Name  # e.g. 派出所, 社保经办机构, 不动产登记中心, 政务服务中心


class SituationOption(Strict):
    id: Id
    label: Name
    # Other words a citizen uses for this option ("跟他妈" for 随母亲落户); the dialogue
    # matches free answers against the label, these and the shared slot lexicon.
    synonyms: list[Name] = Field(default_factory=list)


class Situation(Strict):
    """办事情形: a question whose answer changes the material list."""

    id: Id
    question: Text
    options: list[SituationOption] = Field(min_length=2, max_length=6)


class MaterialUse(Strict):
    """One material as an item requires it (the material itself is in the catalogue)."""

    ref: Id
    copies: int = Field(default=1, ge=1, le=20)
    form: Form = Form.ORIGINAL
    medium: Medium = Medium.PAPER
    source: MaterialSource = MaterialSource.SELF
    necessity: Necessity = Necessity.REQUIRED
    note: str | None = None
    # Situation id -> option ids for which this material applies; empty = always.
    when: dict[str, list[str]] = Field(default_factory=dict)


class Material(Strict):
    """A catalogue entry shared by items: what it is and how a citizen gets it."""

    id: Id
    name: Name  # without book-title marks: 出生医学证明
    how_to_get: Text  # where and how to obtain it when the citizen does not have it
    description: str | None = None


class Reduction(Strict):
    """A published reduction fact of a bundle, e.g. 材料 9份→2份 (source required)."""

    what: Literal["材料", "跑动", "环节", "时限"]
    before: Annotated[int, Field(ge=0)]
    after: Annotated[int, Field(ge=0)]
    unit: Name  # 份 / 次 / 个 / 个工作日
    place: Name  # where it was measured, e.g. 青海
    source: Text


class Topic(StrEnum):
    """The practical questions citizens ask about an item beyond the card.

    Each has one answer record in ``answers``; an absent topic, or ``answer: unknown``,
    means the guide does not say, and the dialogue says so and tells where to ask."""

    PROXY = "proxy"  # 能代办吗 / 能委托别人吗 (委托代办, with the proxy's materials)
    GUARDIAN = "guardian"  # 监护人代为申请 (minors, people without capacity)
    EMPLOYER = "employer"  # 单位经办
    IN_PERSON = "in_person"  # 本人必须到场吗, and why (人像采集, 指纹, 签字, 面签)
    ADVANCE = "advance"  # 提前多久可以办 / 截止
    EXPEDITE = "expedite"  # 能加急吗
    MAIL = "mail"  # 能邮寄送达吗
    OFFSITE = "offsite"  # 外地能办吗: 跨省通办 / 全省通办 / 全市通办 / 户籍地
    MEDICAL = "medical"  # 要体检吗
    WEEKEND = "weekend"  # 周末、节假日能办吗
    PROGRESS = "progress"  # 进度怎么查
    EXPIRED = "expired"  # 过期了 / 超期了怎么办
    LOST = "lost"  # 证件或结果丢了怎么办
    REFUSED = "refused"  # 被退回 / 不予受理怎么办


# Topics every required item must carry (``daoban kb lint``): the questions the
# conversation-competence work found citizens ask most.
CORE_TOPICS = (Topic.PROXY, Topic.IN_PERSON, Topic.ADVANCE, Topic.EXPEDITE, Topic.MAIL,
               Topic.OFFSITE)


class Tri(StrEnum):
    YES = "yes"
    NO = "no"
    PARTLY = "partly"  # yes in some situations (the text says which)
    UNKNOWN = "unknown"  # the sources do not say: the dialogue says so and routes


class Reach(StrEnum):
    CROSS_PROVINCE = "跨省通办"
    PROVINCE = "全省通办"
    CITY = "全市通办"
    LOCAL = "属地办理"  # only where the hukou / residence / business is registered


class InPersonReason(StrEnum):
    PORTRAIT = "人像采集"
    FINGERPRINT = "指纹"
    SIGNATURE = "签字"
    INTERVIEW = "面签"
    ORIGINALS = "核验原件"
    ASSESSMENT = "现场评定"


class Answer(Strict):
    """One practical fact about an item, with where it comes from."""

    answer: Tri
    text: str | None = Field(default=None, max_length=1000)  # what to tell a citizen
    source: str | None = Field(default=None, max_length=500)  # URL or rule; entry's if absent
    confidence: Confidence | None = None  # entry's provenance confidence if absent
    materials: list[Id] = Field(default_factory=list)  # PROXY: the proxy's extra materials
    reasons: list[InPersonReason] = Field(default_factory=list)  # IN_PERSON
    reach: Reach | None = None  # OFFSITE

    @field_validator("answer", mode="before")
    @classmethod
    def _yaml_bool(cls, v: Any) -> Any:
        # YAML 1.1 reads a bare yes/no as a boolean.
        return {True: "yes", False: "no"}.get(v, v) if isinstance(v, bool) else v

    @model_validator(mode="after")
    def _text_unless_unknown(self) -> Answer:
        if self.answer is not Tri.UNKNOWN and not self.text:
            raise ValueError("a known answer needs text telling the citizen what it means")
        if self.materials and self.answer is Tri.NO:
            raise ValueError("materials only make sense when the answer is not no")
        return self


class Window(Strict):
    """A yearly window (集中参保缴费期, 招生报名, 资格认证周期) with its year, so that a
    stale year is detectable (``daoban kb lint``)."""

    name: Name  # 2027年度城乡居民医保集中缴费期
    year: int = Field(ge=2000, le=2100)
    start: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    end: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    text: Text  # how to say it, with 以当年公告为准 where it changes every year
    source: str | None = None


class Measure(StrEnum):
    CONTRIBUTION_YEARS = "contribution_years"  # 累计缴费年限（年）
    CONTRIBUTION_MONTHS = "contribution_months"  # 缴费月数
    AGE = "age"  # 周岁
    RESIDENCE_MONTHS = "residence_months"  # 居住（登记）月数
    DAYS_AFTER_EVENT = "days_after_event"  # 事件后多少日内须办理
    OTHER = "other"


class Eligibility(Strict):
    """A numeric condition as data: "才交了半年能领吗" is answered with the number."""

    measure: Measure
    min: float | None = Field(default=None, ge=0)
    max: float | None = Field(default=None, ge=0)
    unit: Name  # 年 / 个月 / 周岁 / 日
    text: Text  # the rule in plain words
    source: str | None = None

    @model_validator(mode="after")
    def _bound(self) -> Eligibility:
        if self.min is None and self.max is None:
            raise ValueError("a numeric condition needs min or max")
        return self


class _Entry(Strict):
    id: Id
    name: Name
    aliases: list[Name] = Field(default_factory=list)
    summary: Text
    audience: list[Audience] = Field(min_length=1)
    conditions: list[Text] = Field(default_factory=list)
    time_limit: TimeLimit
    fee: Fee
    channels: list[Channel] = Field(min_length=1)
    where: Where
    visits: int = Field(ge=0, le=5)  # 到现场次数
    phone: str | None = None  # consult phone; only hotlines or numbers with a source
    high_frequency: bool = False  # 高频事项: offered first when a question is vague
    faq: list[Faq] = Field(default_factory=list)
    provenance: Provenance
    answers: dict[Topic, Answer] = Field(default_factory=dict)  # practical questions
    windows: list[Window] = Field(default_factory=list)  # yearly windows, with the year
    eligibility: list[Eligibility] = Field(default_factory=list)  # numeric conditions
    popularity: int = Field(default=0, ge=0, le=100)  # how often citizens mean it (clarify order)

    @field_validator("aliases")
    @classmethod
    def _unique_aliases(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("aliases must be unique")
        return v


class ServiceItem(_Entry):
    kind: Literal["item"]
    code: str | None = None  # 实施编码 (GB/T 39554.1-2020), when known
    item_type: Literal[
        "行政许可",
        "行政确认",
        "行政给付",
        "行政裁决",
        "行政奖励",
        "行政备案",
        "其他行政权力",
        "公共服务",
    ]
    department: Id
    result: Name | None = None  # 证照名称 or other result
    flags: Flags = Field(default_factory=Flags)
    legal_basis: list[Text] = Field(default_factory=list)
    situations: list[Situation] = Field(default_factory=list)
    materials: list[MaterialUse] = Field(min_length=1)


class Bundle(_Entry):
    """一件事: several items done together. Its material list is computed."""

    kind: Literal["bundle"]
    lead_department: Id
    members: list[Id] = Field(min_length=2)
    reductions: list[Reduction] = Field(default_factory=list)


class Department(Strict):
    id: Id
    name: Name  # 哈尔滨市公安局
    short: Name  # 公安
    phone: str | None = None
    provenance: Provenance | None = None


class ServicePoint(Strict):
    id: Id
    name: Name
    address: Text
    district: Name  # 区
    street: str | None = None  # 街道
    hours: Text
    phone: str | None = None
    lat: float | None = Field(default=None, ge=-90, le=90)
    lng: float | None = Field(default=None, ge=-180, le=180)
    point_type: Name
    items: list[Id] = Field(default_factory=list)  # item ids handled here
    windows: list[Name] = Field(default_factory=list)
    placeholder: bool = False  # True: address/phone not verified — shown as such
    provenance: Provenance


class GuideFile(Strict):
    """One file of the guide base. A guide base is one or more such files."""

    format: Literal["daoban-guide/1", "daoban-guide/2"] = FORMAT
    departments: list[Department] = Field(default_factory=list)
    materials: list[Material] = Field(default_factory=list)
    items: list[Annotated[ServiceItem | Bundle, Field(discriminator="kind")]] = Field(
        default_factory=list
    )
    service_points: list[ServicePoint] = Field(default_factory=list)


def is_valid_id(value: str) -> bool:
    return bool(_ID_RE.match(value))
