"""Leaderboards read back from MLflow: pipeline runs and their candidate models."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from ..errors import ConfigError

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["leaderboard"]

_COLUMNS = ["run", "started", "kind", "model", "level", "seconds", "status", "run_id"]


def leaderboard(
    experiment: str,
    metric: str = "wape",
    level: str | None = None,
    limit: int = 200,
    *,
    client: MlflowClient | None = None,
) -> pd.DataFrame:
    """One row per pipeline run (its delivered forecast) and per candidate model of each run.

    Parameters
    ----------
    experiment : str
        MLflow experiment name (a pipeline's ``tracking.experiment``).
    metric : str, default "wape"
        mase, rmsse, smape, wape or bias; rows are sorted by it (absolute value for bias).
    level : str, optional
        A hierarchy level (``category/family``); default every series together.
    limit : int, default 200
        Runs read from MLflow (pipeline and candidate runs together), latest first.
    client : mlflow.MlflowClient, optional
        The store's client (``Store.client()``); default a client on MLflow's current
        tracking URI.

    Returns
    -------
    pandas.DataFrame
        ``run, started, kind, model, level, <metric>, seconds, status, run_id`` (best first).
    """
    from mlflow import MlflowClient

    client = client or MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        known = [e.name for e in client.search_experiments()]
        raise ConfigError(f"no MLflow experiment {experiment!r}; experiments: {', '.join(known) or 'none'}.")
    runs = client.search_runs([exp.experiment_id], max_results=limit, order_by=["attributes.start_time DESC"])
    columns = [*_COLUMNS[:5], metric, *_COLUMNS[5:]]
    names = {r.info.run_id: r.data.tags.get("mlflow.runName", r.info.run_id) for r in runs}
    rows = [row for r in runs if (row := _row(r, names, metric, level)) is not None]
    table = pd.DataFrame(rows, columns=columns)
    table[metric] = pd.to_numeric(table[metric], errors="coerce").astype(float)
    table["seconds"] = pd.to_numeric(table["seconds"], errors="coerce").astype(float)
    order = table[metric].abs() if metric == "bias" else table[metric]
    return (
        table.assign(_o=order).sort_values("_o", na_position="last").drop(columns="_o").reset_index(drop=True)
    )


def _row(run, names: dict[str, str], metric: str, level: str | None) -> dict | None:
    """The leaderboard row of a pipeline or candidate run; None for any other run."""
    tags, metrics, params = run.data.tags, run.data.metrics, run.data.params
    role = tags.get("sopforecast.role")
    parent = tags.get("mlflow.parentRunId")
    headline = tags.get("sopforecast.headline_level") or "all"
    wanted = level or headline
    if role == "pipeline":
        method = params.get("forecast.reconcile") or "base"
        key = f"backtest_{metric}" if wanted == headline else f"{metric}_{method}_{wanted}"
        model = "delivered forecast"
    elif role == "candidate":
        key = metric if wanted == "all" else f"{metric}_{wanted}"
        model = tags.get("model")
    else:
        return None
    info = run.info
    started = pd.to_datetime(info.start_time, unit="ms", utc=True)
    seconds = (info.end_time - info.start_time) / 1000 if info.end_time else None
    name = names.get(parent, parent) if parent else tags.get("mlflow.runName", info.run_id)
    return {
        "run": name,
        "started": started,
        "kind": role,
        "model": model,
        "level": wanted,
        metric: metrics.get(key),
        "seconds": seconds,
        "status": info.status,
        "run_id": info.run_id if role == "pipeline" else parent,
    }
