"""Monitoring targets: validation, breaches by level and segment, trend, actions and ranking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from sopforecast.errors import ConfigError
from sopforecast.monitoring.accuracy import accuracy_table
from sopforecast.monitoring.exceptions import (
    ACTIONS,
    EXCEPTION_COLUMNS,
    Target,
    check_targets,
    default_targets,
)

METRIC_COLUMNS = ["accuracy", "wape", "bias", "mase", "tracking_signal", "coverage_gap"]


def _metrics(rows: list[dict], keys: list[str]) -> pd.DataFrame:
    """A frame shaped like accuracy_table output; metrics not given are NaN."""
    return pd.DataFrame(rows).reindex(columns=[*keys, "lag", "forecast", "n", *METRIC_COLUMNS])


def _problem(**fields) -> ConfigError:
    with pytest.raises(ValidationError) as info:
        Target(**fields)
    return ConfigError.from_validation(info.value)


@pytest.fixture
def series_metrics() -> pd.DataFrame:
    final = dict(lag=3, forecast="final")
    stat = dict(lag=3, forecast="statistical")
    return _metrics(
        [
            dict(unique_id="A", level="sku", accuracy=0.62, bias=0.12, tracking_signal=5.0, **final),
            dict(unique_id="B", level="sku", accuracy=0.80, bias=-0.08, tracking_signal=-1.0, **final),
            dict(unique_id="C", level="sku", accuracy=0.70, bias=0.01, tracking_signal=0.5, **final),
            dict(unique_id="A", level="sku", coverage_gap=-0.20, **stat),
            dict(unique_id="B", level="sku", coverage_gap=0.12, **stat),
            dict(unique_id="C", level="sku", coverage_gap=0.0, **stat),
            dict(unique_id="Total", level="Total", accuracy=0.5, **final),
        ],
        ["unique_id", "level"],
    )


@pytest.fixture
def history_metrics() -> pd.DataFrame:
    final = dict(level="sku", lag=3, forecast="final")
    return _metrics(
        [
            dict(cycle="2026-01", unique_id="A", accuracy=0.81, **final),
            dict(cycle="2026-03", unique_id="A", accuracy=0.62, bias=0.12, tracking_signal=5.0, **final),
            dict(cycle="2026-02", unique_id="A", accuracy=0.74, bias=0.10, **final),
            dict(cycle="2025-12", unique_id="A", accuracy=0.90, **final),  # older than the trend shows
            dict(cycle="2026-02", unique_id="C", accuracy=0.60, **final),
            dict(cycle="2026-03", unique_id="C", accuracy=0.70, **final),
            dict(cycle="2026-02", unique_id="B", bias=0.02, **final),
            dict(cycle="2026-03", unique_id="B", bias=-0.08, **final),
            dict(
                cycle="2026-02",
                unique_id="A",
                level="sku",
                lag=3,
                forecast="statistical",
                coverage_gap=-0.201,
            ),
            dict(
                cycle="2026-03", unique_id="A", level="sku", lag=3, forecast="statistical", coverage_gap=-0.2
            ),
        ],
        ["cycle", "unique_id", "level"],
    )


@pytest.fixture
def segment_metrics() -> pd.DataFrame:
    final = dict(lag=3, forecast="final")
    return _metrics(
        [
            dict(abc="A", accuracy=0.70, bias=0.0, **final),
            dict(abc="B", accuracy=0.90, **final),
            dict(demand_class="intermittent", accuracy=0.40, **final),
            dict(accuracy=0.72, **final),  # every bottom series
        ],
        ["demand_class", "abc"],
    )


TARGETS = [
    Target(metric="accuracy", level="sku", min=0.75),
    Target(metric="bias", level="sku", within=0.05),
    {"metric": "tracking_signal", "level": "sku", "within": 4},
    Target(metric="coverage_gap", forecast="statistical", level="sku", within=0.05),
    Target(metric="accuracy", segment="abc=A", min=0.8),
    Target(metric="accuracy", segment="all", min=0.75),
    Target(metric="accuracy", segment="demand_class=intermittent", min=0.5),
    Target(metric="accuracy", lag=6, level="sku", min=0.75),  # lag not scored yet: skipped
]


def test_unknown_metric_lists_the_choices():
    err = _problem(metric="fva", level="sku", min=0)
    assert err.setting == "metric"
    assert "unknown metric 'fva'" in str(err)
    assert "accuracy, wape, bias, mase, tracking_signal, coverage_gap" in str(err)
    err = _problem(metric="bias", forecast="naive", level="sku", within=0.1)
    assert err.setting == "forecast" and "statistical, final" in str(err)


def test_level_and_segment_are_exclusive_and_a_bound_is_needed():
    err = _problem(metric="bias", level="sku", segment="abc=A", within=0.1)
    assert err.setting == "segment" and "not both" in str(err)
    err = _problem(metric="bias", within=0.1)
    assert err.setting == "level" and "segment" in str(err)
    err = _problem(metric="bias", level="sku")
    assert err.setting == "min" and "min, max or within" in str(err)
    assert _problem(metric="wape", level="sku", min=0.5, max=0.2).setting == "max"
    assert _problem(metric="bias", level="sku", within=-1).setting == "within"
    assert "unknown setting" in str(_problem(metric="bias", level="sku", within=1, treshold=2))


def test_segment_names_column_and_value():
    err = _problem(metric="accuracy", segment="abc=D", min=0.5)
    assert err.setting == "segment" and "A, B, C" in str(err)
    err = _problem(metric="accuracy", segment="region=EU", min=0.5)
    assert "demand_class, abc, xyz" in str(err)
    assert Target(metric="accuracy", segment=" xyz = Z ", min=0.5).segment == "xyz=Z"
    assert Target(metric="bias", segment="all", min=-0.1, max=0.1).bound_text == ">= -0.1, <= 0.1"
    assert Target(metric="bias", segment="all", within=0.05).bound_text == "|x| <= 0.05"


def test_default_targets_skip_the_bottom_level():
    targets = default_targets(["Total", "category", "sku"])
    assert len(targets) == 8 and {t.level for t in targets} == {"Total", "category"}
    accuracy = {t.level: t.min for t in targets if t.metric == "accuracy"}
    assert accuracy == {"Total": 0.9, "category": 0.75}
    coverage = [t for t in targets if t.metric == "coverage_gap"]
    assert all(t.forecast == "statistical" and t.within == 0.05 for t in coverage)
    assert all(t.lag == 3 for t in targets)
    assert default_targets(["series"]) == []


def test_breaches_by_level_and_segment(series_metrics, segment_metrics, history_metrics, caplog):
    caplog.set_level("INFO", logger="sopforecast.monitoring.exceptions")
    out = check_targets(series_metrics, segment_metrics, TARGETS, history_metrics=history_metrics)
    assert "accuracy final lag 6 sku" in caplog.text  # the target that found nothing to check
    assert list(out.columns) == EXCEPTION_COLUMNS
    found = {(r.key, r.metric): r for r in out.itertuples()}
    assert set(found) == {
        ("A", "accuracy"),
        ("C", "accuracy"),
        ("A", "bias"),
        ("B", "bias"),
        ("A", "tracking_signal"),
        ("A", "coverage_gap"),
        ("B", "coverage_gap"),
        ("abc=A", "accuracy"),
        ("all", "accuracy"),
        ("demand_class=intermittent", "accuracy"),
    }
    a = found[("A", "accuracy")]
    assert (a.level, a.forecast, a.lag, a.value, a.target) == ("sku", "final", 3, 0.62, ">= 0.75")
    assert a.breach == pytest.approx(0.13)
    assert a.trend == "0.81 → 0.74 → 0.62" and a.direction == "worsening"
    c = found[("C", "accuracy")]
    assert c.trend == "0.60 → 0.70" and c.direction == "improving"
    assert found[("A", "bias")].target == "|x| <= 0.05"
    assert found[("A", "bias")].breach == pytest.approx(0.07)
    assert found[("B", "bias")].breach == pytest.approx(0.03)
    assert found[("A", "tracking_signal")].direction == "new"  # one cycle known
    assert found[("A", "coverage_gap")].direction == "steady"
    assert found[("B", "coverage_gap")].trend == "" and found[("B", "coverage_gap")].direction == "new"
    segment = found[("abc=A", "accuracy")]
    assert (segment.level, segment.value, segment.breach) == ("abc", 0.70, pytest.approx(0.1))
    assert found[("all", "accuracy")].level == "all"
    assert found[("demand_class=intermittent", "accuracy")].level == "demand_class"
    assert "Total" not in set(out["key"])  # no target on the Total level


def test_actions_follow_the_rules(series_metrics, segment_metrics, history_metrics):
    out = check_targets(series_metrics, segment_metrics, TARGETS, history_metrics=history_metrics)
    action = {(r.key, r.metric): r.action for r in out.itertuples()}
    assert action[("A", "bias")] == ACTIONS["over_persistent"]  # +0.10 then +0.12
    assert action[("A", "bias")].startswith("Persistent over-forecast: review overrides by author")
    assert action[("B", "bias")] == ACTIONS["under"]  # the sign changed: not persistent
    assert "lost sales" in action[("B", "bias")]
    assert action[("A", "tracking_signal")] == "Re-fit the model or check for a structural change in demand"
    assert action[("A", "coverage_gap")].startswith("Widen intervals")
    assert action[("B", "coverage_gap")].startswith("Intervals wider than needed")
    assert action[("A", "accuracy")].startswith("Review model selection and overrides for this series")
    assert "segment" in action[("abc=A", "accuracy")]
    # persistent under-forecast
    history = history_metrics.assign(
        bias=history_metrics["bias"].where(history_metrics["unique_id"] != "B", -0.1)
    )
    out = check_targets(series_metrics, None, TARGETS[1:2], history_metrics=history)
    assert out.set_index("key").loc["B", "action"] == ACTIONS["under_persistent"]
    # without history nothing is persistent and every direction is new
    out = check_targets(series_metrics, None, TARGETS[1:2])
    assert out.set_index("key").loc["A", "action"] == ACTIONS["over"]
    assert set(out["direction"]) == {"new"} and set(out["trend"]) == {""}


def test_ranking_by_money_at_stake_then_breach(series_metrics, segment_metrics, history_metrics):
    stake = pd.Series({"A": 1000.0, "B": 5000.0, "abc=A": 3000.0})
    out = check_targets(
        series_metrics, segment_metrics, TARGETS, history_metrics=history_metrics, at_stake=stake
    )
    assert list(zip(out["key"], out["metric"], strict=True)) == [
        ("B", "coverage_gap"),  # 5000, breach 0.07
        ("B", "bias"),  # 5000, breach 0.03
        ("abc=A", "accuracy"),
        ("A", "tracking_signal"),  # 1000, breach 1.0
        ("A", "coverage_gap"),  # 0.15
        ("A", "accuracy"),  # 0.13
        ("A", "bias"),  # 0.07
        ("demand_class=intermittent", "accuracy"),  # no money known: by breach
        ("C", "accuracy"),
        ("all", "accuracy"),
    ]
    assert out["rank"].tolist() == list(range(1, 11))
    assert out["at_stake"].tolist()[:3] == [5000.0, 5000.0, 3000.0]
    assert np.isnan(out["at_stake"].iloc[-1])
    top = check_targets(series_metrics, segment_metrics, TARGETS, at_stake=stake, top=3)
    assert top["key"].tolist() == ["B", "B", "abc=A"]


def test_no_targets_or_no_breach_gives_an_empty_frame(series_metrics):
    assert list(check_targets(series_metrics, None, []).columns) == EXCEPTION_COLUMNS
    loose = [Target(metric="accuracy", level="sku", min=0.1)]
    assert check_targets(series_metrics, None, loose).empty
    # on the bound is not a breach, even after floating point (1 - 0.25)
    exact = series_metrics.assign(accuracy=1 - 0.25)
    assert check_targets(exact, None, [Target(metric="accuracy", level="sku", min=0.75)]).empty


def test_targets_on_a_scored_frame_end_to_end():
    scored = pd.DataFrame(
        {
            "cycle": ["2026-01", "2026-01", "2026-02", "2026-02"],
            "unique_id": ["A", "B", "A", "B"],
            "level": "sku",
            "lag": 1,
            "statistical": [10.0, 10.0, 10.0, 10.0],
            "final": [12.0, 10.0, 13.0, 10.0],
            "y": [10.0, 10.0, 10.0, 10.0],
        }
    )
    series = accuracy_table(scored, by=("unique_id", "level"), lags=[1])
    history = accuracy_table(scored, by=("cycle", "unique_id", "level"), lags=[1])
    targets = [Target(metric="bias", lag=1, level="sku", within=0.1)]
    out = check_targets(series, None, targets, history_metrics=history, at_stake=pd.Series({"A": 50.0}))
    assert out["key"].tolist() == ["A"]
    row = out.iloc[0]
    assert row["value"] == pytest.approx(0.25) and row["breach"] == pytest.approx(0.15)
    assert row["trend"] == "0.20 → 0.30" and row["direction"] == "worsening"
    assert row["action"] == ACTIONS["over_persistent"] and row["at_stake"] == 50.0
