"""The plan step's side of a pipeline run: store the draft, keep the history as actuals,
and record the version in the run's MLflow run."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pandas as pd

from ..planning import service
from ..store.plans import PlanStore, PlanVersion
from .spec import PipelineSpec
from .steps import plan_name
from .tracking import log_batch, metric_list

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["store", "keep_history", "summary", "log_to_mlflow", "ACTUALS_SETTINGS"]

logger = logging.getLogger(__name__)

# what `sopforecast actuals load FILE` needs to read a file as the pipeline read its history
ACTUALS_SETTINGS = {
    "id_col",
    "time_col",
    "target_col",
    "keys",
    "hierarchy",
    "freq",
    "date_format",
    "align_dates",
    "negative",
    "missing",
    "duplicates",
    "drivers",
}


def store(
    plans: PlanStore,
    spec: PipelineSpec,
    run_id: str,
    draft: tuple,
    history: pd.DataFrame,
    backtest: pd.DataFrame | None = None,
) -> PlanVersion:
    """Write the draft version of the run's plan with the delivered forecast's backtest
    (``unique_id, cutoff, ds, y, forecast``: safety stock is computed from its errors)."""
    lines, bottom = draft
    name = plan_name(spec)
    version = service.create_version(
        plans,
        name,
        lines,
        bottom,
        list(spec.data.hierarchy),
        cycle=spec.plan.cycle,
        source_run_id=run_id,
        bucket=spec.plan.bucket,
        history_end=history["ds"].max(),
        data_config=spec.data.model_dump(mode="json", include=ACTUALS_SETTINGS, exclude_none=True),
    )
    if backtest is not None and len(backtest):
        try:
            plans.save_backtest(version, backtest)
        except BaseException:
            plans.delete_draft(version)
            raise
    logger.info("Draft plan %s stored", version.label)
    return version


def keep_history(plans: PlanStore, spec: PipelineSpec, run_id: str, history: pd.DataFrame) -> None:
    """Keep the history a run's plan was made from as the plan's actuals (a restated month
    becomes a revision); called once the run has succeeded."""
    columns = ["unique_id", "ds", "y", *spec.data.drivers]  # drivers kept for the drift monitor
    loaded = plans.load_actuals(plan_name(spec), history[columns], source=f"pipeline run {run_id}")
    logger.info(
        "History kept as actuals: %d new month(s), %d restated, %d unchanged",
        loaded["new"],
        loaded["revised"],
        loaded["unchanged"],
    )


def summary(plans: PlanStore, version: PlanVersion) -> tuple[dict[str, float], list[float], dict[str, str]]:
    """What the run records of its plan: totals (metrics), the top level's month totals
    and tags naming the version."""
    top = plans.top_totals(version)
    metrics = {
        "plan_version_id": float(version.id),
        "plan_total_statistical": float(top["statistical"].sum()),
        "plan_total_final": float(top["final"].sum()),
        "plan_months": float(len(top)),
    }
    tags = {
        "sopforecast.plan": version.plan,
        "sopforecast.plan_cycle": version.cycle,
        "sopforecast.plan_version_id": str(version.id),
        "sopforecast.plan_status": version.status,
    }
    return metrics, [float(v) for v in top["final"].to_numpy()], tags


def log_to_mlflow(client: MlflowClient, run_id: str, plans: PlanStore, version: PlanVersion) -> None:
    """The version's totals as metrics (the top level's month totals by step) and its tags."""
    metrics, months, tags = summary(plans, version)
    monthly = [m for step, v in enumerate(months) for m in metric_list({"plan_month_total": v}, step)]
    log_batch(client, run_id, metrics=metric_list(metrics) + monthly, tags=tags)
    logger.info(
        "Plan %s: %d months, %s units in all",
        version.label,
        len(months),
        f"{metrics['plan_total_final']:,.0f}",
    )
