"""How the constrained supply plan (SciPy HiGHS LP) grows: time and peak memory by size.

A seeded synthetic panel per size (series x months x resources x families): gamma demand
with a season, one or two resources per series, three priority classes, shelf lives of 1-3
months or none, safety stock on a third of the series, and capacity a little under the
average load with a shutdown month per resource, so capacity binds and pre-build pays. By
default the resources come in independent families, each serving one product category, as
real routings do (the plan splits into that many groups); ``--routing shared`` lets a
series' second resource be any other, so the plan is one LP (the case measured first). Each
size runs in a fresh process so its peak resident memory is its own (HiGHS allocates outside
Python).

Run ``python -m sopforecast.bench.supply [--sizes 500x18x5x5,2000x24x20x10,10000x36x50x25]
[--routing clustered|shared] [--time-limit 180] --output DIR``.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import resource
import time

import numpy as np
import pandas as pd

from ..supply.constrained import constrained_plan
from . import output_folder

__all__ = ["synthetic_supply", "run_size", "growth", "main"]

logger = logging.getLogger(__name__)

# series x months x resources x families: one resource a family at the demo's size, two above
DEFAULT_SIZES = "500x18x5x5,2000x24x20x10,10000x36x50x25"


def _routes(rng, n_series: int, n_resources: int, families: int | None):
    """Primary resource of each series, whether it has a second one, and which."""
    if families is None:  # any series may load any resource: one connected group
        primary = np.arange(n_series) % n_resources
        second = rng.random(n_series) < 0.3
        other = (primary + 1 + rng.integers(0, max(n_resources - 1, 1), n_series)) % n_resources
        return primary, second, other
    # a category's series load only its family of resources (consecutive resource numbers)
    bounds = np.linspace(0, n_resources, families + 1).round().astype(int)
    category = np.arange(n_series) % families
    first, size = bounds[category], np.diff(bounds)[category]
    place = (np.arange(n_series) // families) % size
    second = (rng.random(n_series) < 0.3) & (size > 1)
    other = first + (place + 1 + rng.integers(0, np.maximum(size - 1, 1))) % size
    return first + place, second, other


def synthetic_supply(
    n_series: int = 500,
    months: int = 18,
    n_resources: int = 5,
    seed: int = 0,
    families: int | None = None,
    batch_share: float = 0.0,
) -> dict:
    """Demand plan lines, capacity, routing, inventory and safety stock of a seeded panel.

    Parameters
    ----------
    n_series, months, n_resources : int, default 500, 18, 5
        Size of the panel.
    seed : int, default 0
        Seed of the local generator.
    families : int, optional
        Split the resources into this many families of consecutive resources, each serving
        one product category (series ``i`` is of category ``i % families``) and no other: the
        plan falls into ``families`` independent groups, as real routings do (``batch_share``:
        that share of series makes in batches of about half a month's demand). Default none:
        a series' second resource may be any other, so all series share one group.

    Returns
    -------
    dict
        ``demand`` (``unique_id, level, ds, final, price, unit_cost``), ``capacity``
        (``resource, ds, capacity, unit``), ``routing`` (``key, resource, rate, priority``),
        ``inventory`` (``key, on_hand, lead_time, service_level, shelf_life``) and ``safety``
        (``key, safety_stock``).
    """
    rng = np.random.default_rng(seed)
    keys = np.array([f"S{i:05d}" for i in range(n_series)])
    ds = pd.date_range("2027-01-01", periods=months, freq="MS")
    level = rng.gamma(2.0, 20.0, n_series)
    season = 1 + 0.3 * np.sin(
        2 * np.pi * (np.arange(months)[None, :] + rng.integers(0, 12, (n_series, 1))) / 12
    )
    final = np.round(level[:, None] * season * rng.gamma(8.0, 1 / 8.0, (n_series, months)), 1)
    price = rng.gamma(3.0, 10.0, n_series).round(2)
    demand = pd.DataFrame(
        {
            "unique_id": np.repeat(keys, months),
            "level": "sku/region",
            "ds": np.tile(ds, n_series),
            "final": final.ravel(),
            "price": np.repeat(price, months),
            "unit_cost": np.repeat((price * 0.6).round(2), months),
        }
    )
    primary, second, other = _routes(rng, n_series, n_resources, families)
    route_key = np.concatenate([keys, keys[second]])
    route_res = np.concatenate([primary, other[second]])
    priority = rng.choice([1, 2, 3], n_series, p=[0.2, 0.5, 0.3])
    routing = pd.DataFrame(
        {
            "key": route_key,
            "resource": [f"R{r:02d}" for r in route_res],
            "rate": rng.uniform(0.5, 2.0, len(route_key)).round(2),
            "priority": np.concatenate([priority, priority[second]]),
        }
    )
    key_index = pd.Index(keys).get_indexer(routing["key"])
    load = np.zeros((n_resources, months))
    np.add.at(load, route_res, routing["rate"].to_numpy()[:, None] * final[key_index])
    cap = 0.97 * load.mean(axis=1, keepdims=True) * np.ones((1, months))
    cap[np.arange(n_resources), rng.integers(0, months, n_resources)] *= 0.5  # a shutdown month each
    capacity = pd.DataFrame(
        {
            "resource": np.repeat([f"R{r:02d}" for r in range(n_resources)], months),
            "ds": np.tile(ds, n_resources),
            "capacity": cap.ravel().round(1),
            "unit": "hours",
        }
    )
    inventory = pd.DataFrame(
        {
            "key": keys,
            "on_hand": (level * rng.uniform(0, 1.5, n_series)).round(0),
            "lead_time": rng.integers(1, 4, n_series),
            "service_level": 0.95,
            "shelf_life": rng.choice([1.0, 2.0, 3.0, np.nan], n_series),
        }
    )
    if batch_share > 0:  # drawn after everything else, so the rest of the panel stays the same
        batched = np.random.default_rng(seed + 1).random(n_series) < batch_share
        inventory["batch_size"] = np.where(batched, np.maximum(np.round(level / 2), 1.0), np.nan)
    with_safety = rng.random(n_series) < 1 / 3
    safety = pd.DataFrame({"key": keys[with_safety], "safety_stock": (0.3 * level[with_safety]).round(0)})
    return {
        "demand": demand,
        "capacity": capacity,
        "routing": routing,
        "inventory": inventory,
        "safety": safety,
    }


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def run_size(
    size: tuple[int, ...],
    time_limit: float = 600.0,
    seed: int = 0,
    shared: bool = False,
    batches: str | None = None,
) -> dict:
    """Time and memory of one constrained plan of ``(series, months, resources[, families])``
    (families default to one per resource; ``shared`` routing ignores them); ``batches``
    (``round`` or ``milp``): 30% of series make in batches, planned that way."""
    n, months, n_res = size[:3]
    families = None if shared else (size[3] if len(size) > 3 else n_res)
    start = time.perf_counter()
    share = 0.3 if batches else 0.0
    data = synthetic_supply(n, months, n_res, seed=seed, families=families, batch_share=share)
    generated = time.perf_counter() - start
    before = _peak_mb()
    plan = constrained_plan(
        data["demand"],
        data["capacity"],
        data["routing"],
        inventory=data["inventory"],
        safety=data["safety"],
        time_limit=time_limit,
        batches=batches or "round",
    )
    s = plan.summary
    load_ok = bool(
        (
            (plan.resources["load"] <= plan.resources["capacity"] + 1e-6) | plan.resources["capacity"].isna()
        ).all()
    )
    return {
        "series": n,
        "months": months,
        "resources": n_res,
        "families": families,
        "batches": batches or "",
        "variables": 4 * n * months,
        "solver": s["solver"],
        "groups": s["groups"],
        "solves": s["solves"],
        "fallback_groups": s["fallback_groups"],
        "fallback_reason": s["fallback_reason"],
        "seconds": round(s["seconds"], 3),
        "build_s": round(s["timings"]["build"], 3),
        "highs_s": round(s["timings"]["highs"], 3),
        "solve_s": round(s["timings"]["solve"], 3),
        "frames_s": round(s["timings"]["frames"], 3),
        "generate_s": round(generated, 3),
        "peak_rss_mb": round(_peak_mb(), 1),
        "rss_growth_mb": round(_peak_mb() - before, 1),
        "unmet_units": round(s["unmet_units"], 1),
        "unmet_share": round(float(s["unmet_units"] / max(data["demand"]["final"].sum(), 1e-9)), 4),
        "revenue_at_stake": round(s["revenue_at_stake"], 2),
        "binding_resource_months": s["binding_resource_months"],
        "capacity_holds": load_ok,
    }


def _in_fresh_process(size, time_limit, seed, shared, batches=None) -> dict:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(run_size, (size, time_limit, seed, shared, batches))


def growth(table: pd.DataFrame) -> pd.DataFrame:
    """Each size against the first: how many times the cells (series x months), the time and
    the memory grow, and the exponent ``log(time ratio) / log(cell ratio)``."""
    cells = table["series"] * table["months"]
    out = table[["series", "months", "resources"]].copy()
    out["cells_x"] = cells / cells.iloc[0]
    out["seconds_x"] = table["seconds"] / table["seconds"].iloc[0]
    out["solve_x"] = table["solve_s"] / table["solve_s"].iloc[0]
    out["memory_x"] = table["peak_rss_mb"] / table["peak_rss_mb"].iloc[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["time_exponent"] = np.log(out["seconds_x"]) / np.log(out["cells_x"])
    return out.round(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sopforecast.bench.supply", description=__doc__)
    parser.add_argument(
        "--sizes", default=DEFAULT_SIZES, help="series x months x resources [x families], comma-separated"
    )
    parser.add_argument(
        "--routing",
        choices=["clustered", "shared"],
        default="clustered",
        help="resource families serving one category each, or any resource for any series",
    )
    parser.add_argument("--time-limit", type=float, default=180.0, help="HiGHS seconds for all groups")
    parser.add_argument(
        "--batches",
        choices=["round", "milp"],
        default=None,
        help="30%% of series make in batches: the LP rounded to whole batches, or the MILP",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="sopforecast-work/benchmarks/supply")
    args = parser.parse_args(argv)
    out = output_folder(args.output)
    rows = []
    for text in args.sizes.split(","):
        size = tuple(int(v) for v in text.lower().split("x"))
        logger.info("constrained plan of %s (%s routing) ...", text, args.routing)
        rows.append(
            _in_fresh_process(size, args.time_limit, args.seed, args.routing == "shared", args.batches)
        )
        logger.info("  %s", rows[-1])
    table = pd.DataFrame(rows)
    ratios = growth(table)
    name = "supply_lp" if args.routing == "clustered" else "supply_lp_shared"
    name += f"_batches_{args.batches}" if args.batches else ""
    table.to_csv(out / f"{name}.csv", index=False)
    ratios.to_csv(out / f"{name}_growth.csv", index=False)
    (out / f"{name}.json").write_text(
        json.dumps({"sizes": rows, "growth": ratios.to_dict(orient="records")}, indent=2)
    )
    logger.info("\n%s", table.to_string(index=False))
    logger.info("growth against the first size:\n%s", ratios.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
