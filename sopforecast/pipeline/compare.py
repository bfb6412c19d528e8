"""Leaderboards read back from MLflow: pipeline runs and their candidate models."""

from __future__ import annotations

import pandas as pd

from ..errors import ConfigError

__all__ = ["leaderboard"]


def leaderboard(
    experiment: str, metric: str = "wape", level: str | None = None, limit: int = 200
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

    Returns
    -------
    pandas.DataFrame
        ``run, started, kind, model, level, <metric>, seconds, run_id`` (best first).
    """
    import mlflow

    exp = mlflow.get_experiment_by_name(experiment)
    if exp is None:
        known = [e.name for e in mlflow.search_experiments()]
        raise ConfigError(f"no MLflow experiment {experiment!r}; experiments: {', '.join(known) or 'none'}.")
    runs = mlflow.search_runs(experiment_ids=[exp.experiment_id], max_results=limit, output_format="pandas")
    columns = ["run", "started", "kind", "model", "level", metric, "seconds", "status", "run_id"]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    names = runs.set_index("run_id")["tags.mlflow.runName"]
    rows = []
    for _, r in runs.iterrows():
        role = r.get("tags.sopforecast.role")
        parent = r.get("tags.mlflow.parentRunId")
        headline = r.get("tags.sopforecast.headline_level") or "all"
        wanted = level or headline
        if role == "pipeline":
            method = r.get("params.forecast.reconcile") or "base"
            key = (
                f"metrics.backtest_{metric}" if wanted == headline else f"metrics.{metric}_{method}_{wanted}"
            )
            model = "delivered forecast"
        elif role == "candidate":
            key = f"metrics.{metric}" if wanted == "all" else f"metrics.{metric}_{wanted}"
            model = r.get("tags.model")
        else:
            continue
        value = r.get(key)
        seconds = (r["end_time"] - r["start_time"]).total_seconds() if pd.notna(r.get("end_time")) else None
        rows.append(
            {
                "run": names.get(parent, r["tags.mlflow.runName"]) if parent else r["tags.mlflow.runName"],
                "started": r["start_time"],
                "kind": role,
                "model": model,
                "level": wanted,
                metric: value,
                "seconds": seconds,
                "status": r["status"],
                "run_id": r["run_id"] if role == "pipeline" else parent,
            }
        )
    table = pd.DataFrame(rows, columns=columns)
    order = table[metric].abs() if metric == "bias" else table[metric]
    return (
        table.assign(_o=order).sort_values("_o", na_position="last").drop(columns="_o").reset_index(drop=True)
    )
