"""How long the planner's actions take on a demo-sized plan (1,165 series x 18 months).

A coherent synthetic forecast of the demo hierarchy (500 bottom series) becomes a draft, is
stored, takes a batch of overrides at every level, is published, exported as the planner
workbook and read back, in the plan store given (SQLite by default, or a PostgreSQL URL).

Run ``python -m sopforecast.bench.plan [--store URL] [--overrides 60] --output DIR``.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.datasets import generate_plan
from ..demo import DEMO_HIERARCHY
from ..planning import service
from ..planning.layouts import read_planner_workbook
from ..planning.lines import is_coherent, summing
from ..planning.plan import draft_lines
from ..planning.workflow import apply_overrides_frame, export_version
from ..store.plans import PlanStore
from . import output_folder

__all__ = ["demo_sized_plan", "run", "main"]

logger = logging.getLogger(__name__)


def demo_sized_plan(n_series: int = 500, months: int = 18, seed: int = 0):
    """Demo history and a coherent forecast of every level (bottom values summed up)."""
    plan = generate_plan(n_series=n_series, periods=60, horizon=months, seed=seed)
    keys = [c for chain in DEMO_HIERARCHY for c in chain.split("/")]
    history = plan.history.assign(unique_id=plan.history[keys].astype(str).agg("/".join, axis=1))
    bottom = history[["unique_id", *keys]].drop_duplicates("unique_id")
    S, _ = summing(bottom, DEMO_HIERARCHY)
    future = pd.date_range(history["ds"].max(), periods=months + 1, freq="MS")[1:]
    rng = np.random.default_rng(seed)
    values = S.S @ rng.gamma(2.0, 20.0, (len(S.columns), months))  # sparse: any size
    forecast = pd.DataFrame(
        {"unique_id": np.repeat(S.index, months), "ds": np.tile(future, len(S)), "forecast": values.ravel()}
    )
    for lv, z in ((80, 1.28), (95, 1.96)):
        forecast[f"forecast-lo-{lv}"] = forecast["forecast"] * (1 - 0.1 * z)
        forecast[f"forecast-hi-{lv}"] = forecast["forecast"] * (1 + 0.1 * z)
    return history, forecast, S


def run(store_url: str, n_overrides: int = 60, seed: int = 0) -> dict[str, float]:
    """Seconds per planner action, and the plan's size and coherence."""
    history, forecast, S = demo_sized_plan(seed=seed)
    seconds: dict[str, float] = {}

    def timed(name, fn):
        start = time.perf_counter()
        out = fn()
        seconds[name] = time.perf_counter() - start
        return out

    lines, bottom = timed("draft", lambda: draft_lines(forecast, history, DEMO_HIERARCHY))
    plans = timed("open store", lambda: PlanStore(store_url))
    version = timed(
        "store draft", lambda: service.create_version(plans, "bench", lines, bottom, DEMO_HIERARCHY)
    )
    timed("keep history as actuals", lambda: plans.load_actuals("bench", history[["unique_id", "ds", "y"]]))
    timed("read lines", lambda: plans.lines(version))
    rng = np.random.default_rng(seed)
    months = np.sort(lines["ds"].unique())
    overrides = pd.DataFrame(
        {
            "key": rng.choice(S.index.to_numpy(), n_overrides),
            "month": [pd.Timestamp(m).strftime("%Y-%m") for m in rng.choice(months, n_overrides)],
            "change_pct": rng.uniform(-20, 20, n_overrides).round(1),
            "author": "bench",
            "reason": "benchmark",
        }
    ).drop_duplicates(["key", "month"])
    version, _ = timed(
        f"apply {len(overrides)} overrides",
        lambda: apply_overrides_frame(plans, overrides, version=version, source="bench"),
    )
    timed("publish", lambda: plans.publish(version.id))
    with tempfile.TemporaryDirectory() as tmp:
        book = Path(tmp) / "plan.xlsx"
        timed(
            "export planner workbook", lambda: export_version(plans, book, version=version, layout="planner")
        )
        timed("read workbook back", lambda: read_planner_workbook(book, author="bench", reason="bench"))
        timed("export long csv", lambda: export_version(plans, Path(tmp) / "plan.csv", version=version))
    final = plans.lines(version)
    return {
        "seconds": seconds,
        "series": int(final["unique_id"].nunique()),
        "lines": len(final),
        "coherent": bool(is_coherent(final, S)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sopforecast.bench.plan", description=__doc__)
    parser.add_argument("--store", default=None, help="Plan store URL; default a new SQLite file.")
    parser.add_argument("--overrides", type=int, default=60)
    parser.add_argument("--output", default="sopforecast-work/benchmarks/plan")
    args = parser.parse_args(argv)
    out = output_folder(args.output)
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.store or f"sqlite:///{tmp}/plans.db", args.overrides)
    (out / "plan_seconds.json").write_text(json.dumps(result, indent=2))
    for name, value in result["seconds"].items():
        logger.info("%-28s %6.2f s", name, value)
    logger.info("%d series, %d lines, coherent: %s", result["series"], result["lines"], result["coherent"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
