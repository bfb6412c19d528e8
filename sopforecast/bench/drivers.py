"""Do drivers pay? WAPE of the delivered forecast on the demo data, with and without drivers.

The demo hierarchy (default 500 bottom series, 60 months) is backtested by rolling origin
(2 windows of 18 months by default) with ``models: auto``, once with the drivers
``price, promo`` and once without. In the backtest windows the drivers' actual values play
the promotion calendar, as a planner's calendar would. Reported per hierarchy level, for
the delivered (reconciled) forecast: WAPE over all months and over promotion months only
(at the bottom level a month with ``promo = 1``; an aggregate's promotion months are those
in which at least a quarter of its demand-weighted children are on promotion), with the
time each run took.

Run ``python -m sopforecast.bench.drivers --output DIR``.
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
from ..forecasting.engine import main_season, season_of
from ..forecasting.forecaster import Forecaster
from ..forecasting.hierarchical import build_panel, reconciled_backtest
from . import output_folder

__all__ = ["promo_wape", "run", "main"]

logger = logging.getLogger(__name__)

HIERARCHY = ["category/family/sku", "region/channel"]
PROMO_SHARE = 0.25


def promo_wape(frame: pd.DataFrame, column: str, promo: pd.Series, levels: pd.Series) -> pd.DataFrame:
    """WAPE per level over all rows and over promotion rows of a backtest frame.

    Parameters
    ----------
    frame : pandas.DataFrame
        ``unique_id, ds, y`` and the forecast ``column``.
    promo : pandas.Series
        Promotion share per row of ``frame`` (aligned).
    levels : pandas.Series
        Level name per series id.
    """
    data = frame.assign(
        level=frame["unique_id"].map(levels),
        err=(frame[column] - frame["y"]).abs(),
        promo=promo.to_numpy() >= PROMO_SHARE,
    )
    rows = []
    for level, part in data.groupby("level", sort=False):
        on = part[part["promo"]]
        rows.append(
            {
                "level": level,
                "wape": part["err"].sum() / max(part["y"].abs().sum(), 1e-9),
                "wape_promo": on["err"].sum() / on["y"].abs().sum()
                if len(on) and on["y"].sum() > 0
                else np.nan,
                "promo_rows": int(len(on)),
            }
        )
    return pd.DataFrame(rows)


def run(
    n_series: int = 500, windows: int = 2, horizon: int = 18, seed: int = 0, n_jobs: int = -1
) -> pd.DataFrame:
    """Backtest with and without drivers; one row per level and variant."""
    raw = generate_demand(n_series=n_series, periods=60, seed=seed)
    data = DataConfig(hierarchy=HIERARCHY, drivers=["price", "promo"], min_length=24)
    history = validate(raw, data).frame
    tables = []
    for label, drivers in (("without drivers", []), ("with drivers", ["price", "promo"])):
        config = ForecastConfig(
            horizon=horizon, windows=windows, hierarchy=HIERARCHY, drivers=drivers, n_jobs=n_jobs
        )
        start = time.perf_counter()
        result = Forecaster(config).cross_validation(history)
        seconds = time.perf_counter() - start
        panel = build_panel(history, config.model_copy(update={"drivers": ["promo"]}))
        merged, _ = reconciled_backtest(result.backtest.chosen_cv, panel, config, [config.reconcile])
        promo = merged.merge(panel.Y[["unique_id", "ds", "promo"]], on=["unique_id", "ds"], how="left")[
            "promo"
        ]
        table = promo_wape(merged, config.reconcile, promo.fillna(0.0), panel.levels)
        table.insert(0, "variant", label)
        table["seconds"] = seconds
        tables.append(table)
        logger.info("%s: %.0f s (season %d)", label, seconds, main_season(season_of(config)))
    return pd.concat(tables, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sopforecast.bench.drivers", description=__doc__)
    parser.add_argument("--series", type=int, default=500)
    parser.add_argument("--windows", type=int, default=2)
    parser.add_argument("--n-jobs", type=int, default=-1)
    parser.add_argument("--output", default="sopforecast-work/benchmarks/drivers")
    args = parser.parse_args(argv)
    out = output_folder(args.output)
    table = run(n_series=args.series, windows=args.windows, n_jobs=args.n_jobs)
    table.to_csv(out / "drivers.csv", index=False)
    (out / "drivers.json").write_text(json.dumps(table.to_dict(orient="records"), indent=2, default=float))
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
