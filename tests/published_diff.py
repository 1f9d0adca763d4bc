"""Compare two published analyst databases: every table and view, its columns (names, types,
order), its comments and its rows, ignoring only what differs between any two runs of the same
code (load and build times, the time stamps inside batch and run ids).

    python -m tests.published_diff A.duckdb B.duckdb     # two published databases
    python -m tests.published_diff --ref main            # `fazhi demo` (+ a rebuild) on REF's code
                                                         # and on this checkout's, compared

A refactoring that must not change behaviour (issue 18) shows no difference here. With --ref the
two demos run in two temporary homes with the same pseudonymisation key, one after the other.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
# the warehouse's own clock: differs between any two runs (kept: whether it is null)
RUN_TIMES = {
    "landed_at",
    "loaded_at",
    "valid_from",
    "valid_to",
    "quarantined_at",
    "validated_at",
    "resolved_at",
    "recorded_at",
    "built_at",
    "batches_through",
    "day",
}
# batch and run ids carry their start time: enforcement-20261201T005610395619-ba23c3f3, run-20261201T005609-508447
RUN_STAMP = r"\d{8}T\d{6,12}(-[0-9a-f]{6,8})?"


def compare(a: Path, b: Path) -> list[str]:
    """The differences between two published databases (empty: the same)."""
    con = duckdb.connect()
    try:
        con.execute("attach ? as a (read_only)", [str(a)])
        con.execute("attach ? as b (read_only)", [str(b)])
        objects = {db: _objects(con, db) for db in ("a", "b")}
        a_names, b_names = set(objects["a"]), set(objects["b"])
        out = [f"only in a: {n}" for n in sorted(a_names - b_names)]
        out += [f"only in b: {n}" for n in sorted(b_names - a_names)]
        for name in sorted(a_names & b_names):
            (kind_a, comment_a, cols_a), (kind_b, comment_b, cols_b) = objects["a"][name], objects["b"][name]
            if (kind_a, comment_a) != (kind_b, comment_b):
                out.append(f"{name}: {kind_a} {comment_a!r} != {kind_b} {comment_b!r}")
            if cols_a != cols_b:
                out += [f"{name}: column {x} != {y}" for x, y in zip(cols_a, cols_b, strict=False) if x != y]
                if len(cols_a) != len(cols_b):
                    out.append(f"{name}: {len(cols_a)} columns != {len(cols_b)}")
                continue
            select = ", ".join(_normalised(c, t) for c, t, _ in cols_a)
            for x, y in (("a", "b"), ("b", "a")):
                (n,) = con.execute(
                    f"select count(*) from (select {select} from {x}.{name} except all select {select} from {y}.{name})"
                ).fetchone()
                if n:
                    out.append(f"{name}: {n} row(s) only in {x}")
        return out
    finally:
        con.close()


def _objects(con: duckdb.DuckDBPyConnection, db: str) -> dict[str, tuple]:
    """schema.name -> (table | view, comment, [(column, type, comment)])."""
    found = con.execute(
        """
        select schema_name || '.' || table_name, 'table', comment from duckdb_tables() where database_name = $db
        union all
        select schema_name || '.' || view_name, 'view', comment from duckdb_views()
        where database_name = $db and not internal
        """,
        {"db": db},
    ).fetchall()
    columns = con.execute(
        """
        select schema_name || '.' || table_name, column_name, data_type, comment from duckdb_columns()
        where database_name = $db order by column_index
        """,
        {"db": db},
    ).fetchall()
    return {name: (kind, comment, [(c, t, m) for n, c, t, m in columns if n == name]) for name, kind, comment in found}


def _normalised(column: str, data_type: str) -> str:
    quoted = f'"{column}"'
    if column in RUN_TIMES:
        return f"{quoted} is null as {quoted}"
    if data_type == "VARCHAR":
        return f"regexp_replace({quoted}, '{RUN_STAMP}', '…', 'g') as {quoted}"
    if data_type == "VARCHAR[]":
        return f"list_transform({quoted}, lambda x: regexp_replace(x, '{RUN_STAMP}', '…', 'g')) as {quoted}"
    return quoted


def run_demo(code: Path, home: Path, rebuild_year: int | None, key: str) -> Path:
    """`fazhi demo` (and `fazhi rebuild --year`) with the package imported from `code`."""
    env = os.environ | {
        "FAZHI_HMAC_KEY": key,
        "PYTHONPATH": str(code),
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "GX_ANALYTICS_ENABLED": "false",
    }
    commands = [["demo", "--home", str(home)]]
    if rebuild_year:
        commands.append(["rebuild", "--year", str(rebuild_year), "--home", str(home)])
    for argv in commands:
        script = f"import sys; sys.path.insert(0, {str(code)!r}); from flows.cli import main; sys.exit(main({argv!r}))"
        done = subprocess.run([sys.executable, "-c", script], cwd=code, env=env, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{' '.join(argv[:1])} on {code} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return home / "published" / "fazhi.duckdb"


def checkout(ref: str, into: Path) -> Path:
    """The files of `ref` (a commit, branch or tag of this repository), written to `into`."""
    archive = into / "code.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), ref], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "code", filter="data")
    return into / "code"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("databases", nargs="*", type=Path, help="two published databases to compare")
    p.add_argument("--ref", help="run the demo on this git ref's code and on this checkout's, and compare")
    p.add_argument("--rebuild-year", type=int, default=2023, help="also run `fazhi rebuild --year` (0: not)")
    p.add_argument("--keep", type=Path, help="run the demos in this folder (kept) instead of a temporary one")
    args = p.parse_args(argv)
    if args.ref:
        with tempfile.TemporaryDirectory(prefix="published-diff-") as tmp:
            work = args.keep or Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            key = "published-diff-key-0123456789abcdef0123"
            before = run_demo(checkout(args.ref, work), work / "home-ref", args.rebuild_year, key)
            after = run_demo(ROOT, work / "home-checkout", args.rebuild_year, key)
            differences = compare(before, after)
    elif len(args.databases) == 2:
        differences = compare(*args.databases)
    else:
        p.error("give two databases, or --ref")
    for line in differences:
        print(line)
    print(f"{len(differences)} difference(s)")
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
