"""New items from like items against today's fallback, on the demo data.

The demo hierarchy (500 bottom series, 60 months) per seed. 10% of the bottom series that
sell from the first month, and have a like item (another SKU of the same family in the same
region and channel), are made launches: their history before month ``launch`` (36) is
dropped, as if they had been launched then. The 12 months from the launch are held out.
Each launch gets two like items, scored apart: its typical sibling (the median seller of the
year before the launch among the SKUs of its family in its region and channel: a planner who
knows nothing of the new item's size yet) and its best seller (the sibling that sold most).

Two origins:

- **3 months after the launch** (the planner has seen 3 months of the new item): today's
  forecast treats the item as a short series (the short-history fallback); the like-item
  forecast takes the level from those 3 months and the rest from the like item. Scored on
  the 9 months that follow.
- **At the launch** (no history of its own): today nothing forecasts the item (zero); the
  like item at scale 1 (a planner's first guess) is scored on the 12 months.

Scored per origin over the launched items: WAPE and bias (sum of errors over sum of demand),
and the share of items the like-item forecast beats. No drivers (the launch rule does not
depend on them); 2 backtest windows of 12 months.

Run ``python -m sopforecast.bench.launches [--seeds 0,1,2,3] --output DIR``.
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
from . import output_folder

__all__ = ["pick_launches", "run", "main"]

logger = logging.getLogger(__name__)

HIERARCHY = ["category/family/sku", "region/channel"]
KEYS = ["category", "family", "sku", "region", "channel"]
LAUNCH, SEEN, HELD = 36, 3, 12
# the like item a planner names: a typical sibling (the median seller of the family in the
# item's region and channel: nothing tells the new item's size yet), and the best seller
PICKS = {"like item (typical sibling)": "like_item", "like item (best seller)": "best_seller"}


def pick_launches(raw: pd.DataFrame, share: float, seed: int) -> pd.DataFrame:
    """The items made launches and their like items: ``unique_id, like_item`` and the keys."""
    frame = raw.assign(unique_id=raw[KEYS].astype(str).agg("/".join, axis=1))
    start, end = frame["ds"].min(), frame["ds"].max()
    span = frame.groupby("unique_id")["ds"].agg(["min", "max"])
    full = span[(span["min"] == start) & (span["max"] == end)].index
    launch = start + pd.DateOffset(months=LAUNCH)
    # the like item: the sibling that sold most in the year before the launch (a planner's
    # pick of a current item, not one that has gone quiet)
    before = frame[(frame["ds"] < launch) & (frame["ds"] >= launch - pd.DateOffset(months=12))]
    volume = before.groupby("unique_id")["y"].sum()
    keys = frame.drop_duplicates("unique_id").set_index("unique_id")[KEYS]
    keys = keys.loc[full]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(keys))
    want = int(round(share * frame["unique_id"].nunique()))
    chosen, likes = [], []
    for i in order:
        uid = keys.index[i]
        row = keys.iloc[i]
        same = keys[
            (keys["family"] == row["family"])
            & (keys["region"] == row["region"])
            & (keys["channel"] == row["channel"])
            & (keys["sku"] != row["sku"])
        ]
        same = same[~same.index.isin(chosen) & (volume.reindex(same.index).fillna(0) > 0)]
        if same.empty or uid in {i for pair in likes for i in pair}:
            continue
        sold = volume.reindex(same.index).sort_values(kind="stable")
        chosen.append(uid)
        likes.append((sold.index[(len(sold) - 1) // 2], sold.idxmax()))
        if len(chosen) == want:
            break
    typical, best = zip(*likes, strict=True) if likes else ((), ())
    return keys.loc[chosen].reset_index().assign(like_item=list(typical), best_seller=list(best))


def _score(forecast: pd.DataFrame, actual: pd.DataFrame, column: str = "forecast") -> dict:
    merged = actual.merge(forecast[["unique_id", "ds", column]], on=["unique_id", "ds"], how="left")
    merged[column] = merged[column].fillna(0.0)
    err = merged[column] - merged["y"]
    per_item = err.abs().groupby(merged["unique_id"]).sum()
    return {
        "wape": float(err.abs().sum() / merged["y"].sum()),
        "bias": float(err.sum() / merged["y"].sum()),
        "per_item": per_item,
    }


def run(seed: int = 0, share: float = 0.10, n_jobs: int = -1) -> list[dict]:
    """Both origins on one seed: one row per origin and method."""
    raw = generate_demand(n_series=500, periods=60, seed=seed)
    launches = pick_launches(raw, share, seed)
    ids = raw[KEYS].astype(str).agg("/".join, axis=1)
    launch = raw["ds"].min() + pd.DateOffset(months=LAUNCH)
    launched = ids.isin(set(launches["unique_id"]))
    data = raw[~(launched & (raw["ds"] < launch))]
    config = ForecastConfig(horizon=HELD, windows=2, hierarchy=HIERARCHY, n_jobs=n_jobs)
    dconf = DataConfig(hierarchy=HIERARCHY, min_length=24, short_series="report")
    rows = []
    for label, seen in (("3 months after the launch", SEEN), ("at the launch", 0)):
        origin = launch + pd.DateOffset(months=seen)
        history = validate(data[data["ds"] < origin], dconf).frame
        actual = data[(data["ds"] >= origin) & (data["ds"] < launch + pd.DateOffset(months=HELD))]
        actual = actual.assign(unique_id=ids.loc[actual.index])
        actual = actual[actual["unique_id"].isin(set(launches["unique_id"]))][["unique_id", "ds", "y"]]
        start = time.perf_counter()
        fitted = Forecaster(config).fit(history)
        today = fitted.predict().forecast
        seconds = time.perf_counter() - start
        base = _score(today, actual)
        scores = {"today": base}
        for method, column in PICKS.items():
            file = launches.rename(columns={"unique_id": "new_item", column: "like"})
            file = file[["new_item", "like", *KEYS]].rename(columns={"like": "like_item"})
            file = file.assign(launch_month=f"{launch:%Y-%m}", scale=np.nan if seen else 1.0)
            if not seen:  # not in the history: named by their keys
                file = file.drop(columns="new_item")
            scores[method] = _score(fitted.predict(launches=file).forecast, actual)
        for method, score in scores.items():
            rows.append(
                {
                    "seed": seed,
                    "origin": label,
                    "method": method,
                    "items": len(launches),
                    "months": int(actual["ds"].nunique()),
                    "wape": score["wape"],
                    "bias": score["bias"],
                    "beats_today": float((score["per_item"] < base["per_item"]).mean())
                    if method != "today"
                    else np.nan,
                    "seconds": seconds,
                }
            )
        logger.info(
            "seed %d, %s: WAPE %s",
            seed,
            label,
            ", ".join(f"{m} {s['wape']:.3f}" for m, s in scores.items()),
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sopforecast.bench.launches", description=__doc__)
    parser.add_argument("--seeds", default="0,1,2,3")
    parser.add_argument("--share", type=float, default=0.10)
    parser.add_argument("--n-jobs", type=int, default=-1)
    parser.add_argument("--output", default="sopforecast-work/benchmarks/launches")
    args = parser.parse_args(argv)
    out = output_folder(args.output)
    rows = [r for s in args.seeds.split(",") for r in run(int(s), args.share, args.n_jobs)]
    table = pd.DataFrame(rows)
    table.to_csv(out / "launches.csv", index=False)
    mean = table.groupby(["origin", "method"], sort=False)[["wape", "bias", "beats_today"]].mean()
    (out / "launches.json").write_text(json.dumps(table.to_dict(orient="records"), indent=2, default=float))
    print(table.to_string(index=False))
    print(mean.round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
