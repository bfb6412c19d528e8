"""The demo job: the main job of sopforecast run on the embedded demo data.

Generates the demo demand history into the work directory, reads it back through the same
reader and validation as any user file, summarises it (series per level, demand classes,
what validation repaired) and writes a first forecast. Later stages of the monthly cycle
attach here as they are built.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .config import DataConfig
from .data.datasets import generate_demand
from .data.hierarchy import series_per_level
from .data.io import read_source, write_frame
from .data.panel import extend_to_common_end
from .data.profile import class_counts, classify_demand
from .data.schema import ValidationReport, validate
from .forecasting.baseline import seasonal_naive_forecast
from .workdir import Workdir

__all__ = ["DemoResult", "DEMO_HIERARCHY", "demo_data_config", "run_demo"]

logger = logging.getLogger(__name__)

DEMO_HIERARCHY = ["category/family/sku", "region/channel"]


@dataclass
class DemoResult:
    """What the demo produced and where it wrote it."""

    report: ValidationReport
    levels: pd.DataFrame
    classes: pd.DataFrame
    forecast: pd.DataFrame
    outputs: dict[str, Path] = field(default_factory=dict)


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


def run_demo(
    workdir: Workdir,
    *,
    n_series: int = 500,
    seed: int = 0,
    horizon: int = 18,
    progress=None,
) -> DemoResult:
    """Run the demo job and write its outputs into the work directory.

    Parameters
    ----------
    workdir : Workdir
        Where to write the data, forecasts and reports.
    n_series : int, default 500
        Number of bottom series in the generated demo data.
    seed : int, default 0
        Seed of the generator.
    horizon : int, default 18
        Forecast horizon in months.
    progress : rich.progress.Progress, optional
        Shows one step per stage when given.
    """
    steps = ["generate demo data", "read and validate", "summarise", "forecast"]
    task = progress.add_task("demo", total=len(steps)) if progress is not None else None

    def advance(i: int) -> None:
        if progress is not None:
            progress.update(task, advance=1, description=steps[min(i + 1, len(steps) - 1)])

    workdir.ensure(workdir.data, workdir.forecasts, workdir.reports)
    data_path = workdir.data / "demo_demand.csv"
    logger.info("Generating %d demo series (seed %d)", n_series, seed)
    write_frame(generate_demand(n_series=n_series, seed=seed), data_path)
    advance(0)

    config = demo_data_config(data_path)
    validated = validate(read_source(data_path), config)
    for note in validated.report.notes():
        logger.info("Validation: %s", note)
    advance(1)

    history, extended = extend_to_common_end(validated.frame, config.freq)
    if extended:
        logger.info("%d series stopped early; extended with zero demand to the common origin", len(extended))
    levels = series_per_level(validated.frame, config.hierarchy)
    classes = classify_demand(history)
    advance(2)

    logger.info("Forecasting %d series %d months ahead with seasonal naive", classes.shape[0], horizon)
    forecast = seasonal_naive_forecast(history, horizon, freq=config.freq, season_length=12)
    advance(3)

    outputs = {
        "demo data": data_path,
        "forecast": write_frame(forecast, workdir.forecasts / "demo_seasonal_naive.csv"),
        "demand classes": write_frame(classes, workdir.reports / "demand_classes.csv"),
        "series per level": write_frame(levels, workdir.reports / "series_per_level.csv"),
        "validation summary": _write_json(validated.report.to_dict(), workdir.reports / "validation.json"),
    }
    return DemoResult(validated.report, levels, class_counts(classes), forecast, outputs)


def _write_json(payload: dict, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    tmp.replace(path)
    return path
