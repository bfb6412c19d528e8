"""PBS benchmark: hierarchical forecasts of Scripts (Concession / Type / ATC1 / ATC2) with
the last 24 months held out; accuracy per level for the base forecasts and for every
reconciliation method, and the coherence of each.

Run ``python -m sopforecast.bench.pbs [--path PBS.csv]``; results land in ``--output``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import pandas as pd

from ..config import DataConfig, ForecastConfig
from ..data.pbs import load_pbs
from ..data.schema import validate
from ..forecasting.forecaster import Forecaster
from ..forecasting.metrics import evaluate_backtest, summarise_metrics
from ..forecasting.reconcile import METHODS, coherence_gap, reconcile
from . import output_folder

__all__ = ["HIERARCHY", "holdout_accuracy", "main"]

logger = logging.getLogger(__name__)

HIERARCHY = ["Concession/Type/ATC1/ATC2"]
HOLDOUT = 24


def _history(path: str | None) -> pd.DataFrame:
    raw = load_pbs(path).drop(columns="Cost")
    config = DataConfig(
        target_col="Scripts", hierarchy=HIERARCHY, freq="MS", missing="zero", short_series="report"
    )
    return validate(raw, config, source="PBS").frame


def holdout_accuracy(
    history: pd.DataFrame,
    *,
    holdout: int = HOLDOUT,
    models: str = "auto",
    windows: int = 1,
    n_jobs: int = -1,
) -> dict:
    """Forecast every level from ``holdout`` months before the end, reconcile with every
    method, score each level on the held-out months and measure coherence."""
    end = history["ds"].max()
    origin = end - pd.DateOffset(months=holdout)
    train = history[history["ds"] <= origin]
    config = ForecastConfig(
        horizon=holdout,
        freq="MS",
        models=models,
        windows=windows,
        hierarchy=HIERARCHY,
        reconcile="none",
        n_jobs=n_jobs,
        level=[80, 95],
    )
    start = time.perf_counter()
    forecaster = Forecaster(config).fit(train)
    result = forecaster.predict()
    base_seconds = time.perf_counter() - start
    base = result.forecast
    residuals = result.backtest.chosen_cv if result.backtest is not None else None
    timings = {"base": base_seconds}
    columns = {}
    methods = [m for m in METHODS if residuals is not None or m not in ("wls_var", "mint_shrink")]
    for method in methods:
        start = time.perf_counter()
        rec = reconcile(
            base,
            forecaster.panel_.hierarchy,
            forecaster.panel_.tags,
            methods=[method],
            residuals=residuals,
            history=train,  # only for series without backtest residuals
            middle_level="Concession/Type/ATC1",
            nonnegative=False,
        )
        timings[method] = time.perf_counter() - start
        columns[method] = rec.set_index(["unique_id", "ds"])[f"forecast/{method}"]
    wide = base.set_index(["unique_id", "ds"])[["forecast"]].rename(columns={"forecast": "base"})
    wide = wide.join(pd.DataFrame(columns)).reset_index()
    # actuals of every series at every level, built from the full bottom history
    from ..forecasting.reconcile import aggregate_hierarchy

    keys = [k for chain in HIERARCHY for k in chain.split("/")]
    actual, _, _ = aggregate_hierarchy(history[["unique_id", "ds", "y", *keys]], HIERARCHY)
    frame = wide.merge(actual, on=["unique_id", "ds"], how="left").assign(cutoff=origin)
    names = ["base", *methods]
    coherence = {m: coherence_gap(frame, forecaster.panel_.hierarchy, m) for m in names}
    insample = actual[actual["ds"] <= origin]
    scored = evaluate_backtest(frame, insample, names, season_length=12)
    table = summarise_metrics(scored, frame, by=result.levels)
    table = table.rename(columns={"group": "level", "model": "method"})
    overall = summarise_metrics(scored, frame).rename(columns={"model": "method"}).assign(level="all")
    table = pd.concat([table, overall], ignore_index=True)
    table["coherence_gap"] = table["method"].map(coherence)
    order = {name: i for i, name in enumerate([*forecaster.panel_.tags, "all"])}
    table = table.sort_values(["level", "method"], key=lambda s: s.map(order) if s.name == "level" else s)
    return {
        "table": table.reset_index(drop=True),
        "series": len(forecaster.panel_.hierarchy),
        "bottom": len(forecaster.panel_.hierarchy.bottom_ids),
        "origin": str(origin.date()),
        "seconds": timings,
        "models": base.groupby("unique_id")["model"].first().value_counts().to_dict(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sopforecast.bench.pbs", description=__doc__)
    parser.add_argument("--path", default=None, help="the PBS export (default ../shared/data)")
    parser.add_argument("--models", default="auto")
    parser.add_argument("--windows", type=int, default=1)
    parser.add_argument("--n-jobs", type=int, default=-1)
    parser.add_argument("--output", default="sopforecast-work/benchmarks/pbs")
    args = parser.parse_args(argv)
    out = output_folder(args.output)
    result = holdout_accuracy(
        _history(args.path), models=args.models, windows=args.windows, n_jobs=args.n_jobs
    )
    result["table"].to_csv(out / "pbs_levels.csv", index=False)
    meta = {k: v for k, v in result.items() if k != "table"}
    (out / "pbs_summary.json").write_text(json.dumps(meta, indent=2, default=str))
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(result["table"][["level", "method", "mase", "rmsse", "smape", "wape", "bias", "coherence_gap"]])
    print(json.dumps(meta, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
