"""The balance step's side of a run (and of ``sopforecast balance run``): read the supply
files, hold the plan (and its scenarios) against them, write the tables and charts, log the
key figures to MLflow.

The supply files are read and checked before the run forecasts anything (:func:`inputs`), so
a bad capacity, routing or inventory file fails the run with nothing stored. The demo makes
its own supply files beside its demand data (``data/demo_capacity.csv`` ...), sized to the
demand so that capacity binds.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..data.hierarchy import Hierarchy, key_columns
from ..data.supply_files import read_capacity, read_inventory, read_routing
from ..exports import write_table
from ..planning import scenarios as planning_scenarios
from ..planning.scenarios import BASE, SupplyInputs
from ..supply.balance import FIGURES, Balance
from .tracking import log_batch, metric_list

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from ..store.plans import PlanStore, PlanVersion
    from ..workdir import Workdir
    from .sources import History
    from .spec import BalanceStep, PipelineSpec

__all__ = [
    "inputs",
    "read_inputs",
    "demo_files",
    "supply_files",
    "run_step",
    "write_tables",
    "chart",
    "log_to_mlflow",
    "FOLDER",
    "plan_keys",
    "check_scenarios",
]

logger = logging.getLogger(__name__)

FOLDER = "balance"  # under reports/ and among the run's artifacts
_DEMO_FILES = {
    "capacity": "demo_capacity.csv",
    "routing": "demo_routing.csv",
    "inventory": "demo_inventory.csv",
}


def plan_keys(bottom: pd.DataFrame, hierarchy: list[str]) -> set[str]:
    """Every series id of the plan (any level): the keys a routing or inventory row may name."""
    return set(Hierarchy.from_bottom(bottom, hierarchy).ids)


def read_inputs(
    capacity: str | Path, routing: str | Path, inventory: str | Path, keys: set[str] | None
) -> SupplyInputs:
    """The three supply files read and checked (unknown keys refused when ``keys`` is given).

    Raises
    ------
    DataError
        Naming the file, the column, the rows and the fix; nothing is read further.
    """
    return SupplyInputs(
        read_capacity(capacity),
        read_routing(routing, plan_keys=keys),
        read_inventory(inventory, plan_keys=keys),
        (str(capacity), str(routing), str(inventory)),
    )


def demo_files(
    history: pd.DataFrame, workdir: Workdir, *, start: pd.Timestamp, months: int
) -> dict[str, Path]:
    """Write the demo's supply files into ``workdir/data`` (made from its history, so that
    one line's seasonal peak and a planned shutdown bind) and return their paths."""
    from ..data.io import write_frame
    from ..data.supply_demo import generate_supply

    made = generate_supply(history, start=start, months=months)
    workdir.ensure(workdir.data)
    return {what: write_frame(getattr(made, what), workdir.data / name) for what, name in _DEMO_FILES.items()}


def supply_files(settings: BalanceStep | None, workdir: Workdir) -> dict[str, Path]:
    """The supply files a balance of a stored plan reads (``sopforecast balance run``): those
    ``balance:`` names, else the demo's in ``workdir/data`` (its pipeline run writes them)."""
    named = {what: getattr(settings, what, None) for what in _DEMO_FILES}
    return {what: Path(named[what] or workdir.data / name) for what, name in _DEMO_FILES.items()}


def inputs(spec: PipelineSpec, workdir: Workdir, data: History) -> tuple[SupplyInputs, list]:
    """The balance step's supply inputs (the files ``balance:`` names, or for the demo the
    files it makes) and the scenarios it will run; read and checked before anything is
    forecast (:func:`check_scenarios`)."""
    settings = spec.balance
    files = {"capacity": settings.capacity, "routing": settings.routing, "inventory": settings.inventory}
    if not all(files.values()):  # only the demo may leave them out (the spec checks)
        start = data.frame["ds"].max() + pd.offsets.MonthBegin(1)
        made = demo_files(data.frame, workdir, start=start, months=spec.plan.months or 18)
        files = {what: files[what] or str(made[what]) for what in files}
    keys = None
    hierarchy = list(spec.data.hierarchy)
    if hierarchy:
        key_cols = key_columns(hierarchy)
        bottom = data.frame.drop_duplicates("unique_id")[["unique_id", *key_cols]]
        keys = plan_keys(bottom, hierarchy)
    else:
        keys = set(data.frame["unique_id"].astype(str))
    supply = read_inputs(files["capacity"], files["routing"], files["inventory"], keys)
    scenarios = check_scenarios(spec, keys, set(data.frame["unique_id"].astype(str)), supply)
    logger.info(
        "Supply inputs: %d resource(s) over %d month(s), %d routing row(s), %d inventory key(s)",
        supply.capacity["resource"].nunique(),
        supply.capacity["ds"].nunique(),
        len(supply.routing),
        len(supply.inventory),
    )
    return supply, scenarios


def check_scenarios(spec: PipelineSpec, keys: set[str], bottom: set[str], supply: SupplyInputs) -> list:
    """The configured scenarios, each checked to name series and resources that exist, before
    the run forecasts (a scenario that cannot be made would fail the run after the plan is
    stored). On the demo data, whose size ``--series`` changes, a scenario naming a category
    the data does not have is left out with a warning; elsewhere it is an error.

    Raises
    ------
    ConfigError
        Naming the setting (``balance.scenarios[i].change.node`` ...) and a few valid values.
    """
    from ..errors import ConfigError, format_examples
    from ..supply.scenarios import parse_change

    resources = set(supply.capacity["resource"])
    kept = []
    for i, wanted in enumerate(spec.balance.scenarios):
        change = parse_change(wanted.change)
        field, value, known = None, None, None
        if change.kind in ("uplift", "promotion", "price") and change.node not in keys:
            field, value, known = "node", change.node, keys
        elif change.kind == "launch" and change.like not in bottom:
            field, value, known = "like", change.like, bottom
        elif change.kind in ("capacity", "delay") and change.resource not in resources:
            field, value, known = "resource", change.resource, resources
        if field is None:
            kept.append(wanted)
            continue
        problem = (
            f"scenario {wanted.name!r} names {field} {value!r}, which the plan's "
            f"{'supply' if field == 'resource' else 'series'} do not have; e.g. "
            f"{format_examples(sorted(known), 4)}"
        )
        if spec.data.dataset != "demo":
            raise ConfigError(f"{problem}.", setting=f"balance.scenarios[{i}].change.{field}")
        logger.warning("%s (the demo data is small): the scenario is left out", problem)
    return kept


def _scenario_figures(table: pd.DataFrame) -> dict[str, float]:
    """The compare table's figures as metrics: ``scenario/<name>/<figure>``."""
    out = {}
    for figure, row in table.set_index("figure").iterrows():
        for name, value in row.items():
            if name == BASE or " vs " in str(name) or value is None or pd.isna(value):
                continue
            out[f"scenario/{name}/{figure}"] = float(value)
    return out


def write_tables(
    result: Balance, folder: Path, *, table: pd.DataFrame | None = None, prefix: str = ""
) -> dict[str, Path]:
    """A balance review's tables as CSV files for people (spreadsheet-safe): utilisation,
    capacity exceptions, safety stock, the constrained plan, unmet demand, projected
    inventory, inventory exceptions, decisions; and the scenario table when given."""
    folder.mkdir(parents=True, exist_ok=True)
    plan = result.plan
    frames = {
        "utilisation": result.utilisation,
        "capacity_exceptions": result.capacity_exceptions,
        "safety_stock": result.safety,
        "supply_plan": plan.supply,
        "unmet_demand": plan.unmet[plan.unmet["unmet"] > 0],
        "resource_plan": plan.resources,
        "projected_inventory": result.projection,
        "inventory_exceptions": result.inventory_exceptions,
        "decisions": result.decisions,
        "months": result.monthly(),
    }
    written = {name: write_table(frame, folder / f"{prefix}{name}.csv") for name, frame in frames.items()}
    if table is not None:
        written["scenarios"] = write_table(table, folder / f"{prefix}scenarios.csv")
    return written


def chart(balances: dict[str, Balance], path: Path) -> Path:
    """The balance at a glance, as a PNG: utilisation per resource and month of the base plan
    against the capacity line (months above 200% marked with their value), and each
    scenario's change against the base, in its own units, for the figures a meeting decides
    on (revenue served, unmet units, revenue at stake, stock-out months)."""
    from matplotlib.figure import Figure

    base = balances[BASE]
    util = base.utilisation.pivot_table(index="ds", columns="resource", values="utilisation") * 100
    shown = [
        ("revenue_served", "Revenue served"),
        ("unmet_units", "Unmet units"),
        ("revenue_at_stake", "Revenue at stake"),
        ("stockout_months", "Stock-out item-months"),
    ]
    names = [n for n in balances if n != BASE]
    fig = Figure(figsize=(13, 4.8))
    grid = fig.add_gridspec(len(shown), 2, width_ratios=[3, 2], hspace=0.9)
    left = fig.add_subplot(grid[:, 0])
    top = 200.0
    for resource in util.columns:
        values = util[resource]
        (line,) = left.plot(util.index, values.clip(upper=top), marker="o", ms=3, lw=1.4, label=str(resource))
        for ds, value in values[values > top].items():
            left.annotate(
                f"{value:.0f}%", (ds, top), fontsize=7, color=line.get_color(), ha="center", va="bottom"
            )
    left.axhline(100, color="#c62828", lw=1, ls="--", label="capacity")
    left.set_ylim(0, top * 1.1)
    left.set_title("Capacity utilisation of the base plan, %", fontsize=10)
    left.legend(fontsize=7, ncol=2, loc="lower left")
    left.tick_params(labelsize=8)
    colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"]
    for i, (key, label) in enumerate(shown):
        ax = fig.add_subplot(grid[i, 1])
        was = base.figures.get(key)
        change = [
            (balances[n].figures.get(key) or 0.0) - (was or 0.0) if was is not None else 0.0 for n in names
        ]
        y = np.arange(len(names))
        bars = ax.barh(y, change, color=[colours[j % len(colours)] for j in range(len(names))], height=0.6)
        ax.bar_label(bars, labels=[f"{v:+,.0f}" for v in change], fontsize=7, padding=2)
        ax.axvline(0, color="#333333", lw=0.8)
        ax.set_yticks(y, [str(n) for n in names], fontsize=7)
        ax.set_title(
            f"{label}: change against the base ({'n/a' if was is None else f'{was:,.0f}'})", fontsize=8
        )
        ax.tick_params(axis="x", labelsize=7)
        span = max((abs(v) for v in change), default=0.0) or 1.0
        ax.set_xlim(-span * 1.6, span * 1.6)
        if not names:
            ax.text(0.5, 0.5, "no scenario", ha="center", va="center", transform=ax.transAxes, fontsize=8)
    fig.subplots_adjust(left=0.05, right=0.98, top=0.93, bottom=0.08, wspace=0.35)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def log_to_mlflow(
    client: MlflowClient, run_id: str, base: Balance, table: pd.DataFrame, folder: Path
) -> None:
    """The base plan's key figures (``balance_<figure>``), each scenario's
    (``scenario/<name>/<figure>``), and the tables and chart as artifacts (``balance/``)."""
    metrics = {f"balance_{k}": float(v) for k, v in base.figures.items() if v is not None and k in FIGURES}
    metrics.update(_scenario_figures(table))
    log_batch(
        client, run_id, metrics=metric_list(metrics), tags={"sopforecast.balance_rule": base.rule[:500]}
    )
    client.log_artifacts(run_id, str(folder), FOLDER)


def run_step(
    client: MlflowClient,
    run_id: str,
    spec: PipelineSpec,
    workdir: Workdir,
    plans: PlanStore,
    version: PlanVersion,
    supply: SupplyInputs,
    scenarios: list | None = None,
    *,
    forecaster=None,
    future: pd.DataFrame | None = None,
    baseline: pd.DataFrame | None = None,
    reports: Path | None = None,
) -> tuple[pd.DataFrame, dict[str, Balance]]:
    """A pipeline's balance step on the version the run drafted: create the ``scenarios``
    (default: the configured ones) on it, a scenario of the same name replaced (the pipeline
    owns it); balance the base and each scenario, keep the reviews in the plan store, log
    and write them."""
    settings = spec.balance
    names = []
    for wanted in settings.scenarios if scenarios is None else scenarios:
        if not plans.scenarios(version.plan, wanted.name).empty:
            plans.delete_scenario(version.plan, wanted.name)
            logger.info("Scenario %r replaced by the pipeline's on %s", wanted.name, version.label)
        planning_scenarios.create(
            plans,
            version,
            wanted.name,
            wanted.change,
            forecaster=forecaster,
            future=future,
            baseline=baseline,
            by="pipeline",
        )
        names.append(wanted.name)
    table, balances = planning_scenarios.compare(
        plans,
        version,
        supply,
        names,
        settings=settings.settings(),
        source=f"pipeline run {run_id}",
        mlflow_run_id=run_id,
    )
    base = balances[BASE]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / FOLDER
        write_tables(base, folder, table=table)
        chart(balances, folder / "balance.png")
        log_to_mlflow(client, run_id, base, table, folder)
        if reports is not None:
            target = reports / FOLDER
            staged = reports / f".{FOLDER}.tmp"
            shutil.rmtree(staged, ignore_errors=True)
            shutil.copytree(folder, staged)
            shutil.rmtree(target, ignore_errors=True)
            staged.replace(target)
    figures = base.figures
    logger.info(
        "Balance of %s: %d overloaded resource-month(s), %s units unmet (%s at stake), "
        "%d stock-out month(s); %s",
        version.label,
        figures["overloaded_resource_months"],
        f"{figures['unmet_units']:,.0f}",
        "n/a" if figures["revenue_at_stake"] is None else f"{figures['revenue_at_stake']:,.0f}",
        figures["stockout_months"],
        base.rule,
    )
    return table, balances
