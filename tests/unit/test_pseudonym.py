import hashlib
import hmac
import re

import duckdb

from warehouse.sources.pseudonym import PSEUDONYM_LENGTH, install_pseudonym_macro, pseudonym


def test_duckdb_hmac_matches_python_hmac_and_has_no_digits():
    con = duckdb.connect()
    install_pseudonym_macro(con, b"k" * 10)
    values = ["350481198001011234", "35048119850202223x", " 35040100001 "]
    got = [r[0] for r in con.execute("select pseudonym(v) from unnest($v) t(v)", {"v": values}).fetchall()]
    assert got == [pseudonym(v, b"k" * 10) for v in values]
    # the same HMAC-SHA256 as the standard library, re-spelled with letters
    expected = hmac.new(b"k" * 10, b"350481198001011234", hashlib.sha256).hexdigest()
    assert got[0] == expected.translate(str.maketrans("0123456789", "ghijklmnop"))[:PSEUDONYM_LENGTH]
    assert all(re.fullmatch(r"[a-p]{32}", g) for g in got)
    # ID numbers match whatever the case of the check letter and surrounding spaces
    assert got[1] == pseudonym("35048119850202223X", b"k" * 10)


def test_empty_values_stay_null_and_keys_differ():
    con = duckdb.connect()
    install_pseudonym_macro(con, b"key-one")
    assert con.execute("select pseudonym(null), pseudonym(''), pseudonym('  ')").fetchone() == (
        None,
        None,
        None,
    )
    a = con.execute("select pseudonym('350481198001011234')").fetchone()[0]
    install_pseudonym_macro(con, b"key-two")
    assert con.execute("select pseudonym('350481198001011234')").fetchone()[0] != a


def test_a_column_is_hashed_once_per_distinct_value_with_the_same_result():
    import pandas as pd

    from warehouse.sources.spreadsheet import _pseudonyms

    con = duckdb.connect()
    install_pseudonym_macro(con, b"k" * 10)
    values = ["张三", None, " 李四 ", "张三", "", "350481198001011234", "李四"]
    got, other = _pseudonyms(
        con, [pd.Series(values, dtype="string", index=range(10, 17)), pd.Series(["李四", None], dtype="string")]
    )
    assert list(got.index) == list(range(10, 17))
    assert [None if pd.isna(g) else g for g in got] == [
        pseudonym(v, b"k" * 10) if v and v.strip() else None for v in values
    ]
    assert [None if pd.isna(g) else g for g in other] == [pseudonym("李四", b"k" * 10), None]
