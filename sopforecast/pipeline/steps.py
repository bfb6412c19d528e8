"""The steps of a pipeline run, as plain functions over frames.

Each step takes the pipeline's spec, its data or the previous step's result and returns
frames, dictionaries or files written into a folder it is given. None of them talks to
MLflow, the run history or the planners' output files: :mod:`.runner` wires the steps
together and does all of that, so a step can be tested on tiny data without a tracking
store, and a failed step leaves nothing half-written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import yaml

from ..config import ForecastConfig
from ..exports import inside, safe_name
from ..workdir import Workdir
from .plots import run_plots
from .sources import History, load_history
from .spec import PipelineSpec

__all__ = [
    "METRICS",
    "Evaluation",
    "Candidate",
    "load",
    "evaluate",
    "run_params",
    "run_metrics",
    "target_checks",
    "level_checks",
    "candidate_runs",
    "result_tables",
    "result_plots",
    "output_targets",
    "challenger_folder",
    "discontinued_table",
    "plan_draft",
    "plan_name",
]

METRICS = ("mase", "rmsse", "smape", "wape", "bias")


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
    forecaster: object = None  # the fitted Forecaster
    timings: dict[str, float] = field(default_factory=dict)  # seconds per forecasting stage
    method: str = "base"  # the delivered forecast's rows of ``accuracy``: its reconciliation
    discontinued: list[str] = field(default_factory=list)  # stopped selling: forecast at zero


class Candidate(NamedTuple):
    """What a candidate model's nested run records.

    ``windows`` holds one dict of metrics per backtest window, oldest first (the metric's
    step in MLflow is the window's position).
    """

    name: str
    params: dict[str, str]
    metrics: dict[str, float]
    windows: list[dict[str, float]]


def load(spec: PipelineSpec, workdir: Workdir) -> History:
    """Read and validate the pipeline's data (the demo data is generated into ``workdir``)."""
    return load_history(spec.data, workdir)


def evaluate(
    frame: pd.DataFrame,
    config: ForecastConfig,
    future: pd.DataFrame | None = None,
    progress=None,
    launches: pd.DataFrame | None = None,
    delistings: pd.DataFrame | None = None,
) -> Evaluation:
    """Backtest, fit and forecast ``frame`` with ``config``.

    Parameters
    ----------
    frame : pandas.DataFrame
        Validated long history.
    config : ForecastConfig
        The pipeline's forecast section.
    future : pandas.DataFrame, optional
        The drivers' planned values (promotion calendar).
    launches : pandas.DataFrame, optional
        New items and their like items (:mod:`sopforecast.forecasting.launches`).
    delistings : pandas.DataFrame, optional
        Items that stop selling and their last month (same module).
    progress : rich.progress.Progress, optional
        Shows the forecasting stages.

    Returns
    -------
    Evaluation
        The headline is the delivered forecast's backtest accuracy: for hierarchies at the
        bottom level with the configured reconciliation, else over every series.
    """
    from ..forecasting.forecaster import Forecaster

    forecaster = Forecaster(config)
    forecaster.check_future(frame, future)  # a bad promotion calendar fails before the fit
    forecaster.fit(frame, backtest=True, progress=progress)
    run = forecaster.predict(future=future, launches=launches, delistings=delistings)
    if run.accuracy is not None:
        method = "base" if config.reconcile == "none" else config.reconcile
        acc = run.accuracy
        row = acc[(acc["level"] == run.bottom_level) & (acc["method"] == method)]
        if row.empty:
            method = "base"
            row = acc[(acc["level"] == run.bottom_level) & (acc["method"] == method)]
        headline = {m: float(row[m].iloc[0]) for m in METRICS if m in row}
        level = run.bottom_level
    else:
        row = run.backtest.summary.set_index("model").loc["auto"]
        headline = {m: float(row[m]) for m in METRICS if m in row}
        level, method = "all", "base"
    return Evaluation(
        run.forecast,
        run.backtest,
        headline,
        run.accuracy,
        run.levels,
        run.series,
        level,
        forecaster,
        run.timings,
        method,
        run.discontinued,
    )


def run_params(spec: PipelineSpec) -> dict[str, str]:
    """The spec flattened to ``section.key`` parameters (values cut to 5,000 characters)."""
    return _flatten(spec.model_dump(mode="json"))


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


def run_metrics(ev: Evaluation, data: History) -> dict[str, float]:
    """The pipeline run's metrics: ``backtest_<metric>`` of the delivered forecast,
    ``<metric>_<method>_<level>`` per level for hierarchies, ``test_*`` on a held-out part."""
    metrics = {f"backtest_{k}": v for k, v in ev.headline.items()}
    metrics["discontinued_series"] = float(len(ev.discontinued))
    forecaster = ev.forecaster
    bias = getattr(forecaster, "bias_", None)
    metrics["bias_corrected_levels"] = float(bias.summary()["applied"].sum()) if bias is not None else 0.0
    metrics["promotion_cleansed_periods"] = float(getattr(forecaster, "cleansed_", 0))
    launched = getattr(forecaster, "launched_", None)
    metrics["launched_items"] = float(len(launched)) if launched is not None else 0.0
    delisted = getattr(forecaster, "delisted_", None)
    metrics["delisted_items"] = float(len(delisted)) if delisted is not None else 0.0
    if data.test is not None:
        metrics.update(_test_scores(ev.forecast, data.test))
    if ev.accuracy is not None:
        for _, row in ev.accuracy.iterrows():
            for m in METRICS:
                if pd.notna(row.get(m)):
                    metrics[_metric_key(m, str(row["method"]), str(row["level"]))] = float(row[m])
    return metrics


def _test_scores(forecast: pd.DataFrame, test: pd.DataFrame) -> dict[str, float]:
    """Accuracy on the dataset's held-out test part (competition data)."""
    from ..forecasting.metrics import smape

    scores = smape(test, forecast)
    joined = test.merge(forecast[["unique_id", "ds", "forecast"]], on=["unique_id", "ds"])
    err = (joined["forecast"] - joined["y"]).abs().sum()
    return {"test_smape": float(scores.mean()), "test_wape": float(err / joined["y"].abs().sum())}


def target_checks(spec: PipelineSpec, headline: dict[str, float]) -> dict[str, bool]:
    """Whether the headline meets each target the spec sets (absolute bias)."""
    checks = {}
    for name, limit in spec.targets.model_dump().items():
        if limit is None or name not in headline:
            continue
        value = abs(headline[name]) if name == "bias" else headline[name]
        checks[name] = value <= limit
    return checks


def level_checks(spec: PipelineSpec, ev: Evaluation) -> pd.DataFrame:
    """The delivered forecast's backtest accuracy per level against the spec's targets.

    Returns
    -------
    pandas.DataFrame
        One row per level, top first (a single ``all`` row without a hierarchy): ``level``,
        ``method`` (the delivered forecast's reconciliation, ``base`` when none), the
        metrics, and per target set ``<metric>_target`` and ``<metric>_met`` (absolute bias
        for ``bias``, as :func:`target_checks`).
    """
    if ev.accuracy is not None:
        rows = ev.accuracy[ev.accuracy["method"] == ev.method].reset_index(drop=True)
    else:
        rows = pd.DataFrame([{"level": ev.headline_level, "method": "base", **ev.headline}])
    out = rows[["level", "method", *(m for m in METRICS if m in rows)]].copy()
    for name, limit in spec.targets.model_dump().items():
        if limit is None or name not in out:
            continue
        out[f"{name}_target"] = limit
        out[f"{name}_met"] = [target_checks(spec, {name: value}).get(name, False) for value in out[name]]
    return out


def candidate_runs(ev: Evaluation, config: ForecastConfig) -> list[Candidate]:
    """One record per candidate model of the backtest: its parameters, overall and
    per-level metrics, and the metrics of each backtest window."""
    from ..forecasting.metrics import summarise_metrics
    from ..forecasting.models import CATALOGUE

    bt = ev.backtest
    by_alias = {spec.alias: name for name, spec in CATALOGUE.items()}
    summary = bt.summary.set_index("model")
    per_level = summarise_metrics(bt.scores, bt.cv, by=ev.levels) if ev.levels is not None else None
    cutoffs = sorted(bt.scores["cutoff"].unique())
    window_means = bt.scores.groupby(["model", "metric", "cutoff"])["value"].mean()
    out = []
    for alias in summary.index:
        if alias == "auto":
            continue
        name = by_alias.get(alias, alias)
        params = {
            "model": name,
            "alias": alias,
            "season_length": str(config.season_length or "default"),
            "horizon": str(config.horizon),
            "windows": str(config.windows),
            **{f"param.{k}": str(v) for k, v in config.params.get(name, {}).items()},
        }
        row = summary.loc[alias]
        metrics = {k: float(v) for k, v in row.items() if pd.notna(v) and isinstance(v, int | float)}
        if per_level is not None:
            for _, lrow in per_level[per_level["model"] == alias].iterrows():
                for m in METRICS:
                    if m in lrow and pd.notna(lrow[m]):
                        metrics[_metric_key(m, str(lrow["group"]))] = float(lrow[m])
        windows = [
            {
                _metric_key("window", m): float(window_means[(alias, m, cutoff)])
                for m in METRICS
                if (alias, m, cutoff) in window_means.index and pd.notna(window_means[(alias, m, cutoff)])
            }
            for cutoff in cutoffs
        ]
        out.append(Candidate(alias, params, metrics, windows))
    return out


def result_tables(ev: Evaluation, data: History, spec: PipelineSpec, folder: Path) -> list[Path]:
    """Write the run's tables into ``folder``: forecast, backtest summary and scores,
    selection, accuracy per level, the validation report and the spec."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []

    def put(name: str, write) -> None:
        path = folder / name
        write(path)
        written.append(path)

    put("forecast.parquet", lambda p: ev.forecast.to_parquet(p, index=False))
    put("backtest_summary.csv", lambda p: ev.backtest.summary.to_csv(p, index=False))
    put("backtest_scores.parquet", lambda p: ev.backtest.scores.to_parquet(p, index=False))
    if ev.backtest.selection is not None:
        sel = ev.backtest.selection
        chosen = sel.per_series.assign(members=sel.per_series["members"].map(",".join))
        put("selection_strategies.csv", lambda p: sel.scores.to_csv(p, index=False))
        put("selection_per_series.csv", lambda p: chosen.to_csv(p, index=False))
    if ev.accuracy is not None:
        put("level_accuracy.csv", lambda p: ev.accuracy.to_csv(p, index=False))
    bias = getattr(ev.forecaster, "bias_", None)
    if bias is not None:  # each level's lean in the backtest and the correction taken
        put("bias_factors.csv", lambda p: bias.summary().to_csv(p, index=False))
    launched = getattr(ev.forecaster, "launched_", None)
    if launched is not None and len(launched):  # new items: like item, scale and how
        put("launches.csv", lambda p: launched.to_csv(p, index=False))
    delisted = getattr(ev.forecaster, "delisted_", None)
    if delisted is not None and len(delisted):  # items forecast to sell nothing after a month
        put("delistings.csv", lambda p: delisted.to_csv(p, index=False))
    checks = level_checks(spec, ev)
    put("level_targets.csv", lambda p: checks.to_csv(p, index=False))
    report = json.dumps(data.report.to_dict(), indent=2, default=str)
    put("validation.json", lambda p: p.write_text(report))
    settings = yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False)
    put("pipeline.yaml", lambda p: p.write_text(settings))
    return written


def result_plots(ev: Evaluation, folder: Path) -> list[Path]:
    """Write the forecast plots (one per level, the largest series) into ``folder``."""
    return run_plots(ev.all_series, ev.forecast, folder)


def output_targets(
    spec: PipelineSpec, workdir: Workdir, ev: Evaluation, *, folder: Path | None = None
) -> dict[str, tuple[pd.DataFrame, Path]]:
    """The planners' files and their places: label -> (frame, path). Nothing is written.

    Parameters
    ----------
    folder : Path, optional
        Put every file in this folder under its own name instead of its delivered place
        (a challenger's outputs, :func:`challenger_folder`); default the delivered places.
    """
    # the pipeline's name is checked at the door (config.check_name); a file name made of it
    # is still made safe and kept inside its folder
    stem = safe_name(spec.name)
    forecast = Path(spec.output) if spec.output else inside(workdir.forecasts, f"{stem}.csv")
    targets = {
        "forecast": (ev.forecast, forecast),
        "backtest summary": (ev.backtest.summary, inside(workdir.reports, f"{stem}_backtest.csv")),
    }
    if ev.accuracy is not None:
        targets["accuracy per level"] = (ev.accuracy, inside(workdir.reports, f"{stem}_levels.csv"))
    if ev.discontinued:
        targets["discontinued series"] = (
            discontinued_table(ev),
            inside(workdir.reports, f"{stem}_discontinued.csv"),
        )
    if folder is not None:
        targets = {label: (frame, folder / path.name) for label, (frame, path) in targets.items()}
    return targets


def discontinued_table(ev: Evaluation) -> pd.DataFrame:
    """The series that stopped selling (forecast at zero): id, last month with demand, and
    their demand in the 12 months before it."""
    history = ev.all_series[ev.all_series["unique_id"].isin(ev.discontinued)]
    sold = history[history["y"] > 0]
    last = sold.groupby("unique_id")["ds"].max().rename("last_demand")
    recent = sold.merge(last, on="unique_id")
    recent = recent[recent["ds"] > recent["last_demand"] - pd.DateOffset(months=12)]
    volume = recent.groupby("unique_id")["y"].sum().rename("demand_last_12_months_before")
    out = pd.concat([last, volume], axis=1).reindex(ev.discontinued)
    return out.rename_axis("unique_id").reset_index()


def challenger_folder(workdir: Workdir, model: str, version: str) -> Path:
    """Where a challenger's outputs go in the work directory: ``challengers/<model>/v<version>``.

    The delivered places (``forecasts/``, ``reports/``) hold the champion's outputs only.
    The model's name is made a safe file name (it can never leave ``challengers/``).
    """
    folder = workdir.root / "challengers"
    return inside(folder, Path(safe_name(model)) / f"v{safe_name(version)}")


def plan_name(spec: PipelineSpec) -> str:
    """The plan a pipeline writes: ``plan.name``, else the pipeline's name."""
    return spec.plan.name or spec.name


def plan_draft(spec: PipelineSpec, ev: Evaluation, data: History) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The plan lines of a new draft from the delivered forecast, priced as configured,
    and the bottom series' keys. Nothing is stored."""
    from ..planning.finance import attach_prices, prices_from_history, read_prices
    from ..planning.plan import draft_lines

    plan = spec.plan
    launched = getattr(ev.forecaster, "launched_", None)
    keys = list(spec.data.keys)
    new_items = None
    if launched is not None and all(k in launched.columns for k in keys):
        new_items = launched.rename(columns={"new_item": "unique_id"})[["unique_id", *keys]]
    lines, bottom = draft_lines(
        ev.forecast,
        data.frame,
        spec.data.hierarchy,
        freq=spec.data.freq,
        months=plan.months,
        bucket=plan.bucket,
        new_items=new_items,
    )
    source = plan.prices.source
    if source == "auto":
        source = "driver" if plan.prices.column in data.frame.columns else "none"
    prices = None
    if source == "driver":
        prices = prices_from_history(data.frame, price_col=plan.prices.column, months=plan.prices.months)
    elif source == "file":
        prices = read_prices(plan.prices.file, list(spec.data.keys))
    if prices is not None:
        if plan.prices.cost_share is not None and "unit_cost" not in prices:
            prices = prices.assign(unit_cost=prices["price"] * plan.prices.cost_share)
        lines = attach_prices(lines, prices)
    return lines, bottom
