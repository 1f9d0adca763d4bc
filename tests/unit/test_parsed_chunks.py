"""A batch parsed to disk and validated in chunks gives exactly what one whole frame gives:
chunks never split a township (the uniqueness rules are per township), counts add up, failing
rows keep their positions. And spreadsheet cells become text column-wise exactly as one by one."""

from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pyarrow as pa
import pytest

from expectations.validate import validate_table
from tests.fixtures import mini
from warehouse.sources.landing import delivered_files, land
from warehouse.sources.parse import parse_batch, parser_for
from warehouse.sources.spreadsheet import _cell_text, cells_to_text
from warehouse.sources.township_files import FILES_TABLE, ISSUES_TABLE

KEY = b"test-key-not-secret"
PARAMS = {"township_codes": [mini.A, mini.B], "first_year": 2022, "last_year": 2026}
KINDS = {"enforcement": "json_pages", "mediation": "json_pages", "training": "xlsx", "returns": "xlsx"}


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    root = tmp_path_factory.mktemp("chunks")
    mini.build(root)
    return root, {s: land(s, delivered_files(root / s, k), root / "landing", {}) for s, k in KINDS.items()}


def _comparable(v):
    return v.results.sort_values("rule").reset_index(drop=True), v.failures.sort_values(["_row", "rule"])


@pytest.mark.parametrize("source", KINDS)
def test_parsed_on_disk_equals_the_frame_parse(batches, source):
    root, landed = batches
    on_disk = parse_batch(landed[source], KEY, root / "parsed" / source, files_per_group=1)
    frames = parser_for(source)(landed[source], KEY)
    assert set(on_disk) == set(frames)
    for table, df in frames.items():
        parsed = on_disk[table]
        assert parsed.rows == len(df) and (len(df) > 0 or table == ISSUES_TABLE)  # no issue in the mini files
        got = parsed.frame()
        assert list(got.index) == list(range(len(df)))  # `_row`: 0..n-1, sorted by township
        assert got["township_code"].is_monotonic_increasing
        key = [c for c in ("_source_file", "_row_number", "file_name", "rule") if c in df.columns]
        a = got.sort_values(key).reset_index(drop=True)[sorted(df.columns)].astype(str)
        b = df.sort_values(key).reset_index(drop=True)[sorted(df.columns)].astype(str)
        pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize("source", KINDS)
def test_chunked_validation_equals_whole_frame_validation(batches, source):
    root, landed = batches
    for table, parsed in parse_batch(landed[source], KEY, root / "chunked" / source).items():
        if table in (FILES_TABLE, ISSUES_TABLE):  # the record of the files: not validated
            continue
        chunks = list(parsed.chunks(1))  # as small as possible: one township per chunk
        assert len(chunks) == parsed.frame()["township_code"].nunique(dropna=False)
        for chunk in chunks:
            assert chunk["township_code"].nunique(dropna=False) == 1
        whole = validate_table(table, parsed.frame(), PARAMS)
        chunked = validate_table(table, parsed, PARAMS, chunk_rows=1)
        assert not chunked.failures.empty or table != "enforcement_act"  # the fixture's faulty acts
        for a, b in zip(_comparable(whole), _comparable(chunked), strict=True):
            pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
        assert chunked.batch_errors == whole.batch_errors


def test_chunks_repeating_values_reuse_remembered_runs_with_the_same_outcome(batches, monkeypatch):
    """A GX run on the distinct values of a part is remembered (expectations/validate.py
    _run_remembered): chunks meeting the same values with the same parameters run GX fewer
    times, and the validation is what it is without remembering."""
    from expectations import validate

    root, landed = batches
    (parsed,) = parse_batch(landed["enforcement"], KEY, root / "remembered").values()
    assert len(parsed.chunk_ranges(1)) >= 3
    calls = []
    run = validate._run
    monkeypatch.setattr(validate, "_run", lambda *args: calls.append(args[1]) or run(*args))
    monkeypatch.setattr(validate, "ONE_RUN_MAX_ROWS", 0)  # the parts' runs, remembered (small frames: one run)
    validate._REMEMBERED.clear()
    remembered = validate_table("enforcement_act", parsed, PARAMS, chunk_rows=1)
    remembered_calls, calls[:] = len(calls), []
    monkeypatch.setattr(validate, "REMEMBERED_ROWS", -1)  # nothing remembered
    every_run = validate_table("enforcement_act", parsed, PARAMS, chunk_rows=1)
    assert remembered_calls < len(calls) - 10
    assert not remembered.failures.empty
    for a, b in zip(_comparable(remembered), _comparable(every_run), strict=True):
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


@pytest.mark.parametrize("source", KINDS)
def test_a_small_frame_validated_in_one_gx_run_gives_the_same_validation(batches, source, monkeypatch):
    """A frame of at most ONE_RUN_MAX_ROWS rows has every per-row part of its suite validated by
    one GX run: far fewer runs, and the results, the failing rows (in the same order) and the
    batch errors of the validation part by part."""
    from expectations import validate

    root, landed = batches
    tables = parse_batch(landed[source], KEY, root / "one_run" / source)
    calls = []
    run = validate._run
    monkeypatch.setattr(validate, "_run", lambda *args: calls.append(args[1]) or run(*args))
    outcomes, limit = [], validate.ONE_RUN_MAX_ROWS
    for one_run_max_rows in (limit, 0):
        monkeypatch.setattr(validate, "ONE_RUN_MAX_ROWS", one_run_max_rows)
        validate._REMEMBERED.clear()
        calls.clear()
        outcomes.append(
            (
                {t: validate_table(t, p, PARAMS) for t, p in tables.items() if t not in (FILES_TABLE, ISSUES_TABLE)},
                list(calls),
            )
        )
    (one_run, one_run_calls), (by_part, by_part_calls) = outcomes
    assert validate._ROWS_PART in one_run_calls and validate._ROWS_PART not in by_part_calls
    assert len(one_run_calls) * 2 < len(by_part_calls)
    assert any(not v.failures.empty for v in one_run.values()) or source != "enforcement"
    for table, v in one_run.items():
        assert 0 < v.row_count <= limit
        pd.testing.assert_frame_equal(v.results, by_part[table].results)
        pd.testing.assert_frame_equal(v.failures, by_part[table].failures)
        assert v.batch_errors == by_part[table].batch_errors


@pytest.mark.parametrize("source", ["enforcement", "training"])
def test_configurations_built_once_per_run_give_the_same_validation(batches, source, monkeypatch):
    """Within a GX run each expectation's configuration is built once (expectations/
    configuration_memo.py), not on every read: far fewer built, the same results and failures."""
    from contextlib import nullcontext

    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    from expectations import configuration_memo, validate

    root, landed = batches
    built = []
    init = ExpectationConfiguration.__init__
    monkeypatch.setattr(
        ExpectationConfiguration, "__init__", lambda self, *a, **k: built.append(1) or init(self, *a, **k)
    )
    outcomes = []
    for memo in (configuration_memo.one_run, nullcontext):
        monkeypatch.setattr(configuration_memo, "one_run", memo)
        validate._REMEMBERED.clear()
        built.clear()
        tables = parse_batch(landed[source], KEY, root / "memo" / source / memo.__name__)
        outcomes.append(
            (
                {t: validate_table(t, p, PARAMS) for t, p in tables.items() if t not in (FILES_TABLE, ISSUES_TABLE)},
                len(built),
            )
        )
    (memoised, built_once), (every_read, built_every_read) = outcomes
    assert built_once * 3 < built_every_read
    assert any(not v.failures.empty for v in memoised.values()) or source != "enforcement"
    for table, v in memoised.items():
        for a, b in zip(_comparable(v), _comparable(every_read[table]), strict=True):
            pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
        assert v.batch_errors == every_read[table].batch_errors


def test_suites_are_built_without_serialising_the_gx_project_configuration(monkeypatch):
    """Each suite part adds a datasource, an asset and a batch definition to the ephemeral
    context. GX would serialise the whole project configuration to YAML on every one of them
    (into an in-memory store nothing reads); the context skips that, and still holds every part's
    datasource, asset and batch definition."""
    from great_expectations.data_context.store.configuration_store import ConfigurationStore

    from expectations import validate

    serialise = ConfigurationStore.serialize
    serialised = []
    monkeypatch.setattr(ConfigurationStore, "serialize", lambda self, v: serialised.append(1) or serialise(self, v))
    validate._suite_and_batch_definition.cache_clear()
    validate.warm_up()
    context, parts = validate._context(), 0
    for path in sorted(validate.SUITES_DIR.glob("*.json")):
        for part, _ in validate._parts(path.stem):
            suite, definition = validate._suite_and_batch_definition(path.stem, part)
            asset = context.data_sources.get(f"fazhi_{suite.name}").get_asset(suite.name)
            assert asset.get_batch_definition(f"{suite.name}_batch").name == definition.name
            assert context.suites.get(suite.name).expectations == suite.expectations
            parts += 1
    assert parts > 10
    assert serialised == []


def test_gx_gives_each_failing_row_without_writing_a_filter_of_them(batches, monkeypatch):
    """GX's COMPLETE results list every failing row's index, which the quarantine needs; the filter
    expression of those rows GX would also write (`unexpected_index_query`, filtering the frame
    again for each expectation) is asked not to be: nothing here reads it."""
    from expectations import validate

    root, landed = batches
    (parsed,) = parse_batch(landed["enforcement"], KEY, root / "no_query").values()
    results = []
    run = validate._run

    def kept(*args):
        outcomes = run(*args)
        results.extend(outcomes)
        return outcomes

    monkeypatch.setattr(validate, "_run", kept)
    validation = validate_table("enforcement_act", parsed.frame(), PARAMS)
    failing = [r.result for r in results if r.result.get("unexpected_index_list")]
    assert failing and not validation.failures.empty
    assert all("unexpected_index_query" not in r.result for r in results if "unexpected_count" in r.result)


def test_suites_hold_the_expectations_gx_add_expectation_keeps(tmp_path):
    """Every suite part is built with its expectations at once (expectations/validate.py
    _as_a_set): the same expectations, in the same order, as adding them one by one with GX's
    add_expectation, which leaves out one equal to an expectation before it (a duplicate in a
    registered suite is dropped here too) and keeps a second one of the same column and type."""
    import json

    import great_expectations as gx
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    from expectations import validate

    def as_written(expectations):  # the suite's own ids aside
        return [(c.type, c.kwargs, c.meta) for c in (e.configuration for e in expectations)]

    def one_by_one(exps):
        suite = gx.ExpectationSuite(name="one_by_one")
        for exp in exps:
            suite.add_expectation(ExpectationConfiguration(**exp).to_domain_obj())
        return as_written(suite.expectations)

    doc = json.loads((validate.SUITES_DIR / "enforcement_act.json").read_text(encoding="utf-8"))
    same_column_and_type = {}
    for exp in doc["expectations"]:
        same_column_and_type.setdefault((exp["type"], exp["kwargs"].get("column")), []).append(exp)
    assert any(len(v) > 1 for v in same_column_and_type.values())  # kept, not upserted
    registered = tmp_path / "enforcement_twice.json"
    registered.write_text(
        json.dumps(doc | {"name": "enforcement_twice", "expectations": doc["expectations"] + doc["expectations"][:3]}),
        encoding="utf-8",
    )
    validate.register_suite("enforcement_twice", registered)
    try:
        for table in [*sorted(p.stem for p in validate.SUITES_DIR.glob("*.json")), "enforcement_twice"]:
            exps = validate.load_suite_doc(table)["expectations"]
            for part, _ in (*validate._parts(table), (validate._ROWS_PART, ())):
                suite, _ = validate._suite_and_batch_definition(table, part)
                wanted = [
                    e
                    for e in exps
                    if validate._part_of(e)[0] == part
                    or (part == validate._ROWS_PART and validate._part_of(e)[0].startswith("columns:"))
                ]
                assert as_written(suite.expectations) == one_by_one(wanted), (table, part)
        twice, _ = validate._suite_and_batch_definition("enforcement_twice", validate._ROWS_PART)
        once, _ = validate._suite_and_batch_definition("enforcement_act", validate._ROWS_PART)
        assert len(twice.expectations) == len(once.expectations)
    finally:
        validate._SUITES.pop("enforcement_twice", None)


def test_gx_is_imported_on_a_thread_of_its_own_while_the_batch_is_parsed(tmp_path, monkeypatch):
    """parse_and_validate starts importing GX on a thread of its own before it parses the batch
    (the import overlaps the parse); the validation waits for that import and never runs a
    second one; a second batch starts none."""
    import threading

    from expectations import validate
    from tests.conftest import make_mini_home
    from warehouse import pipeline
    from warehouse.config import load_settings

    settings = load_settings(make_mini_home(tmp_path / "home"))
    pipeline.prepare_warehouse(settings)
    batches = [pipeline.land_source(settings, settings.sources[s]) for s in ("enforcement", "mediation")]
    events, started = [], threading.Event()

    def slow_import():  # GX is already imported here: an import that takes until the parse has run
        events.append(("import", threading.current_thread().name))
        started.set()
        assert parsed.wait(10)

    parsed = threading.Event()
    parse = pipeline.parse_batch

    def parse_batch(*args, **kwargs):
        assert started.wait(10)  # the import began before the parse
        out = parse(*args, **kwargs)
        events.append(("parsed", threading.current_thread().name))
        parsed.set()
        return out

    monkeypatch.setattr(validate, "_import_gx", slow_import)
    monkeypatch.setattr(validate, "_gx_imported", False)
    monkeypatch.setattr(validate, "_gx_importer", None)
    monkeypatch.setattr(pipeline, "parse_batch", parse_batch)
    prepared = [pipeline.parse_and_validate(settings, b) for b in batches]
    assert events == [
        ("import", "fazhi-gx-import"),
        ("parsed", threading.current_thread().name),
        ("parsed", threading.current_thread().name),
    ]
    assert all(p.tables and not p.stop_rule for p in prepared)


def test_remembered_runs_hold_a_bounded_number_of_rows(monkeypatch):
    """The oldest remembered runs are forgotten beyond REMEMBERED_TOTAL_ROWS rows; a run is
    reused only on the rows it ran on."""
    from expectations import validate

    monkeypatch.setattr(validate, "REMEMBERED_TOTAL_ROWS", 10)
    remembered = validate._Remembered()
    frames = [pd.DataFrame({"x": range(k, k + 4)}) for k in range(3)]
    for i, frame in enumerate(frames):
        remembered.put(("part", i), frame, [i])
    assert remembered.rows == 8 and list(remembered.runs) == [("part", 1), ("part", 2)]
    assert remembered.get(("part", 2), frames[2].copy()) == [2]
    assert remembered.get(("part", 2), frames[1]) is None  # the same key, other rows
    assert remembered.get(("part", 0), frames[0]) is None  # forgotten


def test_identifier_lists_gathered_in_pieces_equal_one_piece(batches, tmp_path, monkeypatch):
    """The officers' certificate numbers, hashed once per distinct value and gathered back into
    each record's list a piece of records at a time (bounded memory at national scale), give
    the same lists in the same order as one piece."""
    import warehouse.sources.json_pages

    root, landed = batches
    whole = parse_batch(landed["enforcement"], KEY, tmp_path / "whole")["enforcement_act"].frame()
    monkeypatch.setattr(warehouse.sources.json_pages, "LIST_PIECE_ROWS", 1)
    pieces = parse_batch(landed["enforcement"], KEY, tmp_path / "pieces")["enforcement_act"].frame()
    pd.testing.assert_frame_equal(whole, pieces)
    lists = whole["officer_certificate_keys"].dropna()
    assert len(whole) > 3 and (lists.map(len) >= 2).sum() > 3  # several records, several officers each
    assert lists.map(lambda keys: len(set(keys)) == len(keys)).all()


def test_duplicates_within_a_township_are_caught_across_chunks(batches, tmp_path):
    from warehouse.sources.parsed import ParsedSink

    root, landed = batches
    df = parse_batch(landed["training"], KEY, root / "dups")["training_session"].frame()
    other = df.assign(township_code=mini.B)  # a second township, so there are two chunks
    dup = df.iloc[[0]]
    sink = ParsedSink(tmp_path / "p")
    sink.add_frame("training_session", pd.concat([df, dup, other], ignore_index=True))
    (table,) = sink.finish().values()
    assert len(list(table.chunks(1))) == 2
    v = validate_table("training_session", table, PARAMS, chunk_rows=1)
    got = table.frame()
    doubled = got.index[got["township_code"].eq(mini.A) & got["session_id"].eq(dup["session_id"].iloc[0])]
    assert len(doubled) == 2
    assert set(v.failures.loc[v.failures["rule"] == "TRS-R02", "_row"]) == set(doubled)


def test_cells_become_text_column_wise_as_one_by_one():
    cells = [None, "", "  ", "abc", " x ", 1.0, 1.5, 350481198502022208.0, 45000, True, 0.0, -2.0]
    cells += [datetime(2023, 3, 5), datetime(2023, 3, 5, 10, 1), date(2023, 1, 2)]
    got = cells_to_text(pd.Series(cells, dtype=object)).tolist()
    assert got == [_cell_text(v) for v in cells]
    for column in ([None, "", "  ", "abc", " x ", "张三"], [None, None], ["", " "], []):  # text only, or empty
        got = cells_to_text(pd.Series(column, dtype=object)).tolist()
        assert got == [_cell_text(v) for v in column]


def test_cells_become_normalised_text_in_one_pass_as_in_two():
    from warehouse.sources.spreadsheet import normal_text, normalise_text

    for column in (
        ["Ｓ１", " S1 ", "\u3000", "", None, "张三", "S1"],  # text only: full-width, blank, repeats
        ["３", 3.0, 3, " 3 ", None, "", 2.5, datetime(2023, 3, 5), True],  # mixed cell types
        [None, None],
        [],
    ):
        cells = pd.Series(column, dtype=object)
        pd.testing.assert_series_equal(normal_text(cells), normalise_text(cells_to_text(cells)))


@pytest.fixture
def pool_for_any_chunks(monkeypatch):
    """Worker processes even for the mini county's few chunks (else started from 8 chunks),
    started by the test itself: no pool runs before it, and the test's pool is shut down after."""
    from expectations import validate

    monkeypatch.setattr(validate, "POOL_MIN_CHUNKS", 2)
    monkeypatch.setattr(validate, "_POOL", None)
    yield
    if validate._POOL is not None:
        validate._POOL[1].shutdown()


def test_chunks_validated_by_worker_processes_give_the_same_result(batches, pool_for_any_chunks):
    root, landed = batches
    (parsed,) = parse_batch(landed["enforcement"], KEY, root / "workers").values()
    assert len(parsed.chunk_ranges(1)) >= 2
    serial = validate_table("enforcement_act", parsed, PARAMS, chunk_rows=1)
    parallel = validate_table("enforcement_act", parsed, PARAMS, chunk_rows=1, workers=2)
    from expectations.validate import _pool_running

    assert _pool_running(2)  # the chunks did go to worker processes (none ran before: the fixture)
    assert not serial.failures.empty
    for a, b in zip(_comparable(serial), _comparable(parallel), strict=True):
        pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def test_each_run_checks_townships_against_its_own_list_in_workers_too(batches, pool_for_any_chunks):
    """The township list reaches GX as a named set (expectations/custom.py): two lists in one
    process never mix, and worker processes check against the list they were sent."""
    root, landed = batches
    (parsed,) = parse_batch(landed["enforcement"], KEY, root / "named-sets").values()
    frame = parsed.frame()
    only_a = {"township_codes": [mini.A]}

    def r07_rows(validation):
        return set(validation.failures.loc[validation.failures["rule"] == "ENF-R07", "_row"])

    outside_a = set(frame.index[frame["township_code"].notna() & frame["township_code"].ne(mini.A)])
    outside_both = set(frame.index[frame["township_code"].notna() & ~frame["township_code"].isin([mini.A, mini.B])])
    assert outside_a > outside_both  # township B's rows tell the two lists apart
    assert r07_rows(validate_table("enforcement_act", parsed, PARAMS, chunk_rows=1)) == outside_both
    assert r07_rows(validate_table("enforcement_act", parsed, only_a, chunk_rows=1)) == outside_a
    assert r07_rows(validate_table("enforcement_act", parsed, only_a, chunk_rows=1, workers=2)) == outside_a
    assert r07_rows(validate_table("enforcement_act", parsed, PARAMS, chunk_rows=1, workers=2)) == outside_both


@pytest.fixture
def parallel_for_any_bytes(monkeypatch):
    """Worker processes for the mini county's small workbooks (else parsed in this process)."""
    import warehouse.sources.parse

    monkeypatch.setattr(warehouse.sources.parse, "PARALLEL_MIN_BYTES", 0)


def test_groups_parsed_by_worker_processes_give_the_same_tables(batches, parallel_for_any_bytes):
    root, landed = batches
    assert len(landed["returns"].files) == 2  # one group each, two workers
    serial = parse_batch(landed["returns"], KEY, root / "serial", files_per_group=1)
    parallel = parse_batch(landed["returns"], KEY, root / "parallel", files_per_group=1, workers=2)
    for table, parsed in serial.items():
        pd.testing.assert_frame_equal(parsed.frame(), parallel[table].frame())
    assert not list((root / "parallel").glob("group-*"))  # each worker's part is removed once taken


def test_a_small_batch_is_parsed_in_this_process_whatever_the_workers(batches, tmp_path, monkeypatch):
    import warehouse.sources.parse

    def no_processes(*args, **kwargs):
        raise AssertionError("worker processes started for a small batch")

    root, landed = batches
    monkeypatch.setattr(warehouse.sources.parse, "ProcessPoolExecutor", no_processes)
    parsed = parse_batch(landed["returns"], KEY, tmp_path / "small", files_per_group=1, workers=2)
    assert parsed["annual_return_item"].rows > 0
    monkeypatch.setattr(warehouse.sources.parse, "PARALLEL_MIN_BYTES", 0)
    with pytest.raises(AssertionError, match="worker processes started"):
        parse_batch(landed["returns"], KEY, tmp_path / "large", files_per_group=1, workers=2)


def test_a_bad_file_in_a_worker_process_is_refused_alone_by_name(batches, tmp_path, parallel_for_any_bytes):
    from dataclasses import replace

    from warehouse.sources.landing import LandedFile

    root, landed = batches
    bad = tmp_path / "350481103_2023_年度报表.xlsx"
    bad.write_bytes(b"PK\x03\x04 not really a workbook")
    batch = replace(landed["returns"], files=[*landed["returns"].files, LandedFile(bad.name, bad, "x", 24)])
    parsed = parse_batch(batch, KEY, tmp_path / "p", files_per_group=1, workers=2)
    good = parse_batch(landed["returns"], KEY, tmp_path / "good")["annual_return_item"].frame()
    pd.testing.assert_frame_equal(parsed["annual_return_item"].frame(), good)  # the other files load
    files = parsed[FILES_TABLE].frame().set_index("file_name")["status"].to_dict()
    assert files[bad.name] == "refused" and sorted(set(files.values())) == ["parsed", "refused"]
    (issue,) = parsed[ISSUES_TABLE].frame().to_dict("records")
    assert (issue["file_name"], issue["rule"], issue["level"]) == (bad.name, "file-format", "refused")
    # refused by the workbook guard before calamine opens it (warehouse/sources/workbook_guard.py)
    assert "已损坏" in issue["message_zh"] and issue["township_code"] == "350481103"


@pytest.mark.parametrize(
    "files, per_group, workers, sizes",
    [
        (1100, 500, 2, [275] * 4),  # not 500 + 500 + 100: the two workers finish together
        (1100, 500, 1, [367, 367, 366]),
        (15, 500, 2, [15]),  # one group stays in this process (no worker processes started)
        (3, 1, 2, [1, 1, 1]),
        (0, 500, 2, []),
    ],
)
def test_spreadsheet_groups_balance_over_the_workers(files, per_group, workers, sizes):
    from warehouse.sources.parse import _group_size

    size = _group_size(files, per_group, workers)
    assert size <= per_group
    assert [min(size, files - start) for start in range(0, files, size)] == sizes


@pytest.mark.parametrize(("start", "stop"), [(0, 100), (5, 23), (14, 21), (98, 100), (0, 1), (20, 20)])
def test_a_range_of_rows_is_read_by_position_across_row_groups(tmp_path, start, stop):
    """A parsed table does not store `_row`: a row's position in the file is its number, and a
    range is read from the row groups that hold it (here 7 rows each)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from warehouse.sources.parsed import ParsedTable

    path = tmp_path / "t.parquet"
    pq.write_table(pa.table({"n": range(100), "text": [f"r{i}" for i in range(100)]}), path, row_group_size=7)
    assert pq.ParquetFile(path).metadata.num_row_groups == 15
    table = ParsedTable("t", path, 100)
    got = table.read(start, stop)
    assert list(got.index) == list(range(start, stop))
    assert got["n"].tolist() == list(range(start, stop)) and got["text"].tolist() == [
        f"r{i}" for i in range(start, stop)
    ]


_FRAME_COLUMNS = {  # the dtypes the parsers' frames hold, and what falls back to DuckDB's cast
    "text_object": pd.Series(["a", None, "丙"], dtype=object),
    "text_str": pd.Series(["x", None, "y"], dtype="str"),
    "text_arrow": pd.Series(["１", None, "b"], dtype="string[pyarrow]"),
    "nothing": pd.Series([None, None, None], dtype=object),
    "integers_as_objects": pd.Series([2023, None, -5], dtype=object),
    "nullable_integers": pd.Series([1, None, 3], dtype="Int64"),
    "hours": pd.Series([1.5, float("nan"), 2.0], dtype="float64"),
    "_row_number": pd.Series([3, 4, 5], dtype="int32"),
    "report_year": pd.Series([2023, 2023, 2024], dtype="int64"),
    "found": pd.Series([True, False, True], dtype="bool"),
}
_FALLBACKS = {  # a column Arrow would spell otherwise: DuckDB's cast decides, as before
    "floats_as_objects": pd.Series([1.0, None, 2.5], dtype=object),
    "mixed": pd.Series(["a", 1, None], dtype=object),
    "flags_as_objects": pd.Series([True, None, False], dtype=object),
}


@pytest.mark.parametrize("fallback", [None, *_FALLBACKS])
def test_a_frame_is_written_as_duckdb_types_and_spells_it(tmp_path, fallback):
    """write_frame (a worker's group) and add_frame (a group parsed here) give each column the
    type and text DuckDB's cast gives it, whether Arrow writes the frame or DuckDB does."""
    import duckdb

    from warehouse.sources.parsed import ParsedSink, _typed_arrow, _typed_columns, write_frame

    df = pd.DataFrame(_FRAME_COLUMNS | ({fallback: _FALLBACKS[fallback]} if fallback else {}))
    assert (_typed_arrow(df) is None) == bool(fallback)
    con = duckdb.connect()
    con.register("incoming", df)
    expected_path = tmp_path / "expected.parquet"
    con.execute(f"copy (select {_typed_columns(df)} from incoming) to '{expected_path}' (format parquet)")
    sink = ParsedSink(tmp_path / "sink")
    sink.add_frame("t", df)
    sink.add_parquet("u", write_frame(df, tmp_path / "written.parquet"))
    parsed = sink.finish()
    expected = con.execute(f"select * from '{expected_path}' order by _row_number").fetchall()
    expected_types = con.execute(f"describe select * from '{expected_path}'").fetchall()
    assert len(expected) == 3 and expected[0][0] == "a" and expected[0][4] == "2023"
    for table in ("t", "u"):
        path = parsed[table].path
        assert con.execute(f"describe select * from '{path}'").fetchall() == expected_types
        assert con.execute(f"select * from '{path}' order by _row_number").fetchall() == expected


DEFERRED_CHECK = """
import json, sys
from pathlib import Path
from tests.conftest import make_mini_home
from warehouse import pipeline
from warehouse.config import load_settings
from expectations import deferred_modules

settings = load_settings(make_mini_home(Path(sys.argv[1])))
pipeline.prepare_warehouse(settings)
batches = [pipeline.land_source(settings, s) for s in settings.sources.values()]
prepared = [pipeline.parse_and_validate(settings, b) for b in batches if b]
out = {"validated": sum(p.received_rows for p in prepared),
       "after_validation": {n: deferred_modules.loaded(n) for n in deferred_modules.DEFERRED}}
from scipy import stats
import altair.vegalite
out["entropy"] = float(stats.entropy([0.5, 0.5], [0.9, 0.1]))
out["chart"] = type(altair.Chart).__name__
out["after_use"] = {n: deferred_modules.loaded(n) for n in deferred_modules.DEFERRED}
out["same_module"] = sys.modules["scipy.stats"] is sys.modules["scipy"].stats
print(json.dumps(out))
"""


def test_gx_validates_every_source_without_importing_the_modules_it_defers(tmp_path):
    """altair and scipy.stats, which GX imports for an expectation no suite uses, are not imported
    by a process that imports GX and validates every source of the mini county
    (expectations/deferred_modules.py); code that uses them still gets the real modules."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = os.environ | {"PYTHONPATH": str(root), "FAZHI_HMAC_KEY": "k" * 32}
    done = subprocess.run(
        [sys.executable, "-c", DEFERRED_CHECK, str(tmp_path / "home")],
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["validated"] > 0
    assert out["after_validation"] == {"altair": False, "scipy.stats": False}
    assert abs(out["entropy"] - 0.5108256237659907) < 1e-12
    assert out["chart"] == "type"
    assert out["after_use"] == {"altair": True, "scipy.stats": True}
    assert out["same_module"] is True


def test_distinct_rows_numbered_by_arrow_and_once_per_column_group_rows_as_pandas_does():
    """_distinct numbers a text column in Arrow by its dictionary encoding and several columns by
    numbering each row's numbers, each column once per chunk (`numbered`): the rows it groups
    and their order of first appearance are those of pandas' groupby, missing values included."""
    from expectations.validate import _distinct

    text = pd.Series(["b", None, "a", "b", None, "a", "c", "b"], dtype="string[pyarrow]", name="text")
    text = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([text.array[:3], text.array[3:]])), name="text")
    number = pd.Series([1.0, float("nan"), 1.0, 1.0, float("nan"), 2.0, 1.0, 1.0], name="number")
    day = pd.Series(["2023-01-01"] * 4 + [None] * 4, dtype="string[pyarrow]", name="day")
    frame = pd.concat([text, number, day], axis=1)
    numbered: dict = {}
    for columns in (["text"], ["number"], ["text", "number"], ["number", "day", "text"]):
        data = frame[columns]
        expected = data.groupby(columns, dropna=False, sort=False).ngroup().to_numpy()
        for cache in (numbered, None):  # the columns numbered by an earlier part, or anew
            distinct, of_row, _ = _distinct(data, cache)
            # the same rows grouped together, the groups' rows as written
            assert len(distinct) == expected.max() + 1 == len(data.drop_duplicates())
            assert all(len({e for e, o in zip(expected, of_row, strict=True) if o == k}) == 1 for k in set(of_row))
            pd.testing.assert_frame_equal(
                distinct.iloc[of_row].reset_index(drop=True), data.reset_index(drop=True), check_index_type=False
            )
    assert set(numbered) == {"text", "number", "day"}
    assert numbered["text"].tolist() == [0, 1, 2, 0, 1, 2, 3, 0]  # Arrow's numbers across its two chunks
