"""Run a pipeline as one tracked MLflow run.

Steps: load and validate the data; backtest, select and forecast (reconciled for
hierarchies); log a child run per candidate model, the tables, plots and the input dataset;
log and register the fitted forecaster and decide champion or challenger; write the
forecast into the work directory. A failing step marks the run FAILED with its error and
nothing after it happens: no model version, no alias change, no forecast file.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import yaml

from ..config import ForecastConfig
from ..data.io import stage_frame
from ..errors import SopforecastError
from ..workdir import Workdir
from . import registry
from .history import RunHistory, pipeline_lock
from .model import save_artifacts
from .plots import run_plots
from .sources import History, fingerprint, load_history
from .spec import PipelineSpec
from .tracking import check_reachable, get_experiment_id, resolve_store

__all__ = ["PipelineRun", "run_pipeline", "evaluate", "Evaluation"]

logger = logging.getLogger(__name__)

METRICS = ("mase", "rmsse", "smape", "wape", "bias")
STEPS = (
    "load and validate data",
    "backtest and forecast",
    "log to MLflow",
    "register model",
    "write outputs",
)


@dataclass
class Evaluation:
    """The forecast and its backtest, as the pipeline delivers them."""

    forecast: pd.DataFrame
    backtest: object  # BacktestResult
    headline: dict[str, float]  # metrics of the delivered forecast (bottom level for hierarchies)
    accuracy: pd.DataFrame | None = None  # per level and method (hierarchies)
    levels: pd.Series | None = None  # level of each series (hierarchies)
    all_series: pd.DataFrame | None = None  # history of every series incl. aggregates
    headline_level: str = "all"  # where the headline is measured: bottom level or all series


@dataclass
class PipelineRun:
    """The outcome of one pipeline run."""

    spec: PipelineSpec
    run_id: str
    experiment_id: str
    evaluation: Evaluation
    decision: registry.Decision | None
    outputs: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0
    tracking_uri: str = ""
    data: History | None = None


def evaluate(frame: pd.DataFrame, config: ForecastConfig, progress=None) -> Evaluation:
    """Backtest and forecast ``frame`` with ``config``; the headline is the delivered
    forecast's backtest accuracy (for hierarchies: bottom level, configured reconciliation)."""
    from ..forecasting.api import forecast_hierarchy
    from ..forecasting.engine import run_forecast

    if config.hierarchy:
        result = forecast_hierarchy(frame, config, accuracy=True, progress=progress)
        method = "base" if config.reconcile == "none" else config.reconcile
        acc = result.accuracy
        bottom = list(result.tags)[-1]
        row = acc[(acc["level"] == bottom) & (acc["method"] == method)]
        if row.empty:
            row = acc[(acc["level"] == bottom) & (acc["method"] == "base")]
        headline = {m: float(row[m].iloc[0]) for m in METRICS if m in row}
        history = _all_series(frame, config)
        return Evaluation(
            result.forecast, result.base.backtest, headline, acc, result.levels, history, bottom
        )
    result = run_forecast(frame, config, progress=progress, always_backtest=True)
    summary = result.backtest.summary.set_index("model")
    row = summary.loc["auto"]
    headline = {m: float(row[m]) for m in METRICS if m in row}
    return Evaluation(result.forecast, result.backtest, headline, all_series=frame[["unique_id", "ds", "y"]])


def _all_series(frame: pd.DataFrame, config: ForecastConfig) -> pd.DataFrame:
    from ..data.panel import extend_to_common_end
    from ..forecasting.reconcile import aggregate_hierarchy

    keys = [k for chain in config.hierarchy for k in chain.split("/") if k]
    bottom, _ = extend_to_common_end(frame[["unique_id", "ds", "y", *keys]], config.freq)
    Y, _, _ = aggregate_hierarchy(bottom, config.hierarchy)
    return Y


def _code_version() -> str:
    from .. import __version__

    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


def _flatten(tree: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = str(value)[:5000]
    return out


def _metric_key(*parts: str) -> str:
    return "_".join(p.replace(" ", "_") for p in parts if p)


def _log_candidates(ev: Evaluation, experiment_id: str, config: ForecastConfig) -> None:
    """A nested run per candidate model: parameters, overall / per-level / per-window metrics."""
    import mlflow

    from ..forecasting.metrics import summarise_metrics
    from ..forecasting.models import CATALOGUE

    bt = ev.backtest
    by_alias = {spec.alias: name for name, spec in CATALOGUE.items()}
    summary = bt.summary.set_index("model")
    per_level = summarise_metrics(bt.scores, bt.cv, by=ev.levels) if ev.levels is not None else None
    cutoffs = sorted(bt.scores["cutoff"].unique())
    window_means = bt.scores.groupby(["model", "metric", "cutoff"])["value"].mean()
    for alias in summary.index:
        if alias == "auto":
            continue
        name = by_alias.get(alias, alias)
        with mlflow.start_run(run_name=alias, nested=True, experiment_id=experiment_id):
            mlflow.set_tags(
                {
                    "sopforecast.role": "candidate",
                    "model": alias,
                    "sopforecast.headline_level": ev.headline_level,
                }
            )
            mlflow.log_params(
                {
                    "model": name,
                    "alias": alias,
                    "season_length": str(config.season_length or "default"),
                    "horizon": config.horizon,
                    "windows": config.windows,
                    **{f"param.{k}": str(v) for k, v in config.params.get(name, {}).items()},
                }
            )
            row = summary.loc[alias]
            metrics = {k: float(v) for k, v in row.items() if pd.notna(v) and isinstance(v, int | float)}
            if per_level is not None:
                block = per_level[per_level["model"] == alias]
                for _, lrow in block.iterrows():
                    for m in METRICS:
                        if m in lrow and pd.notna(lrow[m]):
                            metrics[_metric_key(m, str(lrow["group"]))] = float(lrow[m])
            mlflow.log_metrics(metrics)
            for step, cutoff in enumerate(cutoffs):
                for m in METRICS:
                    key = (alias, m, cutoff)
                    if key in window_means.index and pd.notna(window_means[key]):
                        mlflow.log_metric(_metric_key("window", m), float(window_means[key]), step=step)


def _log_tables(ev: Evaluation, data: History, spec: PipelineSpec, folder: Path) -> None:
    import mlflow

    folder.mkdir(parents=True, exist_ok=True)
    ev.forecast.to_parquet(folder / "forecast.parquet", index=False)
    ev.backtest.summary.to_csv(folder / "backtest_summary.csv", index=False)
    ev.backtest.scores.to_parquet(folder / "backtest_scores.parquet", index=False)
    if ev.backtest.selection is not None:
        sel = ev.backtest.selection
        sel.scores.to_csv(folder / "selection_strategies.csv", index=False)
        chosen = sel.per_series.assign(members=sel.per_series["members"].map(",".join))
        chosen.to_csv(folder / "selection_per_series.csv", index=False)
    if ev.accuracy is not None:
        ev.accuracy.to_csv(folder / "level_accuracy.csv", index=False)
    (folder / "validation.json").write_text(json.dumps(data.report.to_dict(), indent=2, default=str))
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    mlflow.log_artifacts(str(folder), artifact_path="results")
    plots = run_plots(ev.all_series, ev.forecast, folder / "plots")
    for plot in plots:
        mlflow.log_artifact(str(plot), artifact_path="plots")


def _dataset(data: History, pipeline: str):
    """The input as an MLflow dataset (schema, digest, source) for the run's lineage."""
    from mlflow.exceptions import MlflowException

    import mlflow

    name = f"{pipeline}-history"
    try:
        return mlflow.data.from_pandas(data.frame, source=data.source, name=name)
    except MlflowException:  # a source MLflow cannot resolve (a built-in dataset): keep the name
        return mlflow.data.from_pandas(data.frame, name=name)


def _test_scores(ev: Evaluation, test: pd.DataFrame) -> dict[str, float]:
    """Accuracy on the dataset's held-out test part (competition data)."""
    from ..bench.m3 import smape

    scores = smape(test, ev.forecast)
    joined = test.merge(ev.forecast[["unique_id", "ds", "forecast"]], on=["unique_id", "ds"])
    err = (joined["forecast"] - joined["y"]).abs().sum()
    return {"test_smape": float(scores.mean()), "test_wape": float(err / joined["y"].abs().sum())}


def _targets(spec: PipelineSpec, headline: dict[str, float]) -> dict[str, bool]:
    checks = {}
    for name, limit in spec.targets.model_dump().items():
        if limit is None or name not in headline:
            continue
        value = abs(headline[name]) if name == "bias" else headline[name]
        checks[name] = value <= limit
    return checks


def _rescorer(spec: PipelineSpec, frame: pd.DataFrame):
    def rescore(version: str) -> float:
        import mlflow

        local = Path(
            mlflow.artifacts.download_artifacts(f"models:/{spec.tracking.registered_model}/{version}")
        )
        config = ForecastConfig.model_validate(json.loads(next(local.rglob("config.json")).read_text()))
        return evaluate(frame, config).headline[spec.tracking.promote_metric]

    return rescore


def run_pipeline(
    spec: PipelineSpec,
    workdir: Workdir,
    *,
    path: str | None = None,
    promote: bool = False,
    trigger: str = "manual",
    progress=None,
) -> PipelineRun:
    """Run ``spec`` end to end as one MLflow run; see the module docstring for the steps.

    Raises
    ------
    SopforecastError
        Bad data or configuration, unreachable tracking, a registry name clash, or another
        run of the same pipeline in progress.
    """
    runs = RunHistory.for_workdir(workdir)
    with pipeline_lock(workdir, spec.name):
        row = runs.start(spec.name, path, trigger)
        holder: dict[str, str] = {}
        try:
            store = resolve_store(workdir, spec.tracking.tracking_uri, spec.tracking.registry_uri)
            check_reachable(store)
            store.activate()
            if spec.tracking.log_model:
                registry.check_name(spec.tracking.registered_model, spec.name)
            outcome = _run(spec, workdir, store, promote, progress, lambda rid: _note(runs, row, rid, holder))
        except BaseException as exc:
            status = "FAILED" if isinstance(exc, Exception) else "KILLED"
            runs.finish(row, status, holder.get("run_id"), error=str(exc)[:2000])
            raise
        runs.finish(row, "FINISHED", outcome.run_id)
    return outcome


def _note(runs: RunHistory, row: int, run_id: str, holder: dict) -> None:
    holder["run_id"] = run_id
    runs.set_run_id(row, run_id)


def _quiet_mlflow() -> None:
    """MLflow configures its own INFO logging and progress bars on import; keep it to warnings."""
    import os
    import warnings

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow  # noqa: F401

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\..*")


def _run(spec, workdir: Workdir, store, promote, progress, on_start) -> PipelineRun:
    import mlflow

    _quiet_mlflow()

    started = time.perf_counter()
    experiment_id = get_experiment_id(store, spec.tracking.experiment)
    task = progress.add_task(STEPS[0], total=len(STEPS)) if progress is not None else None

    def step(i: int) -> None:
        if progress is not None:
            progress.update(task, completed=i, description=STEPS[min(i, len(STEPS) - 1)])

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    tags = {
        "sopforecast.pipeline": spec.name,
        "sopforecast.code_version": _code_version(),
        "sopforecast.role": "pipeline",
    }
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"{spec.name} {stamp}", tags=tags) as run:
        run_id = run.info.run_id
        on_start(run_id)
        logger.info("MLflow run %s in experiment %s", run_id, spec.tracking.experiment)
        try:
            data = load_history(spec.data, workdir)
            fp = fingerprint(data.frame)
            mlflow.set_tags({"sopforecast.data_fingerprint": fp, "sopforecast.data_source": data.source})
            mlflow.log_params(_flatten(spec.model_dump(mode="json")))
            mlflow.log_input(_dataset(data, spec.name), context="training")
            for note in data.report.notes():
                logger.info("Validation: %s", note)
            step(1)
            ev = evaluate(data.frame, spec.forecast, progress=progress)
            step(2)
            metrics = {f"backtest_{k}": v for k, v in ev.headline.items()}
            if data.test is not None:
                metrics.update(_test_scores(ev, data.test))
            if ev.accuracy is not None:
                for _, lrow in ev.accuracy.iterrows():
                    for m in METRICS:
                        if pd.notna(lrow.get(m)):
                            metrics[_metric_key(m, str(lrow["method"]), str(lrow["level"]))] = float(lrow[m])
            mlflow.log_metrics(metrics)
            mlflow.set_tag("sopforecast.headline_level", ev.headline_level)
            checks = _targets(spec, ev.headline)
            if checks:
                mlflow.set_tag("sopforecast.targets_met", str(all(checks.values())).lower())
                missed = [k for k, ok in checks.items() if not ok]
                if missed:
                    logger.warning("Backtest misses the target(s) for %s", ", ".join(missed))
            _log_candidates(ev, experiment_id, spec.forecast)
            with tempfile.TemporaryDirectory() as tmp:
                _log_tables(ev, data, spec, Path(tmp) / "results")
            step(3)
            decision = None
            if spec.tracking.log_model:
                with tempfile.TemporaryDirectory() as tmp:
                    artifacts = save_artifacts(Path(tmp), data.frame, spec.forecast, ev.backtest)
                    info = mlflow.pyfunc.log_model(
                        name="forecaster",
                        python_model=str(Path(__file__).with_name("model_code.py")),
                        artifacts=artifacts,
                        pip_requirements=[f"sopforecast=={_code_version().split('+')[0]}"],
                    )
                decision = registry.register_and_decide(
                    name=spec.tracking.registered_model,
                    pipeline=spec.name,
                    model_uri=info.model_uri,
                    run_id=run_id,
                    metric=spec.tracking.promote_metric,
                    value=ev.headline[spec.tracking.promote_metric],
                    data_fingerprint=fp,
                    margin=spec.tracking.promote_margin,
                    force=promote,
                    rescore=_rescorer(spec, data.frame),
                )
            step(4)
            staged: dict[str, tuple[Path, Path]] = {}
            try:
                for label, (frame, final) in _output_targets(spec, workdir, ev).items():
                    staged[label] = (stage_frame(frame, final), final)
                if decision is not None:
                    registry.promote(decision)
                    mlflow.set_tags(
                        {
                            "sopforecast.model_version": decision.version,
                            "sopforecast.alias": "champion" if decision.promoted else "challenger",
                        }
                    )
                outputs = {label: tmp.replace(final) for label, (tmp, final) in staged.items()}
            finally:
                for tmp, _ in staged.values():
                    tmp.unlink(missing_ok=True)
            step(5)
        except BaseException as exc:
            mlflow.set_tag("sopforecast.error", f"{exc.__class__.__name__}: {exc}"[:4000])
            if not isinstance(exc, SopforecastError):
                logger.error("Pipeline %s failed: %s", spec.name, exc)
            raise
    return PipelineRun(
        spec,
        run_id,
        experiment_id,
        ev,
        decision,
        outputs,
        time.perf_counter() - started,
        store.tracking_uri,
        data,
    )


def _output_targets(spec: PipelineSpec, workdir: Workdir, ev: Evaluation) -> dict:
    """The planners' files and their places: label -> (frame, path)."""
    workdir.ensure(workdir.forecasts, workdir.reports)
    forecast = Path(spec.output) if spec.output else workdir.forecasts / f"{spec.name}.csv"
    targets = {
        "forecast": (ev.forecast, forecast),
        "backtest summary": (ev.backtest.summary, workdir.reports / f"{spec.name}_backtest.csv"),
    }
    if ev.accuracy is not None:
        targets["accuracy per level"] = (ev.accuracy, workdir.reports / f"{spec.name}_levels.csv")
    return targets
