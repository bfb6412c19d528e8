"""Ids are text end to end: ``00101``, ``0101`` and ``101`` are three series, and ``NA``,
``None``, ``NULL`` and ``nan`` name series, from the file read to the forecast written."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest

from sopforecast.cli import main
from sopforecast.config import DataConfig
from sopforecast.data.io import read_source, type_columns
from sopforecast.data.schema import validate
from sopforecast.pipeline.runner import run_pipeline
from sopforecast.pipeline.spec import load_pipeline
from sopforecast.pipeline.tracking import resolve_store
from sopforecast.workdir import Workdir

IDS = ["00101", "0101", "101", "NA", "None", "NULL", "nan"]
# a region called NA beside EU: the hierarchical ids
REGIONS = {"00101": "NA", "0101": "NA", "101": "NA", "NA": "EU", "None": "EU", "NULL": "EU", "nan": "EU"}
MONTHS = pd.date_range("2022-01-01", periods=30, freq="MS")


def _history(ids=IDS, months=MONTHS) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "region": np.repeat([REGIONS[i] for i in ids], len(months)),
            "sku": np.repeat(ids, len(months)),
            "month": np.tile(months.strftime("%Y-%m-%d"), len(ids)),
            "qty": rng.integers(20, 80, len(ids) * len(months)),
        }
    )


def _write(frame: pd.DataFrame, path) -> str:
    if str(path).endswith(".xlsx"):
        frame.to_excel(path, index=False)
    elif str(path).endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return str(path)


def _written_ids(path) -> set[str]:
    """The ids of a forecast file as text, without pandas' guessing."""
    return set(pd.read_csv(path, dtype=str, keep_default_na=False)["unique_id"])


# --- the reader ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".parquet", ".txt"])
def test_reader_keeps_ids_as_written(tmp_path, suffix):
    raw = read_source(_write(_history(), tmp_path / f"sales{suffix}"))
    assert raw["sku"].drop_duplicates().tolist() == IDS
    assert set(raw["region"]) == {"NA", "EU"}
    assert pd.api.types.is_numeric_dtype(raw["qty"])


def test_numbers_stay_numbers_and_their_markers_missing(tmp_path):
    path = tmp_path / "sales.csv"
    path.write_text(
        "sku,ds,y,price,promo\nA,2024-01-01,NA,1.5,true\nB,2024-01-01,,NULL,false\nC,2024-01-01,3,2,true\n"
    )
    raw = read_source(path)
    assert raw["y"].isna().tolist() == [True, True, False] and raw["y"].dtype == float
    assert raw["price"].isna().tolist() == [False, True, False]
    assert raw["promo"].tolist() == [True, False, True] and raw["promo"].dtype == bool


def test_numbers_with_leading_zeros_are_codes():
    cells = pd.DataFrame({"code": ["007", "12"], "long": ["12345678901234567890", "1"], "x": ["0.5", "-0"]})
    typed = type_columns(cells)
    assert typed["code"].tolist() == ["007", "12"] and typed["long"].tolist() == cells["long"].tolist()
    assert typed["x"].tolist() == [0.5, 0.0]


def test_text_columns_keep_markers_even_among_numbers(tmp_path):
    path = tmp_path / "sales.csv"
    path.write_text("Region ,ds,y\n1,2024-01-01,1\nNA,2024-01-01,2\n")
    assert read_source(path)["Region "].isna().tolist() == [False, True]  # guessed: numbers
    assert read_source(path, text_columns=["region"])["Region "].tolist() == ["1", "NA"]


# --- the contract ----------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_validate_keeps_every_id_apart(tmp_path, suffix):
    raw = read_source(_write(_history(), tmp_path / f"sales{suffix}"))
    flat = validate(raw, DataConfig(id_col="sku", time_col="month", target_col="qty"))
    assert sorted(flat.frame["unique_id"].unique()) == sorted(IDS)
    assert flat.report.n_series == 7 and flat.frame["y"].notna().all()
    nested = validate(raw, DataConfig(hierarchy=["region/sku"], time_col="month", target_col="qty"))
    assert set(nested.frame["unique_id"]) == {f"{REGIONS[i]}/{i}" for i in IDS}
    assert set(nested.frame["region"]) == {"NA", "EU"}


def test_numeric_keys_become_text(tmp_path):
    frame = _history(ids=["00101"]).assign(sku=101)
    frame.to_parquet(tmp_path / "sales.parquet", index=False)
    out = validate(
        read_source(tmp_path / "sales.parquet"), DataConfig(id_col="sku", time_col="month", target_col="qty")
    )
    assert out.frame["unique_id"].tolist()[0] == "101"
    nested = frame.assign(region=7).to_parquet(tmp_path / "nested.parquet", index=False)
    config = DataConfig(hierarchy=["region/sku"], time_col="month", target_col="qty")
    nested = validate(read_source(tmp_path / "nested.parquet"), config).frame
    assert nested["unique_id"].iloc[0] == "7/101" and nested[["region", "sku"]].iloc[0].tolist() == [
        "7",
        "101",
    ]


def test_actuals_read_like_history_keep_their_ids(tmp_path):
    """Actuals go through read_source + validate (planning.workflow.load_actuals_file)."""
    actuals = _history(months=pd.date_range("2024-07-01", periods=2, freq="MS"))
    raw = read_source(_write(actuals, tmp_path / "actuals.csv"))
    frame = validate(raw, DataConfig(hierarchy=["region/sku"], time_col="month", target_col="qty")).frame
    assert set(frame["sku"]) == set(IDS)


def test_overrides_keep_their_keys(tmp_path):
    from sopforecast.planning.overrides import read_overrides

    path = tmp_path / "overrides.csv"
    path.write_text("key,month,value,author,reason\n00101,2024-07,5,ann,promo\nNA,2024-07,6,ann,promo\n")
    assert read_overrides(path)["key"].tolist() == ["00101", "NA"]


# --- the forecast ----------------------------------------------------------------------------

# cheap settings; bottom_up because MinT on 7 series and one window of naive residuals is
# ill-conditioned (a limit of the tiny data, not of the ids)
FAST = ["--models", "naive", "--windows", "1", "--horizon", "2", "--reconcile", "bottom_up"]


def test_flat_forecast_writes_the_ids_unchanged(tmp_path, capsys):
    data = _write(_history(), tmp_path / "sales.csv")
    out = tmp_path / "fc.csv"
    args = ["forecast", "--data", data, "--id-col", "sku", "--time-col", "month", "--target-col", "qty"]
    assert main([*args, *FAST, "--output", str(out)]) == 0, capsys.readouterr().err
    assert _written_ids(out) == set(IDS)


def test_hierarchical_forecast_writes_the_ids_unchanged(tmp_path, capsys):
    data = _write(_history(), tmp_path / "sales.xlsx")
    out = tmp_path / "fc.csv"
    args = [
        "forecast",
        "--data",
        data,
        "--hierarchy",
        "region/sku",
        "--time-col",
        "month",
        "--target-col",
        "qty",
    ]
    assert main([*args, *FAST, "--output", str(out)]) == 0, capsys.readouterr().err
    bottom = {f"{REGIONS[i]}/{i}" for i in IDS}
    assert _written_ids(out) == {"Total", "NA", "EU", *bottom}


def test_pipeline_run_delivers_the_ids_unchanged(tmp_path):
    _write(_history(), tmp_path / "sales.csv")
    (tmp_path / "ids.yaml").write_text(
        textwrap.dedent(
            """
            name: ids
            data: {path: sales.csv, hierarchy: [region/sku], time_col: month, target_col: qty, freq: MS}
            forecast: {horizon: 2, models: [naive, snaive], windows: 1, reconcile: bottom_up}
            """
        )
    )
    workdir = Workdir(tmp_path / "work")
    result = run_pipeline(load_pipeline(tmp_path / "ids.yaml"), workdir)
    expected = {"Total", "NA", "EU", *(f"{REGIONS[i]}/{i}" for i in IDS)}
    assert _written_ids(result.outputs["forecast"]) == expected
    # the run's MLflow table of the forecast
    client = resolve_store(workdir).client()
    table = pd.read_parquet(
        client.download_artifacts(result.run_id, "results/forecast.parquet", str(tmp_path))
    )
    assert set(table["unique_id"]) == expected


def test_a_price_plan_with_numeric_ids_meets_the_history(tmp_path):
    """The history's ids are text; a calendar whose ids read as numbers still matches them."""
    from sopforecast.forecasting.drivers import future_frame

    history = validate(
        read_source(_write(_history(ids=["101"]).assign(price=1.0), tmp_path / "sales.csv")),
        DataConfig(id_col="sku", time_col="month", target_col="qty", drivers=["price"]),
    ).frame
    plan = pd.DataFrame({"unique_id": [101, 101], "ds": pd.date_range("2024-07-01", periods=2, freq="MS")})
    out = future_frame(plan.assign(price=[2.0, 3.0]), history, ["price"], 2, "MS")
    assert out["unique_id"].tolist() == ["101", "101"] and out["price"].tolist() == [2.0, 3.0]


def test_ids_survive_the_plan_cycle(tmp_path, capsys, monkeypatch):
    """Plan lines, overrides, actuals and every export keep 00101 / NA as written."""
    monkeypatch.setenv("SOPFORECAST_USER", "ana")
    history = _history()
    _write(history[history["month"] < "2024-05-01"], tmp_path / "sales.csv")
    (tmp_path / "ids.yaml").write_text(
        textwrap.dedent(
            """
            name: ids
            data: {path: sales.csv, hierarchy: [region/sku], time_col: month, target_col: qty, freq: MS}
            forecast: {horizon: 3, models: [naive, snaive], windows: 1, reconcile: bottom_up}
            plan: {enabled: true, months: 3}
            """
        )
    )
    workdir = tmp_path / "work"
    run_pipeline(load_pipeline(tmp_path / "ids.yaml"), Workdir(workdir))
    expected = {"Total", "NA", "EU", *(f"{REGIONS[i]}/{i}" for i in IDS)}
    wd = ["--workdir", str(workdir)]
    assert main(["plan", "export", "-o", str(tmp_path / "plan.csv"), *wd]) == 0
    assert _written_ids(tmp_path / "plan.csv") == expected
    pd.DataFrame(
        [{"key": "NA/00101", "month": "2024-06", "value": 7.0, "author": "ana", "reason": "id test"}]
    ).to_csv(tmp_path / "o.csv", index=False)
    assert main(["override", "apply", str(tmp_path / "o.csv"), *wd]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["override", "list", "--format", "csv", *wd]) == 0
    listed = pd.read_csv(__import__("io").StringIO(capsys.readouterr().out), dtype=str, keep_default_na=False)
    assert list(listed["key"]) == ["NA/00101"]
    _write(history[history["month"] == "2024-05-01"], tmp_path / "may.csv")
    assert main(["actuals", "load", str(tmp_path / "may.csv"), *wd]) == 0, capsys.readouterr().err
    from sopforecast.store.plans import PlanStore

    store = PlanStore(f"sqlite:///{workdir}/sopforecast.db", create=False)
    assert set(store.actuals("ids")["unique_id"]) == {f"{REGIONS[i]}/{i}" for i in IDS}
    assert set(store.lines(store.version())["unique_id"]) == expected
    store.dispose()
