"""`sopforecast forecast` and `sopforecast backtest` as a planner runs them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sopforecast.cli import main


def _hierarchy_csv(tmp_path, periods: int = 36, clash: bool = False) -> str:
    rng = np.random.default_rng(3)
    ds = pd.date_range("2021-01-01", periods=periods, freq="MS")
    rows = []
    for family, skus in {"Juice": ["J1", "J2"], "Water": ["W1", "W2"]}.items():
        for sku in skus:
            level = rng.uniform(50, 150)
            y = np.round(
                level * (1 + 0.25 * np.sin(np.arange(periods) * 2 * np.pi / 12)) + rng.normal(0, 5, periods)
            )
            rows.append(pd.DataFrame({"family": family, "sku": sku, "month": ds, "units": y}))
    frame = pd.concat(rows, ignore_index=True)
    if clash:  # J1 also appears under Water in one month
        frame.loc[(frame["sku"] == "W1") & (frame["month"] == ds[0]), "sku"] = "J1"
    path = tmp_path / "sales.csv"
    frame.to_csv(path, index=False)
    return str(path)


COLUMNS = ["--time-col", "month", "--target-col", "units", "--hierarchy", "family/sku"]


def test_forecast_writes_the_contract_for_every_level(tmp_path, capsys):
    out = tmp_path / "fc.csv"
    args = ["forecast", "--data", _hierarchy_csv(tmp_path), *COLUMNS, "--horizon", "6", "--output", str(out)]
    assert main([*args, "--models", "ets,snaive", "--windows", "1"]) == 0
    frame = pd.read_csv(out, parse_dates=["ds"])
    assert list(frame.columns[:7]) == [
        "unique_id",
        "ds",
        "forecast",
        "forecast-lo-80",
        "forecast-hi-80",
        "forecast-lo-95",
        "forecast-hi-95",
    ]
    assert {"model", "level"} <= set(frame.columns)
    assert set(frame["unique_id"]) == {
        "Total",
        "Juice",
        "Water",
        "Juice/J1",
        "Juice/J2",
        "Water/W1",
        "Water/W2",
    }
    wide = frame.pivot(index="ds", columns="unique_id", values="forecast")
    np.testing.assert_allclose(wide["Total"], wide["Juice"] + wide["Water"], rtol=1e-6)
    np.testing.assert_allclose(wide["Juice"], wide["Juice/J1"] + wide["Juice/J2"], rtol=1e-6)
    assert "Wrote 42 rows" in capsys.readouterr().out


def test_backtest_writes_metrics_per_level_and_method(tmp_path):
    out = tmp_path / "metrics.csv"
    args = ["backtest", "--data", _hierarchy_csv(tmp_path), *COLUMNS, "--horizon", "6", "--windows", "2"]
    assert main([*args, "--models", "snaive,naive", "--output", str(out)]) == 0
    metrics = pd.read_csv(out)
    assert {"level", "method", "mase", "wape", "bias"} <= set(metrics.columns)
    assert {"base", "bottom_up", "mint_shrink"} <= set(metrics["method"])
    assert {"Total", "family", "family/sku"} <= set(metrics["level"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--models", "prophet"], "unknown model(s) ['prophet']"),
        (["--horizon", "0"], "horizon must be a positive number"),
        (["--season-length", "60"], "season length 60 does not fit the data"),
        (["--windows", "9"], "too little history for 9 backtest window(s)"),
        (["--hierarchy", "family/brand"], "brand"),
    ],
)
def test_bad_forecast_requests_exit_2(tmp_path, capsys, extra, message):
    args = ["forecast", "--data", _hierarchy_csv(tmp_path), "--time-col", "month", "--target-col", "units"]
    if "--hierarchy" not in extra:
        args += ["--hierarchy", "family/sku"]
    code = main(
        [*args, "--horizon", "6", "--models", "snaive,naive", "--output", str(tmp_path / "o.csv"), *extra]
    )
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "o.csv").exists()


def test_sku_under_two_families_is_named(tmp_path, capsys):
    args = ["forecast", "--data", _hierarchy_csv(tmp_path, clash=True), *COLUMNS, "--horizon", "6"]
    assert main([*args, "--models", "snaive", "--output", str(tmp_path / "o.csv")]) == 2
    assert "J1" in " ".join(capsys.readouterr().err.split())
