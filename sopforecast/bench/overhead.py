"""Pipeline overhead: ``pipelines/backtest_m3.yaml`` on M3 monthly with a fixed model set,
against calling statsforecast directly for the same work (a one-window backtest and the
forecast, 80/95% intervals, same models, same cores).

Run ``python -m sopforecast.bench.overhead [--models ets,theta] [--repeat 1]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from ..config import ForecastConfig
from ..data.competitions import load_m3
from ..forecasting.models import build_stats_model, resolve_models
from ..workdir import Workdir
from . import output_folder
from .m3 import frames

__all__ = ["direct_seconds", "pipeline_seconds", "main"]

logger = logging.getLogger(__name__)
PIPELINE = Path(__file__).resolve().parents[2] / "pipelines" / "backtest_m3.yaml"


def direct_seconds(models: list[str], n_jobs: int = -1) -> float:
    """statsforecast alone: cross_validation (1 window) and forecast, as the pipeline does."""
    from statsforecast import StatsForecast

    data = load_m3("monthly")
    train, _ = frames(data, "monthly")
    h = data.horizon["monthly"]
    start = time.perf_counter()
    sf = StatsForecast(models=[build_stats_model(m, 12) for m in models], freq="MS", n_jobs=n_jobs)
    sf.cross_validation(df=train[["unique_id", "ds", "y"]], h=h, n_windows=1, level=[80, 95])
    sf.forecast(df=train[["unique_id", "ds", "y"]], h=h, level=[80, 95])
    return time.perf_counter() - start


def pipeline_seconds(models: list[str], workdir: Path) -> tuple[float, str]:
    """The whole tracked pipeline run: load, validate, backtest, forecast, select, log."""
    from ..pipeline.runner import run_pipeline
    from ..pipeline.spec import load_pipeline

    spec = load_pipeline(PIPELINE, [f"forecast.models=[{','.join(models)}]"])
    start = time.perf_counter()
    result = run_pipeline(spec, Workdir(workdir))
    return time.perf_counter() - start, result.run_id


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sopforecast.bench.overhead", description=__doc__)
    parser.add_argument("--models", default="ets,theta")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--output", default="sopforecast-work/benchmarks/overhead")
    args = parser.parse_args(argv)
    models = resolve_models(args.models)
    ForecastConfig(models=models)  # validates the names
    out = output_folder(args.output)
    rows = []
    for i in range(args.repeat):
        direct = direct_seconds(models)
        with tempfile.TemporaryDirectory() as tmp:
            piped, run_id = pipeline_seconds(models, Path(tmp))
        rows.append({"repeat": i, "direct_s": direct, "pipeline_s": piped, "overhead": piped / direct - 1})
        logger.info(
            "direct %.1f s, pipeline %.1f s: overhead %.1f%%", direct, piped, 100 * rows[-1]["overhead"]
        )
    best = {"direct_s": min(r["direct_s"] for r in rows), "pipeline_s": min(r["pipeline_s"] for r in rows)}
    best["overhead"] = best["pipeline_s"] / best["direct_s"] - 1
    summary = {"models": models, "series": 1428, "runs": rows, "best": best}
    (out / "overhead.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
