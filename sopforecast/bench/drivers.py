"""Do drivers pay, and do cleansed baselines? WAPE and bias of the delivered forecast on the
demo data, per level, with and without drivers and promotion cleansing.

The demo hierarchy (default 500 bottom series, 60 months, generator seed 0) is backtested by
rolling origin (2 windows of 18 months by default) with ``models: auto`` in four variants:

- ``no-drivers``: no drivers at all;
- ``drivers``: ``price, promo`` read by LightGBM and carried to the statistical models, whose
  history is not cleansed (``cleanse_promotions: false``, the forecast before issue 22);
- ``cleansed``: drivers, and the statistical models fitted on the history with the estimated
  promotion effect taken out (the default);
- ``cleansed-corrected``: as ``cleansed`` with ``bias_correction: true``, so the
  correction's own effect on bias and WAPE shows.

In the backtest windows the drivers' actual values play the promotion calendar, as a
planner's calendar would. Reported per hierarchy level for the delivered (reconciled)
forecast: WAPE over all months, promotion months (at the bottom level a month with
``promo = 1``; an aggregate's promotion months are those in which at least a quarter of its
demand-weighted children are on promotion), the month after a promotion month (not itself
one) and the other months; the bias (forecast minus actual over actual) and each run's time.
Every level is scored on the items known at each window's origin (``known_rows``), as the
forecaster scores itself.

Run ``python -m sopforecast.bench.drivers --seeds 0,1 --output DIR``.
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

__all__ = ["VARIANTS", "known_rows", "promo_wape", "run", "main"]

logger = logging.getLogger(__name__)

HIERARCHY = ["category/family/sku", "region/channel"]
PROMO_SHARE = 0.25


def promo_wape(frame: pd.DataFrame, column: str, promo: pd.Series, levels: pd.Series) -> pd.DataFrame:
    """WAPE per level over all rows, promotion rows, the rows just after a promotion row and
    the other rows of a backtest frame, with the bias over all rows.

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
        dev=frame[column] - frame["y"],
        promo=promo.to_numpy() >= PROMO_SHARE,
    )
    # the month after: the same series' previous month was a promotion month (a backtest
    # window's rows are consecutive months, so one shift within series and window does)
    data = data.sort_values(["unique_id", "cutoff", "ds"] if "cutoff" in data else ["unique_id", "ds"])
    keys = ["unique_id", "cutoff"] if "cutoff" in data else ["unique_id"]
    before = data.groupby(keys, sort=False)["promo"].shift(1).astype("boolean").fillna(False).astype(bool)
    data["after"] = before & ~data["promo"]

    def wape(part: pd.DataFrame) -> float:
        total = part["y"].abs().sum()
        return float(part["err"].sum() / total) if len(part) and total > 0 else np.nan

    rows = []
    for level, part in data.groupby("level", sort=False):
        on, after = part[part["promo"]], part[part["after"]]
        other = part[~part["promo"] & ~part["after"]]
        rows.append(
            {
                "level": level,
                "wape": wape(part),
                "wape_promo": wape(on),
                "wape_after": wape(after),
                "wape_other": wape(other),
                "bias": float(part["dev"].sum() / max(part["y"].sum(), 1e-9)),
                "promo_rows": int(len(on)),
                "after_rows": int(len(after)),
            }
        )
    return pd.DataFrame(rows)


def known_rows(merged: pd.DataFrame, Y: pd.DataFrame) -> pd.DataFrame:
    """The rows of series known at their window's origin: items launched later are in no
    forecast made then (their aggregates' actuals leave them out too, as the forecaster's
    own scoring does)."""
    first = merged["unique_id"].map(Y.groupby("unique_id")["ds"].min())
    return merged[(first <= merged["cutoff"]).to_numpy()].reset_index(drop=True)


VARIANTS = {
    "no-drivers": {"drivers": []},
    "drivers": {"drivers": ["price", "promo"], "cleanse_promotions": False},
    "cleansed": {"drivers": ["price", "promo"]},
    "cleansed-corrected": {"drivers": ["price", "promo"], "bias_correction": True},
}


def run(
    n_series: int = 500,
    windows: int = 2,
    horizon: int = 18,
    seed: int = 0,
    n_jobs: int = -1,
    variants: list[str] | None = None,
) -> pd.DataFrame:
    """Backtest each variant (:data:`VARIANTS`); one row per variant and level."""
    raw = generate_demand(n_series=n_series, periods=60, seed=seed)
    data = DataConfig(hierarchy=HIERARCHY, drivers=["price", "promo"], min_length=24)
    history = validate(raw, data).frame
    tables = []
    for label in variants or list(VARIANTS):
        settings = {"horizon": horizon, "windows": windows, "hierarchy": HIERARCHY, "n_jobs": n_jobs}
        # an older checkout lacks the newer settings: it runs what it had (its "drivers")
        variant = {k: v for k, v in VARIANTS[label].items() if k in ForecastConfig.model_fields}
        config = ForecastConfig(**settings, **variant)
        start = time.perf_counter()
        result = Forecaster(config).cross_validation(history)
        seconds = time.perf_counter() - start
        panel = build_panel(history, config.model_copy(update={"drivers": ["promo"]}))
        merged, _ = reconciled_backtest(result.backtest.chosen_cv, panel, config, [config.reconcile])
        merged = known_rows(merged, panel.Y)
        promo = merged.merge(panel.Y[["unique_id", "ds", "promo"]], on=["unique_id", "ds"], how="left")[
            "promo"
        ]
        table = promo_wape(merged, config.reconcile, promo.fillna(0.0), panel.levels)
        table.insert(0, "variant", label)
        table.insert(0, "seed", seed)
        table["seconds"] = seconds
        tables.append(table)
        logger.info("seed %d, %s: %.0f s (season %d)", seed, label, seconds, main_season(season_of(config)))
    return pd.concat(tables, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sopforecast.bench.drivers", description=__doc__)
    parser.add_argument("--series", type=int, default=500)
    parser.add_argument("--windows", type=int, default=2)
    parser.add_argument("--seeds", default="0", help="demo generator seeds, comma-separated")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="variants, comma-separated")
    parser.add_argument("--n-jobs", type=int, default=-1)
    parser.add_argument("--output", default="sopforecast-work/benchmarks/drivers")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.variants.split(",")) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose from {list(VARIANTS)}")
    out = output_folder(args.output)
    table = pd.concat(
        [
            run(
                n_series=args.series,
                windows=args.windows,
                seed=int(seed),
                n_jobs=args.n_jobs,
                variants=args.variants.split(","),
            )
            for seed in args.seeds.split(",")
        ],
        ignore_index=True,
    )
    table.to_csv(out / "drivers.csv", index=False)
    (out / "drivers.json").write_text(json.dumps(table.to_dict(orient="records"), indent=2, default=float))
    print(table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
