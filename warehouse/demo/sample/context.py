"""What the generators know about one township: names, codes, villages, size, its bodies."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from warehouse.demo.sample import fake
from warehouse.demo.sample.plan import kind_of

SUFFIXES = ("畲族乡", "民族乡", "街道", "镇", "乡")


@dataclass
class Township:
    code: str
    name: str
    kind: str  # 街道 / 镇 / 乡 (normalised)
    county_code: str
    county_name: str
    index: int  # position in the generated list, sorted by code
    size: float
    abbr: str  # for document numbers: 永贡
    body: str  # acting body: 永安市贡川镇人民政府
    body_credit_code: str
    villages: list[str]
    village_codes: list[str]
    mediators: np.ndarray

    @property
    def short(self) -> str:
        return short_name(self.name)

    @property
    def street(self) -> bool:
        return self.kind == "街道"

    @property
    def village_word(self) -> str:
        return "社区" if self.street else "村"


def short_name(name: str) -> str:
    for s in SUFFIXES:
        if name.endswith(s) and len(name) > len(s):
            return name[: -len(s)]
    return name


def abbreviations(rows: list[tuple[str, str, str]]) -> dict[str, str]:
    """Document-number abbreviations (county's first character + township's), unique per list."""
    out: dict[str, str] = {}
    first = {}
    for code, name, county in rows:
        first.setdefault((county[:1], short_name(name)[:1]), []).append(code)
    for code, name, county in rows:
        short = short_name(name)
        ab = county[:1] + short[:1]
        if len(first[(county[:1], short[:1])]) > 1:
            ab = county[:1] + short[:2]
        out[code] = ab
    seen: dict[str, int] = {}
    for code in out:
        seen[out[code]] = seen.get(out[code], 0) + 1
    for code in out:
        if seen[out[code]] > 1:
            out[code] = out[code] + code[-3:]
    return out


def make_township(row: dict, index: int, abbr: str, rng: np.random.Generator) -> Township:
    kind = kind_of(row["kind"])
    county, name = row["county_name"], row["name"]
    body = f"{county}人民政府{name}办事处" if kind == "街道" else f"{county}{name}人民政府"
    n_vil = int(rng.integers(6, 13) if kind == "街道" else rng.integers(8, 19) if kind == "镇" else rng.integers(5, 11))
    villages = fake.village_names(rng, n_vil)
    base = 1 if kind == "街道" else 2
    village_codes = [f"{row['code']}{base}{i + 1:02d}" for i in range(n_vil)]
    return Township(
        code=row["code"],
        name=name,
        kind=kind,
        county_code=row["county_code"],
        county_name=county,
        index=index,
        size=float(np.exp(rng.normal(0, 0.3))),
        abbr=abbr,
        body=body,
        body_credit_code=str(fake.credit_codes(rng, 1, row["county_code"], "11")[0]),
        villages=villages,
        village_codes=village_codes,
        mediators=fake.names(rng, int(rng.integers(4, 9))),
    )
