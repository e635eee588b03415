"""The demo catalog: five Qingdao (青岛) datasets written as dataset packages (contract §2).

Every dataset draws from its own `random.Random` with a fixed seed, so the files are
byte-identical on every run and a fact shown in the docs stays true. The data is invented but
shaped like the real thing: valid identity numbers and credit codes, seasonal and daily air
pollution cycles, households whose ages fit together.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import json
import math
import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar

from catalog.identifiers import (
    QINGDAO_DISTRICTS,
    USCC_CHARSET,
    id_number_check_char,
    org_code_check_char,
    uscc_check_char,
)

__all__ = ["DEMO_PERSON", "DemoPerson", "write_demo_packages"]

Row = Sequence[str | None]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class DemoPerson:
    """The fixed person at the top of the social-insurance data, for docs and tests."""

    name: str
    id_number: str
    phone: str


DEMO_PERSON = DemoPerson(name="张三丰", id_number="370202199001011237", phone="13812345678")

_YEAR_END = date(2024, 12, 31)
_DISTRICT_CODE = {name: code for code, name in QINGDAO_DISTRICTS.items()}
_QINGDAO_AREAS = tuple(QINGDAO_DISTRICTS)
_COUNTY_CITIES = ("胶州市", "平度市", "莱西市")
_RURAL = frozenset({"即墨区", "胶州市", "平度市", "莱西市"})


def write_demo_packages(target: Path) -> list[Path]:
    """Write every demo package under `target`; return the package folders in import order."""
    target.mkdir(parents=True, exist_ok=True)
    enterprises = _enterprises(_rng("enterprise-registry"))
    packages = (
        (_ENTERPRISE_META, _ENTERPRISE_FIELDS, (_enterprise_row(e) for e in enterprises)),
        (_AIR_META, _AIR_FIELDS, _air_quality_rows(_rng("air-quality-hourly"))),
        (_BUS_META, _BUS_FIELDS, _bus_stop_rows(_rng("bus-stops"))),
        (_SOCIAL_META, _SOCIAL_FIELDS, _social_rows(_rng("social-insurance"), enterprises)),
        (_HOUSEHOLD_META, _HOUSEHOLD_FIELDS, _household_rows(_rng("household-registry"))),
    )
    return [_write_package(target, meta, fields, rows) for meta, fields, rows in packages]


def _rng(dataset: str) -> random.Random:
    # A string seed goes through SHA-512, not hash(): stable across processes and versions.
    return random.Random(f"opengate-demo:{dataset}")  # noqa: S311 - demo data, not secrets


# --- package files -----------------------------------------------------------------------


def _field(
    name: str,
    type_: str,
    title: str,
    level: int,
    *,
    pii: str | None = None,
    subject_key: bool = False,
    description: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": name, "type": type_, "title": title, "level": level}
    if pii is not None:
        spec["pii"] = pii
    if subject_key:
        spec["subject_key"] = True
    if description is not None:
        spec["description"] = description
    return spec


def _write_package(
    target: Path, meta: dict[str, Any], fields: list[dict[str, Any]], rows: Iterable[Row]
) -> Path:
    folder = target / meta["name"]
    folder.mkdir(exist_ok=True)
    descriptor = {
        **meta,
        "resources": [
            {
                "name": "records",
                "path": "data.csv",
                "format": "csv",
                # Every demo dataset leads with its primary key.
                "schema": {"primaryKey": fields[0]["name"], "fields": fields},
            }
        ],
    }
    with (folder / "data.csv").open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([f["name"] for f in fields])
        writer.writerows(rows)
    text = json.dumps(descriptor, ensure_ascii=False, indent=2) + "\n"
    (folder / "datapackage.json").write_text(text, encoding="utf-8", newline="\n")
    return folder


def _decimal(value: float, places: int) -> str:
    """`value` with at most `places` decimals and no trailing zeros: 100 → "100"."""
    text = f"{value:.{places}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


class _Weighted(Generic[T]):
    """Items drawn in proportion to their weights."""

    __slots__ = ("_cumulative", "_items", "_total")

    def __init__(self, pairs: Iterable[tuple[T, float]]) -> None:
        items, weights = zip(*pairs, strict=True)
        self._items: tuple[T, ...] = items
        # Summed once here: random.choices(weights=...) would redo it on every draw.
        self._cumulative = tuple(itertools.accumulate(weights))
        self._total = self._cumulative[-1]

    def draw(self, rng: random.Random) -> T:
        point = rng.random() * self._total
        return self._items[bisect.bisect(self._cumulative, point, 0, len(self._items) - 1)]


# --- people --------------------------------------------------------------------------------

# Common surnames in Qingdao, weighted roughly by frequency in Shandong. All are one
# character long, so a name's first character is its surname.
_SURNAMES = _Weighted((
    ("王", 90), ("张", 75), ("李", 70), ("刘", 60), ("孙", 35), ("于", 30), ("杨", 28),
    ("赵", 26), ("徐", 24), ("姜", 22), ("高", 20), ("陈", 20), ("宋", 16), ("曲", 14),
    ("董", 12), ("周", 12), ("吕", 10), ("崔", 10), ("韩", 10), ("马", 10), ("郭", 10),
    ("林", 9), ("隋", 8), ("邵", 8), ("薛", 8), ("袁", 7), ("纪", 7), ("范", 7), ("魏", 7),
    ("黄", 7), ("吴", 6), ("胡", 6), ("朱", 6), ("丁", 6), ("毕", 5), ("修", 5), ("栾", 5),
    ("臧", 4), ("宫", 4), ("綦", 3), ("矫", 3), ("逄", 3), ("初", 3), ("鞠", 3),
))  # fmt: skip

# Given names follow fashion, so people born before and after 1985 draw from different lists.
# Keyed by (male, born 1985 or later).
_GIVEN_NAMES: dict[tuple[bool, bool], tuple[str, ...]] = {
    (True, False): _words(
        "建国 建军 国强 志强 卫东 红军 德明 永刚 春生 立新 海涛 振华 庆丰 明 刚 军 强 勇 斌 伟 "
        "平 华 林 峰 忠诚 洪波 金宝 福生 学军 大伟 长江 玉东 世杰 兆民 德胜 克俭 树林"
    ),
    (True, True): _words(
        "浩然 宇轩 子豪 梓涵 博文 俊杰 晨阳 一鸣 睿 泽宇 鑫 凯 航 天宇 昊 哲 瑞 铭 辰 浩 "
        "宇 帅 鹏飞 志远 嘉诚 子墨 文博 思远 浩宇 明轩 昊天 锦程 奕辰 煜 晓东 磊 超 涛"
    ),
    (False, False): _words(
        "秀英 桂兰 玉珍 凤英 秀兰 丽华 美玲 红梅 淑芬 淑珍 玉兰 桂芳 秀芳 丽 萍 红 梅 芳 "
        "华 敏 静 燕 娟 艳 琴 云 霞 玉梅 春燕 海燕 爱华 素芳 金凤 翠英 玉芬 月华"
    ),
    (False, True): _words(
        "欣怡 子涵 梓萱 雨桐 思雨 佳琪 语嫣 诗涵 婷 雪 悦 可馨 晴 瑶 妍 彤 璐 梦瑶 "
        "雨欣 心怡 佳怡 静怡 一诺 若曦 晓雪 丹 倩 颖 琳 洁 莉 蕾 晶 慧 文静 思琪 菲"
    ),
}


def _person_name(rng: random.Random, male: bool, born_year: int) -> str:
    surname = _SURNAMES.draw(rng)
    return surname + rng.choice(_GIVEN_NAMES[male, born_year >= 1985])


def _random_day(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randrange((last - first).days + 1))


def _id_number(rng: random.Random, area: str, born: date, male: bool) -> str:
    # The 17th digit is odd for men and even for women.
    sequence = rng.randrange(1, 500) * 2 + (1 if male else 0)
    body = f"{area}{born:%Y%m%d}{sequence:03d}"
    return body + id_number_check_char(body)


_MOBILE_PREFIXES = _words(
    "130 131 132 133 134 135 136 137 138 139 150 151 152 153 155 156 157 158 159 "
    "166 176 177 178 180 181 182 183 184 185 186 187 188 189 198 199"
)


def _mobile(rng: random.Random) -> str:
    return rng.choice(_MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"


# Streets by district, used for enterprise premises and home addresses.
_ROADS = {
    "市南区": "香港中路 香港西路 山东路 东海西路 南京路 闽江路 燕儿岛路 延安三路 福州南路 "
    "宁夏路 江西路 湛山一路 中山路 广西路 太平路 贵州路 漳州路",
    "市北区": "辽宁路 台东一路 台东三路 威海路 延吉路 重庆南路 敦化路 洛阳路 杭州路 "
    "人民路 四流南路 鞍山路 抚顺路 错埠岭一路 长沙路 内蒙古路",
    "黄岛区": "长江中路 长江西路 井冈山路 江山中路 珠江路 滨海大道 峨眉山路 香江路 "
    "紫金山路 武夷山路 黄河中路 昆仑山路 灵山湾路 隐珠街道人民路",
    "崂山区": "株洲路 松岭路 深圳路 海尔路 苗岭路 银川东路 辽阳东路 同安路 秦岭路 "
    "香港东路 崂山路 仙霞岭路 九水东路",
    "李沧区": "九水东路 书院路 京口路 四流中路 黑龙江中路 金水路 振华路 青山路 "
    "巨峰路 虎山路 枣山路 永年路 沧口公园路",
    "城阳区": "正阳路 长城路 春阳路 青威路 重庆北路 黑龙江中路 文阳路 兴阳路 "
    "祥阳路 仙山东路 流亭街道赵红路 华城路",
    "即墨区": "蓝鳌路 鹤山路 烟青路 文化路 振华街 华山二路 长江二路 嵩山二路 "
    "龙泉街道泉韵路 通济街道岘山路 黄河二路",
    "胶州市": "扬州路 福州路 广州北路 兰州东路 郑州路 澳门路 常州路 北京东路 "
    "杭州路 胶州湾路 苏州路",
    "平度市": "红旗路 人民路 胜利路 青岛路 扬州路 常州路 杭州路 北京路 长江路 天津路 苏州路",
    "莱西市": "烟台路 上海路 威海西路 石岛路 重庆路 青岛路 黄海路 长岛路 北京西路 深圳南路 文化路",
}
_ROAD_LIST = {d: tuple(r.split()) for d, r in _ROADS.items()}


def _street_address(rng: random.Random, district: str) -> str:
    return f"{rng.choice(_ROAD_LIST[district])}{rng.randint(1, 360)}号"


# --- enterprise-registry ---------------------------------------------------------------------

_ENTERPRISE_META = {
    "name": "enterprise-registry",
    "title": "企业登记信息",
    "description": "青岛市各类企业的登记注册信息，包括统一社会信用代码、企业名称、企业类型、"
    "法定代表人、注册资本、成立日期、住所、经营范围和登记状态。数据来自市场主体登记系统，每日更新。",
    "publisher": "市市场监督管理局",
    "theme": "市场监管",
    "keywords": ["企业", "市场主体", "工商登记", "统一社会信用代码", "营商环境"],
    "open_type": "unconditional",
    "update_frequency": "daily",
    "license": "CC-BY-4.0",
    "zone": "public",
}
_ENTERPRISE_FIELDS = [
    _field("credit_code", "string", "统一社会信用代码", 1),
    _field("enterprise_name", "string", "企业名称", 1),
    _field("enterprise_type", "string", "企业类型", 1),
    _field(
        "legal_representative",
        "string",
        "法定代表人",
        2,
        description="个人独资企业为投资人，合伙企业为执行事务合伙人",
    ),
    _field("registered_capital", "number", "注册资本", 1, description="万元人民币"),
    _field("established_date", "date", "成立日期", 1),
    _field("district", "string", "所属区市", 1),
    _field("address", "string", "住所", 1),
    _field("business_scope", "string", "经营范围", 1),
    _field("status", "string", "登记状态", 1),
]

_SCOPE_TAIL = "（除依法须经批准的项目外，凭营业执照依法自主开展经营活动）"
# ((industry words in the name, business scope), weight)
_INDUSTRIES: _Weighted[tuple[str, str]] = _Weighted(
    ((words, scope), weight)
    for words, scope, weight in (
        (
            "网络科技 信息技术 智能科技 软件技术 电子科技",
            "技术服务、技术开发、技术咨询、技术交流、技术转让、技术推广；软件开发；信息系统集成服务；"
            "计算机系统服务",
            14,
        ),
        (
            "商贸 国际贸易 进出口 贸易",
            "货物进出口；技术进出口；日用百货销售；五金产品批发；建筑材料销售；针纺织品销售",
            16,
        ),
        (
            "海洋生物科技 海洋科技 水产",
            "海洋生物活性物质提取、纯化、合成技术研发；水产品批发；水产品零售；食品销售（仅销售预包装食品）",
            5,
        ),
        (
            "机械 机械制造 精密机械 机电设备",
            "通用设备制造（不含特种设备制造）；机械零件、零部件加工；金属切削加工服务；机械设备销售",
            8,
        ),
        ("食品", "食品生产；食品销售；农副产品销售；食用农产品批发", 5),
        (
            "物流 国际物流 供应链管理",
            "普通货物仓储服务（不含危险化学品等需许可审批的项目）；国内货物运输代理；国际货物运输代理；"
            "装卸搬运；道路货物运输（不含危险货物）",
            8,
        ),
        (
            "建筑工程 建设工程 装饰工程",
            "建设工程施工；建筑劳务分包；住宅室内装饰装修；园林绿化工程施工",
            9,
        ),
        ("餐饮管理", "餐饮服务；餐饮管理；食品销售；外卖递送服务", 5),
        (
            "文化传媒 广告",
            "组织文化艺术交流活动；广告设计、代理；广告制作；会议及展览服务；摄影扩印服务",
            5,
        ),
        (
            "医药 生物医药 医疗器械",
            "第二类医疗器械销售；药品零售；保健食品（预包装）销售；卫生用品和一次性使用医疗用品销售",
            3,
        ),
        ("酒业 啤酒", "酒类经营；食品销售；食品互联网销售；酒制品生产", 2),
        ("船舶服务 船舶工程", "船舶修理；船舶销售；船舶租赁；海上国际货物运输代理", 2),
        ("旅游发展 酒店管理", "旅游业务；酒店管理；住宿服务；票务代理服务", 3),
        ("置业 房地产开发 物业管理", "房地产开发经营；物业管理；住房租赁；非居住房地产租赁", 4),
        (
            "新能源科技 电力工程",
            "太阳能发电技术服务；储能技术服务；新能源原动设备销售；合同能源管理",
            3,
        ),
        (
            "教育科技 教育咨询",
            "教育咨询服务（不含涉许可审批的教育培训活动）；"
            "业务培训（不含教育培训、职业技能培训等需取得许可的培训）",
            3,
        ),
        ("服饰 纺织", "服装制造；服装服饰批发；针纺织品销售；家用纺织制成品制造", 3),
        ("橡胶制品 化工", "橡胶制品制造；橡胶制品销售；化工产品销售（不含许可类化工产品）", 2),
        ("汽车销售服务 汽车零部件", "汽车销售；汽车零配件批发；机动车修理和维护；二手车经纪", 3),
        (
            "农业发展 农业科技",
            "蔬菜种植；水果种植；农产品的生产、销售、加工、运输、贮藏及其他相关服务；农业机械销售",
            3,
        ),
    )
)
_PARTNERSHIP_SCOPE = (
    "以私募基金从事股权投资、投资管理、资产管理等活动（须在中国证券投资基金业协会完成登记备案后方可"
    "从事经营活动）"
)

# ((type as registered, name suffix), weight)
_ENTERPRISE_TYPES: _Weighted[tuple[str, str]] = _Weighted((
    (("有限责任公司（自然人投资或控股）", "有限公司"), 46),
    (("有限责任公司（自然人独资）", "有限公司"), 26),
    (("有限责任公司（非自然人投资或控股的法人独资）", "有限公司"), 10),
    (("其他有限责任公司", "有限公司"), 5),
    (("股份有限公司（非上市、自然人投资或控股）", "股份有限公司"), 4),
    (("个人独资企业", "中心"), 5),
    (("有限合伙企业", "合伙企业（有限合伙）"), 4),
))  # fmt: skip
_SMALL_FIRMS = frozenset({"个人独资企业", "有限合伙企业"})

_TRADE_FIRST = "海华鑫恒瑞德金蓝博宏盛泰信诚嘉汇联创润和星远启明东源琴崂澳港航新"
_TRADE_SECOND = "润创源泰丰达晟远通盛信诚业科邦宇辰瀚峰川洋湾港拓锐安康益鼎祥辉"
# Trade names of well-known firms, which an invented company should not borrow.
_FAMOUS_TRADE_NAMES = frozenset({"海信", "华润", "联通", "华泰", "海通", "恒泰", "华信", "和信"})

_ENTERPRISE_DISTRICTS = _Weighted((
    ("市南区", 12), ("市北区", 12), ("黄岛区", 18), ("崂山区", 10), ("李沧区", 8),
    ("城阳区", 12), ("即墨区", 10), ("胶州市", 8), ("平度市", 5), ("莱西市", 5),
))  # fmt: skip
_CAPITALS = _Weighted((
    (10, 6), (20, 4), (30, 8), (50, 14), (100, 22), (200, 10), (300, 8), (500, 12),
    (1000, 8), (2000, 3), (3000, 2), (5000, 2), (10000, 1),
))  # fmt: skip
_SHARE_CAPITALS = (1000, 2000, 3000, 5000, 8000, 10000, 20000, 50000)
# New registrations grew year on year; the weights make recent years dominate as they do.
_YEARS = _Weighted((y, (y - 1988) ** 2) for y in range(1992, 2025))
_STATUSES_OLD = _Weighted((("存续", 55), ("在业", 10), ("注销", 20), ("吊销", 12), ("迁出", 3)))
_STATUSES_NEW = _Weighted((("存续", 80), ("在业", 8), ("注销", 9), ("吊销", 1), ("迁出", 2)))
_ENTERPRISE_COUNT = 5000


@dataclass(frozen=True, slots=True)
class _Enterprise:
    credit_code: str
    name: str
    kind: str
    legal_representative: str
    capital: str
    established: date
    district: str
    address: str
    scope: str
    status: str

    @property
    def active(self) -> bool:
        return self.status in ("存续", "在业")


def _credit_code(rng: random.Random, area: str, established: date) -> str:
    if established.year >= 2016:
        # Organizations registered after the 2015 reform got codes starting "MA".
        first8 = "MA" + "".join(rng.choices(USCC_CHARSET, k=6))
    else:
        first8 = f"{rng.randrange(10**8):08d}"
    body = f"91{area}{first8}{org_code_check_char(first8)}"
    return body + uscc_check_char(body)


def _enterprises(rng: random.Random) -> list[_Enterprise]:
    names: set[str] = set()
    codes: set[str] = set()
    result: list[_Enterprise] = []
    while len(result) < _ENTERPRISE_COUNT:
        kind, suffix = _ENTERPRISE_TYPES.draw(rng)
        words, scope = _INDUSTRIES.draw(rng)
        industry = rng.choice(words.split())
        if kind == "有限合伙企业":
            industry, scope = rng.choice(("股权投资", "创业投资")), _PARTNERSHIP_SCOPE
        district = _ENTERPRISE_DISTRICTS.draw(rng)
        prefix = district if district in _COUNTY_CITIES and rng.random() < 0.25 else "青岛"
        trade_name = rng.choice(_TRADE_FIRST) + rng.choice(_TRADE_SECOND)
        name = f"{prefix}{trade_name}{industry}{suffix}"
        if name in names or trade_name in _FAMOUS_TRADE_NAMES:
            continue
        year = _YEARS.draw(rng)
        established = _random_day(rng, date(year, 1, 1), date(year, 12, 31))
        code = _credit_code(rng, _DISTRICT_CODE[district], established)
        if code in codes:
            continue
        names.add(name)
        codes.add(code)
        if suffix == "股份有限公司":
            capital = float(rng.choice(_SHARE_CAPITALS))
        else:
            capital = float(_CAPITALS.draw(rng))
            if rng.random() < 0.1:  # some capital is contributed in odd amounts
                capital = round(capital * rng.uniform(0.5, 1.5), 2)
        statuses = _STATUSES_OLD if established.year < 2010 else _STATUSES_NEW
        representative_born = rng.randint(1955, 2000)
        result.append(
            _Enterprise(
                credit_code=code,
                name=name,
                kind=kind,
                legal_representative=_person_name(rng, rng.random() < 0.7, representative_born),
                capital=_decimal(capital, 2),
                established=established,
                district=district,
                address=f"山东省青岛市{district}{_street_address(rng, district)}",
                scope=f"一般项目：{scope}。{_SCOPE_TAIL}",
                status=statuses.draw(rng),
            )
        )
    return result


def _enterprise_row(e: _Enterprise) -> Row:
    return (
        e.credit_code,
        e.name,
        e.kind,
        e.legal_representative,
        e.capital,
        e.established.isoformat(),
        e.district,
        e.address,
        e.scope,
        e.status,
    )


# --- air-quality-hourly ----------------------------------------------------------------------

_AIR_META = {
    "name": "air-quality-hourly",
    "title": "空气质量小时数据",
    "description": "全市12个空气质量自动监测站点逐小时发布的六项污染物浓度、空气质量指数（AQI）、"
    "首要污染物和空气质量级别，时间范围为2024年全年。",
    "publisher": "市生态环境局",
    "theme": "生态环境",
    "keywords": ["空气质量", "AQI", "PM2.5", "环境监测", "大气污染"],
    "open_type": "unconditional",
    "update_frequency": "hourly",
    "license": "CC-BY-4.0",
    "zone": "public",
}
_AIR_FIELDS = [
    _field("record_id", "integer", "记录编号", 1),
    _field("station", "string", "监测站点", 1),
    _field("district", "string", "所属区市", 1),
    _field("observed_at", "datetime", "监测时间", 1, description="北京时间，整点"),
    _field("aqi", "integer", "空气质量指数", 1, description="按 HJ 633-2012 计算的小时 AQI"),
    _field("pm25", "integer", "细颗粒物(PM2.5)", 1, description="小时均值，微克/立方米"),
    _field("pm10", "integer", "可吸入颗粒物(PM10)", 1, description="小时均值，微克/立方米"),
    _field("o3", "integer", "臭氧(O3)", 1, description="1小时平均，微克/立方米"),
    _field("no2", "integer", "二氧化氮(NO2)", 1, description="小时均值，微克/立方米"),
    _field("so2", "integer", "二氧化硫(SO2)", 1, description="小时均值，微克/立方米"),
    _field("co", "number", "一氧化碳(CO)", 1, description="小时均值，毫克/立方米"),
    _field("primary_pollutant", "string", "首要污染物", 1, description="AQI 不大于 50 时为空"),
    _field("quality_level", "string", "空气质量级别", 1),
]

# (station, district, particles factor, NO2 factor, O3 factor): traffic-heavy urban stations
# see more NO2 and less O3 (titration); the Yangkou background station in the Laoshan hills
# the opposite.
_STATIONS = (
    ("市南区东部", "市南区", 0.90, 1.05, 1.00),
    ("市南区西部", "市南区", 0.95, 1.15, 0.95),
    ("市北区子站", "市北区", 1.05, 1.20, 0.92),
    ("李沧区子站", "李沧区", 1.15, 1.15, 0.95),
    ("崂山区子站", "崂山区", 0.90, 0.85, 1.05),
    ("仰口子站", "崂山区", 0.65, 0.35, 1.20),
    ("黄岛区子站", "黄岛区", 1.00, 1.00, 1.00),
    ("城阳区子站", "城阳区", 1.10, 1.05, 0.98),
    ("即墨区子站", "即墨区", 1.10, 0.90, 1.02),
    ("胶州市子站", "胶州市", 1.20, 0.95, 1.02),
    ("平度市子站", "平度市", 1.25, 0.85, 1.05),
    ("莱西市子站", "莱西市", 1.20, 0.80, 1.05),
)

# Relative level by hour of day (0..23). Particles build up overnight and thin out in the
# afternoon mixing layer; NO2 follows the rush hours; O3 is made by afternoon sunshine.
_PM_HOURLY = (
    1.10, 1.12, 1.12, 1.10, 1.06, 1.04, 1.06, 1.10, 1.12, 1.08, 1.00, 0.92,
    0.86, 0.82, 0.80, 0.80, 0.84, 0.90, 0.98, 1.04, 1.08, 1.10, 1.12, 1.12,
)  # fmt: skip
_NO2_HOURLY = (
    0.95, 0.88, 0.82, 0.78, 0.76, 0.80, 0.95, 1.20, 1.35, 1.25, 1.05, 0.90,
    0.80, 0.75, 0.74, 0.78, 0.88, 1.05, 1.25, 1.32, 1.28, 1.18, 1.08, 1.00,
)  # fmt: skip
_O3_HOURLY = (
    0.40, 0.36, 0.33, 0.30, 0.28, 0.28, 0.32, 0.40, 0.52, 0.66, 0.80, 0.91,
    0.98, 1.00, 1.00, 0.96, 0.88, 0.76, 0.63, 0.54, 0.49, 0.46, 0.43, 0.41,
)  # fmt: skip

_IAQI_STEPS = (0, 50, 100, 150, 200, 300, 400, 500)
# HJ 633-2012 breakpoints: 1-hour tables for the gases, 24-hour tables for particles (as the
# hourly AQI does). CO is in tenths of mg/m³ so every table is indexed by an integer.
_BREAKPOINTS = (
    ("细颗粒物(PM2.5)", (0, 35, 75, 115, 150, 250, 350, 500)),
    ("可吸入颗粒物(PM10)", (0, 50, 150, 250, 350, 420, 500, 600)),
    ("臭氧(O3)", (0, 160, 200, 300, 400, 800, 1000, 1200)),
    ("二氧化氮(NO2)", (0, 100, 200, 700, 1200, 2340, 3090, 3840)),
    ("二氧化硫(SO2)", (0, 150, 500, 650, 800)),
    ("一氧化碳(CO)", (0, 50, 100, 350, 600, 900, 1200, 1500)),
)
_LEVELS = ((50, "优"), (100, "良"), (150, "轻度污染"), (200, "中度污染"), (300, "重度污染"))


def _iaqi_table(breakpoints: Sequence[int]) -> tuple[int, ...]:
    """IAQI for every integer concentration from 0 to the top breakpoint."""
    table = [0] * (breakpoints[-1] + 1)
    for i in range(1, len(breakpoints)):
        low, high = breakpoints[i - 1], breakpoints[i]
        i_low, i_high = _IAQI_STEPS[i - 1], _IAQI_STEPS[i]
        for c in range(low, high + 1):
            # Integer ceiling division: the standard rounds IAQI up, and floats would turn
            # an exact breakpoint like 35 µg/m³ into 50.0000001 → 51.
            table[c] = i_low - (-(i_high - i_low) * (c - low) // (high - low))
    return tuple(table)


_IAQI_TABLES = tuple(_iaqi_table(bp) for _, bp in _BREAKPOINTS)
_POLLUTANTS = tuple(name for name, _ in _BREAKPOINTS)


def _quality_level(aqi: int) -> str:
    for top, label in _LEVELS:
        if aqi <= top:
            return label
    return "严重污染"


_LEVEL_BY_AQI = tuple(_quality_level(aqi) for aqi in range(501))
_CO_TEXT = tuple(f"{tenths / 10:.1f}" for tenths in range(len(_IAQI_TABLES[5])))


def _air_quality_rows(rng: random.Random) -> Iterator[Row]:
    t_pm25, t_pm10, t_o3, t_no2, t_so2, t_co = _IAQI_TABLES
    top_pm25, top_pm10, top_o3 = len(t_pm25) - 1, len(t_pm10) - 1, len(t_o3) - 1
    uniform = rng.random
    record_id = 0
    weather = 0.0  # slow synoptic swings shared by every station: stagnant or windy days
    hourly = 0.0
    day = date(2024, 1, 1)
    while day.year == 2024:
        doy = day.timetuple().tm_yday
        heating = day < date(2024, 4, 6) or day >= date(2024, 11, 15)
        weather = 0.7 * weather + rng.gauss(0.0, 0.28 if heating else 0.2)
        dust = rng.uniform(1.6, 2.8) if day.month in (3, 4) and uniform() < 0.04 else 1.0
        sunshine = math.exp(rng.gauss(0.0, 0.18))
        season = math.cos(2 * math.pi * (doy - 15) / 366)  # 1 in mid-January, -1 in July
        pm_base = 26.0 + 14.0 * season
        no2_base = 28.0 + 9.0 * season
        o3_base = 140.0 + 60.0 * math.cos(2 * math.pi * (doy - 160) / 366)
        so2_base = 9.0 if heating else 5.0
        co_base = 7.5 if heating else 4.5  # tenths of mg/m³
        stamp = day.isoformat()
        for hour in range(24):
            hourly = 0.85 * hourly + rng.gauss(0.0, 0.07)
            stagnation = math.exp(weather + hourly)
            pm_now = pm_base * _PM_HOURLY[hour] * stagnation
            no2_now = no2_base * _NO2_HOURLY[hour] * math.sqrt(stagnation)
            o3_now = o3_base * _O3_HOURLY[hour] * sunshine
            co_now = co_base * math.sqrt(stagnation)
            observed_at = f"{stamp}T{hour:02d}:00:00"
            for station, district, pm_f, no2_f, o3_f in _STATIONS:
                record_id += 1
                noise = 0.8 + 0.4 * uniform()
                # int(x + 0.5) rounds these positive values, and is much faster than round().
                pm25 = int(pm_now * pm_f * noise + 0.5) or 1
                pm10 = int(pm25 * (1.3 + 0.5 * uniform()) * dust + 3.5)
                no2 = int(no2_now * no2_f * (0.75 + 0.5 * uniform()) + 0.5) or 1
                # NO2 eats ozone: where traffic is heavy, less O3 is left.
                o3 = int(o3_now * o3_f * (0.85 + 0.3 * uniform()) - 0.3 * no2 + 0.5)
                if o3 < 2:
                    o3 = 2
                so2 = int(so2_base * (0.6 + 0.8 * uniform()) + 0.5)
                co = int(co_now * noise + 0.5) or 1
                # The gases stay far below their top breakpoints; particles and O3 may not.
                iaqi = (
                    t_pm25[min(pm25, top_pm25)],
                    t_pm10[min(pm10, top_pm10)],
                    t_o3[min(o3, top_o3)],
                    t_no2[no2],
                    t_so2[so2],
                    t_co[co],
                )
                aqi = max(iaqi)
                yield (
                    str(record_id),
                    station,
                    district,
                    observed_at,
                    str(aqi),
                    str(pm25),
                    str(pm10),
                    str(o3),
                    str(no2),
                    str(so2),
                    _CO_TEXT[co],
                    _POLLUTANTS[iaqi.index(aqi)] if aqi > 50 else None,
                    _LEVEL_BY_AQI[aqi],
                )
        day += timedelta(days=1)


# --- bus-stops -------------------------------------------------------------------------------

_BUS_META = {
    "name": "bus-stops",
    "title": "公交站点信息",
    "description": "全市公交站点的名称、所属区市、经纬度坐标、途经线路和无障碍设施情况。"
    "同名站点的上下行站台分别编号。",
    "publisher": "市交通运输局",
    "theme": "交通出行",
    "keywords": ["公交", "站点", "公共交通", "线路", "无障碍"],
    "open_type": "unconditional",
    "update_frequency": "monthly",
    "license": "CC-BY-4.0",
    "zone": "public",
}
_BUS_FIELDS = [
    _field("stop_id", "string", "站点编号", 1),
    _field("stop_name", "string", "站点名称", 1),
    _field("district", "string", "所属区市", 1),
    _field("longitude", "number", "经度", 1, description="WGS-84 坐标，度"),
    _field("latitude", "number", "纬度", 1, description="WGS-84 坐标，度"),
    _field("lines", "string", "途经线路", 1, description="多条线路以分号分隔"),
    _field("is_accessible", "boolean", "无障碍站台", 1),
]

# district: (stops, centre longitude, centre latitude, spread lon, spread lat)
_BUS_AREAS = {
    "市南区": (240, 120.375, 36.065, 0.030, 0.010),
    "市北区": (300, 120.370, 36.095, 0.025, 0.015),
    "李沧区": (220, 120.430, 36.150, 0.025, 0.020),
    "崂山区": (200, 120.470, 36.110, 0.050, 0.040),
    "城阳区": (280, 120.395, 36.300, 0.050, 0.040),
    "黄岛区": (460, 120.100, 35.950, 0.120, 0.100),
    "即墨区": (300, 120.450, 36.390, 0.090, 0.080),
    "胶州市": (200, 120.030, 36.270, 0.080, 0.070),
    "平度市": (150, 119.960, 36.780, 0.120, 0.100),
    "莱西市": (150, 120.520, 36.880, 0.090, 0.060),
}
_LANDMARKS = {
    "市南区": "五四广场 栈桥 中山公园 八大关 海信广场 青岛站 市政府 浮山所 麦岛 天后宫 小鱼山 "
    "信号山 汇泉广场 太平角 第一海水浴场 青大附院 燕儿岛 湛山寺",
    "市北区": "台东 啤酒博物馆 海云庵 大港 小港 四方 海泊桥 浮山后 错埠岭 利津路 水清沟 "
    "敦化路 辽阳西路 延吉路 海琴广场",
    "李沧区": "李村 李村公园 青岛北站 虎山 九水 沧口 东李 枣山 夏庄路 世园会 楼山 百通 "
    "书院路 振华路",
    "崂山区": "石老人 崂山区政府 中韩 沙子口 北宅 王哥庄 大河东 仰口 流清河 张村 枯桃 "
    "极地海洋世界 科技大学 海洋大学崂山校区 株洲路 麦岛路",
    "城阳区": "城阳区政府 城阳汽车站 流亭 夏庄 惜福镇 棘洪滩 上马 红岛 河套 锦绣 宝龙广场 "
    "春阳路 皂户 城阳世纪公园",
    "黄岛区": "黄岛区政府 金沙滩 唐岛湾 开发区汽车站 薛家岛 辛安 灵山卫 胶南 隐珠 王台 泊里 "
    "大场 海青 六汪 藏马山 青岛西站 琅琊台 积米崖 石油大学 银沙滩",
    "即墨区": "即墨古城 即墨汽车站 蓝村 灵山 大信 龙山 鳌山卫 温泉 田横 移风店 段泊岚 金口 "
    "北安 通济新区 墨河公园",
    "胶州市": "胶州汽车站 三里河公园 胶州北站 胶东国际机场 胶莱 李哥庄 铺集 里岔 胶西 九龙 "
    "阜安 中云 少海",
    "平度市": "平度汽车站 平度市政府 现河公园 南村 蓼兰 崔家集 明村 田庄 新河 店子 大泽山 "
    "旧店 云山 古岘 仁兆 白沙河",
    "莱西市": "莱西汽车站 月湖公园 水集 望城 姜山 夏格庄 院上 日庄 南墅 河头店 店埠 马连庄 沽河",
}
_LINES_PER_STOP = _Weighted(((1, 20), (2, 25), (3, 22), (4, 15), (5, 10), (6, 8)))
_VILLAGE_PREFIXES = ("", "东", "西", "南", "北", "前", "后", "大", "小")
_VILLAGE_SUFFIXES = ("庄", "村", "疃", "屯")
_ESTATE_SUFFIXES = ("小区", "花园", "社区", "新村", "家园")
# Route numbers in use per district; the county-level cities run their own numbering.
_ROUTE_RANGES = {
    "市南区": ((1, 40), (201, 232), (301, 321)),
    "市北区": ((1, 40), (201, 240), (501, 512)),
    "李沧区": ((101, 140), (361, 380)),
    "崂山区": ((104, 125), (301, 330), (362, 395)),
    "城阳区": ((601, 660), (901, 920)),
    "黄岛区": ((801, 880), (901, 912)),
    "即墨区": ((701, 760),),
}


def _route_pool(district: str) -> tuple[str, ...]:
    if district in _ROUTE_RANGES:
        return tuple(
            f"{n}路" for low, high in _ROUTE_RANGES[district] for n in range(low, high + 1)
        )
    return tuple(f"{district[:2]}{n}路" for n in range(1, 31))


def _stop_name(rng: random.Random, district: str, landmarks: list[str]) -> str:
    if landmarks and rng.random() < 0.3:
        return landmarks.pop()
    pick = rng.random()
    if district in _RURAL and pick < 0.45:
        surname = _SURNAMES.draw(rng)
        prefix, suffix = rng.choice(_VILLAGE_PREFIXES), rng.choice(_VILLAGE_SUFFIXES)
        return f"{prefix}{surname}家{suffix}"
    if pick < 0.7:
        road = rng.choice(_ROAD_LIST[district]).split("街道")[-1]
        return road + rng.choice(("", "口", "东", "西", "南", "北"))
    return f"{rng.choice(_TRADE_FIRST)}{rng.choice(_TRADE_SECOND)}{rng.choice(_ESTATE_SUFFIXES)}"


def _route_number(line: str) -> tuple[int, str]:
    digits = "".join(c for c in line if c.isdigit())
    return int(digits), line


def _bus_stop_rows(rng: random.Random) -> Iterator[Row]:
    names: set[str] = set()
    stop_id = 0
    for district, (count, lon0, lat0, d_lon, d_lat) in _BUS_AREAS.items():
        landmarks = _LANDMARKS[district].split()
        rng.shuffle(landmarks)
        pool = _route_pool(district)
        urban = district not in _RURAL
        # Stops come in pairs, one platform per direction, sharing a name and the lines.
        for _ in range(count // 2):
            name = _stop_name(rng, district, landmarks)
            while name in names:
                name = _stop_name(rng, district, landmarks)
            names.add(name)
            lon = min(max(rng.gauss(lon0, d_lon), lon0 - 3 * d_lon), lon0 + 3 * d_lon)
            lat = min(max(rng.gauss(lat0, d_lat), lat0 - 3 * d_lat), lat0 + 3 * d_lat)
            lines = rng.sample(pool, _LINES_PER_STOP.draw(rng))
            lines.sort(key=_route_number)
            for direction in (1, -1):
                stop_id += 1
                # The platforms face each other across the road, some 40 metres apart.
                offset = direction * 0.00015
                yield (
                    f"QD{stop_id:06d}",
                    name,
                    district,
                    f"{lon + offset:.6f}",
                    f"{lat + offset:.6f}",
                    ";".join(lines),
                    _bool(rng.random() < (0.75 if urban else 0.45)),
                )


# --- social-insurance ------------------------------------------------------------------------

_SOCIAL_META = {
    "name": "social-insurance",
    "title": "社会保险参保缴费信息",
    "description": "按月更新的参保缴费记录：全市参保人员按险种的参保单位、缴费基数、累计缴费月数和"
    "最近缴费月份。含个人信息，经申请授权后方可使用。",
    "publisher": "市人力资源社会保障局",
    "theme": "社保就业",
    "keywords": ["社保", "参保", "养老保险", "医疗保险", "缴费"],
    "open_type": "conditional",
    "update_frequency": "monthly",
    "license": "CC-BY-4.0",
    "zone": "finance",
}
_SOCIAL_FIELDS = [
    _field("record_id", "integer", "记录编号", 1),
    _field("person_name", "string", "姓名", 3, pii="name"),
    _field("id_number", "string", "公民身份号码", 4, pii="id_number", subject_key=True),
    _field("gender", "string", "性别", 2),
    _field("phone", "string", "联系电话", 3, pii="phone"),
    _field("district", "string", "所属区市", 1, description="参保单位所在区市"),
    _field("employer", "string", "参保单位", 2),
    _field("insurance_type", "string", "险种", 1),
    _field("monthly_base", "integer", "缴费基数", 3, description="元/月"),
    _field("months_paid", "integer", "累计缴费月数", 2),
    _field("last_paid_month", "date", "最近缴费月份", 2, description="以该月1日表示"),
]

# Most people are insured for pension and health first; unemployment and injury follow.
_INSURANCE_TYPES = ("企业职工基本养老保险", "职工基本医疗保险", "失业保险", "工伤保险")
_INSURANCES_PER_PERSON = _Weighted(((1, 8), (2, 22), (3, 15), (4, 55)))
_SOCIAL_ROWS = 20000
_BASE_FLOOR = 4416  # many employers declare the lowest base allowed
_BASE_CEILING = 30000
_CURRENT_MONTH = date(2024, 12, 1)


@dataclass(frozen=True, slots=True)
class _Insured:
    name: str
    id_number: str
    male: bool
    phone: str
    employer: _Enterprise
    monthly_base: int
    last_paid: date
    months_paid: tuple[int, ...]  # one per insurance, in the order of _INSURANCE_TYPES


def _months_between(first: date, last: date) -> int:
    return (last.year - first.year) * 12 + last.month - first.month


def _insured(
    rng: random.Random, employers: Sequence[_Enterprise], seen_ids: set[str], phones: set[str]
) -> _Insured | None:
    """One invented insured person, or None when the draw repeats an identity or a phone."""
    male = rng.random() < 0.53
    born = _random_day(rng, date(1960, 1, 1), date(2003, 12, 31))
    id_number = _id_number(rng, rng.choice(_QINGDAO_AREAS), born, male)
    phone = _mobile(rng)
    if id_number in seen_ids or phone in phones:
        return None
    seen_ids.add(id_number)
    phones.add(phone)
    started = min(date(born.year + rng.randint(18, 26), rng.randint(1, 12), 1), _CURRENT_MONTH)
    # Retirement ends contributions: at 60 for men and 55 for women, simplified.
    retirement = date(born.year + (60 if male else 55), born.month, 1)
    if retirement <= _CURRENT_MONTH:
        last_paid = retirement
    elif started < date(2024, 11, 1) and rng.random() < 0.12:
        # Left work or moved away, so payments stopped.
        stopped = _random_day(rng, max(started, date(2018, 1, 1)), date(2024, 11, 1))
        last_paid = stopped.replace(day=1)
    else:
        last_paid = _CURRENT_MONTH
    career = _months_between(started, last_paid) + 1
    months = max(1, career - rng.randint(0, min(60, career // 3)))
    if rng.random() < 0.3:
        base = _BASE_FLOOR
    else:
        base = min(_BASE_CEILING, max(_BASE_FLOOR, int(rng.lognormvariate(8.8, 0.45))))
    kinds = _INSURANCES_PER_PERSON.draw(rng)
    # Unemployment and injury insurance often began later than pension and health.
    paid = tuple(months if i < 2 else max(1, months - rng.randint(0, 24)) for i in range(kinds))
    return _Insured(
        _person_name(rng, male, born.year),
        id_number,
        male,
        phone,
        rng.choice(employers),
        base,
        last_paid,
        paid,
    )


def _insured_people(rng: random.Random, enterprises: Sequence[_Enterprise]) -> Iterator[_Insured]:
    employers = [e for e in enterprises if e.active and e.kind not in _SMALL_FIRMS]
    # The person every example in the docs is about: all four insurances since 2014.
    demo_employer = next(e for e in employers if e.district == "市南区")
    yield _Insured(
        DEMO_PERSON.name, DEMO_PERSON.id_number, True, DEMO_PERSON.phone, demo_employer,
        8500, _CURRENT_MONTH, (132, 132, 132, 132),
    )  # fmt: skip
    seen_ids, phones = {DEMO_PERSON.id_number}, {DEMO_PERSON.phone}
    while True:
        person = _insured(rng, employers, seen_ids, phones)
        if person is not None:
            yield person


def _social_rows(rng: random.Random, enterprises: Sequence[_Enterprise]) -> Iterator[Row]:
    record_id = 0
    for person in _insured_people(rng, enterprises):
        for insurance, months in zip(_INSURANCE_TYPES, person.months_paid, strict=False):
            record_id += 1
            yield (
                str(record_id),
                person.name,
                person.id_number,
                "男" if person.male else "女",
                person.phone,
                person.employer.district,
                person.employer.name,
                insurance,
                str(person.monthly_base),
                str(months),
                person.last_paid.isoformat(),
            )
            if record_id == _SOCIAL_ROWS:
                return


# --- household-registry ----------------------------------------------------------------------

_HOUSEHOLD_META = {
    "name": "household-registry",
    "title": "户籍人口信息",
    "description": "全市户籍人口的登记信息，包括公民身份号码、姓名、出生日期、民族、住址、"
    "与户主关系和户籍派出所。涉及高度敏感个人信息，不予开放。",
    "publisher": "市公安局",
    "theme": "公共安全",
    "keywords": ["户籍", "人口", "户口", "常住人口"],
    "open_type": "closed",
    "update_frequency": "monthly",
    "license": "other-closed",
    "zone": "restricted",
}
_HOUSEHOLD_FIELDS = [
    _field("record_id", "integer", "记录编号", 1),
    _field("household_number", "string", "户号", 3, pii="other"),
    _field("person_name", "string", "姓名", 3, pii="name"),
    _field("id_number", "string", "公民身份号码", 4, pii="id_number", subject_key=True),
    _field("gender", "string", "性别", 2),
    _field("ethnicity", "string", "民族", 3, pii="other"),
    _field("date_of_birth", "date", "出生日期", 3, pii="date_of_birth"),
    _field("relation_to_head", "string", "与户主关系", 3, pii="other"),
    _field("household_type", "string", "户别", 2),
    _field("district", "string", "所属区市", 1),
    _field("police_station", "string", "户籍派出所", 1),
    _field("address", "string", "住址", 4, pii="address"),
    _field("moved_in_date", "date", "迁入日期", 3, pii="other", description="本地出生登记的为空"),
]

_POLICE_STATIONS = {
    "市南区": "八大关 中山路 江苏路 八大湖 湛山 香港中路",
    "市北区": "台东 辽宁路 浮山新区 水清沟 四方 即墨路",
    "黄岛区": "辛安 薛家岛 灵山卫 隐珠 黄岛 长江路",
    "崂山区": "沙子口 中韩 王哥庄 北宅 金家岭",
    "李沧区": "李村 沧口 兴华路 虎山路 浮山路",
    "城阳区": "城阳 流亭 夏庄 棘洪滩 惜福镇",
    "即墨区": "通济 环秀 潮海 蓝村 北安",
    "胶州市": "阜安 中云 三里河 李哥庄 胶西",
    "平度市": "东阁 李园 凤台 南村 同和",
    "莱西市": "水集 望城 姜山 院上 沽河",
}
# Birthplaces of people who moved to Qingdao: elsewhere in Shandong (济南、烟台、潍坊、日照、临沂).
_OTHER_AREAS = ("370102", "370602", "370702", "371102", "371302")
_ETHNICITIES = _Weighted((("汉族", 985), ("回族", 5), ("满族", 4), ("朝鲜族", 4), ("蒙古族", 2)))
_HOUSEHOLD_SIZES = _Weighted(((1, 15), (2, 30), (3, 30), (4, 18), (5, 7)))
_HOUSEHOLD_ROWS = 1000


@dataclass(frozen=True, slots=True)
class _Member:
    name: str
    male: bool
    born: date
    relation: str
    moved_in: date | None  # None: registered here at birth


def _family(rng: random.Random, head: _Member, head_moved_in: date, size: int) -> list[_Member]:
    """The head's household: a spouse, children born here and a parent who moved in later."""
    members = [head]
    if size >= 2:
        male = not head.male
        born = _random_day(rng, date(head.born.year - 4, 1, 1), date(head.born.year + 3, 12, 31))
        # Married at 20 or later, and moved in no earlier than the head.
        earliest = max(date(max(born.year, head.born.year) + 20, 1, 1), head_moved_in)
        moved = _random_day(rng, earliest, _YEAR_END)
        members.append(_Member(_person_name(rng, male, born.year), male, born, "配偶", moved))
    father = head if head.male else members[-1]
    for _ in range(min(size - 2, 2)):
        male = rng.random() < 0.51
        born = _random_day(
            rng, date(head.born.year + 23, 1, 1), min(date(head.born.year + 38, 12, 31), _YEAR_END)
        )
        name = father.name[0] + rng.choice(_GIVEN_NAMES[male, born.year >= 1985])
        members.append(_Member(name, male, born, "子" if male else "女", None))
    if size == 5 and head.born.year >= 1965:
        male = rng.random() < 0.4
        born = _random_day(rng, date(head.born.year - 32, 1, 1), date(head.born.year - 22, 12, 31))
        # The head's father shares the head's surname; the mother keeps her own.
        if male:
            name = head.name[0] + rng.choice(_GIVEN_NAMES[True, False])
        else:
            name = _person_name(rng, False, born.year)
        moved = _random_day(rng, max(head_moved_in, date(2000, 1, 1)), _YEAR_END)
        members.append(_Member(name, male, born, "父亲" if male else "母亲", moved))
    return members


def _household_rows(rng: random.Random) -> Iterator[Row]:
    districts = tuple(QINGDAO_DISTRICTS.values())
    seen_ids = {DEMO_PERSON.id_number}
    seen_households: set[str] = set()
    record_id = 0
    while record_id < _HOUSEHOLD_ROWS:
        household = f"{rng.randrange(10**9):09d}"
        if household in seen_households:
            continue
        seen_households.add(household)
        demo = record_id == 0  # the first household is the demo person's
        if demo:
            district, male, born = "市南区", True, date(1990, 1, 1)
            name, moved_in, size = DEMO_PERSON.name, date(2016, 5, 12), 3
        else:
            district, male = rng.choice(districts), rng.random() < 0.6
            born = _random_day(rng, date(1940, 1, 1), date(1998, 12, 31))
            name = _person_name(rng, male, born.year)
            moved_in = _random_day(rng, date(born.year + 20, 1, 1), date(2024, 6, 30))
            size = _HOUSEHOLD_SIZES.draw(rng)
        head = _Member(name, male, born, "户主", moved_in)
        station = rng.choice(_POLICE_STATIONS[district].split()) + "派出所"
        address = (
            f"山东省青岛市{district}{_street_address(rng, district)}"
            f"{rng.randint(1, 4)}单元{rng.randint(1, 18)}0{rng.randint(1, 4)}户"
        )
        household_type = "家庭户" if rng.random() < 0.96 else "集体户"
        ethnicity = _ETHNICITIES.draw(rng)
        for member in _family(rng, head, moved_in, size):
            if demo and member is head:
                id_number = DEMO_PERSON.id_number
            else:
                # People who moved in were often born elsewhere in Shandong.
                here = member.moved_in is None or rng.random() < 0.85
                area = _DISTRICT_CODE[district] if here else rng.choice(_OTHER_AREAS)
                id_number = _id_number(rng, area, member.born, member.male)
                if id_number in seen_ids:
                    continue
                seen_ids.add(id_number)
            record_id += 1
            yield (
                str(record_id),
                household,
                member.name,
                id_number,
                "男" if member.male else "女",
                ethnicity,
                member.born.isoformat(),
                member.relation,
                household_type,
                district,
                station,
                address,
                member.moved_in.isoformat() if member.moved_in else None,
            )
            if record_id == _HOUSEHOLD_ROWS:
                return
