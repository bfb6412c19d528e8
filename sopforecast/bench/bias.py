"""Does the forecast lean? Backtest bias and WAPE per level of the delivered forecast, with the
bias correction on and off.

Two cases, each with the settings of its pipeline:

- ``demo``: ``pipelines/monthly_demand_plan.yaml``'s forecast (500 bottom series, 60 months,
  ``models: auto``, drivers ``price, promo``, ``mint_shrink``, 2 windows of 18 months), one
  run per generator seed (``--seeds``);
- ``pbs``: ``pipelines/pbs_monthly.yaml``'s (Scripts, 3 windows of 24 months, working days).

The bias is the delivered (reconciled) backtest's ``sum(forecast - actual) / sum(actual)``
per level, over every window, scored on the items known at each origin. The correction's
own backtest is cross-fitted (each window corrected by the factors of the others), so its
figures are out of sample.

Run ``python -m sopforecast.bench.bias --case demo --seeds 0,1,2,3 --output DIR`` (and
``--case pbs``).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import pandas as pd

from ..config import ForecastConfig
from ..forecasting.forecaster import Forecaster
from ..pipeline.sources import load_history
from ..pipeline.spec import load_pipeline
from ..workdir import Workdir
from . import output_folder

__all__ = ["level_bias", "run", "main"]

logger = logging.getLogger(__name__)

PIPELINES = Path(__file__).resolve().parents[2] / "pipelines"
PIPELINE = {"demo": "monthly_demand_plan.yaml", "pbs": "pbs_monthly.yaml"}
VARIANTS = {"uncorrected": {"bias_correction": False}, "corrected": {"bias_correction": True}}


def case_history(case: str, seed: int, workdir: Path) -> tuple[pd.DataFrame, ForecastConfig]:
    """The validated history and forecast settings of a case's pipeline (the demo's data
    generated with ``seed``, its planted shift included)."""
    overrides = [f"data.demo.seed={seed}"] if case == "demo" else []
    spec = load_pipeline(PIPELINES / PIPELINE[case], overrides)
    return load_history(spec.data, Workdir(workdir)).frame, spec.forecast


def level_bias(accuracy: pd.DataFrame, method: str) -> pd.DataFrame:
    """``level, wape, bias`` of one method's rows of a backtest accuracy table."""
    rows = accuracy[accuracy["method"] == method]
    return rows[["level", "wape", "bias"]].reset_index(drop=True)


def run(case: str, seed: int = 0, variants: list[str] | None = None, n_jobs: int = -1) -> pd.DataFrame:
    """One row per variant and level."""
    with tempfile.TemporaryDirectory(prefix="sopforecast-bias-") as tmp:
        history, settings = case_history(case, seed, Path(tmp))
    tables = []
    for label in variants or list(VARIANTS):
        # an older checkout has no bias_correction: its one variant is what it delivers
        update = {k: v for k, v in VARIANTS[label].items() if k in ForecastConfig.model_fields}
        config = settings.model_copy(update={**update, "n_jobs": n_jobs})
        start = time.perf_counter()
        result = Forecaster(config).cross_validation(history)
        table = level_bias(result.accuracy, config.reconcile)
        table.insert(0, "variant", label)
        table.insert(0, "seed", seed if case == "demo" else None)
        table.insert(0, "case", case)
        table["seconds"] = time.perf_counter() - start
        tables.append(table)
        logger.info("%s seed %s, %s: %.0f s", case, seed, label, table["seconds"].iloc[0])
    return pd.concat(tables, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sopforecast.bench.bias", description=__doc__)
    parser.add_argument("--case", choices=["demo", "pbs"], default="demo")
    parser.add_argument("--seeds", default="0", help="demo generator seeds, comma-separated")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"of {', '.join(VARIANTS)}")
    parser.add_argument("--n-jobs", type=int, default=-1)
    parser.add_argument("--output", default="sopforecast-work/benchmarks/bias")
    args = parser.parse_args(argv)
    variants = args.variants.split(",")
    if set(variants) - set(VARIANTS):
        parser.error(f"--variants: choose from {', '.join(VARIANTS)}")
    out = output_folder(args.output)
    seeds = [int(s) for s in args.seeds.split(",")] if args.case == "demo" else [0]
    table = pd.concat([run(args.case, s, variants, args.n_jobs) for s in seeds], ignore_index=True)
    table.to_csv(out / f"bias_{args.case}.csv", index=False)
    (out / f"bias_{args.case}.json").write_text(
        json.dumps(table.to_dict(orient="records"), indent=2, default=float)
    )
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
