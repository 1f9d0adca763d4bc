"""Another profile is reproduced end to end (without Prefect); an impossible one is refused."""

from __future__ import annotations

import pytest

from tests.conftest import query, run_steps

PROFILE = """\
targets:
  - township: 安砂镇
    year: 2022
    values:
      ENF01: 80
      ENF03: 33
      MED02: 0.95
      TRN01: 4
      OGI03: ">=150"
  - township: "350481001"
    year: 2024
    values:
      MED01: 400
      ENF07: [0.5, 0.6]
"""


def test_custom_profile_is_reproduced(tmp_path):
    from warehouse.config import write_demo_config
    from warehouse.demo.sample.generate import generate_sample

    profile = tmp_path / "profile.yaml"
    profile.write_text(PROFILE, encoding="utf-8")
    home = tmp_path / "home"
    generate_sample(home / "sample", calibration=profile)
    write_demo_config(home)
    run = run_steps(home)
    got = {
        (y, t, c): (v, q)
        for y, t, c, v, q in query(
            run.settings.published_db,
            "select year, township_code, indicator_code, value, qualifier from mart.indicator_value",
        )
    }
    assert got[(2022, "350481102", "ENF01")][0] == 80
    assert got[(2022, "350481102", "ENF03")][0] == 33
    assert got[(2022, "350481102", "MED02")][0] == pytest.approx(0.95, abs=1e-12)
    assert got[(2022, "350481102", "TRN01")][0] == 4
    assert got[(2022, "350481102", "OGI03")] == (150, ">=")
    assert got[(2024, "350481001", "MED01")][0] == 400
    assert 0.5 <= got[(2024, "350481001", "ENF07")][0] < 0.6
    # the default profile still holds underneath
    assert got[(2023, "350481101", "ENF01")][0] == 52


@pytest.mark.parametrize(
    "values, words",
    [
        ("ENF03: 60\n      ENF01: 52", ["ENF03"]),
        ("MED02: 1.5", ["MED02"]),
        ("XYZ99: 3", ["XYZ99"]),
    ],
)
def test_impossible_profile_is_refused_naming_the_entry(tmp_path, capsys, values, words):
    from flows.cli import main

    profile = tmp_path / "bad.yaml"
    profile.write_text(
        f"targets:\n  - township: 贡川镇\n    year: 2023\n    values:\n      {values}\n", encoding="utf-8"
    )
    assert main(["sample", "--out", str(tmp_path / "out"), "--calibration", str(profile)]) == 2
    err = capsys.readouterr().err
    assert "贡川镇" in err or "350481101" in err
    for w in words:
        assert w in err
    assert not (tmp_path / "out" / "targets.json").exists()


def test_unknown_township_is_refused(tmp_path, capsys):
    from flows.cli import main

    profile = tmp_path / "bad.yaml"
    profile.write_text(
        "targets:\n  - township: 不存在镇\n    year: 2023\n    values:\n      ENF01: 3\n", encoding="utf-8"
    )
    assert main(["sample", "--out", str(tmp_path / "out"), "--calibration", str(profile)]) == 2
    assert "不存在镇" in capsys.readouterr().err
