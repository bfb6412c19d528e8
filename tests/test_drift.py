"""Drift monitor: vectorised scores find planted changes of demand, price and forecast errors,
Evidently agrees and writes self-contained HTML, settings and data are checked."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError
from scipy import stats

from sopforecast.errors import DataError
from sopforecast.monitoring.drift import (
    ALL,
    SCORE_COLUMNS,
    VERDICT_COLUMNS,
    DriftSettings,
    drift_monitor,
    drift_scores,
    evidently_report,
    split_windows,
)

MONTHS = 24


def panel(series: int = 40, seed: int = 0) -> pd.DataFrame:
    """Four segments over 24 months; in the last 3: ``demand`` +40%, ``price`` cut by 20%,
    ``errors`` forecast residuals biased by +30% of demand, ``steady`` unchanged."""
    rng = np.random.default_rng(seed)
    segments = ["demand", "errors", "price", "steady"]
    n = len(segments) * series
    ids = np.repeat(np.arange(n), MONTHS)
    month = np.tile(np.arange(MONTHS), n)
    segment = np.asarray(segments)[ids % len(segments)]
    late = month >= MONTHS - 3
    level = rng.lognormal(3, 1, n)[ids]  # sizes differ a lot: scaling must keep them comparable
    promo = (rng.random(len(ids)) < 0.15).astype(float)
    y = level * (1 + 0.3 * promo) * (1 + 0.2 * rng.standard_normal(len(ids)))
    y = np.where(late & (segment == "demand"), 1.4 * y, y)
    price = rng.uniform(5, 20, n)[ids] * (1 + 0.02 * rng.standard_normal(len(ids)))
    price = np.where(late & (segment == "price"), 0.8 * price, price)
    residual = level * 0.2 * rng.standard_normal(len(ids))
    residual = np.where(late & (segment == "errors"), residual + 0.3 * level, residual)
    return pd.DataFrame(
        {
            "unique_id": [f"s{i:03d}" for i in ids],
            "ds": pd.date_range("2023-01-01", periods=MONTHS, freq="MS")[month],
            "segment": segment,
            "y": y,
            "price": price,
            "promo": promo,
            "residual": residual,
        }
    )


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return panel()


@pytest.fixture(scope="module")
def scores(frame) -> pd.DataFrame:
    return drift_scores(frame, "segment")


def _row(scores: pd.DataFrame, segment: str, column: str) -> pd.Series:
    return scores.set_index(["segment", "column"]).loc[(segment, column)]


def test_exactly_the_planted_changes_drift(scores):
    assert list(scores.columns) == SCORE_COLUMNS
    assert len(scores) == 4 * 4  # every segment x y, price, promo, residual
    drifted = set(map(tuple, scores.loc[scores["drifted"], ["segment", "column"]].to_numpy()))
    assert drifted == {("demand", "y"), ("price", "price"), ("errors", "residual")}
    assert scores["score"].is_monotonic_decreasing  # worst first
    # a clear margin on both sides of the default threshold, not a coin flip
    threshold = DriftSettings().threshold
    assert scores.loc[scores["drifted"], "score"].min() > 2 * threshold
    assert scores.loc[~scores["drifted"], "score"].max() < threshold


def test_demand_shift_reads_as_the_planted_change(scores):
    demand = _row(scores, "demand", "y")
    # y is scaled by each series' reference mean: 1.0 before, 1.4 after
    assert demand["mean_reference"] == pytest.approx(1.0)
    # 120 noisy values, and fewer promotions in this draw's current months: +40 within 10
    assert demand["change_pct"] == pytest.approx(40, abs=10)
    assert (demand["n_reference"], demand["n_current"]) == (40 * 12, 40 * 3)
    assert abs(_row(scores, "steady", "y")["change_pct"]) < 10


def test_price_cut_is_driver_drift(scores):
    price = _row(scores, "price", "price")
    assert price["drifted"] and price["change_pct"] == pytest.approx(-20, abs=1)
    assert not _row(scores, "price", "y")["drifted"]  # demand itself did not move


def test_residual_drift_reports_the_bias(scores):
    errors = _row(scores, "errors", "residual")
    assert errors["drifted"]
    assert errors["mean_current"] - errors["mean_reference"] == pytest.approx(0.3, abs=0.05)
    assert np.isnan(errors["change_pct"])  # a mean of about 0 has no meaningful relative change


def test_score_is_the_normalised_wasserstein_of_the_scaled_values(frame, scores):
    reference, current = split_windows(frame, "segment")
    for segment in ("demand", "steady"):
        ref = reference.loc[reference["segment"] == segment, "y"]
        cur = current.loc[current["segment"] == segment, "y"]
        expected = stats.wasserstein_distance(ref, cur) / np.std(ref)
        assert _row(scores, segment, "y")["score"] == pytest.approx(expected, rel=1e-9)


def test_each_series_weighs_the_same_whatever_its_size(frame, scores):
    bigger = frame.copy()
    factor = bigger["unique_id"].str[1:].astype(int) + 1  # series i is (i+1) times larger
    for col in ("y", "residual", "price"):
        bigger[col] = bigger[col] * factor
    again = drift_scores(bigger, "segment")
    pd.testing.assert_frame_equal(again, scores, rtol=1e-9)


def test_missing_values_and_columns_are_tolerated(frame):
    holes = frame.drop(columns="promo").copy()
    holes.loc[holes.index % 7 == 0, "y"] = np.nan
    result = drift_scores(holes, "segment")
    assert set(result["column"]) == {"y", "price", "residual"}
    demand = _row(result, "demand", "y")
    assert demand["drifted"] and demand["n_reference"] + demand["n_current"] < 40 * 15
    assert result["score"].notna().all()


def _outside_scripts(page: str) -> str:
    # the embedded JavaScript bundle holds link text such as Plotly's logo href; only markup loads
    return re.sub(r"<script>.*?</script>", "", page, flags=re.DOTALL)


def test_evidently_report_is_self_contained_and_agrees(frame, tmp_path):
    reference, current = split_windows(frame, "segment")
    ref, cur = reference[reference["segment"] == "demand"], current[current["segment"] == "demand"]
    path = tmp_path / "sub" / "demand.html"
    verdicts = evidently_report(ref, cur, ["y", "price", "residual"], path, title="Demand <segment>")
    page = path.read_text(encoding="utf-8")
    assert page.lstrip().startswith("<!DOCTYPE html>") and "</html>" in page
    assert "<title>Demand &lt;segment&gt;</title>" in page
    assert 'src="http' not in page
    assert not re.search(r"<(script|link)\b[^>]*(src|href)=[\"']?(https?:)?//", page)
    markup = _outside_scripts(page)
    assert 'href="http' not in markup and "url(http" not in markup
    assert set(verdicts) == {"y", "price", "residual"}
    assert verdicts["y"]["drifted"] and verdicts["y"]["score"] < 0.05  # K-S p-value on 120 rows
    assert not verdicts["price"]["drifted"]
    assert "p_value" in verdicts["y"]["method"]


def test_evidently_wasserstein_matches_the_vectorised_score(frame, scores, tmp_path):
    reference, current = split_windows(frame, "segment")
    ref, cur = reference[reference["segment"] == "price"], current[current["segment"] == "price"]
    verdicts = evidently_report(ref, cur, ["price"], tmp_path / "p.html", method="wasserstein", threshold=0.5)
    assert verdicts["price"]["score"] == pytest.approx(_row(scores, "price", "price")["score"], rel=1e-9)
    assert verdicts["price"]["drifted"] and verdicts["price"]["threshold"] == 0.5


def test_drift_monitor_reports_the_worst_segments_only(frame, tmp_path):
    result = drift_monitor(frame, "segment", DriftSettings(top=2), tmp_path)
    worst = result.scores.groupby("segment")["score"].max().sort_values(ascending=False)
    assert list(result.reports) == [ALL, *worst.index[:2]]
    assert set(worst.index[:2]) < {"demand", "errors", "price"}
    assert all(p.exists() and p.parent == tmp_path for p in result.reports.values())
    assert list(result.evidently.columns) == VERDICT_COLUMNS
    assert set(result.evidently["segment"]) == set(result.reports)
    verdicts = result.evidently.set_index(["segment", "column"])["drifted"]
    top = result.scores.iloc[0]  # Evidently's own test agrees on the worst segment x column
    assert verdicts[(top["segment"], top["column"])]
    assert set(result.seconds) == {"scores", "reports", "total"}
    assert result.seconds["scores"] < result.seconds["reports"]


def test_no_reports_when_top_is_zero(frame, tmp_path):
    result = drift_monitor(frame, "segment", DriftSettings(top=0, columns=["y"], residual=None), tmp_path)
    assert list(result.reports) == [ALL] and set(result.scores["column"]) == {"y"}


@pytest.mark.parametrize(
    "bad",
    [
        {"current_months": 0},
        {"reference_months": -1},
        {"threshold": 0},
        {"top": -1},
        {"columns": []},
        {"columns": ["y", "y"]},
        {"window": 3},  # unknown setting
    ],
)
def test_settings_are_validated(bad):
    with pytest.raises(ValidationError):
        DriftSettings(**bad)


def test_data_errors_name_the_problem(frame):
    with pytest.raises(DataError, match="region"):
        drift_scores(frame, "region")
    with pytest.raises(DataError, match="monitored columns"):
        drift_scores(frame[["unique_id", "ds", "segment"]], "segment")
    short = frame[frame["ds"] >= frame["ds"].max() - pd.DateOffset(months=2)]
    with pytest.raises(DataError, match="reference window"):
        drift_scores(short, "segment")
