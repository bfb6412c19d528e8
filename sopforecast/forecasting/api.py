"""Public verbs: ``forecast`` and ``backtest`` over flat or hierarchical demand history."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pandas as pd

from ..config import ForecastConfig
from ..data.hierarchy import check_nesting
from ..data.panel import extend_to_common_end
from ..errors import ConfigError, DataError
from .engine import BacktestResult, ForecastResult, run_backtest, run_forecast
from .metrics import evaluate_backtest, summarise_metrics
from .models import default_season_length
from .reconcile import aggregate_hierarchy, coherence_gap, level_of, reconcile

__all__ = ["forecast", "backtest", "HierarchicalResult"]

logger = logging.getLogger(__name__)


@dataclass
class HierarchicalResult:
    """Forecasts of every level, base and reconciled, and accuracy per level."""

    forecast: pd.DataFrame
    base: ForecastResult
    levels: pd.Series
    S: pd.DataFrame
    tags: dict
    accuracy: pd.DataFrame | None = None
    extended: list[str] = field(default_factory=list)


def _config(h, freq, models, level, hierarchy, **kw) -> ForecastConfig:
    try:
        return ForecastConfig(
            horizon=h,
            freq=freq,
            models=models,
            level=list(level),
            hierarchy=list(hierarchy or []),
            **kw,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def forecast(
    df: pd.DataFrame,
    h: int = 18,
    freq: str = "MS",
    models: str | list[str] = "auto",
    level: tuple[int, ...] = (80, 95),
    hierarchy: list[str] | None = None,
    future: pd.DataFrame | None = None,
    **kwargs,
) -> pd.DataFrame:
    """Forecast every series (and every aggregate of ``hierarchy``, reconciled).

    Parameters
    ----------
    df : pandas.DataFrame
        Validated long history: ``unique_id, ds, y`` and, with a hierarchy, its key columns.
    h : int, default 18
        Horizon in periods.
    freq : str, default "MS"
        pandas frequency.
    models : str or list of str, default "auto"
        ``auto`` selects per series by backtest; or catalogue names.
    level : tuple of int, default (80, 95)
        Interval levels.
    hierarchy : list of str, optional
        Key chains such as ``["category/family/sku", "region/channel"]``.
    future : pandas.DataFrame, optional
        Future values of the drivers (``unique_id, ds, <drivers>``) for LightGBM.
    **kwargs
        Any other :class:`~sopforecast.config.ForecastConfig` field (windows, reconcile,
        season_length, params, n_jobs, clip, ...).

    Returns
    -------
    pandas.DataFrame
        ``unique_id, ds, forecast, forecast-lo-80, forecast-hi-80, ..., model``.
    """
    config = _config(h, freq, models, level, hierarchy, **kwargs)
    if config.hierarchy:
        return forecast_hierarchy(df, config).forecast
    return run_forecast(df, config, future=future).forecast


def backtest(
    df: pd.DataFrame,
    h: int = 18,
    freq: str = "MS",
    models: str | list[str] = "auto",
    level: tuple[int, ...] = (80, 95),
    hierarchy: list[str] | None = None,
    **kwargs,
) -> pd.DataFrame:
    """Rolling-origin backtest; one row per model (and level for hierarchies) with
    MASE, RMSSE, sMAPE, WAPE, bias, coverage and scaled pinball loss."""
    config = _config(h, freq, models, level, hierarchy, **kwargs)
    if config.hierarchy:
        return forecast_hierarchy(df, config, accuracy=True).accuracy
    result = run_backtest(df, config)
    return result.summary


def forecast_hierarchy(
    df: pd.DataFrame,
    config: ForecastConfig,
    *,
    accuracy: bool = False,
    progress=None,
    backtest: BacktestResult | None = None,
) -> HierarchicalResult:
    """Aggregate, forecast every level from one origin, reconcile; optionally score levels."""
    keys = [c for chain in config.hierarchy for c in chain.split("/") if c]
    missing = [k for k in keys if k not in df.columns]
    if missing:
        raise DataError(
            f"hierarchy columns {missing} are not in the data (columns: {list(df.columns)}). "
            "Give --hierarchy with the key column names of the file."
        )
    check_nesting(df, config.hierarchy)
    bottom, extended = extend_to_common_end(df[["unique_id", "ds", "y", *keys]], config.freq)
    if extended:
        logger.info("%d series stopped early; extended with zeros to the common origin", len(extended))
    Y, S, tags = aggregate_hierarchy(bottom, config.hierarchy)
    levels = level_of(tags)
    logger.info("Hierarchy: %d series on %d levels", len(S), len(tags))
    base = run_forecast(Y, config, progress=progress, backtest=backtest, always_backtest=accuracy)
    out = base.forecast
    if config.reconcile != "none":
        residuals = base.backtest.chosen_cv if base.backtest is not None else None
        rec = reconcile(
            out,
            S,
            tags,
            methods=[config.reconcile],
            residuals=residuals,
            history=Y,
            middle_level=config.middle_level,
            nonnegative=config.nonnegative,
        )
        out = _recentre(out, rec, f"forecast/{config.reconcile}", config.clip)
        gap = coherence_gap(out, S, "forecast")
        logger.info("Reconciled with %s; largest coherence gap %.2e", config.reconcile, gap)
    out = out.assign(level=out["unique_id"].map(levels))
    result = HierarchicalResult(out, base, levels, S, tags, extended=extended)
    if accuracy and base.backtest is not None:
        result.accuracy = level_accuracy(base.backtest, S, tags, Y, config)
    return result


def _recentre(base: pd.DataFrame, rec: pd.DataFrame, column: str, clip: bool) -> pd.DataFrame:
    """Move point forecasts to the reconciled values; intervals keep their base width."""
    merged = base.merge(rec[["unique_id", "ds", column]], on=["unique_id", "ds"], how="left")
    shift = merged[column] - merged["forecast"]
    bounds = [c for c in merged.columns if c.startswith("forecast-")]
    merged[bounds] = merged[bounds].add(shift, axis=0)
    merged["forecast"] = merged[column]
    if clip:
        # clipping after reconciliation breaks coherence only where a total would be < 0
        merged[bounds] = merged[bounds].clip(lower=0.0)
    return merged.drop(columns=[column])


def level_accuracy(bt: BacktestResult, S, tags, Y, config: ForecastConfig) -> pd.DataFrame:
    """Accuracy per level of base forecasts and of each reconciliation method, per window."""
    from .reconcile import METHODS, _is_strict

    chosen = bt.chosen_cv
    if chosen is None:
        raise DataError("no backtest to score; use more history or fewer windows.")
    ids = set(S["unique_id"])
    complete = chosen.groupby("cutoff")["unique_id"].nunique()
    methods = [m for m in METHODS if _is_strict(tags) or m not in ("top_down", "middle_out")]
    frames = [chosen.rename(columns={"forecast": "base"})]
    columns = ["base"]
    for cutoff in complete.index:
        window = chosen[chosen["cutoff"] == cutoff]
        if set(window["unique_id"]) != ids:
            continue  # reconciliation needs every series in the window
        rec = reconcile(
            window,
            S,
            tags,
            methods=methods,
            residuals=chosen[chosen["cutoff"] != cutoff],
            history=Y[Y["ds"] <= cutoff],
            middle_level=config.middle_level,
            nonnegative=config.nonnegative,
        )
        rec = rec.rename(columns={f"forecast/{m}": m for m in methods})
        frames.append(rec.assign(cutoff=cutoff))
    merged = frames[0]
    if len(frames) > 1:
        recs = pd.concat(frames[1:], ignore_index=True)
        merged = merged.merge(
            recs[["unique_id", "ds", "cutoff", *methods]],
            on=["unique_id", "ds", "cutoff"],
            how="left",
        )
        columns += methods
    if config.clip:
        merged[columns] = merged[columns].clip(lower=0.0)
    train = Y[Y["ds"] <= merged["cutoff"].min()]
    season = config.season_length or default_season_length(config.freq)
    season = max(season) if isinstance(season, list) else season
    scored = evaluate_backtest(merged, train, columns, season_length=season)
    levels = level_of(tags)
    table = summarise_metrics(scored, merged, by=levels)
    table = table.rename(columns={"group": "level", "model": "method"})
    order = {name: i for i, name in enumerate(tags)}
    table["_o"] = table["level"].map(order)
    return table.sort_values(["_o", "method"]).drop(columns="_o").reset_index(drop=True)
