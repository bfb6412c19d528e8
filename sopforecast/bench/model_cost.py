"""What each candidate costs: fit-and-forecast time per series for every catalogue model, by
demand class, on the demo hierarchy (all levels), one process, with and without intervals.

This is the measurement behind the candidate sets of ``models: auto``
(:func:`sopforecast.forecasting.models.class_candidates`). Run
``python -m sopforecast.bench.model_cost --output DIR`` (``--sample N`` series per class).
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import pandas as pd

from ..config import DataConfig
from ..data.datasets import generate_demand
from ..data.panel import extend_to_common_end
from ..data.profile import classify_demand
from ..data.schema import validate
from ..forecasting.models import CATALOGUE, CLASS_CANDIDATES, build_stats_model
from ..forecasting.reconcile import aggregate_hierarchy
from . import output_folder

__all__ = ["model_cost", "main"]

logger = logging.getLogger(__name__)

HIERARCHY = ["category/family/sku", "region/channel"]


def model_cost(n_series: int = 500, sample: int = 150, horizon: int = 18, seed: int = 0) -> pd.DataFrame:
    """Milliseconds per series of each class's candidates (one core), with and without
    80/95% intervals where the model has native ones."""
    from statsforecast import StatsForecast

    raw = generate_demand(n_series=n_series, periods=60, seed=seed)
    history = validate(raw, DataConfig(hierarchy=HIERARCHY, min_length=24)).frame
    keys = [k for chain in HIERARCHY for k in chain.split("/")]
    bottom, _ = extend_to_common_end(history[["unique_id", "ds", "y", *keys]], "MS")
    Y, _, _ = aggregate_hierarchy(bottom, HIERARCHY)
    Y = Y[Y.groupby("unique_id")["y"].transform("size") >= 36]  # seasonal fits for every model
    classes = classify_demand(Y).set_index("unique_id")["demand_class"].astype(str)
    rows = []
    for cls, models in CLASS_CANDIDATES.items():
        ids = classes[classes == cls].index[:sample]
        if len(ids) == 0:
            continue
        part = Y[Y["unique_id"].isin(ids)][["unique_id", "ds", "y"]]
        for name in (*models, "arima") if "arima" not in models and cls in ("smooth", "erratic") else models:
            for level in ([], [80, 95]) if CATALOGUE[name].native_intervals else ([],):
                sf = StatsForecast(models=[build_stats_model(name, 12)], freq="MS", n_jobs=1)
                start = time.perf_counter()
                sf.forecast(df=part, h=horizon, level=level or None)
                seconds = time.perf_counter() - start
                rows.append(
                    {
                        "demand_class": cls,
                        "model": CATALOGUE[name].alias,
                        "intervals": bool(level),
                        "series": len(ids),
                        "ms_per_series": 1000 * seconds / len(ids),
                    }
                )
                logger.info(
                    "%s %s intervals=%s: %.1f ms/series", cls, name, bool(level), rows[-1]["ms_per_series"]
                )
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sopforecast.bench.model_cost", description=__doc__)
    parser.add_argument("--series", type=int, default=500)
    parser.add_argument("--sample", type=int, default=150)
    parser.add_argument("--output", default="sopforecast-work/benchmarks/model_cost")
    args = parser.parse_args(argv)
    out = output_folder(args.output)
    table = model_cost(n_series=args.series, sample=args.sample)
    table.to_csv(out / "model_cost.csv", index=False)
    (out / "model_cost.json").write_text(json.dumps(table.to_dict(orient="records"), indent=2))
    print(table.round(1).to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
