"""How long a what-if takes on the demo, and what the balance finds there.

On a demo work directory (made with ``sopforecast demo`` first when the folder has no plan):

* the base balance (supply files read, capacity check, safety stock, constrained plan,
  projected inventory), in process;
* one scenario of each kind created on the published plan and compared with the base, in
  process (``planning.scenarios.create`` + ``compare``) and as a planner runs it from the
  shell (``sopforecast scenario create`` + ``scenario compare``, wall time of both commands
  with the interpreter's start);
* safety stock of the demo's balance against the normal approximation per demand class.

Run ``python -m sopforecast.bench.scenarios --workdir DIR [--output DIR]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from ..data.profile import classify_demand
from ..pipeline.balance_output import plan_keys, read_inputs, supply_files
from ..pipeline.registry import load_champion
from ..pipeline.tracking import resolve_store
from ..planning import scenarios
from ..store.plans import PlanStore
from ..workdir import Workdir
from . import output_folder

__all__ = ["KINDS", "time_scenarios", "safety_by_class", "main"]

logger = logging.getLogger(__name__)

PLAN = "monthly_demand_plan"
# one change of each kind, as a planner would ask for it on the demo (500 series: every category)
KINDS = {
    "uplift": {"kind": "uplift", "node": "Beverages", "pct": 10, "start": "2026-06", "end": "2026-08"},
    "promotion": {
        "kind": "promotion",
        "node": "Dairy",
        "start": "2026-04",
        "end": "2026-05",
        "price_pct": -10,
    },
    "launch": {"kind": "launch", "item": "SKU-NEW", "like": None, "scale": 0.8, "start": "2026-07"},
    "price": {"kind": "price", "node": "Household", "pct": 5, "start": "2026-03"},
    "capacity": {
        "kind": "capacity",
        "resource": "Line Snacks",
        "pct": 25,
        "start": "2026-01",
        "end": "2026-06",
    },
    "delay": {"kind": "delay", "resource": "Line Dairy", "months": 1, "start": "2026-04"},
}
_CLI = {
    "uplift": [
        "--kind",
        "uplift",
        "--node",
        "Beverages",
        "--pct",
        "10",
        "--start",
        "2026-06",
        "--end",
        "2026-08",
    ],
    "promotion": ["--kind", "promotion", "--node", "Dairy", "--start", "2026-04", "--end", "2026-05"],
}


def _demo(workdir: Path) -> None:
    if (workdir / "sopforecast.db").is_file():
        return
    logger.info("no plan in %s: running the demo first (about 2-3 minutes)", workdir)
    subprocess.run(
        [sys.executable, "-m", "sopforecast", "--quiet", "demo", "--workdir", str(workdir)], check=True
    )


def time_scenarios(workdir: Path) -> tuple[pd.DataFrame, dict]:
    """Seconds of the base balance and of each kind of scenario (create, compare with the
    base), in process; and the base balance."""
    wd = Workdir(workdir)
    store = PlanStore.open(wd)
    version = store.version(plan=PLAN)
    bottom = store.bottom(version)
    files = supply_files(None, wd)
    clock = time.perf_counter()
    supply = read_inputs(
        files["capacity"], files["routing"], files["inventory"], plan_keys(bottom, version.hierarchy)
    )
    read_s = time.perf_counter() - clock
    clock = time.perf_counter()
    base, _ = scenarios.balance_plan(store, version, supply, record=False)
    rows = [
        {
            "what": "base balance",
            "create_s": round(read_s, 2),
            "compare_s": round(time.perf_counter() - clock, 2),
        }
    ]
    tracking = resolve_store(wd, None, None)
    clock = time.perf_counter()
    forecaster, model = load_champion(tracking.client(), PLAN, tracking_uri=tracking.tracking_uri)
    load_s = time.perf_counter() - clock
    future = pd.read_csv(wd.data / "demo_promotion_calendar.csv", dtype=str).assign(
        ds=lambda f: pd.to_datetime(f["ds"]),
        price=lambda f: f["price"].astype(float),
        promo=lambda f: f["promo"].astype(float),
    )
    baseline = (
        scenarios.plan_baseline(store.lines(version)) if model.run_id == version.source_run_id else None
    )
    like = bottom["unique_id"].iloc[0]
    for kind, change in KINDS.items():
        change = {**change, "like": like} if kind == "launch" else change
        name = f"bench-{kind}"
        if not store.scenarios(PLAN, name).empty:
            store.delete_scenario(PLAN, name)
        clock = time.perf_counter()
        scenarios.create(
            store, version, name, change, forecaster=forecaster, future=future, baseline=baseline
        )
        create_s = time.perf_counter() - clock
        clock = time.perf_counter()
        table, _ = scenarios.compare(store, version, supply, [name], record=False)
        compare_s = time.perf_counter() - clock
        figures = table.set_index("figure")
        rows.append(
            {
                "what": kind,
                "create_s": round(create_s, 2),
                "compare_s": round(compare_s, 2),
                "total_s": round(create_s + compare_s, 2),
                "units_vs_base": figures.loc["units", f"{name} vs base"],
                "unmet_vs_base": figures.loc["unmet_units", f"{name} vs base"],
                "revenue_at_stake_vs_base": figures.loc["revenue_at_stake", f"{name} vs base"],
            }
        )
        store.delete_scenario(PLAN, name)
    rows.append({"what": "load the champion (MLflow)", "create_s": round(load_s, 2)})
    return pd.DataFrame(rows), {"base": base}


def time_cli(workdir: Path) -> pd.DataFrame:
    """Wall seconds of ``scenario create`` and ``scenario compare`` as separate commands."""
    rows = []
    for kind, args in _CLI.items():
        name = f"bench-cli-{kind}"
        common = ["--workdir", str(workdir)]
        subprocess.run(
            [sys.executable, "-m", "sopforecast", "--quiet", "scenario", "delete", name, *common],
            capture_output=True,
        )
        clock = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "sopforecast", "--quiet", "scenario", "create", name, *args, *common],
            check=True,
            capture_output=True,
        )
        create_s = time.perf_counter() - clock
        clock = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "sopforecast", "--quiet", "scenario", "compare", name, *common],
            check=True,
            capture_output=True,
        )
        compare_s = time.perf_counter() - clock
        subprocess.run(
            [sys.executable, "-m", "sopforecast", "--quiet", "scenario", "delete", name, *common],
            capture_output=True,
        )
        rows.append(
            {
                "what": f"CLI {kind}",
                "create_s": round(create_s, 2),
                "compare_s": round(compare_s, 2),
                "total_s": round(create_s + compare_s, 2),
            }
        )
    return pd.DataFrame(rows)


def safety_by_class(workdir: Path, base) -> pd.DataFrame:
    """The demo balance's safety stock against z·σ·√L, per demand class of the history."""
    history = pd.read_csv(Workdir(workdir).data / "demo_demand.csv")
    keys = ["category", "family", "sku", "region", "channel"]
    history["unique_id"] = history[keys].astype(str).agg("/".join, axis=1)
    history["ds"] = pd.to_datetime(history["ds"])
    classes = classify_demand(history[["unique_id", "ds", "y"]])
    safety = base.safety.dropna(subset=["safety_stock", "safety_stock_normal"])
    safety = safety.merge(classes[["unique_id", "demand_class"]], left_on="key", right_on="unique_id")
    safety = safety[safety["safety_stock_normal"] > 0]
    ratio = safety["safety_stock"] / safety["safety_stock_normal"]
    out = safety.assign(ratio=ratio, differs=(ratio - 1).abs() > 0.2, higher=ratio > 1.2, lower=ratio < 0.8)
    return (
        out.groupby("demand_class", observed=True)
        .agg(
            series=("key", "size"),
            median_ratio=("ratio", "median"),
            differ_20pct=("differs", "mean"),
            quantile_higher=("higher", "mean"),
            quantile_lower=("lower", "mean"),
            safety_stock=("safety_stock", "sum"),
            normal=("safety_stock_normal", "sum"),
        )
        .round(3)
        .reset_index()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sopforecast.bench.scenarios", description=__doc__)
    parser.add_argument("--workdir", default="sopforecast-work/benchmarks/scenarios-demo")
    parser.add_argument("--output", default="sopforecast-work/benchmarks/scenarios")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    workdir = Path(args.workdir).resolve()
    _demo(workdir)
    out = output_folder(args.output)
    timings, balances = time_scenarios(workdir)
    cli = time_cli(workdir)
    safety = safety_by_class(workdir, balances["base"])
    table = pd.concat([timings, cli], ignore_index=True)
    table.to_csv(out / "scenarios.csv", index=False)
    safety.to_csv(out / "safety_by_class.csv", index=False)
    base = balances["base"]
    (out / "scenarios.json").write_text(
        json.dumps(
            {"timings": table.to_dict(orient="records"), "base": base.figures, "rule": base.rule},
            indent=2,
            default=str,
        )
    )
    logger.info("\n%s", table.to_string(index=False))
    logger.info(
        "\nsafety stock against the normal approximation per demand class:\n%s", safety.to_string(index=False)
    )
    logger.info("\nbase balance: %s", {k: v for k, v in base.figures.items() if v is not None})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
