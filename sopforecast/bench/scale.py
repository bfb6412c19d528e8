"""The full monthly cycle as series grow: wall time, peak memory and where the time goes.

The demo generator makes ``n`` bottom series (monthly, 60 periods, the demo's hierarchy
``category/family/sku x region/channel``, drivers price and promo); they are written to a
CSV in a temporary work directory and ``pipelines/monthly_demand_plan.yaml`` runs on it
through :func:`~sopforecast.pipeline.runner.run_pipeline` with ``data.path`` set, the plan
on, balance and monitor off: a 2-window backtest, the final forecast, reconciliation
(``mint_shrink``), tracking and model registration in a local MLflow store, and the draft plan
in a SQLite plan store. Each size and model set runs in a fresh spawned process; the parent
samples the resident memory (RSS) of that process and all its descendants (the model
workers) from ``/proc`` every 0.2 s and reports the peak of the sum. The per-stage times are
the run's own ``time_*_seconds`` MLflow metrics, read back from the run: ``plan_s`` is
``time_deliver_seconds`` (the output files, the draft plan and the history kept in the plan
store), ``other_s`` the rest of the run (the input dataset logged, the run opened and
closed). ``tracking_plan_share`` is everything but the models and the data's loading, as a
share of the model time.

Run ``python -m sopforecast.bench.scale [--sizes 1000,10000] [--models auto,fast]
[--engines local,dask] [--profile 10000:fast] --output DIR``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import multiprocessing
import os
import pstats
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from . import output_folder

__all__ = ["MODEL_SETS", "run_cycle", "measure", "growth", "main"]

logger = logging.getLogger(__name__)
PIPELINE = Path(__file__).resolve().parents[2] / "pipelines" / "monthly_demand_plan.yaml"
# fast: the cheap statistical models (Theta 2.5 ms, CES 5.6 ms a series, point forecasts;
# AutoETS takes 48 ms, AutoARIMA 320 ms: BENCHMARKS.md, "What decides the cost") and the
# global LightGBM, which reads the drivers and costs about the same at any number of series
MODEL_SETS = {"auto": "auto", "fast": ["theta", "ces", "snaive", "lgbm"]}
_PAGE = os.sysconf("SC_PAGE_SIZE")
MODEL_STAGES = ("prepare_s", "backtest_s", "fit_s", "accuracy_s", "predict_s", "reconcile_s")


def _spec_file(data: Path, models: str | list[str], folder: Path, engine: str = "local") -> Path:
    """The demo pipeline on the CSV ``data``: plan on, balance and monitor off; ``engine``
    local or dask (a 2-worker LocalCluster on 127.0.0.1 the run starts and closes)."""
    raw = yaml.safe_load(PIPELINE.read_text())
    raw["data"].pop("dataset", None)
    raw["data"].pop("demo", None)
    raw["data"]["path"] = str(data)
    raw["forecast"]["models"] = models
    raw["forecast"]["engine"] = engine
    raw["plan"]["enabled"] = True
    raw["balance"] = {"enabled": False}
    raw["monitor"] = {"enabled": False}
    path = folder / "scale.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run_cycle(
    n_series: int, model_set: str, seed: int = 0, profile: Path | None = None, engine: str = "local"
) -> dict:
    """One tracked monthly cycle of ``n_series`` demo series with the model set named.

    Returns
    -------
    dict
        ``series`` (bottom), ``all_series`` (every level), ``generate_s``, ``wall_s`` (the
        pipeline run), one ``<stage>_s`` per ``time_<stage>_seconds`` metric and ``plan_s``.
    """
    from mlflow import MlflowClient

    from ..data.datasets import generate_demand
    from ..pipeline.runner import run_pipeline
    from ..pipeline.spec import load_pipeline
    from ..workdir import Workdir

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clock = time.perf_counter()
        path = root / "demand.csv"
        generate_demand(n_series=n_series, periods=60, seed=seed).to_csv(path, index=False)
        generated = time.perf_counter() - clock
        spec = load_pipeline(_spec_file(path, MODEL_SETS[model_set], root, engine))
        profiler = cProfile.Profile() if profile else None
        clock = time.perf_counter()
        if profiler:
            profiler.enable()
        result = run_pipeline(spec, Workdir(root / "work"))
        if profiler:
            profiler.disable()
        wall = time.perf_counter() - clock
        metrics = MlflowClient(tracking_uri=result.tracking_uri).get_run(result.run_id).data.metrics
    if profiler:
        profiler.dump_stats(profile.with_suffix(".prof"))  # the whole profile, for pstats/snakeviz
        with open(profile, "w") as fh:
            pstats.Stats(profiler, stream=fh).sort_stats("cumulative").print_stats(80)
    stages = {
        f"{k[len('time_') : -len('_seconds')]}_s": round(v, 2)
        for k, v in sorted(metrics.items())
        if k.startswith("time_") and k.endswith("_seconds")
    }
    # the output files, the draft plan and the stored history (time_deliver_seconds)
    plan = stages.pop("deliver_s", 0.0)
    return {
        "series": n_series,
        "all_series": int(result.evaluation.forecast["unique_id"].nunique()),
        "generate_s": round(generated, 2),
        "wall_s": round(wall, 2),
        **stages,
        "backtest_wape": round(metrics.get("backtest_wape", float("nan")), 4),
        "backtest_wape_base": round(_bottom_base_wape(metrics), 4),
        "plan_s": plan,
        # the rest: the input dataset logged, the run opened and closed
        "other_s": round(max(wall - sum(stages.values()) - plan, 0.0), 2),
    }


def _bottom_base_wape(metrics: dict) -> float:
    """The bottom level's backtest WAPE before reconciliation (``wape_base_<level>``, the
    level with the longest key path), beside the delivered ``backtest_wape``."""
    levels = [k[len("wape_base_") :] for k in metrics if k.startswith("wape_base_")]
    if not levels:
        return float("nan")
    return metrics["wape_base_" + max(levels, key=lambda name: name.count("/"))]


def _tree_rss(root: int) -> int:
    """Resident bytes of process ``root`` and all its descendants, read from ``/proc``."""
    parent: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:  # the process ended while we looked
                continue
            parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        frontier = [p for p, pp in parent.items() if pp in frontier and p not in tree]
        tree.update(frontier)
    total = 0
    for pid in tree:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE
        except OSError:
            continue
    return total


def _child(queue, n_series: int, model_set: str, seed: int, profile: Path | None, engine: str) -> None:
    logging.basicConfig(level=logging.WARNING)
    try:
        queue.put(("ok", run_cycle(n_series, model_set, seed, profile, engine)))
    except BaseException as exc:  # the parent reports it
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


def measure(
    n_series: int, model_set: str, seed: int = 0, profile: Path | None = None, engine: str = "local"
) -> dict:
    """:func:`run_cycle` in a fresh spawned process, with the peak RSS of its process tree."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, n_series, model_set, seed, profile, engine))
    proc.start()
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    status, result = queue.get()  # before join: a large result would block the child's exit
    proc.join()
    done.set()
    sampler.join()
    if status != "ok":
        raise RuntimeError(f"the {n_series}-series {model_set} cycle ({engine}) failed: {result}")
    return {"models": model_set, "engine": engine, **result, "peak_rss_mb": round(peak[0] / 2**20, 1)}


def growth(table: pd.DataFrame) -> pd.DataFrame:
    """Per model set, time per series, tracking and planning as a share of the model time
    (prepare, backtest, fit, accuracy, predict, reconcile), and
    each size against the smallest: series, time and memory ratios and the time exponent
    ``log(time ratio) / log(series ratio)`` (1 = linear)."""
    out = table.copy()
    out["s_per_series"] = out["wall_s"] / out["series"]
    model = [c for c in MODEL_STAGES if c in out.columns]
    out["model_s"] = out[model].sum(axis=1)
    # everything that is not the models or reading the data: tracking, plan, files, the rest
    load = out["load_validate_s"] if "load_validate_s" in out else 0.0
    out["tracking_plan_share"] = (out["wall_s"] - out["model_s"] - load) / out["model_s"]
    if "engine" not in out:
        out["engine"] = "local"
    first = out.groupby(["models", "engine"])[["series", "wall_s", "peak_rss_mb"]].transform("first")
    out["series_x"] = out["series"] / first["series"]
    out["time_x"] = out["wall_s"] / first["wall_s"]
    out["memory_x"] = out["peak_rss_mb"] / first["peak_rss_mb"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["time_exponent"] = np.log(out["time_x"]) / np.log(out["series_x"])
    return out.round(
        {
            "s_per_series": 4,
            "tracking_plan_share": 3,
            "series_x": 2,
            "time_x": 2,
            "memory_x": 2,
            "time_exponent": 2,
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sopforecast.bench.scale", description=__doc__)
    parser.add_argument("--sizes", default="1000,10000", help="bottom series, comma-separated")
    parser.add_argument(
        "--models", default="auto,fast", help=f"model sets, comma-separated: {', '.join(MODEL_SETS)}"
    )
    parser.add_argument(
        "--profile",
        default=None,
        help="SIZE:MODELS to profile (cProfile, top 80 cumulative), e.g. 10000:fast",
    )
    parser.add_argument("--engines", default="local", help="engines, comma-separated: local, dask")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="sopforecast-work/benchmarks/scale")
    args = parser.parse_args(argv)
    sets = args.models.split(",")
    unknown = [m for m in sets if m not in MODEL_SETS]
    if unknown:
        parser.error(f"unknown model set(s) {unknown}; valid: {', '.join(MODEL_SETS)}")
    engines = args.engines.split(",")
    if set(engines) - {"local", "dask"}:
        parser.error(f"unknown engine(s) {sorted(set(engines) - {'local', 'dask'})}; valid: local, dask")
    out = output_folder(args.output)
    rows = []
    for engine in engines:
        for model_set in sets:
            for n in sorted(int(v) for v in args.sizes.split(",")):
                wanted = args.profile == f"{n}:{model_set}" and engine == "local"
                profile = out / f"profile_{n}_{model_set}.txt" if wanted else None
                logger.info(
                    "monthly cycle of %d series, models %s, engine %s%s ...",
                    n,
                    model_set,
                    engine,
                    " (profiled)" * bool(profile),
                )
                result = measure(n, model_set, args.seed, profile, engine)
                rows.append({**result, "load_1min": os.getloadavg()[0]})
                logger.info("  %s", rows[-1])
                growth(pd.DataFrame(rows)).to_csv(out / "scale.csv", index=False)  # kept if a later one fails
    table = growth(pd.DataFrame(rows))
    (out / "scale.json").write_text(json.dumps(table.to_dict(orient="records"), indent=2))
    logger.info("\n%s", table.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
