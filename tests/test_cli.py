"""The command line as a user runs it: exit codes, messages, no tracebacks."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
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


# --- first use: an empty work directory, dates as exports write them, workbooks -----------


@pytest.mark.parametrize(
    "command",
    [["runs"], ["runs", "--pipeline", "tiny"], ["compare", "--experiment", "tiny"]],
    ids=["runs", "runs-pipeline", "compare"],
)
@pytest.mark.parametrize("exists", [True, False], ids=["empty-dir", "no-dir"])
def test_read_only_commands_without_a_store_create_nothing(tmp_path, capsys, monkeypatch, command, exists):
    workdir = tmp_path / "empty"
    if exists:
        workdir.mkdir()
    monkeypatch.chdir(tmp_path)  # the default ./sopforecast-work must stay absent too
    monkeypatch.delenv("SOPFORECAST_HOME", raising=False)
    assert main([*command, "--workdir", str(workdir)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"no sopforecast store at {workdir};" in err and "Traceback" not in err
    assert "run 'sopforecast demo' or 'sopforecast run PIPELINE.yaml' to create one" in err
    assert "(option --workdir)" in err
    assert sorted(tmp_path.rglob("*")) == ([workdir] if exists else [])


def test_read_only_commands_find_the_missing_store_through_the_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SOPFORECAST_HOME", str(tmp_path / "home"))
    assert main(["runs"]) == 2
    assert f"no sopforecast store at {tmp_path / 'home'}" in capsys.readouterr().err
    # a store with MLflow's database but no run history yet: the missing part is named
    (tmp_path / "home" / "mlflow").mkdir(parents=True)
    (tmp_path / "home" / "mlflow" / "mlflow.db").touch()
    assert main(["runs"]) == 2
    assert "no sopforecast.db in the sopforecast store" in " ".join(capsys.readouterr().err.split())
    assert sorted(p.name for p in (tmp_path / "home").rglob("*")) == ["mlflow", "mlflow.db"]
    # compare on a tracking URI whose SQLite file is missing
    missing = tmp_path / "elsewhere" / "mlflow.db"
    assert main(["compare", "-e", "tiny", "--tracking-uri", f"sqlite:///{missing}"]) == 2
    assert f"no MLflow store at {missing}" in " ".join(capsys.readouterr().err.split())
    assert not missing.parent.exists()


def _monthly(tmp_path, cells, name="erp.csv") -> str:
    frame = pd.DataFrame({"sku": ["A"] * 24 + ["B"] * 24, "ds": list(cells) * 2, "qty": range(1, 49)})
    frame.to_csv(tmp_path / name, index=False)
    return str(tmp_path / name)


MONTHS = pd.date_range("2021-01-01", periods=24, freq="MS")


def test_day_first_dates_ask_for_the_date_format(tmp_path, capsys):
    path = _monthly(tmp_path, MONTHS.strftime("%d/%m/%Y"))
    args = ["validate", "--data", path, "--id-col", "sku", "--target-col", "qty"]
    assert main(args) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "column 'ds' has dates such as '01/02/2021'" in err and "Traceback" not in err
    assert "Set date_format to '%d/%m/%Y' if the day comes first" in err and "(option --date-format)" in err
    assert main([*args, "--date-format", "%d/%m/%Y"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "2 series, 48 rows, 2021-01-01 to 2022-12-01 (MS)" in out


@pytest.mark.parametrize(
    "strftime",
    ["%Y-%m-%dT%H:%M:%S+01:00", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S"],
    ids=["offset", "Z", "time"],
)
def test_forecast_reads_dates_with_time_and_offset(tmp_path, capsys, strftime):
    """The offset form used to stop `forecast` with a raw pandas TypeError (tz-aware to naive)."""
    path = _monthly(tmp_path, MONTHS.strftime(strftime))
    out = tmp_path / "fc.csv"
    args = ["forecast", "--data", path, "--id-col", "sku", "--target-col", "qty", "--models", "naive"]
    assert main([*args, "--horizon", "2", "--output", str(out)]) == 0, capsys.readouterr().err
    assert pd.read_csv(out)["ds"].unique().tolist() == ["2023-01-01", "2023-02-01"]


def test_missing_excel_sheet_lists_the_sheets(tmp_path, capsys):
    frame = pd.read_csv(_monthly(tmp_path, MONTHS.strftime("%Y-%m-%d")))
    with pd.ExcelWriter(tmp_path / "erp.xlsx") as writer:
        frame.to_excel(writer, sheet_name="Sales 2021", index=False)
        frame.head(0).to_excel(writer, sheet_name="Notes", index=False)
    args = ["validate", "--data", str(tmp_path / "erp.xlsx"), "--id-col", "sku", "--target-col", "qty"]
    assert main([*args, "--sheet", "Sales"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "erp.xlsx: no sheet 'Sales' in the workbook. Its sheets: ['Sales 2021', 'Notes']" in err
    assert "(option --sheet)" in err and "Traceback" not in err
    assert main([*args, "--sheet", "Sales 2021"]) == 0
    assert main([*args, "--sheet", "0"]) == 0


@pytest.mark.slow  # a full demo for one message (22 s): CI keeps to 20 minutes
def test_first_run_on_a_fresh_store_says_nothing_about_existing_models(tmp_path):
    """MLflow's "Registered model ... already exists" came from mlflow.register_model after
    the registry had created the model; the store is created once, through the client."""
    days = pd.date_range("2021-01-01", periods=36, freq="MS")
    sales = pd.DataFrame({"sku": np.repeat(["A", "B"], 36), "month": np.tile(days, 2), "qty": range(10, 82)})
    sales.to_csv(tmp_path / "sales.csv", index=False)
    (tmp_path / "tiny.yaml").write_text(
        "name: tiny\n"
        "data: {path: sales.csv, id_col: sku, time_col: month, target_col: qty, freq: MS}\n"
        "forecast: {horizon: 3, models: [naive, snaive], windows: 1}\n"
    )
    work = str(tmp_path / "work")
    proc = _run("run", str(tmp_path / "tiny.yaml"), "--workdir", work)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "first version" in proc.stdout  # registered, v1 champion
    assert "already exists" not in output and "Successfully registered" not in output
    # the read-only commands read the store it created
    runs = _run("runs", "--workdir", work)
    assert runs.returncode == 0 and "FINISHED" in runs.stdout
    board = _run("compare", "--experiment", "tiny", "--workdir", work)
    assert board.returncode == 0 and "Naive" in board.stdout
