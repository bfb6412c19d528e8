"""The ``sopforecast`` command line.

User errors (:class:`~sopforecast.errors.SopforecastError`) print as one clear message on
stderr and exit with code 2, without a traceback; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import sys
import typing
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.table import Table

from .balance_cli import balance_app, scenario_app
from .console import console, err_console, progress, setup_logging
from .errors import ConfigError, SopforecastError
from .monitor_cli import monitor_app, report_app
from .options import WorkdirOption
from .override_cli import actuals_app, db_app, override_app
from .plan_cli import PLAN_FLAGS, plan_app

if TYPE_CHECKING:
    import pandas as pd

    from .config import DataConfig, ForecastConfig

__all__ = ["app", "main"]

app = typer.Typer(
    name="sopforecast",
    help="Demand forecasting for S&OP: validate sales history, forecast, plan and monitor.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_DATE_FORMAT_HELP = (
    "Date format, e.g. %d/%m/%Y; default ISO dates (a time and offset allowed), or the "
    "day/month order the values allow."
)


class NegativePolicy(str, Enum):
    error = "error"
    clip = "clip"


class MissingPolicy(str, Enum):
    error = "error"
    zero = "zero"


class DuplicatePolicy(str, Enum):
    error = "error"
    sum = "sum"


class ShortPolicy(str, Enum):
    error = "error"
    report = "report"


class Engine(str, Enum):
    local = "local"
    dask = "dask"


_ENGINE_HELP = (
    "Where models fit: local (processes on this machine) or dask (statistical models on a Dask "
    "cluster: a LocalCluster on 127.0.0.1, or --dask-address; needs the package's dask extra)."
)
_PIPELINE_ENGINE_HELP = (
    "Where models fit: local or dask (a LocalCluster on 127.0.0.1, or --set forecast.dask.address=...; "
    "needs the package's dask extra). Default: the pipeline's."
)


@app.callback()
def _root(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only warnings and results.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    setup_logging(quiet=quiet, verbose=verbose)


@app.command()
def demo(
    workdir: WorkdirOption = None,
    series: Annotated[int, typer.Option(help="Bottom series in the demo data.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed of the demo data generator.")] = 0,
    horizon: Annotated[int, typer.Option(help="Forecast horizon in months.")] = 18,
    pipeline: Annotated[
        Path | None, typer.Option(help="Pipeline to run [default: pipelines/monthly_demand_plan.yaml].")
    ] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override a pipeline setting.")] = None,
    engine: Annotated[Engine | None, typer.Option(help=_PIPELINE_ENGINE_HELP)] = None,
) -> None:
    """Generate the demo data and run the monthly demand-plan pipeline on it, end to end."""
    from .demo import run_demo
    from .workdir import resolve_workdir

    wd = resolve_workdir(workdir)
    with progress() as bar:
        result = run_demo(
            wd,
            n_series=series,
            seed=seed,
            horizon=horizon,
            pipeline=pipeline,
            overrides=_with_engine(set_, engine),
            progress=bar,
        )
    _print_summary(result.report, result.levels, result.classes)
    _print_run(result.run)
    delivered = result.run.delivered
    table = Table(title="Outputs" if delivered else "Outputs (forecast and reports: the challenger's)")
    table.add_column("what")
    table.add_column("where")
    for name, path in result.outputs.items():
        table.add_row(name, str(path))
    console.print(table)
    if result.run.balance:
        _print_balance(result.run.balance)
    if result.plan is not None:
        console.print(
            f"Published demand plan {escape(result.plan.plan)} {escape(result.plan.name)}: "
            "'sopforecast plan show' to read it, 'sopforecast plan export --layout planner -o plan.xlsx' "
            "to edit it in Excel.",
            highlight=False,
        )
    console.print(f"Work directory: {wd.root}")


@app.command()
def generate(
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV or Parquet file to write.")],
    series: Annotated[int, typer.Option(help="Bottom series.")] = 500,
    periods: Annotated[int, typer.Option(help="Months of history.")] = 60,
    seed: Annotated[int, typer.Option(help="Seed of the generator.")] = 0,
) -> None:
    """Write synthetic S&OP demand history (the demo data) at any size."""
    from .data.datasets import generate_demand
    from .data.io import write_frame

    frame = generate_demand(n_series=series, periods=periods, seed=seed)
    path = write_frame(frame, output)
    console.print(f"Wrote {len(frame):,} rows of {series:,} series to {path}")


@app.command("validate")
def validate_cmd(
    data: Annotated[str, typer.Option("--data", "-d", help="CSV/Parquet/Excel file or database URL.")],
    table: Annotated[str | None, typer.Option(help="Table to read from a database URL.")] = None,
    query: Annotated[str | None, typer.Option(help="SQL query to run on a database URL.")] = None,
    sheet: Annotated[
        str | None, typer.Option(help="Excel sheet (name or number); default the first.")
    ] = None,
    id_col: Annotated[str, typer.Option(help="Series id column (when no hierarchy).")] = "unique_id",
    time_col: Annotated[str, typer.Option(help="Date column.")] = "ds",
    target_col: Annotated[str, typer.Option(help="Demand column.")] = "y",
    hierarchy: Annotated[
        list[str] | None,
        typer.Option(help="Key chain top to bottom, e.g. category/family/sku; repeat for grouped."),
    ] = None,
    driver: Annotated[list[str] | None, typer.Option(help="Driver column (repeatable).")] = None,
    freq: Annotated[str, typer.Option(help="Frequency: MS, W-MON, D, QS, YS.")] = "MS",
    date_format: Annotated[str | None, typer.Option(help=_DATE_FORMAT_HELP)] = None,
    align_dates: Annotated[bool, typer.Option(help="Move dates to their period's start.")] = False,
    negative: Annotated[NegativePolicy, typer.Option(help="Negative demand.")] = NegativePolicy.error,
    missing: Annotated[MissingPolicy, typer.Option(help="Empty demand cells.")] = MissingPolicy.error,
    duplicates: Annotated[
        DuplicatePolicy, typer.Option(help="Repeated series/period rows.")
    ] = DuplicatePolicy.error,
    min_length: Annotated[int, typer.Option(help="Fewest periods the models need.")] = 1,
    short_series: Annotated[
        ShortPolicy, typer.Option(help="Series below --min-length.")
    ] = ShortPolicy.report,
    output: Annotated[Path | None, typer.Option(help="Write the validated long frame here.")] = None,
) -> None:
    """Check a demand history file against the data contract and summarise it."""
    from .config import DataConfig
    from .data.hierarchy import series_per_level
    from .data.io import read_source, write_frame
    from .data.profile import class_counts, classify_demand
    from .data.schema import validate

    config = _build(
        DataConfig,
        path=data,
        table=table,
        query=query,
        sheet=sheet,
        id_col=id_col,
        time_col=time_col,
        target_col=target_col,
        hierarchy=hierarchy or [],
        drivers=driver or [],
        freq=freq,
        date_format=date_format,
        align_dates=align_dates,
        negative=negative.value,
        missing=missing.value,
        duplicates=duplicates.value,
        min_length=min_length,
        short_series=short_series.value,
    )
    raw = read_source(data, table=table, query=query, sheet=sheet, text_columns=config.series_columns)
    validated = validate(raw, config)
    levels = series_per_level(validated.frame, config.hierarchy) if config.hierarchy else None
    _print_summary(validated.report, levels, class_counts(classify_demand(validated.frame)))
    if output is not None:
        console.print(f"Wrote the validated history to {write_frame(validated.frame, output)}")


class FutureFill(str, Enum):
    error = "error"
    carry = "carry"
    zero = "zero"


_MODELS_HELP = "auto, or names: ets,arima,theta,ces,mstl,snaive,naive,mean,croston,sba,adida,imapa,tsb,lgbm"
_DATA_PANEL = "History"
_MODEL_PANEL = "Forecast"


@dataclasses.dataclass(frozen=True)
class HistoryOptions:
    """The options ``forecast`` and ``backtest`` share: the history and how to forecast it.

    Each field is one CLI option, declared here once; :func:`_history_options` puts them in
    a command's signature and hands the command one ``HistoryOptions``.
    """

    data: Annotated[
        str,
        typer.Option("--data", "-d", help="History file (CSV/Parquet/Excel).", rich_help_panel=_DATA_PANEL),
    ]
    sheet: Annotated[
        str | None,
        typer.Option(help="Excel sheet (name or number); default the first.", rich_help_panel=_DATA_PANEL),
    ] = None
    id_col: Annotated[
        str, typer.Option(help="Series id column (when no hierarchy).", rich_help_panel=_DATA_PANEL)
    ] = "unique_id"
    time_col: Annotated[str, typer.Option(help="Date column.", rich_help_panel=_DATA_PANEL)] = "ds"
    target_col: Annotated[str, typer.Option(help="Demand column.", rich_help_panel=_DATA_PANEL)] = "y"
    hierarchy: Annotated[
        list[str] | None,
        typer.Option(
            help="Key chain top to bottom, e.g. category/family/sku; repeat for grouped (region/channel).",
            rich_help_panel=_DATA_PANEL,
        ),
    ] = None
    drivers: Annotated[
        list[str] | None,
        typer.Option(
            help="Driver columns, comma-separated or repeated: price,promo.", rich_help_panel=_DATA_PANEL
        ),
    ] = None
    freq: Annotated[
        str, typer.Option(help="Frequency: MS, W-MON, D, QS, YS.", rich_help_panel=_DATA_PANEL)
    ] = "MS"
    date_format: Annotated[
        str | None,
        typer.Option(help=_DATE_FORMAT_HELP, rich_help_panel=_DATA_PANEL),
    ] = None
    negative: Annotated[
        NegativePolicy, typer.Option(help="Negative demand.", rich_help_panel=_DATA_PANEL)
    ] = NegativePolicy.error
    missing: Annotated[
        MissingPolicy, typer.Option(help="Empty demand cells.", rich_help_panel=_DATA_PANEL)
    ] = MissingPolicy.error
    duplicates: Annotated[
        DuplicatePolicy, typer.Option(help="Repeated series/period rows.", rich_help_panel=_DATA_PANEL)
    ] = DuplicatePolicy.error
    horizon: Annotated[
        int, typer.Option("--horizon", "-h", help="Periods ahead.", rich_help_panel=_MODEL_PANEL)
    ] = 18
    models: Annotated[str, typer.Option(help=_MODELS_HELP, rich_help_panel=_MODEL_PANEL)] = "auto"
    level: Annotated[
        list[int] | None,
        typer.Option(help="Interval level, repeatable; default 80 and 95.", rich_help_panel=_MODEL_PANEL),
    ] = None
    reconcile: Annotated[
        str,
        typer.Option(
            help="none, bottom_up, top_down, middle_out, ols, wls_struct, wls_var, mint_shrink.",
            rich_help_panel=_MODEL_PANEL,
        ),
    ] = "mint_shrink"
    season_length: Annotated[
        int | None, typer.Option(help="Periods per season.", rich_help_panel=_MODEL_PANEL)
    ] = None
    windows: Annotated[
        int, typer.Option(help="Backtest windows (rolling origins).", rich_help_panel=_MODEL_PANEL)
    ] = 2
    engine: Annotated[Engine, typer.Option(help=_ENGINE_HELP, rich_help_panel=_MODEL_PANEL)] = Engine.local
    dask_address: Annotated[
        str | None,
        typer.Option(
            help="Scheduler of an existing Dask cluster (tcp://host:8786) for --engine dask; "
            "default: a LocalCluster started for the run.",
            rich_help_panel=_MODEL_PANEL,
        ),
    ] = None

    @property
    def driver_columns(self) -> list[str]:
        """``--drivers price,promo --drivers stock`` as one list: price, promo, stock."""
        return [name.strip() for value in self.drivers or [] for name in value.split(",") if name.strip()]

    def data_config(self) -> DataConfig:
        from .config import DataConfig

        return _build(
            DataConfig,
            path=self.data,
            sheet=self.sheet,
            id_col=self.id_col,
            time_col=self.time_col,
            target_col=self.target_col,
            hierarchy=self.hierarchy or [],
            drivers=self.driver_columns,
            freq=self.freq,
            date_format=self.date_format,
            negative=self.negative.value,
            missing=self.missing.value,
            duplicates=self.duplicates.value,
        )

    def forecast_config(self, **extra) -> ForecastConfig:
        """The forecast settings, plus a command's own (``step``, ``future_fill``)."""
        from .config import ForecastConfig

        return _build(
            ForecastConfig,
            horizon=self.horizon,
            freq=self.freq,
            models=self.models,
            level=self.level or [80, 95],
            hierarchy=self.hierarchy or [],
            reconcile=self.reconcile,
            season_length=self.season_length,
            windows=self.windows,
            drivers=self.driver_columns,
            engine=self.engine.value,
            dask={"address": self.dask_address},
            **extra,
        )

    def read_history(self) -> pd.DataFrame:
        """The history file read and validated against the data contract (long format)."""
        from .data.io import read_source
        from .data.schema import validate

        config = self.data_config()
        raw = read_source(self.data, sheet=self.sheet, text_columns=config.series_columns)
        return validate(raw, config).frame

    def read_future(self, path: Path) -> pd.DataFrame:
        """The promotion calendar / price plan, its date (and id) columns named as in the
        history file renamed to the contract's ``ds`` (``unique_id``); the forecaster checks
        the rest (series, periods, driver columns)."""
        from .data.io import read_source

        future = read_source(path, text_columns=self.data_config().series_columns)
        renames = {self.time_col: "ds", self.id_col: "unique_id"}
        future = future.rename(columns={k: v for k, v in renames.items() if k in future and k != v})
        if "ds" in future:  # read as the history's dates: offset dropped, day/month order checked
            from .data.dates import parse_dates

            where = future.attrs.get("source", str(path))
            future["ds"] = parse_dates(future["ds"], self.date_format, column=self.time_col, where=where)
        return future


def _history_options(**defaults):
    """Give a command the shared options (:class:`HistoryOptions`) as one ``opts`` argument.

    Typer reads a command's options from its signature, so the wrapper's signature lists
    ``--data``, the command's own options, then the other shared ones (``defaults`` changes a
    shared option's default for this command); the wrapper gathers them into ``opts``.
    """
    hints = typing.get_type_hints(HistoryOptions, include_extras=True)
    keyword = inspect.Parameter.KEYWORD_ONLY
    shared = [
        inspect.Parameter(
            f.name,
            keyword,
            annotation=hints[f.name],
            default=defaults.get(
                f.name, inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
            ),
        )
        for f in dataclasses.fields(HistoryOptions)
    ]

    def decorate(command):
        own = [
            p.replace(kind=keyword)
            for p in inspect.signature(command, eval_str=True).parameters.values()
            if p.name != "opts"
        ]

        @functools.wraps(command)
        def wrapper(**values):
            opts = HistoryOptions(**{p.name: values.pop(p.name) for p in shared})
            return command(opts=opts, **values)

        params = [shared[0], *own, *shared[1:]]
        wrapper.__signature__ = inspect.Signature(params)
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        return wrapper

    return decorate


@app.command("forecast")
@_history_options()
def forecast_cmd(
    opts: HistoryOptions,
    output: Annotated[Path, typer.Option("--output", "-o", help="OUT.csv or OUT.parquet.")],
    future: Annotated[
        Path | None,
        typer.Option(
            help="Promotion calendar / price plan (CSV/Parquet/Excel): unique_id or the key columns, "
            "the date column and the --drivers, for the forecast periods.",
        ),
    ] = None,
    future_fill: Annotated[
        FutureFill,
        typer.Option(help="Series or periods missing from --future: error, carry last value, or zero."),
    ] = FutureFill.error,
) -> None:
    """Forecast every series (and every hierarchy level, reconciled) and write the frame."""
    from .data.io import write_frame
    from .forecasting.forecaster import Forecaster

    config = opts.forecast_config(future_fill=future_fill.value)
    if future is not None and not config.drivers:
        raise ConfigError(
            "--future holds future driver values: name the drivers, e.g. --drivers price,promo."
        )
    history = opts.read_history()
    plan = opts.read_future(future) if future is not None else None
    forecaster = Forecaster(config)
    forecaster.check_future(history, plan)  # a bad calendar fails before the fit, not after
    with progress() as bar:
        forecaster.fit(history, progress=bar)
    frame = forecaster.predict(future=plan).forecast
    path = write_frame(frame, output)
    counts = frame.groupby("unique_id")["model"].first().value_counts()
    console.print(f"Wrote {len(frame):,} rows for {frame['unique_id'].nunique():,} series to {path}")
    console.print(
        "Models chosen: " + ", ".join(f"{m} ({n})" for m, n in counts.head(8).items()),
        highlight=False,
    )


@app.command("backtest")
@_history_options(windows=3)
def backtest_cmd(
    opts: HistoryOptions,
    output: Annotated[Path, typer.Option("--output", "-o", help="metrics.csv or .parquet.")],
    step: Annotated[int | None, typer.Option(help="Periods between origins; default horizon.")] = None,
) -> None:
    """Rolling-origin backtest: accuracy per model (and per level for hierarchies)."""
    from .data.io import write_frame
    from .forecasting.forecaster import Forecaster

    config = opts.forecast_config(step=step)
    history = opts.read_history()
    with progress() as bar:
        table = Forecaster(config).cross_validation(history, progress=bar).metrics
    path = write_frame(table, output)
    shown = [c for c in ("level", "method", "model", "mase", "smape", "wape", "bias") if c in table]
    console.print(table[shown].round(3).to_string(index=False), highlight=False)
    console.print(f"Wrote backtest metrics to {path}")


@app.command("run")
def run_cmd(
    pipeline: Annotated[Path, typer.Argument(help="Pipeline YAML, e.g. pipelines/monthly_demand_plan.yaml.")],
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override a setting: key.path=value (repeatable).")
    ] = None,
    promote: Annotated[bool, typer.Option("--promote", help="Make this run's model the champion.")] = False,
    workdir: WorkdirOption = None,
    engine: Annotated[Engine | None, typer.Option(help=_PIPELINE_ENGINE_HELP)] = None,
) -> None:
    """Run a pipeline as one tracked MLflow run: backtest, forecast, register, write outputs."""
    from .pipeline.runner import run_pipeline
    from .pipeline.spec import load_pipeline
    from .workdir import resolve_workdir

    spec = load_pipeline(pipeline, _with_engine(set_, engine))
    wd = resolve_workdir(workdir)
    with progress() as bar:
        result = run_pipeline(spec, wd, path=str(pipeline.resolve()), promote=promote, progress=bar)
    _print_run(result)


def _with_engine(overrides: list[str] | None, engine: Engine | None) -> list[str]:
    """``--set`` overrides plus ``--engine`` as ``forecast.engine=...`` (``--engine`` wins)."""
    return [*(overrides or []), *([f"forecast.engine={engine.value}"] if engine is not None else [])]


def _print_run(result) -> None:
    _print_levels(result)
    console.print(f"MLflow run {result.run_id} ({result.seconds:.0f} s), tracking {result.tracking_uri}")
    d = result.decision
    if d is not None:
        role = "champion" if d.promoted else "challenger"
        console.print(f"Model {d.name} v{d.version} is the {role}: {escape(d.reason)}", highlight=False)
    if result.delivered:
        console.print("Delivered outputs:")
    else:
        console.print(
            f"Delivered outputs stay champion v{d.previous_champion}'s; challenger v{d.version}'s outputs "
            "(also in its MLflow run's results/):",
            highlight=False,
        )
    for name, path in result.outputs.items():
        console.print(f"  {name}: {path}", highlight=False, soft_wrap=True)
    if result.tracking_uri.startswith("sqlite:"):
        console.print(
            f"Open the MLflow UI: mlflow ui --backend-store-uri {result.tracking_uri} "
            "--host 127.0.0.1 --port 5000   (or mlflow/serve.sh)"
        )


@app.command("compare")
def compare_cmd(
    experiment: Annotated[str, typer.Option("--experiment", "-e", help="MLflow experiment (pipeline name).")],
    metric: Annotated[str, typer.Option(help="mase, rmsse, smape, wape or bias.")] = "wape",
    level: Annotated[str | None, typer.Option(help="Hierarchy level, e.g. category/family.")] = None,
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 30,
    tracking_uri: Annotated[
        str | None, typer.Option(help="Tracking URI; default the work directory's.")
    ] = None,
    # output.FormatOption / OutputOption, spelled out: this command's edit stays inside it
    fmt: Annotated[
        typing.Literal["table", "csv", "json"],
        typer.Option(
            "--format", "-f", help="table (for people), csv or json (for scripts).", case_sensitive=False
        ),
    ] = "table",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file instead of standard output.", dir_okay=False),
    ] = None,
    workdir: WorkdirOption = None,
) -> None:
    """Leaderboard of pipeline runs and candidate models from MLflow."""
    from .output import emit
    from .pipeline.compare import leaderboard
    from .pipeline.tracking import check_reachable, resolve_store
    from .workdir import resolve_workdir

    store = resolve_store(resolve_workdir(workdir), tracking_uri, create=False)  # reads only
    check_reachable(store)
    board = leaderboard(experiment, metric=metric, level=level, client=store.client())
    levels = ", ".join(board["level"].unique()) if len(board) else (level or "all")
    title = f"{experiment}: backtest {metric} at level {levels}, best first"
    if fmt != "table" or output is not None:  # every column and the full run id, for scripts
        shown = board.head(limit).reset_index(drop=True)
        emit(shown.assign(rank=range(1, len(shown) + 1))[["rank", *board.columns]], fmt, output, title=title)
        return
    table = Table(title=title)
    for col in ("#", "run started", "model", metric, "seconds", "status", "run id"):
        table.add_column(col, justify="right" if col in ("#", metric, "seconds") else "left")
    for i, row in enumerate(board.head(limit).itertuples(index=False), start=1):
        value = getattr(row, metric)
        table.add_row(
            str(i),
            f"{row.started:%Y-%m-%d %H:%M}",
            escape(str(row.model)),
            "-" if value is None or value != value else f"{value:.4f}",
            "-" if row.seconds is None or row.seconds != row.seconds else f"{row.seconds:.0f}",
            str(row.status),
            str(row.run_id)[:8],
        )
    console.print(table)


@app.command("runs")
def runs_cmd(
    pipeline: Annotated[str | None, typer.Option(help="Only this pipeline.")] = None,
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 20,
    workdir: WorkdirOption = None,
) -> None:
    """Run history: every manual and scheduled run with its status and MLflow run id."""
    from .pipeline.history import RunHistory
    from .workdir import resolve_workdir

    frame = RunHistory.for_workdir(resolve_workdir(workdir), create=False).frame(pipeline, limit)
    table = Table(title="Pipeline runs (latest first)")
    for col in ("id", "pipeline", "trigger", "started (UTC)", "ended", "status", "MLflow run", "error"):
        table.add_column(col)
    for row in frame.itertuples(index=False):
        table.add_row(
            str(row.id),
            row.pipeline,
            row.trigger,
            f"{row.started_at:%Y-%m-%d %H:%M:%S}",
            "" if row.ended_at is None or row.ended_at != row.ended_at else f"{row.ended_at:%H:%M:%S}",
            row.status,
            (row.mlflow_run_id or "")[:8],
            escape((row.error or "")[:80]),
        )
    console.print(table)


app.add_typer(plan_app, name="plan")
app.add_typer(override_app, name="override")
app.add_typer(actuals_app, name="actuals")
app.add_typer(db_app, name="db")
app.add_typer(monitor_app, name="monitor")
app.add_typer(report_app, name="report")
app.add_typer(balance_app, name="balance")
app.add_typer(scenario_app, name="scenario")

schedule_app = typer.Typer(
    help="Cron schedules of pipelines, run by `sopforecast scheduler`.", no_args_is_help=True
)
app.add_typer(schedule_app, name="schedule")


@schedule_app.command("add")
def schedule_add(
    pipeline: Annotated[Path, typer.Argument(help="Pipeline YAML.")],
    cron: Annotated[str, typer.Option(help="Five-field cron, e.g. '0 6 2 * *' (06:00 on the 2nd).")],
    workdir: WorkdirOption = None,
) -> None:
    """Schedule a pipeline (replaces its previous schedule)."""
    from .pipeline.schedule import add_schedule
    from .workdir import resolve_workdir

    info = add_schedule(pipeline, cron, resolve_workdir(workdir))
    console.print(f"Scheduled {info['pipeline']} at '{cron}'; next run {info['next_run']:%Y-%m-%d %H:%M %Z}")


@schedule_app.command("list")
def schedule_list(workdir: WorkdirOption = None) -> None:
    """List schedules with their next run."""
    from .pipeline.schedule import list_schedules
    from .workdir import resolve_workdir

    frame = list_schedules(resolve_workdir(workdir))
    table = Table(title="Schedules")
    for col in ("pipeline", "cron", "next run", "file"):
        table.add_column(col)
    for row in frame.itertuples(index=False):
        table.add_row(row.pipeline, row.cron, f"{row.next_run:%Y-%m-%d %H:%M %Z}", row.path)
    console.print(table)


@schedule_app.command("remove")
def schedule_remove(
    pipeline: Annotated[str, typer.Argument(help="Pipeline name.")],
    workdir: WorkdirOption = None,
) -> None:
    """Remove a pipeline's schedule."""
    from .pipeline.schedule import remove_schedule
    from .workdir import resolve_workdir

    remove_schedule(pipeline, resolve_workdir(workdir))
    console.print(f"Removed the schedule of {pipeline}")


@app.command("scheduler")
def scheduler_cmd(
    workdir: WorkdirOption = None,
    exit_after: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: run until stopped).")
    ] = None,
    job_timeout: Annotated[
        float,
        typer.Option(
            help="Seconds a run may take; a run still going is stopped and recorded TIMEOUT. 0: no limit."
        ),
    ] = 7200.0,
) -> None:
    """Long-running scheduler: runs due pipelines, each in a process of its own; catches up a
    missed run once.

    SIGTERM, Ctrl-C or --exit-after stop it and its runs (recorded STOPPED, locks released): exit code 0.
    """
    from .pipeline.schedule import run_scheduler
    from .workdir import resolve_workdir

    run_scheduler(resolve_workdir(workdir), exit_after=exit_after, job_timeout=job_timeout or None)


# the option of each setting a user error can name (library messages name settings)
CLI_FLAGS = {
    "hierarchy": "--hierarchy",
    "keys": "--hierarchy",
    "drivers": "--drivers",
    "models": "--models",
    "horizon": "--horizon",
    "level": "--level",
    "season_length": "--season-length",
    "windows": "--windows",
    "engine": "--engine",
    "dask": "--dask-address",
    "step": "--step",
    "reconcile": "--reconcile",
    "freq": "--freq",
    "id_col": "--id-col",
    "time_col": "--time-col",
    "target_col": "--target-col",
    "date_format": "--date-format",
    "future": "--future",
    "future_fill": "--future-fill",
    "path": "--data",
    "table": "--table",
    "query": "--query",
    "sheet": "--sheet",
    "align_dates": "--align-dates",
    "negative": "--negative",
    "missing": "--missing",
    "duplicates": "--duplicates",
    "min_length": "--min-length",
    "short_series": "--short-series",
    "job_timeout": "--job-timeout",
    "exit_after": "--exit-after",
    "workdir": "--workdir",
    "tracking_uri": "--tracking-uri",
}


CLI_FLAGS.update(PLAN_FLAGS)


def _flag(setting: str) -> str:
    return CLI_FLAGS.get(setting, "--" + setting.replace("_", "-"))


def _build(model, **values):
    """Build a pydantic config from CLI values, turning its errors into a ConfigError that
    names the options (``--horizon: ...``)."""
    from .errors import validation_problems

    try:
        return model(**values)
    except ValidationError as exc:
        problems = validation_problems(exc)
        # every value came from an option, so its first key is the option's name
        named = [(_flag(name.split(".")[0]) if name else "", msg) for name, msg in problems]
        text = "; ".join(f"{flag}: {msg}" if flag else msg for flag, msg in named)
        raise ConfigError(f"invalid options: {text}", setting=problems[0][0] or None) from exc


def _print_levels(result) -> None:
    """The delivered forecast's backtest accuracy per level (reconciled as delivered), each
    level against the pipeline's targets: met or missed."""
    from rich import box

    from .pipeline.steps import level_checks

    ev = result.evaluation
    checks = level_checks(result.spec, ev)
    targeted = [c.removesuffix("_met") for c in checks.columns if c.endswith("_met")]
    if ev.accuracy is None:
        how = "every series"
    else:
        how = f"reconciled with {ev.method}" if ev.method != "base" else "not reconciled"
    limits = ", ".join(
        f"{'|bias|' if m == 'bias' else m} <= {checks[f'{m}_target'].iloc[0]:g}" for m in targeted
    )
    table = Table(
        title=f"Pipeline {result.spec.name}: backtest of the delivered forecast ({how}) per level",
        caption=f"targets: {limits}" if targeted else "no targets set (targets: in the pipeline)",
        box=box.SIMPLE_HEAD,
        show_edge=False,
    )
    # the metrics targets can be set on; every metric is in the run and the levels report
    shown = [m for m in ("wape", "bias", "mase") if m in checks]
    table.add_column("level", no_wrap=True)
    for m in shown:
        table.add_column(m, justify="right", no_wrap=True)
    if targeted:
        table.add_column("targets")
    for _, row in checks.iterrows():
        cells = [str(row["level"]), *(f"{row[m]:.3f}" for m in shown)]
        if targeted:
            missed = [m for m in targeted if not row[f"{m}_met"]]
            cells.append(f"[red]missed {', '.join(missed)}[/red]" if missed else "[green]met[/green]")
        table.add_row(*cells)
    console.print(table)


def _print_balance(balances: dict) -> None:
    """The balance step in three lines: the worst capacity month, what the constrained plan
    leaves unmet, and each scenario's effect on it."""
    base = balances["base"]
    f = base.figures
    over = base.capacity_exceptions[base.capacity_exceptions["kind"] == "overload"]
    worst = ""
    if len(over):
        top = over.sort_values("utilisation", ascending=False).iloc[0]
        worst = f" (worst {escape(str(top['resource']))} {top['ds']:%Y-%m} at {top['utilisation']:.0%})"
    stake = (
        f", {f['revenue_at_stake']:,.0f} of revenue at stake" if f.get("revenue_at_stake") is not None else ""
    )
    console.print(
        f"Supply balance: {f['overloaded_resource_months']} overloaded resource-month(s){worst}; the "
        f"constrained plan leaves {f['unmet_units']:,.0f} units unmet{stake}; {f['stockout_months']} "
        "stock-out item-month(s). 'sopforecast balance run' for the exceptions, reports/balance/ "
        "for the tables.",
        highlight=False,
    )
    for name, result in balances.items():
        if name != "base":
            g = result.figures
            console.print(
                f"  scenario {escape(name)}: units {g['units'] - f['units']:+,.0f}, unmet "
                f"{g['unmet_units'] - f['unmet_units']:+,.0f}",
                highlight=False,
            )


def _print_summary(report, levels, classes) -> None:
    head = (
        f"{report.source}: {report.n_series:,} series, {report.n_rows:,} rows, "
        f"{report.start:%Y-%m-%d} to {report.end:%Y-%m-%d} ({report.freq})"
    )
    console.print(f"[bold]Validated[/bold] {escape(head)}", highlight=False)
    for note in report.notes():
        console.print(f"  - {escape(note)}", highlight=False)
    if levels is not None:
        table = Table(title="Series per level")
        table.add_column("level")
        table.add_column("series", justify="right")
        for row in levels.itertuples():
            table.add_row(row.level, f"{row.series:,}")
        console.print(table)
    table = Table(title="Demand classes")
    for col in ("class", "series", "share"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for row in classes.itertuples():
        table.add_row(str(row.demand_class), f"{row.series:,}", f"{row.share:.0%}")
    console.print(table)


# the commands of the planning cycle read their data settings from the store, not from flags
_STORE_GROUPS = ("plan", "override", "actuals", "db", "monitor", "report", "balance", "scenario")


def _flags_of(argv: list[str] | None) -> dict[str, str]:
    """The flags the command being run has: a store command names only its own."""
    words = [w for w in (sys.argv[1:] if argv is None else argv) if not w.startswith("-")]
    return PLAN_FLAGS if words and words[0] in _STORE_GROUPS else CLI_FLAGS


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    try:
        app(args=argv, standalone_mode=False)
    except SopforecastError as exc:
        message = str(exc)
        flag = _flags_of(argv).get(exc.setting or "")
        if flag and flag not in message:
            message += f" (option {flag})"
        if sys.stderr.isatty():
            err_console.print(f"[bold red]Error:[/bold red] {escape(message)}", highlight=False)
        else:  # logs and grep get the message whole: no wrapping, no markup
            sys.stderr.write(f"Error: {message}\n")
            sys.stderr.flush()
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("Aborted.")
        return 130
    except Exception as exc:
        # usage errors (click's, vendored by typer) show themselves and carry an exit code
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            return exc.exit_code
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
