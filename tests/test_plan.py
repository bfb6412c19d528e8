"""Draft plans: planning buckets (months, 4-4-5), plan lines from a forecast, and the
pipeline's plan step (stored, logged to MLflow, the champion's only, gone on failure)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_pipeline import _history, _pipeline

from mlflow import MlflowClient
from sopforecast.errors import ConfigError, DataError
from sopforecast.pipeline import registry
from sopforecast.pipeline.runner import run_pipeline
from sopforecast.pipeline.spec import load_pipeline
from sopforecast.planning.buckets import fiscal_445, to_buckets
from sopforecast.planning.lines import is_coherent, summing
from sopforecast.planning.plan import draft_lines
from sopforecast.store.plans import PlanStore
from sopforecast.workdir import Workdir

HIERARCHY = ["category/sku", "region"]


def test_weekly_values_are_split_between_months_by_their_days():
    weeks = pd.date_range("2026-01-05", periods=9, freq="W-MON")  # Mon 5 Jan .. Mon 2 Mar
    frame = pd.DataFrame({"unique_id": "a", "ds": weeks, "y": 7.0, "hi": 14.0})
    months = to_buckets(frame, ["y", "hi"], "W-MON")
    # January starts on the 5th and March is cut short: only February is covered in full
    assert months["ds"].tolist() == [pd.Timestamp("2026-02-01")]
    assert months["y"].iloc[0] == pytest.approx(28.0)  # one unit a day
    assert months["hi"].iloc[0] == pytest.approx(56.0)


def test_daily_values_add_up_to_months():
    days = pd.date_range("2026-01-01", "2026-03-31", freq="D")
    frame = pd.DataFrame({"unique_id": "a", "ds": days, "y": np.arange(len(days), dtype=float)})
    months = to_buckets(frame, ["y"], "D").set_index("ds")["y"]
    assert months.loc["2026-01-01"] == pytest.approx(np.arange(31).sum())
    assert months.sum() == pytest.approx(frame["y"].sum())


def test_a_445_calendar_has_periods_of_four_four_and_five_weeks():
    edges = fiscal_445(pd.Timestamp("2026-01-05"), 7)
    assert list(np.diff(edges).astype("timedelta64[D]").astype(int)) == [28, 28, 35, 28, 28, 35]
    weeks = pd.date_range("2026-01-05", periods=26, freq="W-MON")
    frame = pd.DataFrame({"unique_id": "a", "ds": weeks, "y": 1.0})
    periods = to_buckets(frame, ["y"], "W-MON", "445")
    assert periods["y"].tolist() == [4.0, 4.0, 5.0, 4.0, 4.0, 5.0]  # half a year, whole periods


def test_445_needs_weekly_or_daily_data():
    frame = pd.DataFrame(
        {"unique_id": "a", "ds": pd.date_range("2026-01-01", periods=3, freq="MS"), "y": 1.0}
    )
    with pytest.raises(ConfigError, match="weekly or daily"):
        to_buckets(frame, ["y"], "MS", "445")


def _panel(periods: int = 24, horizon: int = 6, freq: str = "MS"):
    """Four bottom series (2 categories x 2 regions) and a coherent forecast of every level."""
    rng = np.random.default_rng(1)
    rows = [("A", "A1"), ("A", "A2"), ("B", "B1"), ("B", "B2")]
    bottom = pd.DataFrame(
        [(c, s, r) for c, s in rows for r in ("North", "South")], columns=["category", "sku", "region"]
    )
    bottom["unique_id"] = bottom[["category", "sku", "region"]].agg("/".join, axis=1)
    past = pd.date_range("2024-01-01", periods=periods, freq=freq)
    history = pd.concat(
        [bottom.assign(ds=d, y=rng.integers(10, 50, len(bottom)).astype(float)) for d in past]
    )
    S, _ = summing(bottom, HIERARCHY)
    future = pd.date_range(past[-1], periods=horizon + 1, freq=freq)[1:]
    values = rng.uniform(5, 40, (len(bottom), horizon))
    totals = S.to_numpy() @ values
    forecast = pd.DataFrame(
        {
            "unique_id": np.repeat(S.index.to_numpy(), horizon),
            "ds": np.tile(future, len(S.index)),
            "forecast": totals.ravel(),
        }
    )
    forecast["forecast-lo-80"] = forecast["forecast"] * 0.8
    forecast["forecast-hi-80"] = forecast["forecast"] * 1.2
    return history, forecast, S


def test_draft_lines_cover_every_level_with_naive_and_intervals():
    history, forecast, S = _panel()
    lines, bottom = draft_lines(forecast, history, HIERARCHY, months=6)
    assert set(lines["unique_id"]) == set(S.index) and len(lines) == len(S.index) * 6
    assert lines["unique_id"].iloc[0] == "Total"  # the top of the hierarchy first
    assert list(lines.columns[:6]) == [
        "unique_id",
        "level",
        "ds",
        "statistical",
        "statistical-lo-80",
        "statistical-hi-80",
    ]
    assert (lines["final"] == lines["statistical"]).all() and lines["consensus"].isna().all()
    assert is_coherent(lines, S)
    last = history[history["ds"] == history["ds"].max()]
    # the naive forecast is the last month of history, summed up for aggregates
    assert lines.loc[lines["unique_id"] == "Total", "naive"].iloc[0] == pytest.approx(last["y"].sum())
    north = last.loc[last["region"] == "North", "y"].sum()
    assert lines.loc[lines["unique_id"] == "North", "naive"].iloc[0] == pytest.approx(north)
    assert set(bottom.columns) == {"unique_id", "category", "sku", "region"}


def test_draft_lines_check_months_and_series():
    history, forecast, _ = _panel()
    with pytest.raises(ConfigError, match="plan.months is 12 but the forecast covers 6"):
        draft_lines(forecast, history, HIERARCHY, months=12)
    with pytest.raises(ConfigError, match="between 1 and 36"):
        draft_lines(forecast, history, HIERARCHY, months=40)
    with pytest.raises(DataError, match="no values for 1 series"):
        draft_lines(forecast[forecast["unique_id"] != "A/North"], history, HIERARCHY, months=6)


def test_a_weekly_forecast_becomes_a_monthly_plan():
    history, forecast, S = _panel(periods=60, horizon=14, freq="W-MON")
    lines, _ = draft_lines(forecast, history, HIERARCHY, freq="W-MON", months=2)
    assert lines["ds"].dt.is_month_start.all() and lines["ds"].nunique() == 2
    assert is_coherent(lines, S)


def _plan_pipeline(tmp_path, extra: str = "", name: str = "tiny"):
    _history(tmp_path / "sales.csv")
    plan = "plan:\n  enabled: true\n  months: 6\n" + extra
    return load_pipeline(_pipeline(tmp_path, name=name, extra=plan))


def test_a_pipeline_run_stores_a_draft_and_logs_it(tmp_path):
    workdir = Workdir(tmp_path / "work")
    run = run_pipeline(_plan_pipeline(tmp_path), workdir)
    store = PlanStore(f"sqlite:///{workdir.database}")
    version = store.version(None, "tiny")
    assert run.plan.id == version.id and version.status == "draft"
    assert version.source_run_id == run.run_id
    lines = store.lines(version)
    forecast = run.evaluation.forecast
    assert len(lines) == len(forecast) == 4 * 6
    assert lines["statistical"].sum() == pytest.approx(forecast["forecast"].sum())
    # the history is kept as actuals: 4 series x 40 months
    assert len(store.actuals("tiny")) == 160
    logged = MlflowClient(run.tracking_uri).get_run(run.run_id).data
    assert logged.tags["sopforecast.plan_version_id"] == str(version.id)
    assert logged.metrics["plan_total_final"] == pytest.approx(lines["final"].sum())
    assert logged.metrics["plan_months"] == 6


def test_publish_in_the_pipeline_and_a_challenger_drafts_nothing(tmp_path):
    workdir = Workdir(tmp_path / "work")
    first = run_pipeline(_plan_pipeline(tmp_path, "  publish: true\n"), workdir)
    assert first.plan.status == "published"
    worse = _plan_pipeline(tmp_path, "  publish: true\n")
    worse.forecast.models = ["naive"]
    second = run_pipeline(worse, workdir)
    assert not second.delivered and second.plan is None
    assert len(PlanStore(f"sqlite:///{workdir.database}").versions()) == 1


def test_a_run_that_fails_after_drafting_leaves_no_plan(tmp_path, monkeypatch):
    workdir = Workdir(tmp_path / "work")

    def broken(client, decision):
        raise RuntimeError("registry unavailable")

    monkeypatch.setattr(registry, "promote", broken)  # fails after the draft is stored
    with pytest.raises(RuntimeError, match="registry unavailable"):
        run_pipeline(_plan_pipeline(tmp_path), workdir)
    store = PlanStore(f"sqlite:///{workdir.database}")
    assert store.versions().empty and store.actuals("tiny").empty  # no plan, no history kept
