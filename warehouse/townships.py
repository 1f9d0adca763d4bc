"""The county's township list (fazhi.toml `[pipeline] townships`): a CSV of code, name, kind,
county_code, county_name, one row per township, read and checked here for every reader.

A list an office edited by hand can be saved as GBK, lose a column, repeat a township or shift a
code by a digit. Each of these made the night fail deep inside (a UnicodeDecodeError, DuckDB's
binder or constraint errors), and an empty list quarantined every record of the night instead.
Now each is a ConfigError (exit 2; `fazhi check-config` too) naming the file, the row as a
spreadsheet numbers it (the header is row 1) and the value.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from warehouse.config import ConfigError

COLUMNS = ("code", "name", "kind", "county_code", "county_name")
SHOWN = 5  # problems listed in a message; more are counted


def read_townships(path: Path) -> pd.DataFrame:
    """The township list as text columns (COLUMNS, values trimmed), or ConfigError saying what
    is wrong with it and where."""
    try:
        df = pd.read_csv(path, dtype=str, encoding="utf-8-sig", keep_default_na=False)
    except FileNotFoundError:
        raise ConfigError(
            f"找不到乡镇名单 {path}(fazhi.toml [pipeline] townships) / no township list at {path} "
            "(fazhi.toml [pipeline] townships)"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"乡镇名单 {path} 不是 UTF-8 编码(可能保存成了 GBK/ANSI，请另存为“CSV UTF-8”) / the township list "
            f"{path} is not UTF-8 text (saved as GBK/ANSI? save it as CSV UTF-8)"
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ConfigError(f"乡镇名单 {path} 不是CSV表格 / the township list {path} is not a CSV table: {exc}") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ConfigError(
            f"乡镇名单 {path} 缺少列 {', '.join(missing)} / the township list {path} lacks column(s) "
            f"{', '.join(missing)}: its first row must name {','.join(COLUMNS)}"
        )
    df = df[list(COLUMNS)].apply(lambda s: s.str.strip())
    if df.empty:
        raise ConfigError(f"乡镇名单 {path} 没有乡镇 / the township list {path} has no townships")
    problems = _problems(df)
    if problems:
        listed = "; ".join(problems[:SHOWN]) + (f" … ({len(problems)})" if len(problems) > SHOWN else "")
        raise ConfigError(f"乡镇名单 {path} 有误 / the township list {path} is wrong: {listed}")
    return df


def _problems(df: pd.DataFrame) -> list[str]:
    """Each row's problems (row numbers as a spreadsheet shows them), then repeated codes: checked
    column by column, the rows with a problem then said one by one (38,000 townships: 40 ms)."""
    code_ok = df["code"].str.fullmatch(r"\d{9}")
    county_ok = df["county_code"].str.fullmatch(r"\d{6}")
    within = df["code"].str[:6] == df["county_code"]
    named = df["name"] != ""
    out = []
    for i in df.index[~(code_ok & county_ok & within & named)]:
        r, where = df.loc[i], f"第{i + 2}行 / row {i + 2}"
        if not code_ok[i]:
            out.append(f"{where}: code {r.code!r} 应为9位乡镇代码 / is not a 9-digit township code")
        if not county_ok[i]:
            out.append(f"{where}: county_code {r.county_code!r} 应为6位县级代码 / is not a 6-digit county code")
        elif code_ok[i] and not within[i]:
            out.append(f"{where}: code {r.code} 不属于县 {r.county_code} / is not a township of county {r.county_code}")
        if not named[i]:
            out.append(f"{where}: name 为空 / name is empty")
    repeated = df.index[df["code"].duplicated(keep=False) & (df["code"] != "")]
    for code, rows in (df.loc[repeated].index + 2).groupby(df.loc[repeated, "code"]).items():
        out.append(f"code {code} 重复 / repeated on rows {', '.join(str(n) for n in rows)}")
    return out
