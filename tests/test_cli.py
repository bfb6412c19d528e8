"""The command line as a user runs it: exit codes, messages, no tracebacks."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from sopforecast.cli import main


def _run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sopforecast", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def _sales(tmp_path, **changes) -> str:
    ds = pd.date_range("2022-01-01", periods=24, freq="MS").strftime("%Y-%m-%d")
    frame = pd.DataFrame({"sku": ["A"] * 24 + ["B"] * 24, "ds": list(ds) * 2, "qty": range(48)})
    for col, (row, value) in changes.items():
        frame[col] = frame[col].astype(object)
        frame.loc[row, col] = value
    path = tmp_path / "sales.csv"
    frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    ("changes", "args", "expected"),
    [
        ({}, ["--data", "nowhere.csv"], "nowhere.csv: file not found"),
        ({}, ["--target-col", "sales"], "missing column(s) ['sales']"),
        ({"ds": (3, "March")}, [], "column 'ds' has values that are not dates"),
        ({"qty": (3, "about 5")}, [], "column 'qty' must hold numbers"),
        ({"qty": (3, -5)}, [], "negative value(s)"),
        ({"ds": (3, "2022-01-01")}, [], "rows share a series and period"),
        ({"ds": (3, "2022-04-09")}, [], "off the 'MS' calendar"),
        ({}, ["--freq", "D"], "Set freq to MS. (option --freq)"),
        ({}, ["--min-length", "36", "--short-series", "error"], "fewer than 36 periods"),
        ({"qty": (3, "")}, [], "column 'qty' is empty in 1 row(s)"),
        ({}, ["--freq", "monthly"], "unknown frequency 'monthly'"),
    ],
)
def test_bad_input_exit_code_2_without_traceback(tmp_path, capsys, changes, args, expected):
    path = _sales(tmp_path, **changes)
    code = main(["validate", "--data", path, "--id-col", "sku", "--target-col", "qty", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert expected in " ".join(err.split())
    assert "Traceback" not in err


def test_console_script_exit_code_and_clean_stderr(tmp_path):
    path = _sales(tmp_path, qty=(3, -5))
    proc = _run("validate", "--data", path, "--id-col", "sku", "--target-col", "qty")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "negative value(s)" in proc.stderr


def test_validate_prints_summary_and_writes_output(tmp_path, capsys):
    path = _sales(tmp_path)
    out = tmp_path / "clean.parquet"
    code = main(["validate", "--data", path, "--id-col", "sku", "--target-col", "qty", "--output", str(out)])
    printed = " ".join(capsys.readouterr().out.split())
    assert code == 0 and "2 series, 48 rows" in printed
    assert pd.read_parquet(out).columns[:3].tolist() == ["unique_id", "ds", "y"]


def test_quiet_silences_logs(tmp_path, capsys):
    path = _sales(tmp_path)
    main(["--quiet", "validate", "--data", path, "--id-col", "sku", "--target-col", "qty"])
    assert "Read 48 rows" not in capsys.readouterr().err
    main(["validate", "--data", path, "--id-col", "sku", "--target-col", "qty"])
    assert "Read 48 rows" in capsys.readouterr().err


def test_usage_error_exit_code(capsys):
    assert main(["validate"]) == 2
    assert "Missing option '--data'" in capsys.readouterr().err
