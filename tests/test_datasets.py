"""The demo data generator: determinism, shape of the hierarchy, realistic behaviours."""

from __future__ import annotations

import pandas as pd
import pytest

from sopforecast.data.datasets import generate_demand
from sopforecast.data.profile import classify_demand
from sopforecast.errors import ConfigError

KEYS = ["category", "family", "sku", "region", "channel"]


@pytest.fixture(scope="module")
def demo() -> pd.DataFrame:
    return generate_demand()


def _ids(df: pd.DataFrame) -> pd.Series:
    return df[KEYS].astype(str).agg("/".join, axis=1)


def test_deterministic_and_seeded(demo):
    pd.testing.assert_frame_equal(demo, generate_demand())
    other = generate_demand(seed=1)
    assert not demo["y"].equals(other["y"]) or len(demo) != len(other)


def test_columns_types_and_size(demo):
    assert list(demo.columns) == [*KEYS, "ds", "y", "price", "promo"]
    assert demo["ds"].dtype == "datetime64[ns]" and (demo["ds"].dt.day == 1).all()
    assert demo["ds"].nunique() == 60
    assert _ids(demo).nunique() == 500
    assert not demo.duplicated([*KEYS, "ds"]).any()
    assert (demo["y"] >= 0).all() and (demo["price"] > 0).all()
    assert set(demo["promo"].unique()) <= {0, 1}


def test_hierarchy_is_consistent(demo):
    assert demo.groupby("sku")["family"].nunique().max() == 1
    assert demo.groupby("family")["category"].nunique().max() == 1
    assert demo["category"].nunique() >= 4 and demo["region"].nunique() == 4


def test_demand_patterns_present(demo):
    frame = demo.assign(unique_id=_ids(demo))
    classes = classify_demand(frame)["demand_class"].value_counts()
    for cls in ("smooth", "erratic", "intermittent", "lumpy"):
        assert classes[cls] > 0, cls
    assert classes["smooth"] > classes.drop("smooth").sum()
    starts = frame.groupby("unique_id")["ds"].min()
    ends = frame.groupby("unique_id")["ds"].max()
    late = starts > frame["ds"].min()
    assert late.sum() > 10 and (frame.groupby("unique_id").size()[late] <= 19).all()
    assert (ends < frame["ds"].max()).sum() > 5


def test_promotions_lift_demand_and_cut_price(demo):
    frame = demo.assign(unique_id=_ids(demo))
    by = frame.groupby(["unique_id", "promo"])[["y", "price"]].mean().unstack("promo").dropna()
    assert (by[("y", 1)] > by[("y", 0)]).mean() > 0.6
    assert (by[("price", 1)] < by[("price", 0)]).mean() > 0.9


def test_seasonality_visible_at_total(demo):
    profile = demo.groupby(demo["ds"].dt.month)["y"].sum()
    assert profile.max() / profile.min() > 1.1


def test_larger_panels_scale():
    big = generate_demand(n_series=20_000, periods=24, seed=3)
    assert _ids(big).nunique() == 20_000


@pytest.mark.slow
def test_hundred_thousand_series():
    big = generate_demand(n_series=100_000)
    assert big[KEYS].drop_duplicates().shape[0] == 100_000


def test_bad_arguments():
    with pytest.raises(ConfigError, match="n_series >= 1 and periods >= 2, got n_series=0"):
        generate_demand(n_series=0)
    with pytest.raises(ConfigError, match="monthly data only"):
        generate_demand(freq="W-MON")


def test_the_demo_budget_is_last_years_revenue_grown_per_category_and_total():
    from sopforecast.data.datasets import generate_budget

    history = generate_demand(n_series=30, periods=36, seed=2)
    budget = generate_budget(history, start="2024-01-01", months=12, growth=0.05)
    last_year = history[history["ds"].dt.year == 2023]
    revenue = (last_year["y"] * last_year["price"]).groupby(last_year["category"]).sum()
    got = budget[budget["key"] != "Total"].groupby("key")["revenue"].sum()
    pd.testing.assert_series_equal(got, (revenue * 1.05).rename_axis("key").rename("revenue"), rtol=1e-4)
    total = budget[budget["key"] == "Total"]
    assert total["month"].tolist() == [f"2024-{m:02d}" for m in range(1, 13)]
    assert total["revenue"].sum() == pytest.approx(got.sum(), rel=1e-4)
