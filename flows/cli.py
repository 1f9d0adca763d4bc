"""The `fazhi` command line.

Light by design: `fazhi --help` and the read-only commands (indicators) import neither Prefect
nor Great Expectations; only the commands that run flows do.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager, suppress
from pathlib import Path

DEFAULT_SEED = 20231226


def _add_home(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", help="home folder (default: $FAZHI_HOME, else ./var)")


def _bounded(low: int, high: int, what: str):
    """An argparse type: an integer from low to high (argparse says which argument, exit 2)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"应为整数 / must be an integer: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"应在 {low} 与 {high} 之间 / {what} must be from {low} to {high}: {value}"
            )
        return value

    return parse


_seed = _bounded(0, 2**32 - 1, "a seed")  # numpy's generators take no negative seed
_port = _bounded(1, 65535, "a port")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fazhi",
        description="法治政府建设年度指标数据仓库 / rule-of-law indicator warehouse for a county and its townships",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="write the sample data, run the nightly flow on it, print 2023's indicators")
    _add_home(p)
    p.add_argument("--calibration", type=Path, help="calibration profile applied on top of the default")
    p.add_argument("--seed", type=_seed, default=DEFAULT_SEED)
    p.add_argument("--year", type=int, default=2023, help="year to print (default 2023)")

    p.add_argument(
        "--faults",
        default="none",
        help="fault profile of the simulated HTTP sources: none, flaky, truncated, drift (default none)",
    )

    p = sub.add_parser("simulate", help="serve a sample directory over loopback HTTP (the export contract)")
    p.add_argument("--data", type=Path, required=True, help="a sample directory (fazhi sample --out DIR)")
    p.add_argument("--port", type=_port, default=8765)
    p.add_argument("--token", help="bearer token clients must send (default: $FAZHI_SIMULATOR_TOKEN, else random)")
    p.add_argument("--faults", default="none", help="none, flaky, truncated, drift (comma-separated to combine)")
    p.add_argument("--state", choices=("initial", "later"), default="initial", help="later: with late corrections")
    p.add_argument("--seed", type=_seed, default=0, help="chooses the records the late corrections touch")

    p = sub.add_parser("template", help="write the blank spreadsheet a township fills in")
    p.add_argument("kind", choices=("training", "returns"))
    p.add_argument("--out", type=Path, required=True, help="the .xlsx file to write")
    _add_home(p)  # its townships.csv fills the template's 乡镇代码 sheet (else the sample county's)

    p = sub.add_parser("run", help="one nightly run with the home folder's configuration")
    _add_home(p)

    p = sub.add_parser(
        "check-config", help="check the home's fazhi.toml and print its effective settings (secrets masked)"
    )
    _add_home(p)

    p = sub.add_parser("sample", help="generate sample source exports")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--calibration", type=Path)
    p.add_argument("--townships", type=Path, help="CSV: code,name,kind,county_code,county_name")
    p.add_argument("--seed", type=_seed, default=DEFAULT_SEED)

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


class Stopped(BaseException):
    """SIGTERM or SIGHUP, raised in the main thread: `finally` blocks and exit handlers still run
    (the demo's simulator stops, Prefect's temporary server is stopped) instead of the process
    vanishing. A BaseException, like KeyboardInterrupt, so no `except Exception` swallows it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def main(argv: list[str] | None = None) -> int:
    """Every way out prints what happened (stderr) and returns an exit code: 0 ok, 1 failed,
    2 bad input, 3 the database is held by another writer, 128+N stopped by signal N. The codes
    are given here only, from the error's kind (warehouse/errors.py): commands raise, they never
    choose a code for an error. Only a closed stdout pipe (`fazhi … | head`) ends quietly (141,
    as a tool killed by SIGPIPE); a socket whose peer hung up is an ordinary error of whoever
    wrote to it (SIGPIPE stays ignored, as Python sets it: never SIG_DFL, which would kill the
    process without a word)."""
    args = build_parser().parse_args(argv)
    from warehouse.errors import BadInput, HeldByAnother, RunFailed, exit_code

    with _signals_raise_stopped():
        try:
            code = {
                "demo": cmd_demo,
                "run": cmd_run,
                "check-config": cmd_check_config,
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
            sys.stdout.flush()  # a closed stdout shows here, not in the interpreter's last flush
            return code
        except RunFailed as exc:
            _say_run_failed(exc)
            return exit_code(exc.__cause__)
        except (BadInput, HeldByAnother) as exc:
            zh, en = exc.heading
            print(f"{zh} / {en}: {exc}", file=sys.stderr)
            return exit_code(exc)
        except BrokenPipeError as exc:
            if _stdout_closed():
                _discard_stdout()
                return 141
            return _unexpected(exc)
        except Stopped as exc:
            import signal

            name = signal.Signals(exc.signum).name
            print(f"已停止 / stopped by {name}: 本次运行未完成 / the command did not finish", file=sys.stderr)
            return 128 + exc.signum
        except KeyboardInterrupt:
            print("已中断 / interrupted (Ctrl-C): 本次运行未完成 / the command did not finish", file=sys.stderr)
            return 130
        except Exception as exc:
            said = os_error_message(exc)  # a file the command writes: a missing folder, a full disk…
            if said is None:
                return _unexpected(exc)
            print(f"错误 / error: {said}", file=sys.stderr)
            return 1


def _unexpected(exc: BaseException) -> int:
    """An error no command expected: one line naming it (the traceback with FAZHI_DEBUG=1)."""
    import os

    if os.environ.get("FAZHI_DEBUG"):
        import traceback

        traceback.print_exception(exc)
    print(
        f"错误 / error: {type(exc).__name__}: {exc} (意外错误；设置 FAZHI_DEBUG=1 显示调用栈 / "
        "unexpected: set FAZHI_DEBUG=1 for the traceback)",
        file=sys.stderr,
    )
    if type(exc).__name__ == "OutOfMemoryException":  # DuckDB's (a roll-up, a report)
        _say_memory_cap()
    _say_if_damaged(str(exc))
    return 1


@contextmanager
def _signals_raise_stopped():
    """SIGTERM and SIGHUP raise Stopped in the main thread while a command runs. (Prefect's
    flow engine swaps in its own SIGTERM handler during a flow run, reports the run crashed,
    then re-sends the signal to the handler it found: this one.)"""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, _frame):
        raise Stopped(signum)

    saved = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


def _stdout_closed() -> bool:
    """True when stdout is a pipe or socket whose reader has gone (poll reports POLLERR)."""
    import select

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by a capture without a descriptor
        return False
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(events & select.POLLERR for _, events in poller.poll(0))


def _discard_stdout() -> None:
    """What is still buffered for the closed stdout goes nowhere, so the interpreter's own
    flush at exit finds nothing to complain about."""
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def cmd_sample(args) -> int:
    from warehouse.demo.sample.generate import generate_sample

    summary = generate_sample(args.out, seed=args.seed, townships_csv=args.townships, calibration=args.calibration)
    print(f"样例数据已写入 / sample written to {args.out}: {summary}")
    return 0


def _run_flow(home: Path) -> None:
    """The nightly run, under Prefect or not (`_under_prefect`), its sources' counts printed (a
    failed run raises RunFailed: main())."""
    if _under_prefect(home):
        from flows.nightly import nightly

        result = nightly(home=str(home))
    else:
        from warehouse.runs import LocalEngine, run_nightly

        _log_to_stderr()
        result = run_nightly(LocalEngine(), str(home))
    _settle_prefect_events()
    for source, info in result["sources"].items():
        if info["status"] == "unchanged":
            print(f"  {source}: 无新数据 / nothing new")
        else:
            received, loaded, quarantined = info["received_rows"], info["loaded_rows"], info["quarantined_rows"]
            zh = f"接收 {received} 行, 加载 {loaded}, 隔离 {quarantined}"
            en = f"received {received}, loaded {loaded}, quarantined {quarantined}"
            if refused := info.get("refused_files"):  # whole files: `fazhi quarantine` lists them
                zh, en = f"{zh}, 拒收文件 {refused}", f"{en}, files refused {refused} (see `fazhi quarantine`)"
            print(f"  {source}: {zh} / {en}")


PREFECT_ENV = "FAZHI_PREFECT"  # 1: run under Prefect even without a configured server (a temporary one)


def _under_prefect(home: Path | None) -> bool:
    """Whether `fazhi run`, `rebuild`, `demo` and `rollup` run the Prefect flow (tracked by a Prefect
    server: states, artifacts, logs, the writer slot) or the same work without Prefect
    (warehouse/runs.py LocalEngine; the roll-up called directly). Under Prefect when a server is
    configured (PREFECT_API_URL, or the active Prefect profile names one), when the home runs its
    sources on Dask, or when FAZHI_PREFECT=1 asks for it; otherwise not, so the command does not
    start a temporary Prefect server (7-16 s) for a run nobody watches in a UI. docs/operations.md."""
    import os

    flag = os.environ.get(PREFECT_ENV, "").strip().lower()
    if flag in ("0", "false", "no"):
        return False
    if flag in ("1", "true", "yes") or _prefect_api_configured():
        return True
    if home is None:  # a roll-up: no home, no task runner
        return False
    from warehouse.config import load_settings

    return load_settings(home).orchestration.task_runner == "dask"


def _prefect_api_configured() -> bool:
    """PREFECT_API_URL in the environment or in the active profile of the Prefect home, read
    without importing Prefect (`prefect config set PREFECT_API_URL=…` writes it there)."""
    import os
    import tomllib

    if os.environ.get("PREFECT_API_URL"):
        return True
    prefect_home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    try:
        profiles = tomllib.loads((prefect_home / "profiles.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return False
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    return bool(profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL"))


def _log_to_stderr() -> None:
    """Without Prefect (which prints run logs itself), the library's `fazhi.*` log lines go to
    stderr as they did under a flow: counts, files, rules, never record values."""
    import logging

    logger = logging.getLogger("fazhi")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-7s | %(name)s - %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _settle_prefect_events() -> None:
    """Send the run's queued Prefect events now, so that Prefect's exit-time notices ("Still
    processing items…") come before the run's own last words instead of after them. Nothing to
    do for a run without Prefect."""
    if "prefect.events.worker" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker

    with suppress(Exception):  # events are best effort; the run's result stands
        EventsWorker.drain_all(timeout=10)


_OS_ERRORS = {  # what DuckDB says when the operating system refused a write (its errors are text)
    "No space left on device": "磁盘空间不足 / out of disk space",
    "Disk quota exceeded": "磁盘配额已满 / disk quota exceeded",
    "Read-only file system": "文件系统只读 / read-only file system",
    "Permission denied": "没有权限 / permission denied",
    "File too large": "文件超过系统限制 / file too large",
}


def os_error_message(exc: BaseException) -> str | None:
    """A run stopped by the operating system (a full disk, a read-only mount…), said as such with
    the OS's own words and the file, or None for any other error. Follows the exception's cause
    chain: DuckDB reports OS errors inside its own."""
    import errno

    seen = exc
    while seen is not None:
        text = str(seen)
        for words, said in _OS_ERRORS.items():
            if words in text:
                return f"{said}: {text}"
        if isinstance(seen, OSError) and seen.errno is not None:
            return f"操作系统错误 / operating-system error ({errno.errorcode.get(seen.errno, seen.errno)}): {text}"
        seen = seen.__cause__ or seen.__context__
    return None


def _say_run_failed(exc) -> None:
    """A flow's RunFailed: its summary (what the alert says), then each failed source's own
    message for the operator, or the cause (an operating-system error in its own words)."""
    from warehouse.alerts import cause_of
    from warehouse.errors import BadInput, HeldByAnother

    _settle_prefect_events()
    print(f"运行失败 / run failed: {exc}", file=sys.stderr)
    failed = {n: i for n, i in exc.sources.items() if i.get("status") in ("failed", "stopped")}
    for name, info in failed.items():
        print(f"  {name}: {info.get('message_en') or info.get('error')}", file=sys.stderr)
    cause = exc.__cause__
    if not failed:
        said = None if isinstance(cause, (BadInput, HeldByAnother)) else os_error_message(cause)
        print(f"  {said or cause}", file=sys.stderr)
    if "memory" in {cause_of(exc), *(i.get("cause") for i in failed.values())}:
        _say_memory_cap()
    _say_if_damaged(" ".join([str(cause), *(str(i.get("error")) for i in failed.values())]))


# What DuckDB says of a database file it cannot read: the header (not a DuckDB file), a block
# whose checksum fails, a file cut short.
_DAMAGED = ("Corrupt database file", "not a valid DuckDB database file", "Could not read enough bytes from file")


def _say_if_damaged(text: str) -> None:
    """Where to turn when DuckDB says a database file is damaged."""
    if any(words in text for words in _DAMAGED):
        print(
            "  数据库文件已损坏：见 docs/operations.md「A damaged database」 / a database file is damaged: "
            "docs/operations.md, 'A damaged database' (the published one is rebuilt by the next run; the "
            "working one is restored from a backup, or moved aside and built again from the sources)",
            file=sys.stderr,
        )


def _say_memory_cap() -> None:
    """What to do when DuckDB ran out of memory under its cap (cause class `memory`)."""
    import os

    from warehouse.db import MEMORY_LIMIT, WAREHOUSE_MEMORY_LIMIT

    cap = os.environ.get("FAZHI_DUCKDB_MEMORY_LIMIT")
    now = f"FAZHI_DUCKDB_MEMORY_LIMIT={cap}" if cap else f"{WAREHOUSE_MEMORY_LIMIT} / {MEMORY_LIMIT}"
    print(
        f"  DuckDB内存上限不足({now})：调高 FAZHI_DUCKDB_MEMORY_LIMIT / DuckDB's memory cap is too small "
        f"({now}; by default {WAREHOUSE_MEMORY_LIMIT} for the working database, {MEMORY_LIMIT} for a parse): "
        "raise FAZHI_DUCKDB_MEMORY_LIMIT (docs/operations.md, Alerts)",
        file=sys.stderr,
    )


def cmd_demo(args) -> int:
    from warehouse.config import resolve_home, write_demo_config
    from warehouse.demo.sample.generate import generate_sample

    home = resolve_home(args.home)
    _check_faults(args.faults)
    _check_sample_year(args.year)
    generate_sample(home / "sample", seed=args.seed, calibration=args.calibration)
    write_demo_config(home, http=True)
    print(f"样例数据 / sample data: {home / 'sample'}")
    from warehouse.config import load_settings

    with _demo_simulator(load_settings(home), args.faults):
        _run_flow(home)
    from warehouse.read.indicators import read_values, to_table

    settings = load_settings(home)
    print()
    print(to_table(read_values(settings.published_db, args.year), _terminal_width()))
    print(f"\n分析库 / analyst database: {settings.published_db}")
    return 0


def _check_sample_year(year: int) -> None:
    """The year `fazhi demo` prints must be one the sample holds (UnknownName), before the demo
    generates and runs it all."""
    from warehouse.demo.sample.generate import SAMPLE_YEARS
    from warehouse.read.lookup import check

    check("年度", "year", year, SAMPLE_YEARS, within=("样例数据的", "in the sample data"))


def _check_faults(faults: str) -> None:
    """Each comma-separated fault profile must be one the simulator knows (UnknownName)."""
    from warehouse.demo.simulator import PROFILES
    from warehouse.read.lookup import check

    for profile in [p.strip() for p in faults.split(",") if p.strip()] or ["none"]:
        check("故障模式", "fault profile", profile, PROFILES)


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

    from warehouse.demo.simulator import Simulator

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

    from warehouse.demo.simulator import serve

    _check_faults(args.faults)
    token = args.token or os.environ.get("FAZHI_SIMULATOR_TOKEN")
    if not token:
        token = secrets.token_urlsafe(24)
        print(f"令牌 / token (generated): {token}")
    serve(args.data, args.port, token, args.faults, state=args.state, seed=args.seed)
    return 0


def cmd_template(args) -> int:
    from warehouse.config import CONFIG_NAME, load_settings, resolve_home
    from warehouse.sources.templates import write_template

    home = resolve_home(args.home)
    # no home yet: the sample county's townships; a home's list must be there and usable (it fell
    # back to the sample county's when missing: another county's codes in the template)
    townships = load_settings(home).townships_csv if (home / CONFIG_NAME).exists() else None
    path = write_template(args.kind, args.out, townships)
    print(f"模板已写入 / template written: {path}")
    return 0


def cmd_run(args) -> int:
    from warehouse.config import load_settings, resolve_home

    home = resolve_home(args.home)
    _check_tokens(load_settings(home))  # clear errors before Prefect starts
    _run_flow(home)
    return 0


def cmd_check_config(args) -> int:
    """The home's fazhi.toml read into its schema (any unknown name or wrong value is refused, exit
    2), field overrides checked against the field mapping, then the effective settings printed."""
    from warehouse.alerts import check_webhook
    from warehouse.config import load_settings, resolve_home
    from warehouse.config_view import check_field_overrides, render
    from warehouse.townships import read_townships

    settings = load_settings(resolve_home(args.home))
    check_field_overrides(settings)
    check_webhook(settings.alerts)
    read_townships(settings.townships_csv)
    for source in settings.sources.values():
        source.check_folder()
    sys.stdout.write(render(settings))
    return 0


def _check_tokens(settings) -> None:
    """Every HTTP source needs its token (environment variable or Secret block) before the run
    starts: MissingToken naming the variables (`fazhi demo`'s home has none: the demo hands its
    own simulator's token to the run it starts)."""
    import os

    from warehouse.config import MissingToken

    missing = [
        s
        for s in settings.sources.values()
        if s.kind == "http" and not os.environ.get(s.http.token_env) and not s.http.token_secret_block
    ]
    if missing:
        names = ", ".join(f"{s.name}: {s.http.token_env}" for s in missing)
        raise MissingToken(
            f"缺少数据源访问令牌 {names}；请设置环境变量或在 fazhi.toml 中配置 token_secret_block"
            f"(演示目录请用 `fazhi demo` 运行，它自带模拟数据源) / no token for {names}: set the variable, or "
            "name a Prefect Secret block (token_secret_block) in fazhi.toml (a `fazhi demo` home is run by "
            "`fazhi demo`, which serves its own simulated sources)"
        )


def cmd_indicators(args) -> int:
    from warehouse.config import load_settings, resolve_home
    from warehouse.read.indicators import read_values, to_csv, to_json, to_table

    settings = load_settings(resolve_home(args.home))
    rows = read_values(settings.published_db, args.year, args.township, args.edition)
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

    from warehouse.config import load_settings, resolve_home
    from warehouse.read.indicators import display, pad, read_evidence

    settings = load_settings(resolve_home(args.home))
    values, records = read_evidence(settings.published_db, args.year, args.township, args.indicator)
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
    from warehouse.province import check_rollup, roll_up

    if _under_prefect(None):
        from flows.province import province_rollup

        check_rollup(args.county, args.out, args.region_code)  # before Prefect starts: a refusal is immediate
        rows = province_rollup([str(d) for d in args.county], str(args.out), args.region_code)
    else:
        rows = roll_up(args.county, args.out, args.region_code)  # it checks first
    print(f"区域汇总已写入 / region roll-up written to {args.out}: {len(args.county)} 个县(市) / counties, {rows} rows")
    return 0


def cmd_rebuild(args) -> int:
    from warehouse.config import load_settings, resolve_home

    home = resolve_home(args.home)
    load_settings(home)
    if _under_prefect(home):
        from flows.rebuild import year_end_rebuild

        result = year_end_rebuild(year=args.year, home=str(home))
    else:
        from warehouse.runs import LocalEngine, run_rebuild

        _log_to_stderr()
        result = run_rebuild(LocalEngine(), args.year, str(home))
    _settle_prefect_events()
    print(f"{result['note_zh']} / {result['note_en']}")
    return 0


def cmd_quarantine(args) -> int:
    from warehouse.config import load_settings, resolve_home
    from warehouse.read.quarantine import read_open, to_json, to_table

    settings = load_settings(resolve_home(args.home))
    rows = read_open(settings.published_db, args.source, args.township, tuple(settings.sources))
    print(to_json(rows) if args.format == "json" else to_table(rows))
    return 0


def cmd_accept_extract(args) -> int:
    import getpass
    from datetime import UTC, datetime

    from warehouse.acceptance import accept_extract
    from warehouse.config import load_settings, resolve_home
    from warehouse.db import open_work_db
    from warehouse.lock import writer_lock
    from warehouse.read.lookup import check

    settings = load_settings(resolve_home(args.home))
    check("数据源", "source", args.source, settings.sources, within=("", f"in {settings.home / 'fazhi.toml'}"))
    now = datetime.now(UTC).replace(tzinfo=None)
    with writer_lock(settings.home, f"accept-extract-{now:%Y%m%dT%H%M%S}", settings.lock_wait_seconds):
        con = open_work_db(settings.work_db)
        try:
            by = args.by or getpass.getuser()
            accepted = accept_extract(con, args.source, by, args.reason, now, batch_id=args.batch)
        finally:
            con.close()
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
    from warehouse.config import load_settings, resolve_home
    from warehouse.reports.township_report import write_township_report

    settings = load_settings(resolve_home(args.home))
    out = write_township_report(
        settings.published_db, args.year, args.township, args.out, args.edition, settings.report_template
    )
    print(f"报告草稿已写入 / report draft written: {out}")
    return 0


def cmd_export(args) -> int:
    from warehouse.config import load_settings, resolve_home
    from warehouse.reports.county_workbook import export_county

    settings = load_settings(resolve_home(args.home))
    out = export_county(settings.published_db, args.year, args.out, args.edition, args.format)
    print(f"已导出 / exported: {out}")
    return 0


def _terminal_width() -> int:
    import shutil

    return max(80, shutil.get_terminal_size((160, 40)).columns)


if __name__ == "__main__":
    sys.exit(main())
