"""The pipeline's balance step: what a run logs, stores and writes, and what it refuses.

Runs the demo pipeline on small demo data (24 series: Snacks among them, so the YAML's
scenarios are made) with cheap models, and a file-based pipeline whose supply files are bad.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pandas as pd
import pytest

from mlflow import MlflowClient
from sopforecast.errors import ConfigError, DataError
from sopforecast.pipeline.runner import run_pipeline
from sopforecast.pipeline.spec import load_pipeline
from sopforecast.pipeline.tracking import resolve_store
from sopforecast.store.plans import PlanStore
from sopforecast.workdir import Workdir

REPO = Path(__file__).resolve().parents[1]
FAST = ["forecast.models=[snaive,naive]", "forecast.windows=1", "forecast.horizon=6", "monitor.enabled=false"]


def _client(workdir: Workdir) -> MlflowClient:
    return resolve_store(workdir, None, None).client()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    workdir = Workdir(tmp_path_factory.mktemp("balance") / "work")
    spec = load_pipeline(REPO / "pipelines" / "monthly_demand_plan.yaml", ["data.demo.series=24", *FAST])
    return run_pipeline(spec, workdir), workdir


def test_the_run_logs_the_key_figures_and_the_tables(demo_run):
    run, workdir = demo_run
    client = _client(workdir)
    metrics = client.get_run(run.run_id).data.metrics
    for figure in ("overloaded_resource_months", "stockout_months", "unmet_units", "revenue_at_stake"):
        assert f"balance_{figure}" in metrics
    assert metrics["balance_overloaded_resource_months"] >= 1  # the demo's shutdown month binds
    for name in ("snacks-promo", "snacks-line-plus-25"):
        assert f"scenario/{name}/unmet_units" in metrics
    # more Snacks capacity never leaves more demand unmet than the base
    assert metrics["scenario/snacks-line-plus-25/unmet_units"] <= metrics["balance_unmet_units"] + 1e-6
    files = {Path(a.path).name for a in client.list_artifacts(run.run_id, "balance")}
    assert {"utilisation.csv", "decisions.csv", "scenarios.csv", "safety_stock.csv", "balance.png"} <= files
    tag = client.get_run(run.run_id).data.tags["sopforecast.balance_rule"]
    assert "priority 1 first" in tag
    # the planners' copy beside the other reports
    table = pd.read_csv(workdir.reports / "balance" / "scenarios.csv")
    assert list(table.columns[:4]) == ["figure", "base", "snacks-promo", "snacks-line-plus-25"]


def test_the_store_keeps_the_reviews_and_the_backtest(demo_run):
    run, workdir = demo_run
    store = PlanStore.open(workdir)
    version = run.plan
    reviews = store.balances(version.plan, version=version)
    assert len(reviews) == 3  # base and two scenarios, from this run
    assert set(reviews["mlflow_run_id"]) == {run.run_id}
    assert reviews["scenario_id"].isna().sum() == 1
    base = reviews[reviews["scenario_id"].isna()].iloc[0]
    metrics = _client(workdir).get_run(run.run_id).data.metrics
    assert base["figures"]["unmet_units"] == pytest.approx(metrics["balance_unmet_units"])
    assert set(store.scenarios(version.plan)["name"]) == {"snacks-promo", "snacks-line-plus-25"}
    backtest = store.backtest(version)
    assert {"unique_id", "cutoff", "ds", "y", "forecast"} <= set(backtest.columns) and len(backtest)
    # the safety stock came from those errors: every inventory key got a method
    safety = pd.read_csv(workdir.reports / "balance" / "safety_stock.csv")
    assert (safety["method"] != "no backtest").all()


def _file_pipeline(folder: Path, capacity: str, extra: str = "") -> Path:
    from sopforecast.data.datasets import generate_plan
    from sopforecast.data.supply_demo import generate_supply

    plan = generate_plan(n_series=12, periods=36, seed=1)
    plan.history.to_csv(folder / "sales.csv", index=False)
    supply = generate_supply(
        plan.history, start=plan.history["ds"].max() + pd.offsets.MonthBegin(1), months=6
    )
    capacity_frame = supply.capacity.copy()
    if capacity == "negative":
        capacity_frame.loc[2, "capacity"] = -5.0
    capacity_frame.to_csv(folder / "capacity.csv", index=False)
    supply.routing.to_csv(folder / "routing.csv", index=False)
    supply.inventory.to_csv(folder / "inventory.csv", index=False)
    path = folder / "supply.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            name: supply
            data:
              path: {folder / "sales.csv"}
              hierarchy: [category/family/sku, region/channel]
              freq: MS
            forecast: {{horizon: 6, models: [snaive, naive], windows: 1}}
            plan: {{enabled: true}}
            balance:
              enabled: true
              capacity: {folder / "capacity.csv"}
              routing: {folder / "routing.csv"}
              inventory: {folder / "inventory.csv"}
            """
        )
        + extra
    )
    return path


def _nothing_stored(workdir: Workdir) -> None:
    store = PlanStore.open(workdir)
    assert store.versions("supply").empty
    client = _client(workdir)
    assert not client.search_registered_models()


def test_a_bad_capacity_file_fails_the_run_before_anything_is_stored(tmp_path):
    path = _file_pipeline(tmp_path, "negative")
    workdir = Workdir(tmp_path / "work")
    with pytest.raises(DataError) as info:
        run_pipeline(load_pipeline(path), workdir)
    message = str(info.value)
    assert "capacity.csv" in message and "capacity" in message and "negative" in message
    _nothing_stored(workdir)


def test_a_scenario_on_an_unknown_series_is_refused_naming_the_setting(tmp_path):
    extra = textwrap.indent(
        textwrap.dedent(
            """
            scenarios:
              - {name: more-of-nothing, change: {kind: uplift, node: No Such Category, pct: 10}}
            """
        ),
        "  ",
    )
    path = _file_pipeline(tmp_path, "good", extra)
    workdir = Workdir(tmp_path / "work")
    with pytest.raises(ConfigError) as info:
        run_pipeline(load_pipeline(path), workdir)
    assert info.value.setting == "balance.scenarios[0].change.node"
    assert "No Such Category" in str(info.value)
    _nothing_stored(workdir)


def test_balance_needs_the_supply_files_outside_the_demo(tmp_path):
    path = _file_pipeline(tmp_path, "good")
    with pytest.raises(ConfigError, match="balance.capacity"):
        load_pipeline(path, ["balance.capacity=null"])


def test_relative_supply_files_resolve_against_the_pipeline_folder(tmp_path):
    path = _file_pipeline(tmp_path, "good")
    text = path.read_text().replace(str(tmp_path / "capacity.csv"), "capacity.csv")
    (tmp_path / "sub").mkdir()
    moved = tmp_path / "relative.yaml"
    moved.write_text(text)
    spec = load_pipeline(moved)
    assert spec.balance.capacity == str((tmp_path / "capacity.csv").resolve())


def test_a_bad_budget_fails_the_run_before_anything_is_stored(tmp_path):
    (tmp_path / "budget.csv").write_text("key,month,revenue\nTotal,2026-13,100\n")
    extra = textwrap.dedent(
        f"""
        monitor:
          enabled: true
          budget: {tmp_path / "budget.csv"}
        """
    )
    path = _file_pipeline(tmp_path, "good", extra)
    workdir = Workdir(tmp_path / "work")
    with pytest.raises(DataError, match="budget.csv"):
        run_pipeline(load_pipeline(path), workdir)
    _nothing_stored(workdir)
