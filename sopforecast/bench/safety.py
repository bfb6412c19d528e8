"""Service-level safety stock from backtest errors against its normal approximation, per
demand class, on the demo data.

The real :class:`~sopforecast.forecasting.forecaster.Forecaster` (fast models: each demand
class's cheapest candidates, 4 backtest windows of 12 months) is fitted on the demo's bottom
series (SKU x region x channel, flat, as an inventory is kept); the delivered backtest is
its chosen forecast clipped at zero, as delivered for flat data. Every series gets a lead
time of 0 to 3 months (drawn with a seed) and a 95% service level; safety stock is pooled
per demand class (:func:`sopforecast.supply.safety.safety_stock`).

Per class: series, median ratio ``safety_stock / safety_stock_normal``, share of series
whose two stocks differ by more than 20% (and which way), and the total of each.

Run ``python -m sopforecast.bench.safety [--series N] [--service-level 0.95] --output DIR``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
import pandas as pd

from ..config import DataConfig, ForecastConfig
from ..data.datasets import generate_demand
from ..data.schema import validate
from ..forecasting.forecaster import Forecaster
from ..supply.safety import lead_time_errors, safety_stock
from . import output_folder

__all__ = ["FAST_MODELS", "compare_safety_stock", "summarise", "main"]

logger = logging.getLogger(__name__)

FAST_MODELS = ["snaive", "naive", "ets", "croston", "sba", "tsb"]
KEYS = ["sku", "region", "channel"]


def _history(n_series: int, seed: int) -> pd.DataFrame:
    raw = generate_demand(n_series=n_series, periods=60, seed=seed)
    raw = raw.assign(unique_id=raw[KEYS].astype(str).agg("/".join, axis=1))
    return validate(raw[["unique_id", "ds", "y"]], DataConfig(min_length=24)).frame


def compare_safety_stock(
    n_series: int = 500, service_level: float = 0.95, seed: int = 0, windows: int = 4
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Fit the forecaster on the demo's bottom series and compute both safety stocks.

    Returns
    -------
    (pandas.DataFrame, dict)
        :func:`safety_stock`'s frame with ``demand_class`` and ``mean_demand``; stage seconds.
    """
    history = _history(n_series, seed)
    config = ForecastConfig(models=FAST_MODELS, horizon=12, windows=windows, level=[80], n_jobs=2)
    start = time.perf_counter()
    forecaster = Forecaster(config).fit(history, backtest=True)
    fit_seconds = time.perf_counter() - start
    chosen = forecaster.backtest_.chosen_cv
    delivered = chosen.assign(forecast=chosen["forecast"].clip(lower=0.0))  # as delivered (flat)
    classes = forecaster.classes_[["unique_id", "demand_class"]]
    ids = classes["unique_id"].astype(str)
    rng = np.random.default_rng(seed)
    inventory = pd.DataFrame(
        {"key": ids, "lead_time": rng.integers(0, 4, len(ids)), "service_level": service_level}
    )
    start = time.perf_counter()
    errors = lead_time_errors(delivered, lead_time=inventory.set_index("key")["lead_time"])
    table = safety_stock(errors, inventory, pool_by=classes)
    stock_seconds = time.perf_counter() - start
    mean_demand = history.groupby("unique_id")["y"].mean()
    table = table.assign(demand_class=table["pool"], mean_demand=table["key"].map(mean_demand))
    return table, {"fit": fit_seconds, "safety_stock": stock_seconds, "series": float(len(ids))}


def summarise(table: pd.DataFrame, threshold: float = 0.2) -> pd.DataFrame:
    """Per demand class: series, median ratio of the two stocks, share differing by more than
    ``threshold``, and each stock's total (series with both stocks positive or zero)."""
    frame = table[table["safety_stock"].notna()]
    ratio = frame["safety_stock"] / frame["safety_stock_normal"].where(frame["safety_stock_normal"] > 0)
    differs = (ratio - 1).abs() > threshold
    parts = pd.DataFrame(
        {
            "demand_class": frame["demand_class"],
            "ratio": ratio,
            "differs": differs | ratio.isna() & (frame["safety_stock"] > 0),
            "higher": ratio > 1 + threshold,
            "lower": ratio < 1 - threshold,
            "safety_stock": frame["safety_stock"],
            "safety_stock_normal": frame["safety_stock_normal"],
        }
    )
    out = parts.groupby("demand_class").agg(
        series=("ratio", "size"),
        median_ratio=("ratio", "median"),
        share_differs=("differs", "mean"),
        share_higher=("higher", "mean"),
        share_lower=("lower", "mean"),
        safety_stock=("safety_stock", "sum"),
        safety_stock_normal=("safety_stock_normal", "sum"),
    )
    return out.reset_index()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sopforecast.bench.safety", description=__doc__)
    parser.add_argument("--series", type=int, default=500)
    parser.add_argument("--service-level", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="sopforecast-work/benchmarks/safety")
    args = parser.parse_args(argv)
    out = output_folder(args.output)
    table, seconds = compare_safety_stock(args.series, args.service_level, args.seed)
    summary = summarise(table)
    table.to_csv(out / "safety_stock.csv", index=False)
    (out / "safety.json").write_text(
        json.dumps({"seconds": seconds, "by_class": summary.to_dict(orient="records")}, indent=2)
    )
    logger.info("Methods: %s", table["method"].value_counts().to_dict())
    print(summary.round(3).to_string(index=False))
    print(
        f"fit {seconds['fit']:.1f} s, safety stock {seconds['safety_stock']:.2f} s, "
        f"{seconds['series']:.0f} series"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
