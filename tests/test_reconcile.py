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


def _windows(Y: pd.DataFrame, seed=1, still: str | None = None):
    """Backtest residuals over the last 12 months before the final 6, and base forecasts of
    the final 6: noisy, except ``still`` whose error is the same every month."""
    rng = np.random.default_rng(seed)
    dates = np.sort(Y["ds"].unique())
    past = Y[Y["ds"].isin(dates[-18:-6])].copy()
    past["forecast"] = past["y"] + rng.normal(0, 5, len(past))
    same = past["unique_id"] == still
    past.loc[same, "forecast"] = past.loc[same, "y"] + 2.0
    base = Y[Y["ds"].isin(dates[-6:])][["unique_id", "ds", "y"]].copy()
    base["forecast"] = base["y"] * rng.uniform(0.8, 1.2, len(base))
    return past, base


def test_sparse_reconciliation_above_the_limit_is_coherent_and_matches_dense(caplog):
    Y, S, tags = aggregate_hierarchy(_bottom(), GROUPED)
    past, base = _windows(Y)
    history = Y[["unique_id", "ds", "y"]]
    for method in ("bottom_up", "ols", "wls_struct"):
        dense = reconcile(base, S, tags, methods=[method], residuals=past, history=history)
        sparse = reconcile(base, S, tags, methods=[method], residuals=past, history=history, sparse_above=1)
        assert coherence_gap(sparse, S, f"forecast/{method}") < 1e-6
        np.testing.assert_allclose(sparse[f"forecast/{method}"], dense[f"forecast/{method}"], rtol=1e-7)
    # mint_shrink's dense covariance is not built above the limit: wls_var (sparse) instead, said so
    with caplog.at_level("WARNING"):
        out = reconcile(
            base, S, tags, methods=["mint_shrink"], residuals=past, history=history, sparse_above=10
        )
    assert "reconciled with wls_var" in caplog.text and "forecast.reconcile_sparse_above = 10" in caplog.text
    assert coherence_gap(out, S, "forecast/mint_shrink") < 1e-6
    wls = reconcile(base, S, tags, methods=["wls_var"], residuals=past, history=history, sparse_above=10)
    np.testing.assert_allclose(out["forecast/mint_shrink"], wls["forecast/wls_var"])


def test_sparse_wls_var_keeps_a_series_whose_error_never_varies():
    """hierarchicalforecast's sparse wls_var refuses an error variance below 1e-8; such a
    series gets a minute one and, weighed as near-certain, keeps its forecast."""
    Y, S, tags = aggregate_hierarchy(_bottom(), GROUPED)
    still = "Food/Snacks/Snacks-0/North"
    past, base = _windows(Y, still=still)
    out = reconcile(base, S, tags, methods=["wls_var"], residuals=past, history=Y, sparse_above=1)
    assert coherence_gap(out, S, "forecast/wls_var") < 1e-6
    kept = out.merge(base.rename(columns={"forecast": "base"}), on=["unique_id", "ds"]).query(
        "unique_id == @still"
    )
    np.testing.assert_allclose(kept["forecast/wls_var"], kept["base"], rtol=1e-3)


def test_aggregate_hierarchy_sums_every_level_from_a_sparse_s():
    df = _bottom()
    Y, S, tags = aggregate_hierarchy(df, GROUPED)
    assert list(S.ids[-len(S.bottom_ids) :]) == sorted(df["unique_id"].unique())  # bottom block = identity
    wide = Y.pivot(index="ds", columns="unique_id", values="y")
    for ids in tags.values():
        for uid in ids[:3]:
            members = S.bottom_of(uid)
            np.testing.assert_allclose(wide[uid], wide[list(members)].sum(axis=1))
    assert len(Y) == len(S) * df["ds"].nunique()
