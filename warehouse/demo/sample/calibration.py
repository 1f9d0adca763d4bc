"""Calibration profiles: the indicator values the sample data must reproduce for chosen townships.

A profile is a YAML file:

```yaml
targets:
  - township: 贡川镇          # name or 9-digit code
    year: 2023
    values:
      ENF01: 52               # a count: exact
      ENF06: ">=1"            # a count: at least 1 (the generator picks a value >= 1)
      OGI03: ">=200"          # a return item: the return says "200余" (value 200, qualifier >=)
      LIT02: 1.0              # a rate given as a number: exact, achieved as an integer ratio
      MED02: [0.98, 0.99]     # a rate given as a range: low <= value < high
      ENF08: ">=0.9"          # a rate: at least 0.9 (up to 1)
      ENF10: 12500.5          # yuan, exact, at most 2 decimals
      ENF11: 32.5             # median days, a multiple of 0.5
      MED05: 9.25             # mean days, exact (days total = value x concluded cases)
```

Kinds of value by indicator (warehouse/demo/sample/catalogue.py): counts take a non-negative integer or
">=N"; rates a number in [0, 1], a range [low, high] with 0 <= low < high <= 1, or ">=x";
ENF10, ENF11 and MED05 a non-negative number. For a system or training count ">=N" means the
value is at least N (no qualifier in the data); for a return item (LIT01, OGI01-03, PUB01-06) it
means the return carries "N余" and the figure is N with qualifier ">=".

The shipped default profile (calibration_default.yaml, the published 2023 figures of 贡川镇) is
always applied; a given file is applied on top of it, its entries overriding the default's for
the same township, year and indicator. The default's entries for townships or years not being
generated are ignored; a given file's are refused.

An impossible profile is refused with `CalibrationError`, whose message names the entry
(position in its file, township, year, indicator) in Chinese, then English: unknown township or
indicator, a year not generated, a value of the wrong type, a rate outside [0, 1], a range with
low >= high, a sub-count above its total, a derived indicator contradicting its parts, an exact
rate that no integer ratio over its (fixed) denominator can give, a rate whose denominator is 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pandas as pd
import yaml

from warehouse.demo.sample.catalogue import INDICATORS
from warehouse.errors import BadInput

DEFAULT_PROFILE = Path(__file__).with_name("calibration_default.yaml")

_AT_LEAST = re.compile(r"^\s*>=\s*(\d+(?:\.\d+)?)\s*$")


class CalibrationError(BadInput, ValueError):
    """An impossible or malformed calibration profile; the message names the offending entry."""

    heading = ("校准文件有误", "calibration refused")

    def __init__(self, message: str, *, file: str = "", entry: int = 0, township: str = "", year=None, code=""):
        super().__init__(message)
        self.file, self.entry, self.township, self.year, self.code = file, entry, township, year, code


@dataclass(frozen=True)
class Target:
    """One calibrated figure. `mode` is exact, at_least or range (low <= value < high)."""

    code: str
    mode: str
    low: Fraction
    high: Fraction | None = None
    township: str = ""  # the township's name, for messages
    year: int = 0
    entry: int = 0
    file: str = ""

    def error(self, zh: str, en: str) -> CalibrationError:
        return _error(self.file, self.entry, self.township, self.year, self.code, zh, en)

    # counts
    def count_bounds(self) -> tuple[int, int | None]:
        lo = int(self.low)
        return (lo, lo) if self.mode == "exact" else (lo, None)

    # rates
    def numerators(self, den: int) -> tuple[int, int] | None:
        """The integer numerators n with n/den meeting the target, as an interval, or None."""
        if den <= 0:
            return None
        if self.mode == "exact":
            n = self.low * den
            return (int(n), int(n)) if n.denominator == 1 else None
        lo = math.ceil(self.low * den)
        hi = den if self.mode == "at_least" else math.ceil(self.high * den) - 1
        hi = min(hi, den)
        return (lo, hi) if lo <= hi else None

    def describe(self) -> str:
        if self.mode == "exact":
            return str(float(self.low)) if self.low.denominator != 1 else str(int(self.low))
        if self.mode == "at_least":
            return f">={float(self.low):g}"
        return f"[{float(self.low):g}, {float(self.high):g})"


Profile = dict[tuple[str, int], dict[str, Target]]


def _error(file: str, entry: int, township: str, year, code: str, zh: str, en: str) -> CalibrationError:
    where = " ".join(str(x) for x in (township, year, code) if x not in (None, ""))
    return CalibrationError(
        f"校准文件第{entry}项({where}): {zh} / {en}", file=file, entry=entry, township=township, year=year, code=code
    )


def _number(v) -> Fraction | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return Fraction(str(v)) if isinstance(v, float) else Fraction(v)


def parse_value(code: str, raw, err) -> Target:
    """One profile value as a Target (without its entry metadata); `err(zh, en)` builds the error."""
    kind = INDICATORS[code]
    if kind == "count":
        if isinstance(raw, int) and not isinstance(raw, bool):
            if raw < 0:
                raise err("件数不能为负 / a count cannot be negative")
            return Target(code, "exact", Fraction(raw))
        m = _AT_LEAST.match(raw) if isinstance(raw, str) else None
        if m and float(m.group(1)).is_integer():
            return Target(code, "at_least", Fraction(int(float(m.group(1)))))
        raise err(f'数值类型不对(应为非负整数或">=N"): {raw!r} / wrong type: expected a non-negative integer or ">=N"')
    if kind == "rate":
        num = _number(raw)
        if num is not None:
            if not 0 <= num <= 1:
                raise err(f"比率须在0到1之间: {raw} / rate outside [0, 1]")
            return Target(code, "exact", num)
        if isinstance(raw, list):
            bounds = [_number(x) for x in raw]
            if len(bounds) != 2 or any(b is None for b in bounds):
                raise err(f"区间应为两个数[下限, 上限]: {raw!r} / wrong type: a range is [low, high]")
            lo, hi = bounds
            if not (0 <= lo <= 1 and 0 <= hi <= 1):
                raise err(f"比率须在0到1之间: {raw} / rate outside [0, 1]")
            if lo >= hi:
                raise err(f"区间下限须小于上限: {raw} / range low must be below high")
            return Target(code, "range", lo, hi)
        m = _AT_LEAST.match(raw) if isinstance(raw, str) else None
        if m:
            lo = Fraction(m.group(1))
            if not 0 <= lo <= 1:
                raise err(f"比率须在0到1之间: {raw} / rate outside [0, 1]")
            return Target(code, "at_least", lo)
        raise err(f'数值类型不对(比率应为数、[下限, 上限]或">=x"): {raw!r} / wrong type for a rate')
    num = _number(raw)
    if num is None:
        raise err(f"数值类型不对(应为非负数): {raw!r} / wrong type: expected a non-negative number")
    if num < 0:
        raise err(f"数值不能为负: {raw} / value cannot be negative")
    if kind == "amount" and (num * 100).denominator != 1:
        raise err(f"金额最多两位小数: {raw} / an amount has at most 2 decimals")
    if kind == "median_days":
        if (num * 2).denominator != 1:
            raise err(f"中位数天数须为0.5的整数倍: {raw} / a median of whole days is a multiple of 0.5")
        if num > 250:
            raise err(f"办案时长中位数过大(最多250天): {raw} / median above 250 days cannot fit in a year")
    if kind == "mean_days" and num > 300:
        raise err(f"平均办结天数过大(最多300天): {raw} / mean above 300 days cannot fit in a year")
    return Target(code, "exact", num)


def _township_index(townships: pd.DataFrame) -> tuple[dict[str, str], dict[str, list[str]]]:
    codes = townships["code"].astype(str)
    names: dict[str, list[str]] = {}
    for code, name in zip(codes, townships["name"].astype(str), strict=True):
        names.setdefault(name, []).append(code)
    return dict(zip(codes, townships["name"].astype(str), strict=True)), names


def parse_profile(
    path: Path, townships: pd.DataFrame, years: Iterable[int] | None = None, *, strict: bool = True
) -> Profile:
    """The entries of one profile file. strict=False skips unknown townships and years (the default)."""
    file = Path(path).name
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise CalibrationError(f"校准文件无法读取: {exc} / cannot read the calibration file", file=file) from None
    if not isinstance(data, dict) or not isinstance(data.get("targets"), list):
        raise CalibrationError(
            f"校准文件{file}应为含 targets 列表的YAML / {file} must be YAML with a `targets` list", file=file
        )
    by_code, by_name = _township_index(townships)
    years = set(years) if years is not None else None
    out: Profile = {}
    for i, item in enumerate(data["targets"], start=1):
        if not isinstance(item, dict):
            raise _error(file, i, "", None, "", "每项应为映射", "each entry must be a mapping")
        raw_t, year, values = item.get("township"), item.get("year"), item.get("values")
        label = "" if raw_t is None else str(raw_t)

        def err(zh_en: str, code: str = "", _i=i, _label=label, _year=year) -> CalibrationError:
            zh, _, en = zh_en.partition(" / ")
            return _error(file, _i, _label, _year, code, zh, en)

        if isinstance(raw_t, int) and not isinstance(raw_t, bool):
            raw_t = str(raw_t)
        if not isinstance(raw_t, str) or not raw_t.strip():
            raise err("缺少乡镇(名称或代码) / township (name or code) missing")
        raw_t = raw_t.strip()
        if raw_t in by_code:
            code_t = raw_t
        elif raw_t in by_name and len(by_name[raw_t]) == 1:
            code_t = by_name[raw_t][0]
        elif raw_t in by_name:
            raise err("乡镇名称不唯一，请用代码 / township name is ambiguous, use its code")
        elif strict:
            raise err("未知乡镇 / unknown township")
        else:
            continue
        label = by_code[code_t]
        if not isinstance(year, int) or isinstance(year, bool):
            raise err(f"年份应为整数: {year!r} / year must be an integer")
        if years is not None and year not in years:
            if not strict:
                continue
            span = f"{min(years)}-{max(years)}"
            raise err(f"年份不在生成范围{span}内 / year outside the generated years {span}", _label=label)
        if not isinstance(values, dict) or not values:
            raise err("缺少 values(指标代码: 数值) / values (code: value) missing", _label=label)
        slot = out.setdefault((code_t, year), {})
        for code, raw in values.items():
            code = str(code).strip().upper()
            if code not in INDICATORS:
                raise err("未知指标代码 / unknown indicator code", code, _label=label)

            def verr(zh_en: str, _code=code, _label=label) -> CalibrationError:
                return err(zh_en, _code, _label=_label)

            t = parse_value(code, raw, verr)
            slot[code] = Target(code, t.mode, t.low, t.high, label, year, i, file)
    return out


def load_profile(path: Path | None, townships: pd.DataFrame, *, years: Iterable[int] | None = None) -> Profile:
    """The shipped default profile with `path` applied on top, checked for feasibility.

    Returns {(township_code, year): {indicator_code: Target}}. With `years`, entries for other
    years are refused (or, in the default profile, ignored).
    """
    profile = parse_profile(DEFAULT_PROFILE, townships, years, strict=False)
    if path is not None:
        for key, values in parse_profile(Path(path), townships, years, strict=True).items():
            profile.setdefault(key, {}).update(values)
    from warehouse.demo.sample.plan import check_profile  # the planner imports this module

    check_profile(profile, townships)
    return profile
