"""Fake personal data, generated a whole column at a time: names, ID numbers with a valid GB 11643
check digit, unified social credit codes with a valid GB 32100 check character, mobile numbers,
addresses, company names. None of it belongs to a real person or organisation.
"""

from __future__ import annotations

import numpy as np

# Surnames weighted towards those common in Fujian.
_SURNAMES = list("林陈黄郑王李张刘吴杨罗邓赖谢周许曾朱徐邱詹范魏余胡肖江卢苏叶傅蔡潘涂严廖游温钟池邹")
_SURNAME_W = np.array(
    [9, 9, 7, 5, 5, 5, 4, 4, 4, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 2] + [1] * (len(_SURNAMES) - 20), dtype=float
)
_GIVEN = list(
    "建国明华文志伟强军平福生金荣海春秀英丽芳玉兰梅燕霞红清忠德永祥辉斌勇敏静婷雪娟琴凤珍峰涛杰鹏鑫宇浩晨欣怡思佳"
    "瑞晓亮智超颖慧俊锋新水木发财顺家美宏光旭丹琳莉萍榕闽溪"
)
_VILLAGE_A = list("上下大小龙吉洋溪坑坪岭山水林桂福安新东西南北高石竹桃湖塘坂田口岩厚丰")
_VILLAGE_B = list("坪山溪洋坑口头村岭田坂湖源尾墩林洲前后峰阳头丰岚")
_ROADS = [
    "建设",
    "解放",
    "人民",
    "新华",
    "燕江",
    "和平",
    "中山",
    "东门",
    "西门",
    "南门",
    "北塔",
    "文化",
    "复兴",
    "胜利",
]
_SHOP = [
    "鑫源",
    "兴旺",
    "恒达",
    "宏达",
    "顺发",
    "永盛",
    "福鑫",
    "金辉",
    "华盛",
    "益民",
    "家乐",
    "佳美",
    "利民",
    "达丰",
    "荣盛",
]
_TRADE = [
    "建材经营部",
    "农家乐",
    "食品店",
    "超市",
    "五金店",
    "餐饮店",
    "木材加工厂",
    "竹木制品厂",
    "石材厂",
    "汽车维修部",
    "养殖场",
    "便利店",
    "砂石场",
    "烟酒商行",
    "粮油店",
]
_COMPANY = ["竹业有限公司", "林产品有限公司", "建筑工程有限公司", "农业发展有限公司", "贸易有限公司", "物流有限公司"]
_MOBILE_PREFIX = [
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "153",
    "155", "156", "157", "158", "159", "166", "173", "175", "176", "177", "180", "181", "182",
    "183", "185", "186", "187", "188", "189", "191", "198", "199",
]  # fmt: skip

_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_ID_CHECK = np.array(list("10X98765432"), dtype=object)
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_W = np.array([1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28], dtype=np.int64)
_ORG_W = np.array([3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)


def _pick(rng: np.random.Generator, items: list[str], n: int, p: np.ndarray | None = None) -> np.ndarray:
    arr = np.array(items, dtype=object)
    return arr[rng.choice(len(arr), size=n, p=p)]


def _zfill(values: np.ndarray, width: int) -> np.ndarray:
    return np.char.zfill(np.asarray(values).astype(np.int64).astype(str), width).astype(object)


def names(rng: np.random.Generator, n: int) -> np.ndarray:
    """Chinese personal names: a surname and one or two given-name characters."""
    sur = _pick(rng, _SURNAMES, n, _SURNAME_W / _SURNAME_W.sum())
    g1 = _pick(rng, _GIVEN, n)
    g2 = _pick(rng, _GIVEN, n)
    two = rng.random(n) < 0.72
    return np.where(two, sur + g1 + g2, sur + g1)


def id_numbers(rng: np.random.Generator, n: int, area: str, born_from: int, born_to: int) -> np.ndarray:
    """18-digit resident ID numbers of the area (6 digits) with birth years in [born_from, born_to]."""
    lo = np.datetime64(f"{born_from}-01-01", "D").astype(np.int64)
    hi = np.datetime64(f"{born_to}-12-31", "D").astype(np.int64)
    birth = (rng.integers(lo, hi + 1, size=n)).astype("datetime64[D]")
    ymd = np.char.replace(np.datetime_as_string(birth, unit="D"), "-", "").astype(np.int64)
    seq = rng.integers(1, 1000, size=n)
    body = np.int64(int(area)) * 10**11 + ymd * 1000 + seq
    digits = (body[:, None] // (10 ** np.arange(16, -1, -1, dtype=np.int64))) % 10
    check = _ID_CHECK[(digits * _ID_WEIGHTS).sum(axis=1) % 11]
    return _zfill(body, 17) + check


def id_check_ok(ids) -> bool:
    """Whether every ID number's check digit is right (used by tests)."""
    for s in ids:
        total = sum(int(c) * w for c, w in zip(s[:17], _ID_WEIGHTS, strict=True))
        if _ID_CHECK[total % 11] != s[17]:
            return False
    return True


def credit_codes(rng: np.random.Generator, n: int, area: str, prefix: str) -> np.ndarray:
    """Unified social credit codes (GB 32100): prefix (2), area (6), organisation code (9), check."""
    org_int = rng.integers(0, 10**8, size=n)
    org = (org_int[:, None] // (10 ** np.arange(7, -1, -1, dtype=np.int64))) % 10
    c9 = 11 - (org * _ORG_W).sum(axis=1) % 11
    c9 = np.where(c9 == 11, 0, c9)  # 10 is written X, whose value in the code's alphabet is 29
    c9_char = np.where(c9 == 10, "X", c9.astype(str)).astype(object)
    c9_val = np.where(c9 == 10, _USCC_CHARS.index("X"), c9)
    head = [_USCC_CHARS.index(c) for c in prefix + area]
    values = np.hstack([np.tile(head, (n, 1)), org, c9_val[:, None]])
    check = (31 - (values * _USCC_W).sum(axis=1) % 31) % 31
    chars = np.array(list(_USCC_CHARS), dtype=object)
    return (prefix + area) + _zfill(org_int, 8) + c9_char + chars[check]


def mobiles(rng: np.random.Generator, n: int) -> np.ndarray:
    return _pick(rng, _MOBILE_PREFIX, n) + _zfill(rng.integers(0, 10**8, size=n), 8)


def village_names(rng: np.random.Generator, n: int) -> list[str]:
    combos = [a + b for a in _VILLAGE_A for b in _VILLAGE_B if a != b]
    pick = rng.choice(len(combos), size=n, replace=False)
    return [combos[i] for i in pick]


def addresses(rng: np.random.Generator, n: int, place: str, villages: list[str], street: bool) -> np.ndarray:
    """Addresses in the township: a village group and house number, or a road number in a 街道."""
    num = _zfill(rng.integers(1, 300, size=n), 1) + "号"
    if street:
        return place + _pick(rng, _ROADS, n) + "路" + num
    grp = _zfill(rng.integers(1, 12, size=n), 1) + "组"
    return place + _pick(rng, villages, n) + "村" + grp + num


def company_names(rng: np.random.Generator, n: int, county: str, township: str) -> np.ndarray:
    shop = _pick(rng, _SHOP, n)
    small = county + township + shop + _pick(rng, _TRADE, n)
    firm = county.removesuffix("市").removesuffix("县") + shop + _pick(rng, _COMPANY, n)
    return np.where(rng.random(n) < 0.75, small, firm)
