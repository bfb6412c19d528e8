"""`sopforecast demo`: the monthly demand-plan pipeline end to end on the embedded demo data."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from mlflow import MlflowClient
from sopforecast.cli import main
from sopforecast.pipeline.tracking import resolve_store
from sopforecast.store.plans import PlanStore
from sopforecast.workdir import Workdir

CHEAP = ["--set", "forecast.models=[snaive,naive]", "--set", "forecast.windows=1"]
# no back-fill and no supply balance: tests of the forecast's outputs
UNMONITORED = ["--set", "monitor.enabled=false", "--set", "balance.enabled=false"]


def test_demo_runs_the_pipeline_and_writes_every_output(tmp_path, capsys):
    workdir = tmp_path / "work"
    code = main(["demo", "--workdir", str(workdir), "--series", "40", *CHEAP])
    printed = " ".join(capsys.readouterr().out.split())
    assert code == 0
    forecast = pd.read_csv(workdir / "forecasts" / "monthly_demand_plan.csv", parse_dates=["ds"])
    history = pd.read_csv(workdir / "data" / "demo_demand.csv", parse_dates=["ds"])
    bottom = forecast[forecast["level"] == "category/family/sku/region/channel"]
    listed = history[["sku", "region", "channel"]].drop_duplicates()
    # 40 series generated; the ones launched only in the calendar's months have no history
    assert bottom["unique_id"].nunique() == len(listed) >= 38
    assert "Total" in set(forecast["unique_id"])
    # every series, discontinued ones too, is forecast from the common origin
    assert forecast["ds"].min() == history["ds"].max() + pd.offsets.MonthBegin(1)
    assert forecast.groupby("unique_id").size().eq(18).all()
    assert (forecast["forecast-lo-80"] >= 0).all()
    # no negative demand at any level, intervals around the point
    assert (forecast.filter(like="forecast") >= 0).all().all()
    assert (forecast["forecast-lo-80"] <= forecast["forecast"]).all()
    assert (forecast["forecast"] <= forecast["forecast-hi-80"]).all()
    report = json.loads((workdir / "reports" / "validation.json").read_text())
    assert report["series"] == len(listed)
    classes = pd.read_csv(workdir / "reports" / "demand_classes.csv")
    assert set(classes["demand_class"]) >= {"smooth", "intermittent"}
    assert str(workdir) in printed and "Series per level" in printed
    assert "mlflow ui --backend-store-uri sqlite:///" in printed
    # tracked and registered
    resolve_store(Workdir(workdir)).activate()
    version = MlflowClient().get_model_version_by_alias("monthly_demand_plan", "champion")
    assert version.version == 1
    # ends with a published plan of every level: the delivered forecast in monthly buckets
    plans = PlanStore(f"sqlite:///{workdir / 'sopforecast.db'}")
    plan = plans.version(None, "monthly_demand_plan")
    assert plan.status == "published" and plan.source_run_id == version.run_id
    lines = plans.lines(plan)
    assert set(lines["unique_id"]) == set(forecast["unique_id"])
    merged = lines.merge(forecast, on=["unique_id", "ds"])
    assert len(merged) == len(lines) == len(forecast)
    assert (merged["statistical"] - merged["forecast"]).abs().max() < 1e-6
    assert (merged["final"] == merged["statistical"]).all()
    assert lines.loc[lines["price"].notna(), "unique_id"].isin(bottom["unique_id"]).all()
    assert "Published demand plan monthly_demand_plan" in printed
    # and judged the back-filled past cycles: the cycle's manager report
    assert len(list((workdir / "reports").glob("manager_report_*.html"))) == 1
    # held against the demo's supply: a binding line, a constrained plan, the S&OP review page
    assert "Supply balance:" in printed and "overloaded resource-month" in printed
    assert (workdir / "data" / "demo_capacity.csv").is_file()
    assert (workdir / "reports" / "balance" / "decisions.csv").is_file()
    html = next((workdir / "reports").glob("manager_report_*.html")).read_text()
    assert "S&amp;OP review: can supply make the plan?" in html


def test_demo_uses_sopforecast_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SOPFORECAST_HOME", str(tmp_path / "home"))
    assert main(["--quiet", "demo", "--series", "12", *CHEAP, *UNMONITORED]) == 0
    assert (tmp_path / "home" / "data" / "demo_demand.csv").exists()
    assert (tmp_path / "home" / "mlflow" / "mlflow.db").exists()


# a second full demo (20 s); test_pipeline checks that a challenger's outputs go aside: CI
# keeps to 20 minutes
@pytest.mark.slow
def test_a_challenger_demo_leaves_the_champions_reports_alone(tmp_path):
    workdir = tmp_path / "work"
    assert main(["--quiet", "demo", "--workdir", str(workdir), "--series", "12", *CHEAP, *UNMONITORED]) == 0
    reports = workdir / "reports"

    def forecast_reports() -> dict[str, bytes]:
        # the monitor's report judges the published plans, whoever is champion: not compared
        return {
            p.name: p.read_bytes()
            for p in reports.iterdir()
            if p.is_file() and "manager_report" not in p.name
        }

    before = forecast_reports()
    worse = ["--set", "forecast.models=[naive]", "--set", "forecast.windows=1", *UNMONITORED]
    assert main(["--quiet", "demo", "--workdir", str(workdir), "--series", "12", *worse]) == 0
    after = forecast_reports()
    assert after == before  # the champion's forecast reports and data summaries, untouched
    challenger = workdir / "challengers" / "monthly_demand_plan" / "v2"
    assert {"validation.json", "demand_classes.csv", "series_per_level.csv"} <= {
        p.name for p in challenger.iterdir()
    }
    plans = PlanStore(f"sqlite:///{workdir / 'sopforecast.db'}").versions()
    # the champion's plan; the challenger drafted none
    assert len(plans) == 1 and plans["status"].iloc[0] == "published"
    same_data = json.loads(before["validation.json"])["series"]
    assert json.loads((challenger / "validation.json").read_text())["series"] == same_data
