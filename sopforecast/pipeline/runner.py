"""Run a pipeline as one tracked MLflow run.

Steps (functions over frames in :mod:`.steps`): load and validate the data; backtest,
select and forecast (reconciled for hierarchies); the run's metrics, a record per candidate
model, the tables and plots; the fitted forecaster as a pyfunc model, registered as
challenger or champion; the planners' forecast files.

The planners' files in the work directory (``forecasts/``, ``reports/``) are the champion's:
a run replaces them only when its model becomes champion (or when it registers no model).
A challenger's files go to ``challengers/<model>/v<version>/`` instead, and, like every
run's, its tables stay among its MLflow artifacts (``results/``).

This module wires the steps together and is the only one that writes: the MLflow run,
its nested candidate runs and the model registry (through the store's
:class:`mlflow.MlflowClient`, never MLflow's process-wide tracking URI), the run history
and the output files. A failing step marks the run FAILED with its error tag and nothing
after it happens: no model version, no alias change, no forecast file. The error itself is
raised to the caller, once, and not logged here.
"""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import ForecastConfig
from ..data.io import stage_frame
from ..errors import ConfigError
from ..notices import library_warnings
from ..store.plans import PlanStore, PlanVersion
from ..workdir import Workdir
from . import balance_output, monitor_output, plan_output, registry, steps
from .history import RunHistory, pipeline_lock
from .model import input_example, model_signature, save_artifacts
from .sources import History, fingerprint
from .spec import PipelineSpec
from .steps import Evaluation, evaluate
from .tracking import Store, check_reachable, get_experiment_id, log_batch, metric_list, resolve_store

if TYPE_CHECKING:
    from mlflow.entities import Run

    from mlflow import MlflowClient

    from ..monitoring.monitor import MonitorResult

__all__ = ["PipelineRun", "run_pipeline", "evaluate", "Evaluation", "STEPS", "MODEL_PATH"]

logger = logging.getLogger(__name__)

STEPS = (
    "load and validate data",
    "backtest and forecast",
    "log to MLflow",
    "register model",
    "write outputs",
)
SCHEMA_ROWS = 1000  # rows the input dataset's column types are read from
MODEL_PATH = "forecaster"  # the pyfunc model's folder among the run's artifacts
_MODEL_CODE = Path(__file__).with_name("model_code.py")


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
    plan: PlanVersion | None = None  # the draft (or published) plan version this run wrote
    monitor: MonitorResult | None = None  # what the monitor step found
    balance: dict | None = None  # the balance step's reviews by name (base first)

    @property
    def delivered(self) -> bool:
        """Whether ``outputs`` are the delivered files (champion, or no registry), not a
        challenger's."""
        return self.decision is None or self.decision.promoted

    def reports_folder(self, workdir: Workdir) -> Path:
        """Where reports that belong with this run's outputs go: the work directory's
        ``reports/`` for the delivered run, the challenger's own folder otherwise."""
        if self.delivered:
            return workdir.reports
        return steps.challenger_folder(workdir, self.decision.name, self.decision.version)


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

    Parameters
    ----------
    spec : PipelineSpec
        The validated pipeline.
    workdir : Workdir
        Work directory: run history, local MLflow store, outputs.
    path : str, optional
        The pipeline file, recorded in the run history.
    promote : bool, default False
        Make this run's model the champion whatever its backtest.
    trigger : str, default "manual"
        What started the run ("manual", "schedule"), for the run history.
    progress : rich.progress.Progress, optional
        Shows the steps and the forecasting stages.

    Raises
    ------
    SopforecastError
        Bad data or configuration, unreachable tracking, a registry name clash, or another
        run of the same pipeline in progress.
    """
    _quiet_mlflow()
    runs = RunHistory.for_workdir(workdir)
    with pipeline_lock(workdir, spec.name):
        row = runs.start(spec.name, path, trigger)
        started: dict[str, str] = {}

        def on_start(run_id: str) -> None:
            started["run_id"] = run_id
            runs.set_run_id(row, run_id)

        try:
            store = resolve_store(workdir, spec.tracking.tracking_uri, spec.tracking.registry_uri)
            check_reachable(store)
            client = store.client()
            if spec.tracking.log_model:
                registry.check_name(client, spec.tracking.registered_model, spec.name)
            with library_warnings(logger):
                outcome = _run(spec, workdir, store, client, promote, progress, on_start)
        except BaseException as exc:
            status = "FAILED" if isinstance(exc, Exception) else "KILLED"
            runs.finish(row, status, started.get("run_id"), error=str(exc)[:2000])
            raise
        runs.finish(row, "FINISHED", outcome.run_id)
    return outcome


def _run(
    spec: PipelineSpec,
    workdir: Workdir,
    store: Store,
    client: MlflowClient,
    promote: bool,
    progress,
    on_start: Callable[[str], None],
) -> PipelineRun:
    """The wiring: each step of :mod:`.steps` in order, its results logged to MLflow."""
    started = time.perf_counter()
    show = _StepBar(progress)
    experiment_id = get_experiment_id(client, spec.tracking.experiment, store.artifact_root)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    tags = {
        "sopforecast.pipeline": spec.name,
        "sopforecast.code_version": _code_version(),
        "sopforecast.role": "pipeline",
    }
    with _mlflow_run(client, experiment_id, f"{spec.name} {stamp}", tags) as run:
        run_id = run.info.run_id
        on_start(run_id)
        logger.info("MLflow run %s in experiment %s", run_id, spec.tracking.experiment)

        clock = time.perf_counter()
        data = steps.load(spec, workdir)
        # the supply files and the budget are checked before anything is forecast: a bad one
        # stores nothing
        supply, scenarios = balance_output.inputs(spec, workdir, data) if spec.balance.enabled else (None, [])
        budget = monitor_output.read_budget_of(spec, workdir) if spec.monitor.enabled else None
        seconds = {"load_validate": time.perf_counter() - clock}
        for note in data.report.notes():
            logger.info("Validation: %s", note)
        fp = fingerprint(data.frame)
        log_batch(
            client,
            run_id,
            params=steps.run_params(spec),
            tags={"sopforecast.data_fingerprint": fp, "sopforecast.data_source": data.source},
        )
        client.log_inputs(run_id, datasets=[_dataset_input(data, spec.name, fp)])
        show.step(1)

        ev = steps.evaluate(
            data.frame,
            spec.forecast,
            data.future,
            progress=progress,
            launches=data.launches,
            delistings=data.delistings,
        )
        seconds.update(ev.timings)
        show.step(2)

        clock = time.perf_counter()
        run_tags = {"sopforecast.headline_level": ev.headline_level}
        checks = steps.target_checks(spec, ev.headline)
        if checks:
            run_tags["sopforecast.targets_met"] = str(all(checks.values())).lower()
            missed = [k for k, ok in checks.items() if not ok]
            if missed:
                logger.warning("Backtest misses the target(s) for %s", ", ".join(missed))
        log_batch(client, run_id, metrics=metric_list(steps.run_metrics(ev, data)), tags=run_tags)
        for candidate in steps.candidate_runs(ev, spec.forecast):
            _log_candidate(client, experiment_id, run_id, candidate, ev.headline_level)
        with tempfile.TemporaryDirectory() as tmp:
            steps.result_tables(ev, data, spec, Path(tmp) / "results")
            steps.result_plots(ev, Path(tmp) / "plots")
            client.log_artifacts(run_id, str(Path(tmp) / "results"), "results")
            client.log_artifacts(run_id, str(Path(tmp) / "plots"), "plots")
        show.step(3)

        decision = None
        if spec.tracking.log_model:
            decision = registry.register_and_decide(
                client,
                name=spec.tracking.registered_model,
                pipeline=spec.name,
                source=_log_model(client, run, ev),
                run_id=run_id,
                metric=spec.tracking.promote_metric,
                value=ev.headline[spec.tracking.promote_metric],
                data_fingerprint=fp,
                margin=spec.tracking.promote_margin,
                force=promote,
                rescore=_rescorer(spec, client, store, data),
            )
        seconds["tracking"] = time.perf_counter() - clock
        log_batch(client, run_id, metrics=metric_list({f"time_{k}_seconds": v for k, v in seconds.items()}))
        logger.info("Stage times: %s", ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))
        show.step(4)

        clock = time.perf_counter()
        draft = steps.plan_draft(spec, ev, data) if spec.plan.enabled else None
        outputs, plan = _deliver(client, run_id, spec, workdir, ev, decision, draft, data)
        monitored, balanced = None, None
        if spec.plan.enabled:
            plans = PlanStore.open(workdir, configured=spec.plan.store_uri)
            plan_output.keep_history(plans, spec, run_id, data.frame)
        # the output files, the draft plan and the history kept in the plan store
        log_batch(client, run_id, metrics=metric_list({"time_deliver_seconds": time.perf_counter() - clock}))
        if spec.plan.enabled:
            if supply is not None and plan is not None:
                clock = time.perf_counter()
                _, balanced = balance_output.run_step(
                    client,
                    run_id,
                    spec,
                    workdir,
                    plans,
                    plan,
                    supply,
                    scenarios,
                    forecaster=ev.forecaster,
                    future=data.future,
                    baseline=ev.forecast[["unique_id", "ds", "forecast"]],
                    reports=workdir.reports,
                )
                log_batch(
                    client, run_id, metrics=metric_list({"time_balance_seconds": time.perf_counter() - clock})
                )
            if spec.monitor.enabled:
                monitored = monitor_output.run_step(
                    client, run_id, experiment_id, spec, workdir, plans, store, budget=budget
                )
        show.step(5)
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
        plan,
        monitored,
        balanced,
    )


class _StepBar:
    """The pipeline's step on the progress display (when there is one)."""

    def __init__(self, progress) -> None:
        self.progress = progress
        self.task = progress.add_task(STEPS[0], total=len(STEPS)) if progress is not None else None

    def step(self, done: int) -> None:
        if self.progress is not None:
            description = STEPS[min(done, len(STEPS) - 1)]
            self.progress.update(self.task, completed=done, description=description)


@contextmanager
def _mlflow_run(client: MlflowClient, experiment_id: str, name: str, tags: dict[str, str]) -> Iterator[Run]:
    """A run ended FINISHED, or FAILED (KILLED on interrupt) with the error as a tag."""
    run = client.create_run(experiment_id, run_name=name, tags=tags)
    try:
        yield run
    except BaseException as exc:
        _record_failure(client, run.info.run_id, exc)
        raise
    client.set_terminated(run.info.run_id, "FINISHED")


def _record_failure(client: MlflowClient, run_id: str, exc: BaseException) -> None:
    status = "FAILED" if isinstance(exc, Exception) else "KILLED"
    try:
        client.set_tag(run_id, "sopforecast.error", f"{exc.__class__.__name__}: {exc}"[:4000])
        client.set_terminated(run_id, status)
    except Exception as record_exc:  # keep the run's own error; say that this one happened
        logger.warning("Could not mark MLflow run %s %s: %s", run_id, status, record_exc)


def _log_candidate(
    client: MlflowClient, experiment_id: str, parent_id: str, candidate: steps.Candidate, level: str
) -> None:
    """A nested run for one candidate model: parameters, metrics, one step per window."""
    tags = {
        "mlflow.parentRunId": parent_id,
        "sopforecast.role": "candidate",
        "model": candidate.name,
        "sopforecast.headline_level": level,
    }
    with _mlflow_run(client, experiment_id, candidate.name, tags) as child:
        windows = [m for step, values in enumerate(candidate.windows) for m in metric_list(values, step)]
        metrics = [*metric_list(candidate.metrics), *windows]
        log_batch(client, child.info.run_id, metrics=metrics, params=candidate.params)


def _dataset_input(data: History, pipeline: str, digest: str):
    """The input as an MLflow dataset (schema, digest, source, size) for the run's lineage.

    MLflow infers a schema by looking at every value (34 s at 10k series); the column types
    come from the first :data:`SCHEMA_ROWS` rows here, which column may be empty from the
    whole frame, the size from the whole frame, and the digest is the data fingerprint the
    run is tagged with (its whole content).
    """
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.exceptions import MlflowException
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    import mlflow

    frame = data.frame
    sample = frame.head(SCHEMA_ROWS)
    name = f"{pipeline}-history"
    try:
        dataset = mlflow.data.from_pandas(sample, source=data.source, name=name, digest=digest)
    except MlflowException:  # a source MLflow cannot resolve (a built-in dataset): keep the name
        dataset = mlflow.data.from_pandas(sample, name=name, digest=digest)
    fields = dataset.to_dict()
    if fields.get("schema"):
        schema = json.loads(fields["schema"])
        empty = frame.isna().any()
        for column in schema.get("mlflow_colspec", []):
            if column.get("name") in empty.index:
                column["required"] = not bool(empty[column["name"]])
        fields["schema"] = json.dumps(schema)
    fields["profile"] = json.dumps({"num_rows": len(frame), "num_elements": int(frame.size)})
    return DatasetInput(Dataset(**fields), tags=[InputTag(MLFLOW_DATASET_CONTEXT, "training")])


def _log_model(client: MlflowClient, run: Run, ev: Evaluation) -> str:
    """Save the fitted forecaster as a pyfunc model, log it into the run; its artifact URI."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        artifacts = save_artifacts(Path(tmp) / "files", ev.forecaster)
        model_dir = Path(tmp) / MODEL_PATH
        mlflow.pyfunc.save_model(
            str(model_dir),
            python_model=str(_MODEL_CODE),
            artifacts=artifacts,
            signature=model_signature(ev.forecaster, ev.forecast),
            input_example=input_example(ev.forecaster),
            pip_requirements=[f"sopforecast=={_code_version().split('+')[0]}"],
        )
        client.log_artifacts(run.info.run_id, str(model_dir), MODEL_PATH)
    return f"{run.info.artifact_uri}/{MODEL_PATH}"


def _rescorer(
    spec: PipelineSpec, client: MlflowClient, store: Store, data: History
) -> Callable[[str], float]:
    """Re-score a registered version's configuration on this run's data."""
    name, metric = spec.tracking.registered_model, spec.tracking.promote_metric

    def rescore(version: str) -> float:
        import mlflow

        # MLflow resolves ``models:/`` URIs with its global registry URI: ask our client instead
        source = client.get_model_version_download_uri(name, version)
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=source, dst_path=tmp, tracking_uri=store.tracking_uri
            )
            found = next(Path(local).rglob("config.json"), None)
            if found is None:
                raise ConfigError(
                    f"champion v{version} of {name!r} has no config.json, so it cannot be re-scored "
                    "on this data; promote this run's model to replace it.",
                    setting="tracking.registered_model",
                )
            config = ForecastConfig.model_validate_json(found.read_text())
        return steps.evaluate(data.frame, config, data.future).headline[metric]

    return rescore


def _deliver(
    client: MlflowClient,
    run_id: str,
    spec: PipelineSpec,
    workdir: Workdir,
    ev: Evaluation,
    decision: registry.Decision | None,
    draft: tuple | None = None,
    data: History | None = None,
) -> tuple[dict[str, Path], PlanVersion | None]:
    """Stage every output file, store the draft plan, move the champion alias, then put
    the files in place (and publish the plan if configured).

    A champion's files (or those of a run without a registered model) replace the delivered
    ones; a challenger's go to its :func:`steps.challenger_folder` and the delivered files
    stay the champion's. Only a delivered run drafts a plan: the plan is the champion's.
    A failure before the files are in place removes the draft again.
    """
    delivered = decision is None or decision.promoted
    folder = None if delivered else steps.challenger_folder(workdir, decision.name, decision.version)
    workdir.ensure(*((workdir.forecasts, workdir.reports) if delivered else ()))
    staged: dict[str, tuple[Path, Path]] = {}
    plans, version = None, None
    try:
        for label, (frame, final) in steps.output_targets(spec, workdir, ev, folder=folder).items():
            staged[label] = (stage_frame(frame, final), final)
        if draft is not None and delivered:
            plans = PlanStore.open(workdir, configured=spec.plan.store_uri)
            backtest = getattr(ev.forecaster, "delivered_backtest_", None)
            version = plan_output.store(plans, spec, run_id, draft, data.frame, backtest)
        if decision is not None:
            registry.promote(client, decision)
            tags = {
                "sopforecast.model_version": decision.version,
                "sopforecast.alias": "champion" if delivered else "challenger",
                "sopforecast.outputs": "delivered" if delivered else str(folder),
            }
            log_batch(client, run_id, tags=tags)
        outputs = {label: tmp.replace(final) for label, (tmp, final) in staged.items()}
    except BaseException:
        if version is not None:
            plans.delete_draft(version)
        raise
    finally:
        for tmp, _ in staged.values():
            tmp.unlink(missing_ok=True)
    files = ", ".join(str(p) for p in outputs.values())
    if decision is None:
        logger.info("Delivered outputs: %s", files)
    elif delivered:
        logger.info(
            "%s v%s is champion; delivered outputs are its own: %s", decision.name, decision.version, files
        )
    else:
        logger.info(
            "%s v%s is challenger; delivered outputs stay champion v%s's; challenger outputs in %s "
            "and among MLflow run %s's artifacts (results/)%s",
            decision.name,
            decision.version,
            decision.previous_champion,
            folder,
            run_id,
            "; no draft plan: plans are made from the champion's forecast" if draft is not None else "",
        )
    if version is not None:
        if spec.plan.publish:
            version = plans.publish(version.id)
        plan_output.log_to_mlflow(client, run_id, plans, version)
    return outputs, version


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


def _quiet_mlflow() -> None:
    """MLflow configures its own INFO logging and progress bars on import; keep it to warnings."""
    import os
    import warnings

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    import mlflow  # noqa: F401

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\..*")
