"""The `fazhi` command line.

Light by design: `fazhi --help` and the read-only commands (indicators) import neither Prefect
nor Great Expectations; only the commands that run flows do.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DEFAULT_SEED = 20231226


def _add_home(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", help="home folder (default: $FAZHI_HOME, else ./var)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fazhi",
        description="法治政府建设年度指标数据仓库 / rule-of-law indicator warehouse for a county and its townships",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="write the sample data, run the nightly flow on it, print 2023's indicators")
    _add_home(p)
    p.add_argument("--calibration", type=Path, help="calibration profile applied on top of the default")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--year", type=int, default=2023, help="year to print (default 2023)")

    p = sub.add_parser("run", help="one nightly run with the home folder's configuration")
    _add_home(p)

    p = sub.add_parser("sample", help="generate sample source exports")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--calibration", type=Path)
    p.add_argument("--townships", type=Path, help="CSV: code,name,kind,county_code,county_name")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)

    p = sub.add_parser("indicators", help="indicator values from the published database")
    p.add_argument("--year", type=int, required=True)
    p.add_argument("--township", help="township name or code (default: every township and the county)")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    _add_home(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from flows.config import ConfigError

    try:
        return {"demo": cmd_demo, "run": cmd_run, "sample": cmd_sample, "indicators": cmd_indicators}[args.command](
            args
        )
    except ConfigError as exc:
        print(f"错误 / error: {exc}", file=sys.stderr)
        return 2


def cmd_sample(args) -> int:
    from flows.sample.calibration import CalibrationError
    from flows.sample.generate import generate_sample

    try:
        summary = generate_sample(args.out, seed=args.seed, townships_csv=args.townships, calibration=args.calibration)
    except CalibrationError as exc:
        print(f"校准文件有误 / calibration refused: {exc}", file=sys.stderr)
        return 2
    print(f"样例数据已写入 / sample written to {args.out}: {summary}")
    return 0


def _run_flow(home: Path) -> int:
    from flows.nightly import SourcesFailed, nightly
    from warehouse.audit import AuditFailed
    from warehouse.lock import WriterBusy

    try:
        result = nightly(home=str(home))
    except SourcesFailed as exc:
        print(f"运行完成但有数据源失败 / run finished with failed sources: {exc}", file=sys.stderr)
        return 1
    except AuditFailed as exc:
        print(f"错误 / error: {exc}", file=sys.stderr)
        return 1
    except WriterBusy as exc:
        print(f"错误 / error: {exc}", file=sys.stderr)
        return 3
    for source, info in result["sources"].items():
        if info["status"] == "unchanged":
            print(f"  {source}: 无新数据 / nothing new")
        else:
            print(
                f"  {source}: 接收 {info['received_rows']} 行, 加载 {info['loaded_rows']},"
                f" 隔离 {info['quarantined_rows']}"
                f" / received {info['received_rows']}, loaded {info['loaded_rows']},"
                f" quarantined {info['quarantined_rows']}"
            )
    return 0


def cmd_demo(args) -> int:
    from flows.config import resolve_home, write_demo_config
    from flows.sample.calibration import CalibrationError
    from flows.sample.generate import generate_sample

    home = resolve_home(args.home)
    try:
        generate_sample(home / "sample", seed=args.seed, calibration=args.calibration)
    except CalibrationError as exc:
        print(f"校准文件有误 / calibration refused: {exc}", file=sys.stderr)
        return 2
    write_demo_config(home)
    print(f"样例数据 / sample data: {home / 'sample'}")
    code = _run_flow(home)
    if code:
        return code
    from flows.config import load_settings
    from flows.indicators_view import read_values, to_table

    settings = load_settings(home)
    print()
    print(to_table(read_values(settings.published_db, args.year), _terminal_width()))
    print(f"\n分析库 / analyst database: {settings.published_db}")
    return 0


def cmd_run(args) -> int:
    from flows.config import load_settings, resolve_home

    home = resolve_home(args.home)
    load_settings(home)  # a clear error before Prefect starts
    return _run_flow(home)


def cmd_indicators(args) -> int:
    from flows.config import load_settings, resolve_home
    from flows.indicators_view import NotPublished, read_values, to_csv, to_json, to_table

    settings = load_settings(resolve_home(args.home))
    try:
        rows = read_values(settings.published_db, args.year, args.township)
    except NotPublished as exc:
        print(f"错误 / error: {exc}", file=sys.stderr)
        return 2
    if not rows:
        print(
            f"没有 {args.year} 年 {args.township or ''} 的指标 / no indicators for that year and township",
            file=sys.stderr,
        )
        return 1
    if args.format == "json":
        print(to_json(rows))
    elif args.format == "csv":
        sys.stdout.write(to_csv(rows))
    else:
        print(to_table(rows, _terminal_width()))
    return 0


def _terminal_width() -> int:
    import shutil

    return max(80, shutil.get_terminal_size((160, 40)).columns)


if __name__ == "__main__":
    sys.exit(main())
