"""`sopforecast forecast` and `sopforecast backtest` as a planner runs them."""

from __future__ import annotations

import sys
import types

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


KEYS = ["category", "family", "sku", "region", "channel"]
HIERARCHY = ["--hierarchy", "category/family/sku", "--hierarchy", "region/channel"]
DRIVER_RUN = ["--drivers", "price,promo", "--models", "ets,lgbm", "--horizon", "6", "--windows", "1"]


def _demand_with_plan(tmp_path, *, drop: str | None = None, gap: bool = False) -> tuple[str, str]:
    """The demo history of 6 series and a plan for the next 12 months: each series' last 12
    months of drivers moved a year ahead, with a promotion in month 2. ``drop`` leaves a
    column out of the plan; ``gap`` leaves out one series' month 3."""
    from sopforecast.data.datasets import generate_demand

    history = generate_demand(n_series=6, periods=36, seed=0)
    history.insert(0, "unique_id", history[KEYS].astype(str).agg("/".join, axis=1))
    plan = history.sort_values("ds").groupby("unique_id").tail(12).copy()
    plan["ds"] = plan["ds"] + pd.DateOffset(months=12)
    start = history["ds"].max() + pd.DateOffset(months=1)
    plan.loc[plan["ds"] == start + pd.DateOffset(months=1), "promo"] = 1
    plan = plan.drop(columns="y")
    if drop:
        plan = plan.drop(columns=drop)
    if gap:
        first = plan["unique_id"].iloc[0]
        plan = plan[~((plan["unique_id"] == first) & (plan["ds"] == start + pd.DateOffset(months=2)))]
    history.to_csv(tmp_path / "history.csv", index=False)
    plan.to_csv(tmp_path / "plan.csv", index=False)
    return str(tmp_path / "history.csv"), str(tmp_path / "plan.csv")


def _finite(frame: pd.DataFrame) -> bool:
    values = frame.select_dtypes("number").to_numpy(dtype=float)
    return bool(values.size) and bool(np.isfinite(values).all())


@pytest.mark.parametrize("hierarchy", [[], HIERARCHY], ids=["flat", "hierarchy"])
def test_forecast_with_drivers_and_a_future_plan(tmp_path, capsys, hierarchy):
    history, plan = _demand_with_plan(tmp_path)
    out = tmp_path / "fc.csv"
    args = ["forecast", "--data", history, *hierarchy, *DRIVER_RUN, "--future", plan, "--output", str(out)]
    assert main(args) == 0, capsys.readouterr().err
    frame = pd.read_csv(out, parse_dates=["ds"])
    assert _finite(frame.drop(columns="level", errors="ignore"))
    assert frame.groupby("unique_id").size().eq(6).all()
    n_series = frame["unique_id"].nunique()
    assert n_series > 6 if hierarchy else n_series == 6  # aggregates come with a hierarchy
    printed = capsys.readouterr().out
    assert f"Wrote {len(frame):,} rows" in printed and "Models chosen:" in printed


def test_future_plan_without_a_driver_column_exits_2_naming_it(tmp_path, capsys):
    history, plan = _demand_with_plan(tmp_path, drop="promo")
    out = tmp_path / "fc.csv"
    code = main(["forecast", "--data", history, *DRIVER_RUN, "--future", plan, "--output", str(out)])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "promo" in err and "Traceback" not in err
    assert not out.exists()


def test_future_plan_missing_a_month_exits_2_unless_carried(tmp_path, capsys):
    history, plan = _demand_with_plan(tmp_path, gap=True)
    out = tmp_path / "fc.csv"
    args = ["forecast", "--data", history, *HIERARCHY, *DRIVER_RUN, "--future", plan, "--output", str(out)]
    assert main(args) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "future_fill" in err and "Traceback" not in err
    assert not out.exists()
    assert main([*args, "--future-fill", "carry"]) == 0
    assert _finite(pd.read_csv(out).drop(columns="level", errors="ignore"))


def test_forecast_and_backtest_share_the_history_options(capsys):
    shared = ["--data", "--id-col", "--time-col", "--target-col", "--hierarchy", "--drivers", "--freq"]
    shared += ["--date-format", "--negative", "--missing", "--duplicates", "--horizon", "--models"]
    shared += ["--level", "--reconcile", "--season-length", "--windows"]
    helps = {}
    for command in ("forecast", "backtest"):
        assert main([command, "--help"]) == 0
        helps[command] = capsys.readouterr().out
    for flag in shared:
        assert all(flag in text for text in helps.values()), flag
    assert "--future" in helps["forecast"] and "error|carry|zero" in helps["forecast"]
    assert "--future" not in helps["backtest"] and "--step" in helps["backtest"]
    assert "[default: 2]" in helps["forecast"] and "[default: 3]" in helps["backtest"]  # windows


def test_options_reach_the_configs_and_the_forecaster(tmp_path, monkeypatch):
    """The CLI's wiring alone, with a stand-in forecaster: drivers given both ways reach the
    data contract and the forecast config, and the plan arrives with the contract's ds."""
    seen = {}

    class StandIn:
        def __init__(self, config):
            seen["config"] = config

        def check_future(self, history, future):
            seen["checked"] = future is not None

        def fit(self, history, progress=None):
            seen["history"] = history
            return self

        def predict(self, future=None):
            seen["future"] = future
            last = seen["history"].groupby("unique_id")["ds"].max().reset_index()
            return types.SimpleNamespace(forecast=last.assign(forecast=1.0, model="StandIn"))

    fake = types.ModuleType("sopforecast.forecasting.forecaster")
    fake.Forecaster = StandIn
    monkeypatch.setitem(sys.modules, "sopforecast.forecasting.forecaster", fake)
    history, plan = _demand_with_plan(tmp_path)
    for path in (history, plan):
        pd.read_csv(path).rename(columns={"ds": "month"}).to_csv(path, index=False)
    args = ["forecast", "--data", history, "--time-col", "month", *HIERARCHY, "--drivers", "price"]
    args += ["--drivers", "promo", "--future", plan, "--future-fill", "zero"]
    args += ["--output", str(tmp_path / "o.csv")]
    assert main(args) == 0
    config = seen["config"]
    assert config.drivers == ["price", "promo"] and config.future_fill == "zero"
    assert config.hierarchy == ["category/family/sku", "region/channel"]
    assert {"price", "promo"} <= set(seen["history"].columns)
    assert {"ds", "price", "promo", *KEYS} <= set(seen["future"].columns)
    assert "month" not in seen["future"].columns
