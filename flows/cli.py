"""The `fazhi` command line.

Light by design: `fazhi --help` and the read-only commands (indicators) import neither Prefect
nor Great Expectations; only the commands that run flows do.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
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

    p.add_argument(
        "--faults",
        default="none",
        help="fault profile of the simulated HTTP sources: none, flaky, truncated, drift (default none)",
    )

    p = sub.add_parser("simulate", help="serve a sample directory over loopback HTTP (the export contract)")
    p.add_argument("--data", type=Path, required=True, help="a sample directory (fazhi sample --out DIR)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", help="bearer token clients must send (default: $FAZHI_SIMULATOR_TOKEN, else random)")
    p.add_argument("--faults", default="none", help="none, flaky, truncated, drift (comma-separated to combine)")
    p.add_argument("--state", choices=("initial", "later"), default="initial", help="later: with late corrections")
    p.add_argument("--seed", type=int, default=0, help="chooses the records the late corrections touch")

    p = sub.add_parser("template", help="write the blank spreadsheet a township fills in")
    p.add_argument("kind", choices=("training", "returns"))
    p.add_argument("--out", type=Path, required=True, help="the .xlsx file to write")

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
    p.add_argument("--edition", type=int, help="read this published edition of the year (default: current values)")
    _add_home(p)

    p = sub.add_parser("explain", help="the records counted in one indicator value (personal-data free)")
    p.add_argument("--year", type=int, required=True)
    p.add_argument("--township", required=True, help="township name or code, or the county code")
    p.add_argument("--indicator", required=True, help="indicator code, e.g. ENF07")
    p.add_argument("--format", choices=("table", "json"), default="table")
    _add_home(p)

    p = sub.add_parser("rollup", help="roll counties' published Parquet partitions up to a province")
    p.add_argument(
        "--county",
        action="append",
        required=True,
        type=Path,
        metavar="PUBLISHED_DIR",
        help="a county's published/ folder (repeat for each county)",
    )
    p.add_argument("--out", type=Path, required=True, help="the region's DuckDB file")
    p.add_argument("--region-code", required=True, help="the province or region code, e.g. 350000")

    p = sub.add_parser("rebuild", help="recompute a year from the raw layer and publish it as the next edition")
    p.add_argument("--year", type=int, required=True)
    _add_home(p)

    p = sub.add_parser(
        "accept-extract",
        help="accept a full extract stopped as far smaller than the previous one (rule *-B02): the source shrank",
    )
    p.add_argument("--source", required=True, help="the source whose stopped extract to accept, e.g. enforcement")
    p.add_argument("--batch", help="the stopped batch id (default: the source's latest stopped batch)")
    p.add_argument("--reason", required=True, help="why the smaller extract is right (kept in the audit)")
    p.add_argument("--by", help="who accepts it (default: the operating-system user)")
    _add_home(p)

    p = sub.add_parser("quarantine", help="open quarantine entries: records to fix in the source systems")
    p.add_argument("--source", help="source, e.g. enforcement (default: every source)")
    p.add_argument("--township", help="township name or code (default: every township)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    _add_home(p)

    # outputs people read (issue 19): warehouse/reports/, docs/reports.md
    p = sub.add_parser("report", help="the township's annual report draft (.docx) from the published indicators")
    p.add_argument("--year", type=int, required=True)
    p.add_argument("--township", required=True, help="township name or code")
    p.add_argument("--edition", type=int, help="a published edition of the year (default: current values)")
    p.add_argument("--out", type=Path, help="the .docx to write (default: <township><year>年…报告（草稿）.docx)")
    _add_home(p)
    p = sub.add_parser("export", help="the county workbook (.xlsx: every township x indicator) or CSV")
    p.add_argument("--year", type=int, required=True)
    p.add_argument("--edition", type=int, help="a published edition of the year (default: current values)")
    p.add_argument("--out", type=Path, required=True, help="the .xlsx (or .csv) file to write")
    p.add_argument("--format", choices=("xlsx", "csv"), help="default: from the file name, else xlsx")
    _add_home(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    import signal

    if argv is None and hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `fazhi … | head` ends quietly
    args = build_parser().parse_args(argv)
    from flows.config import ConfigError

    try:
        return {
            "demo": cmd_demo,
            "run": cmd_run,
            "sample": cmd_sample,
            "indicators": cmd_indicators,
            "explain": cmd_explain,
            "rebuild": cmd_rebuild,
            "rollup": cmd_rollup,
            "quarantine": cmd_quarantine,
            "accept-extract": cmd_accept_extract,
            "simulate": cmd_simulate,
            "template": cmd_template,
            "report": cmd_report,
            "export": cmd_export,
        }[args.command](args)
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
    write_demo_config(home, http=True)
    print(f"样例数据 / sample data: {home / 'sample'}")
    from flows.config import load_settings

    try:
        with _demo_simulator(load_settings(home), args.faults):
            code = _run_flow(home)
    except ValueError as exc:  # an unknown fault profile
        print(f"错误 / error: {exc}", file=sys.stderr)
        return 2
    if code:
        return code
    from flows.indicators_view import read_values, to_table

    settings = load_settings(home)
    print()
    print(to_table(read_values(settings.published_db, args.year), _terminal_width()))
    print(f"\n分析库 / analyst database: {settings.published_db}")
    return 0


@contextmanager
def _demo_simulator(settings, faults: str):
    """The demo's HTTP sources served by the simulator on a free loopback port, in this process:
    their URL and token are handed to the flow through FAZHI_<SOURCE>_URL / _TOKEN."""
    http = [s for s in settings.sources.values() if s.kind == "http"]
    if not http:
        yield None
        return
    import os
    import secrets

    from flows.sources.simulator import Simulator

    token = secrets.token_urlsafe(24)
    slow = max(s.http.read_timeout for s in http) + 1.0
    sim = Simulator(settings.home / "sample", token=token, faults=faults, slow_seconds=slow)
    url = sim.start()
    env = {}
    for s in http:
        env[f"FAZHI_{s.name.upper()}_URL"] = url
        env[s.http.token_env] = token
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    print(f"模拟数据源 / simulated sources at {url} (faults: {faults})")
    try:
        yield sim
    finally:
        sim.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def cmd_simulate(args) -> int:
    import os
    import secrets

    from flows.sources.simulator import serve

    token = args.token or os.environ.get("FAZHI_SIMULATOR_TOKEN")
    if not token:
        token = secrets.token_urlsafe(24)
        print(f"令牌 / token (generated): {token}")
    try:
        serve(args.data, args.port, token, args.faults, state=args.state, seed=args.seed)
    except (ValueError, FileNotFoundError) as exc:
        print(f"错误 / error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_template(args) -> int:
    from flows.sources.templates import write_template

    path = write_template(args.kind, args.out)
    print(f"模板已写入 / template written: {path}")
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
        rows = read_values(settings.published_db, args.year, args.township, args.edition)
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


def cmd_explain(args) -> int:
    import json

    from flows.config import load_settings, resolve_home
    from flows.indicators_view import NotPublished, display, pad, read_evidence

    settings = load_settings(resolve_home(args.home))
    try:
        values, records = read_evidence(settings.published_db, args.year, args.township, args.indicator)
    except NotPublished as exc:
        print(f"错误 / error: {exc}", file=sys.stderr)
        return 2
    if not values:
        print(f"没有该指标值 / no value for {args.year} {args.township} {args.indicator}", file=sys.stderr)
        return 1
    v = values[0]
    if args.format == "json":
        print(json.dumps({"value": v, "records": records}, ensure_ascii=False, indent=2, default=str))
        return 0
    print(
        f"{v['year']} {v['township_name']}({v['township_code']}) {v['indicator_code']} {v['indicator_name_zh']}"
        f" / {v['indicator_name_en']}: {display(v)}"
        f"  分子/numerator {v['numerator']}  分母/denominator {v['denominator']}"
    )
    print(f"计入记录 {len(records)} 条 / {len(records)} records counted")
    print(f"{'township':<11}{'table':<22}{'record':<40}{'date':<12}{'num':>10}{'den':>6}{'measure':>9}")
    blank = lambda x: "" if x is None else x  # noqa: E731
    for r in records:
        print(
            f"{r['township_code']:<11}{r['record_table']:<22}{pad(r['record_id'], 40)}{blank(r['record_date']):<12}"
            f"{blank(r['numerator']):>10}{blank(r['denominator']):>6}{blank(r['measure']):>9}"
        )
    return 0


def cmd_rollup(args) -> int:
    from flows.province import province_rollup

    rows = province_rollup([str(d) for d in args.county], str(args.out), args.region_code)
    print(f"区域汇总已写入 / region roll-up written to {args.out}: {rows} rows")
    return 0


def cmd_rebuild(args) -> int:
    from flows.config import load_settings, resolve_home

    home = resolve_home(args.home)
    load_settings(home)
    from flows.rebuild import year_end_rebuild
    from warehouse.audit import AuditFailed
    from warehouse.lock import WriterBusy

    try:
        result = year_end_rebuild(year=args.year, home=str(home))
    except (AuditFailed, WriterBusy) as exc:
        print(f"错误 / error: {exc}", file=sys.stderr)
        return 1
    print(f"{result['note_zh']} / {result['note_en']}")
    return 0


def cmd_quarantine(args) -> int:
    from flows.config import load_settings, resolve_home
    from flows.quarantine_view import NotPublished, read_open, to_json, to_table

    settings = load_settings(resolve_home(args.home))
    try:
        rows = read_open(settings.published_db, args.source, args.township)
    except NotPublished as exc:
        print(f"错误 / error: {exc}", file=sys.stderr)
        return 2
    print(to_json(rows) if args.format == "json" else to_table(rows))
    return 0


def cmd_accept_extract(args) -> int:
    import getpass
    from datetime import UTC, datetime

    from flows.config import load_settings, resolve_home
    from warehouse.acceptance import AcceptanceRefused, accept_extract
    from warehouse.db import open_work_db
    from warehouse.lock import WriterBusy, writer_lock

    settings = load_settings(resolve_home(args.home))
    if args.source not in settings.sources:
        print(f"错误 / error: 没有数据源 / no source {args.source} in {settings.home / 'fazhi.toml'}", file=sys.stderr)
        return 2
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        with writer_lock(settings.home, f"accept-extract-{now:%Y%m%dT%H%M%S}", settings.lock_wait_seconds):
            con = open_work_db(settings.work_db)
            try:
                accepted = accept_extract(
                    con, args.source, args.by or getpass.getuser(), args.reason, now, batch_id=args.batch
                )
            finally:
                con.close()
    except AcceptanceRefused as exc:
        print(f"错误 / error: {exc}", file=sys.stderr)
        return 2
    except WriterBusy as exc:
        print(f"错误 / error: {exc}", file=sys.stderr)
        return 3
    print(f"已接受 / accepted: {accepted.source} {accepted.batch_id}")
    for table, rows in accepted.rows.items():
        before = accepted.previous.get(table)
        print(f"  {table}: {rows} 行 / rows (此前参照 / reference until now: {'-' if before is None else before})")
    print(
        "下次运行起，该数据源的全量导出与此规模比较 / from the next run, the source's full extracts are compared "
        "with this size"
    )
    return 0


def cmd_report(args) -> int:
    from flows.config import load_settings, resolve_home
    from warehouse.reports.published import ReportInputError
    from warehouse.reports.township_report import write_township_report

    settings = load_settings(resolve_home(args.home))
    try:
        out = write_township_report(
            settings.published_db, args.year, args.township, args.out, args.edition, settings.report_template
        )
    except ReportInputError as exc:
        print(f"错误 / error: {exc}", file=sys.stderr)
        return 2
    print(f"报告草稿已写入 / report draft written: {out}")
    return 0


def cmd_export(args) -> int:
    from flows.config import load_settings, resolve_home
    from warehouse.reports.county_workbook import export_county
    from warehouse.reports.published import ReportInputError

    settings = load_settings(resolve_home(args.home))
    try:
        out = export_county(settings.published_db, args.year, args.out, args.edition, args.format)
    except ReportInputError as exc:
        print(f"错误 / error: {exc}", file=sys.stderr)
        return 2
    print(f"已导出 / exported: {out}")
    return 0


def _terminal_width() -> int:
    import shutil

    return max(80, shutil.get_terminal_size((160, 40)).columns)


if __name__ == "__main__":
    sys.exit(main())
