"""The monitor step's side of a run: run the monitor, log it to MLflow, e-mail the report.

Used by a pipeline's ``monitor`` step and by ``sopforecast monitor run``: the KPIs become
metrics (per level and lag, the cycle as step so the MLflow UI charts the trend), the
exceptions a table, the report, its PDF and the Evidently reports artifacts.
"""

from __future__ import annotations

import logging
import time
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from ..monitoring.monitor import MonitorResult
from .tracking import log_batch

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from ..store.plans import PlanStore
    from ..workdir import Workdir
    from .spec import PipelineSpec
    from .tracking import Store

__all__ = ["run_step", "read_budget_of", "log_to_mlflow", "send", "tiles_html", "cycle_step"]

logger = logging.getLogger(__name__)


def cycle_step(cycle: str) -> int:
    """The MLflow step of a cycle: ``2026-03`` -> 202603, so steps sort and chart in time."""
    stamp = pd.Timestamp(cycle)
    return stamp.year * 100 + stamp.month


def log_to_mlflow(client: MlflowClient, run_id: str, result: MonitorResult) -> None:
    """KPIs as metrics per level, lag and cycle; exceptions as a table; files as artifacts."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = []
    trend = result.trend[result.trend["forecast"] == "final"]
    for row in trend.itertuples(index=False):
        for name in ("accuracy", "bias", "tracking_signal", "coverage"):
            value = getattr(row, name, None)
            if value is None or value != value:
                continue
            key = f"monitor_{name}_lag{row.lag}/{row.level}"
            metrics.append(Metric(key, float(value), now, cycle_step(row.cycle)))
    metrics.append(Metric("monitor_exceptions", float(len(result.exceptions)), now, cycle_step(result.cycle)))
    log_batch(client, run_id, metrics=metrics)
    if len(result.exceptions):
        priced = result.exceptions.assign(currency=result.currency)  # money with its unit
        table = priced.astype(object).where(priced.notna(), None)
        client.log_table(run_id, data=table, artifact_file="monitor/exceptions.json")
    for path in [result.report, result.pdf]:
        if path is not None:
            client.log_artifact(run_id, str(path), "monitor")
    if result.drift is not None:
        for path in result.drift.reports.values():
            client.log_artifact(run_id, str(path), "monitor/drift")
    client.set_tag(run_id, "sopforecast.monitor_cycle", result.cycle)
    client.set_tag(run_id, "sopforecast.currency", result.currency)


def tiles_html(
    plan: str, cycle: str, kpis: pd.DataFrame, exceptions: pd.DataFrame, currency: str = ""
) -> str:
    """The KPI tiles and the top exceptions as plain HTML for an e-mail body (mail clients
    drop style sheets, so styles are inline); money in ``currency``."""
    colours = {"green": "#1a7f37", "amber": "#b7791f", "red": "#c62828"}
    cells = []
    for row in kpis.itertuples(index=False):
        value = f"{row.value:.1%}" if row.unit == "%" else f"{row.value:.2f}"
        cells.append(
            f'<td style="padding:8px 12px;border-left:6px solid {colours.get(row.status, "#888")};'
            f'font-family:Arial,sans-serif"><b>{escape(str(row.name)).capitalize()}</b> '
            f"lag {row.lag}, {escape(str(row.level))}<br>"
            f'<span style="font-size:20px">{value}</span> target {escape(str(row.target))}</td>'
        )
    rows = "".join(f"<tr>{''.join(cells[i : i + 3])}</tr>" for i in range(0, len(cells), 3))
    top = exceptions.head(5)
    items = "".join(
        f"<li>{escape(str(r.key))}: {escape(str(r.metric))} {r.value:.2f} (target {escape(str(r.target))})"
        + (f", {escape(currency)} {r.at_stake:,.0f} at stake" if r.at_stake == r.at_stake else "")
        + f" – {escape(str(r.action))}</li>"
        for r in top.itertuples(index=False)
    )
    font = "style='font-family:Arial,sans-serif'"
    return (
        f"<h2 {font}>Plan {escape(plan)}: accuracy up to {cycle}</h2>"
        f"<table>{rows}</table><h3 {font}>Top exceptions</h3><ol>{items}</ol>"
    )


def send(settings, recipients: list[str], result: MonitorResult) -> None:
    """E-mail the report (tiles in the body, the report and its PDF attached)."""
    from ..monitoring.mail import send_report

    send_report(
        settings,
        recipients,
        Path(result.report),
        Path(result.pdf) if result.pdf else None,
        subject=f"S&OP accuracy report {result.plan} {result.cycle}",
        summary_html=tiles_html(result.plan, result.cycle, result.kpis, result.exceptions, result.currency),
    )
    logger.info("Report sent to %s", ", ".join(recipients))


def read_budget_of(spec: PipelineSpec, workdir: Workdir) -> pd.DataFrame | None:
    """The annual operating plan ``monitor.budget`` names (the demo's own when it names none),
    read and checked; ``None`` without one."""
    from ..planning.finance import read_budget
    from .sources import DEMO_BUDGET

    path = spec.monitor.budget
    if path is None and spec.data.dataset == "demo" and (workdir.data / DEMO_BUDGET).is_file():
        path = workdir.data / DEMO_BUDGET
    return None if path is None else read_budget(path)


def run_step(
    client: MlflowClient,
    run_id: str,
    experiment_id: str,
    spec: PipelineSpec,
    workdir: Workdir,
    plans: PlanStore,
    store: Store,
    *,
    budget: pd.DataFrame | None = None,
) -> MonitorResult | None:
    """A pipeline's monitor step: judge the published plans, log the result to the run,
    send the report if asked; ``None`` when there is nothing to judge yet."""
    from ..monitoring.monitor import NothingToMonitor, run_monitor
    from .steps import plan_name

    # a tracking server's own address; for the local store, where mlflow/serve.sh serves it
    base = store.tracking_uri if store.tracking_uri.startswith("http") else "http://127.0.0.1:5000"
    url = f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    try:
        result = run_monitor(
            plans,
            plan_name(spec),
            spec.monitor,
            workdir.reports,
            mlflow_url=url,
            budget=budget,
        )
    except NothingToMonitor as exc:
        logger.info("Monitor: nothing to judge yet (%s)", exc)
        return None
    log_to_mlflow(client, run_id, result)
    plans.link_monitor(result.run_id, run_id)
    if spec.monitor.recipients:
        send(spec.monitor.mail, spec.monitor.recipients, result)
    return result
