"""Hierarchies: aggregation names, coherence of every reconciliation, per-level accuracy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import sopforecast as sf
from sopforecast.config import ForecastConfig
from sopforecast.errors import ConfigError, DataError
from sopforecast.forecasting.forecaster import Forecaster
from sopforecast.forecasting.reconcile import aggregate_hierarchy, coherence_gap, reconcile


def _bottom(periods=42, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2020-01-01", periods=periods, freq="MS")
    rows = []
    for cat, fams in {"Drinks": ["Juice", "Water"], "Food": ["Snacks"]}.items():
        for fam in fams:
            for k in range(2):
                for region in ("North", "South"):
                    level = rng.uniform(20, 80)
                    y = np.maximum(
                        0,
                        level * (1 + 0.3 * np.sin(np.arange(periods) * 2 * np.pi / 12))
                        + rng.normal(0, 4, periods),
                    ).round()
                    rows.append(
                        pd.DataFrame(
                            {
                                "category": cat,
                                "family": fam,
                                "sku": f"{fam}-{k}",
                                "region": region,
                                "ds": ds,
                                "y": y,
                            }
                        )
                    )
    df = pd.concat(rows, ignore_index=True)
    df["unique_id"] = df[["category", "family", "sku", "region"]].agg("/".join, axis=1)
    return df


STRICT = ["category/family/sku"]
GROUPED = ["category/family/sku", "region"]


def test_aggregate_names_paths_and_total():
    Y, S, tags = aggregate_hierarchy(_bottom(), GROUPED)
    assert tags["Total"].tolist() == ["Total"]
    assert "Drinks/Juice" in tags["category/family"]
    assert "Drinks/North" in tags["category/region"]
    assert "Drinks/Juice/Juice-0/North" in tags["category/family/sku/region"]
    total = Y[Y.unique_id == "Total"].set_index("ds")["y"]
    assert np.allclose(total, _bottom().groupby("ds")["y"].sum())
    assert S.S.shape[1] == 12  # bottom series


@pytest.mark.parametrize("method", ["bottom_up", "ols", "wls_struct", "wls_var", "mint_shrink"])
def test_every_method_is_coherent_on_a_grouped_hierarchy(method):
    config = ForecastConfig(
        horizon=4,
        models="ets,snaive",
        windows=2,
        hierarchy=GROUPED,
        reconcile=method,
        n_jobs=1,
        clip=False,
    )
    fitted = Forecaster(config).fit(_bottom())
    out = fitted.predict().forecast
    assert coherence_gap(out, fitted.panel_.hierarchy, "forecast") < 1e-6
    assert set(out["level"]) == set(fitted.panel_.tags)
    assert out.groupby("unique_id").size().eq(4).all() and out["unique_id"].nunique() == len(
        fitted.panel_.hierarchy
    )


@pytest.mark.parametrize("method", ["top_down", "middle_out"])
def test_top_down_and_middle_out_on_a_strict_hierarchy(method):
    config = ForecastConfig(
        horizon=4,
        models="ets",
        windows=2,
        hierarchy=STRICT,
        reconcile=method,
        middle_level="category/family",
        n_jobs=1,
        clip=False,
    )
    bottom = _bottom().groupby(["category", "family", "sku", "ds"], as_index=False)["y"].sum()
    bottom["unique_id"] = bottom[["category", "family", "sku"]].agg("/".join, axis=1)
    fitted = Forecaster(config).fit(bottom)
    assert coherence_gap(fitted.predict().forecast, fitted.panel_.hierarchy, "forecast") < 1e-6


def test_top_down_refuses_grouped_hierarchy():
    Y, S, tags = aggregate_hierarchy(_bottom(), GROUPED)
    base = Y.assign(forecast=Y["y"])
    with pytest.raises(ConfigError, match="top_down needs a strictly nested hierarchy"):
        reconcile(base, S, tags, methods=["top_down"])


def test_series_that_stopped_early_forecast_from_common_origin():
    df = _bottom()
    stopped = df["unique_id"].eq("Food/Snacks/Snacks-1/South") & (df["ds"] >= "2023-01-01")
    df = df[~stopped]
    config = ForecastConfig(
        horizon=3, models="naive", windows=1, hierarchy=GROUPED, reconcile="bottom_up", n_jobs=1
    )
    fitted = Forecaster(config).fit(df)
    assert fitted.panel_.extended == ["Food/Snacks/Snacks-1/South"]
    out = fitted.predict().forecast
    assert out.groupby("unique_id")["ds"].min().nunique() == 1
    assert out["ds"].min() == pd.Timestamp("2023-07-01")  # after the common last month


def test_level_accuracy_shows_base_and_reconciled():
    acc = sf.backtest(_bottom(), h=4, models="ets,snaive", windows=2, hierarchy=GROUPED, n_jobs=1)
    assert {"base", "bottom_up", "mint_shrink", "ols"} <= set(acc["method"])
    assert acc["level"].iloc[0] == "Total"
    bottom = acc[acc.level == "category/family/sku/region"].set_index("method")
    assert bottom.loc["bottom_up", "mase"] == pytest.approx(bottom.loc["base", "mase"])
    assert acc["mase"].notna().all()


def test_hierarchy_errors():
    with pytest.raises(ConfigError, match=r"hierarchy columns \['brand'\] are not in the data"):
        sf.forecast(_bottom(), h=3, models="naive", hierarchy=["brand/sku"])
    bad = _bottom()
    bad.loc[bad.sku == "Juice-0", "family"] = np.where(
        bad.loc[bad.sku == "Juice-0", "region"] == "North", "Juice", "Water"
    )
    with pytest.raises(DataError, match="sku='Juice-0' under family"):
        sf.forecast(bad, h=3, models="naive", hierarchy=STRICT)


def test_an_ill_conditioned_mint_shrink_falls_back_to_structural_weights(tmp_path, capsys):
    """One short backtest window of a small hierarchy: hierarchicalforecast refuses the error
    covariance with a bare Exception; the forecast is reconciled with wls_struct and says so."""
    from sopforecast.cli import main

    rng = np.random.default_rng(0)
    ids = list("ABCDEFG")
    months = pd.date_range("2022-01-01", periods=30, freq="MS")
    pd.DataFrame(
        {
            "region": np.repeat(["R1"] * 3 + ["R2"] * 4, 30),
            "sku": np.repeat(ids, 30),
            "month": np.tile(months.strftime("%Y-%m-%d"), 7),
            "qty": rng.integers(20, 80, 210),
        }
    ).to_csv(tmp_path / "h.csv", index=False)
    out = tmp_path / "f.csv"
    args = ["forecast", "--data", str(tmp_path / "h.csv"), "--hierarchy", "region/sku", "--time-col", "month"]
    args += ["--target-col", "qty", "--models", "snaive,naive", "--windows", "1", "--horizon", "2"]
    assert main([*args, "--output", str(out)]) == 0
    assert "reconciled with wls_struct instead" in " ".join(capsys.readouterr().err.split())
    got = pd.read_csv(out).set_index(["unique_id", "ds"])["forecast"]
    bottom = got[got.index.get_level_values(0).str.contains("/")]
    total = got.xs("Total", level=0)
    assert np.allclose(bottom.groupby(level=1).sum().to_numpy(), total.to_numpy())  # coherent
