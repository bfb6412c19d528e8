"""The demo job: the main pipeline run on the embedded demo data.

Runs ``pipelines/monthly_demand_plan.yaml`` (demo data generated into the work directory,
validated like any user file, forecast at every level of the hierarchy, reconciled, tracked
in MLflow and registered), then summarises the data: series per level and demand classes.
Later stages of the monthly cycle (plans, monitoring) attach to that pipeline.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .config import DataConfig
from .data.hierarchy import series_per_level
from .data.io import write_frame
from .data.panel import extend_to_common_end
from .data.profile import class_counts, classify_demand
from .data.schema import ValidationReport
from .errors import ConfigError
from .store.plans import PlanStore
from .workdir import Workdir

__all__ = [
    "DemoResult",
    "DEMO_HIERARCHY",
    "DEMO_PIPELINE",
    "demo_data_config",
    "demo_pipeline_path",
    "run_demo",
]

logger = logging.getLogger(__name__)

DEMO_HIERARCHY = ["category/family/sku", "region/channel"]
DEMO_PIPELINE = "monthly_demand_plan.yaml"


@dataclass
class DemoResult:
    """What the demo produced and where it wrote it."""

    report: ValidationReport
    levels: pd.DataFrame
    classes: pd.DataFrame
    forecast: pd.DataFrame
    outputs: dict[str, Path] = field(default_factory=dict)
    run: object = None  # the PipelineRun
    plan: object = None  # the published PlanVersion (None when the run became challenger)


def demo_data_config(path: str | Path) -> DataConfig:
    """The data section that reads the demo file: its hierarchy and drivers."""
    return DataConfig(
        path=str(path),
        hierarchy=DEMO_HIERARCHY,
        drivers=["price", "promo"],
        freq="MS",
        min_length=24,
        short_series="report",
    )


def demo_pipeline_path() -> Path:
    """``pipelines/monthly_demand_plan.yaml`` of the source checkout."""
    path = Path(__file__).resolve().parents[1] / "pipelines" / DEMO_PIPELINE
    if not path.is_file():
        raise ConfigError(
            f"the demo pipeline {DEMO_PIPELINE} was not found next to the package ({path}); "
            "pass pipeline=PATH.",
            setting="pipeline",
        )
    return path


def run_demo(
    workdir: Workdir,
    *,
    n_series: int = 500,
    seed: int = 0,
    horizon: int = 18,
    pipeline: str | Path | None = None,
    overrides: list[str] | None = None,
    progress=None,
) -> DemoResult:
    """Run the demo pipeline and summarise its data into the work directory.

    Parameters
    ----------
    workdir : Workdir
        Where the data, MLflow store, forecasts and reports go.
    n_series, seed, horizon
        Size and seed of the generated data; forecast horizon in months.
    pipeline : path, optional
        Another pipeline to run on the demo data; default ``pipelines/monthly_demand_plan.yaml``.
    overrides : list of str, optional
        Extra ``key=value`` settings (as ``--set``).
    """
    from .pipeline.runner import run_pipeline
    from .pipeline.spec import load_pipeline

    path = Path(pipeline) if pipeline else demo_pipeline_path()
    settings = [
        "data.dataset=demo",
        f"data.demo.series={n_series}",
        f"data.demo.seed={seed}",
        f"forecast.horizon={horizon}",
        *(overrides or []),
    ]
    spec = load_pipeline(path, settings)
    if spec.monitor.enabled:
        _backfill(spec, workdir)
    run = run_pipeline(spec, workdir, path=str(path), progress=progress)
    history = run.data.frame
    levels = series_per_level(history, spec.data.hierarchy) if spec.data.hierarchy else None
    classes = classify_demand(extend_to_common_end(history, spec.data.freq)[0])
    reports = run.reports_folder(workdir)  # a challenger's data reports stay beside its outputs
    workdir.ensure(reports)
    outputs = {
        "demo data": workdir.data / "demo_demand.csv",
        **run.outputs,
        "demand classes": write_frame(classes, reports / "demand_classes.csv"),
        "validation summary": _write_json(run.data.report.to_dict(), reports / "validation.json"),
    }
    if levels is not None:
        outputs["series per level"] = write_frame(levels, reports / "series_per_level.csv")
    plan = run.plan
    if plan is not None and plan.status == "draft":
        # the demo signs the plan off as the S&OP meeting would: the draft becomes the plan of record
        plan = PlanStore.open(workdir, configured=spec.plan.store_uri).publish(plan.id, by="sopforecast demo")
        logger.info("Published %s", plan.label)
    return DemoResult(
        run.data.report, levels, class_counts(classes), run.evaluation.forecast, outputs, run, plan
    )


def _backfill(spec, workdir: Workdir, cycles: int = 6) -> None:
    """Published plans of the last ``cycles`` months, made from the history known then with
    the pipeline's forecast settings, so the monitor has plans to judge on the first run
    (once per work directory)."""
    from .pipeline.sources import load_history
    from .pipeline.steps import plan_name
    from .planning.backfill import backfill

    plans = PlanStore.open(workdir, configured=spec.plan.store_uri)
    name = plan_name(spec)
    versions = plans.versions(name)
    if (versions["status"] == "published").any():  # a track record exists already
        return
    history = load_history(spec.data, workdir).frame
    backfill(
        plans,
        name,
        history,
        list(spec.data.hierarchy),
        cycles=cycles,
        months=max(spec.monitor.lags),
        config=spec.forecast,  # the live cycle's settings: calibrated intervals, same models
    )


def _write_json(payload: dict, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    tmp.replace(path)
    return path
