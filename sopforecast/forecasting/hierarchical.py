"""The panel a forecaster works on: the series themselves, or every level of a hierarchy.

A hierarchy is a setting of the forecaster, not a second code path: :func:`build_panel`
returns the same :class:`Panel` for flat data (one level, no summing matrix) and for a
hierarchy (bottom series extended to a common origin, every aggregate built, drivers
aggregated). :func:`level_accuracy` scores the backtest per level, base and reconciled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..config import ForecastConfig
from ..data.hierarchy import Hierarchy, check_nesting, key_columns
from ..data.panel import extend_to_common_end
from ..errors import ConfigError, DataError
from .drivers import aggregate_drivers, driver_weights
from .metrics import evaluate_backtest, summarise_metrics
from .ml import static_columns
from .reconcile import (
    METHODS,
    aggregate_hierarchy,
    bottom_path_mismatch,
    is_strict,
    level_of,
    nonnegative_coherent,
    reconcile,
)

__all__ = [
    "Panel",
    "build_panel",
    "level_accuracy",
    "score_levels",
    "reconciled_backtest",
    "discontinued",
    "hierarchy_keys",
    "known_demand",
]

logger = logging.getLogger(__name__)


def hierarchy_keys(config: ForecastConfig) -> list[str]:
    """Key columns named by the hierarchy chains, top to bottom."""
    return key_columns(config.hierarchy)


@dataclass
class Panel:
    """Every series to forecast (``Y``: ``unique_id, ds, y`` and drivers) and, for a
    hierarchy, its structure (the sparse summing matrix ``hierarchy.S``), level ids, driver
    weights and the bottom history."""

    Y: pd.DataFrame
    bottom: pd.DataFrame
    hierarchy: Hierarchy | None = None
    tags: dict | None = None
    weights: pd.Series | None = None
    extended: list[str] = field(default_factory=list)
    discontinued: list[str] = field(default_factory=list)  # bottom series that stopped selling

    @property
    def levels(self) -> pd.Series | None:
        return level_of(self.tags) if self.tags is not None else None

    @property
    def bottom_level(self) -> str | None:
        return list(self.tags)[-1] if self.tags is not None else None


def build_panel(history: pd.DataFrame, config: ForecastConfig) -> Panel:
    """The series the forecaster fits: flat history as given, or every level of the hierarchy."""
    drivers = list(config.drivers)
    _require_columns(history, drivers, "drivers", "driver column(s)", "columns of the data")
    if not config.hierarchy:
        frame = history[["unique_id", "ds", "y", *static_columns(history, drivers), *drivers]]
        return Panel(frame, frame, discontinued=discontinued(frame, config.discontinued_after))
    keys = hierarchy_keys(config)
    _require_columns(history, keys, "hierarchy", "hierarchy columns", "the key columns of the data")
    check_nesting(history, config.hierarchy)
    bottom, extended = extend_to_common_end(history[["unique_id", "ds", "y", *keys, *drivers]], config.freq)
    if extended:
        logger.info("%d series stopped early; extended with zeros to the common origin", len(extended))
    _check_bottom_ids(bottom, config.hierarchy)
    Y, structure, tags = aggregate_hierarchy(bottom, config.hierarchy)
    weights = None
    if drivers:
        weights = driver_weights(bottom)
        agg = aggregate_drivers(bottom, structure, drivers, weights)
        Y = Y.merge(agg, on=["unique_id", "ds"], how="left")
        Y[drivers] = Y.groupby("unique_id", sort=False)[drivers].ffill().fillna(0.0)
    logger.info("Hierarchy: %d series on %d levels", len(structure), len(tags))
    return Panel(
        Y, bottom, structure, tags, weights, extended, discontinued(bottom, config.discontinued_after)
    )


def discontinued(history: pd.DataFrame, after: int | None) -> list[str]:
    """Series that have stopped selling: no demand in their last ``after`` periods or more,
    and longer without demand than in any gap between two sales before (so a seasonal item
    out of season or an intermittent one between orders is not taken for discontinued).
    Series that never sold are not counted: they are forecast at zero anyway."""
    if after is None or history.empty:
        return []
    frame = history[["unique_id", "ds", "y"]].sort_values(["unique_id", "ds"])
    uid = frame["unique_id"].to_numpy()
    pos = frame.groupby("unique_id", sort=False).cumcount()
    sold = frame["y"].to_numpy() > 0
    sales = pd.DataFrame({"unique_id": uid[sold], "pos": pos.to_numpy()[sold]})
    if sales.empty:
        return []
    gaps = sales.groupby("unique_id")["pos"].diff().sub(1).groupby(sales["unique_id"]).max().fillna(0)
    length = pos.groupby(uid).max() + 1
    last = sales.groupby("unique_id")["pos"].max()
    trailing = length.reindex(last.index) - 1 - last
    stopped = trailing[(trailing >= after) & (trailing > gaps.reindex(last.index))]
    return sorted(stopped.index)


def _require_columns(history: pd.DataFrame, columns: list[str], setting: str, noun: str, fix: str) -> None:
    missing = [c for c in columns if c not in history.columns]
    if missing:
        raise ConfigError(
            f"{noun} {missing} are not in the data (columns: {list(history.columns)}); "
            f"set {setting} to {fix}.",
            setting=setting,
        )


def _check_bottom_ids(bottom: pd.DataFrame, hierarchy: list[str]) -> None:
    """The bottom series' ids must be their full key path (the aggregates' ids are paths too)."""
    wrong = bottom_path_mismatch(bottom, hierarchy)
    if len(wrong):
        raise DataError(
            f"{len(wrong)} series id(s) are not their key path, such as {wrong[0]!r}; "
            "the series ids do not match the hierarchy's bottom level; build unique_id from the "
            "hierarchy's key columns (validate the data with the same hierarchy)."
        )


def reconciled_backtest(
    chosen: pd.DataFrame, panel: Panel, config: ForecastConfig, methods: list[str] | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """The backtest of the delivered forecasts, base (``base``) and reconciled per window
    with each method (one column per method), made non-negative like the delivered forecast
    (bottom clipped at zero, aggregates re-summed: :func:`nonnegative_coherent`).

    Parameters
    ----------
    chosen : pandas.DataFrame
        Backtest of the chosen forecasts: ``unique_id, cutoff, ds, y, forecast``.
    methods : list of str, optional
        Reconciliation methods; default every method the hierarchy allows.

    Returns
    -------
    (pandas.DataFrame, list of str)
        The frame and its forecast columns (``base`` and the methods). Series without a
        backtest forecast in a window (new items) have their naive forecast there.
    """
    structure, tags, Y = panel.hierarchy, panel.tags, panel.Y
    ids = set(structure.ids)
    allowed = [m for m in METHODS if is_strict(tags) or m not in ("top_down", "middle_out")]
    if methods is None and len(structure) > config.reconcile_sparse_above:
        # each sparse reconciliation is an iterative solve: compare only what is delivered
        methods = list(
            dict.fromkeys(["bottom_up", *([config.reconcile] if config.reconcile != "none" else [])])
        )
        logger.info(
            "%s series (above forecast.reconcile_sparse_above): the backtest scores base, %s only",
            f"{len(structure):,}",
            " and ".join(methods),
        )
    methods = [m for m in (allowed if methods is None else methods) if m in allowed]
    frames = []
    for cutoff in sorted(chosen["cutoff"].unique()):
        window = chosen.loc[chosen["cutoff"] == cutoff, ["unique_id", "cutoff", "ds", "y", "forecast"]]
        missing = ids - set(window["unique_id"])
        if missing:
            # reconciliation needs every series: new items without a backtest forecast get
            # the naive one (last value before the cutoff, zero before their launch)
            window = pd.concat([window, _naive_window(Y, sorted(missing), window, cutoff)], ignore_index=True)
            logger.info(
                "Backtest window %s: %d series without a forecast (new items) get the naive one",
                pd.Timestamp(cutoff).date(),
                len(missing),
            )
        window = window.rename(columns={"forecast": "base"})
        if methods:
            rec = reconcile(
                window.rename(columns={"base": "forecast"}),
                structure,
                tags,
                methods=methods,
                residuals=chosen[chosen["cutoff"] != cutoff],
                history=Y[Y["ds"] <= cutoff][["unique_id", "ds", "y"]],
                middle_level=config.middle_level,
                nonnegative=config.nonnegative,
                sparse_above=config.reconcile_sparse_above,
                say_switch=False,  # the final forecast's reconciliation says it
            )
            rec = rec.rename(columns={f"forecast/{m}": m for m in methods})
            window = window.merge(rec[["unique_id", "ds", *methods]], on=["unique_id", "ds"], how="left")
        frames.append(window)
    merged = pd.concat(frames, ignore_index=True)
    columns = ["base", *methods]
    if config.clip:
        merged[columns] = merged[columns].clip(lower=0.0)
        if methods:
            merged = nonnegative_coherent(merged, structure, methods)
    return merged, columns


def known_demand(backtest: pd.DataFrame, panel: Panel) -> pd.DataFrame:
    """The backtest with each aggregate's actual demand summed over the items known at the
    window's origin (items with history up to the cutoff).

    Items launched after an origin are in no forecast made then (a plan takes them from the
    launch plan), so their demand is left out of every level's actuals in that window, as
    the bottom level's scoring leaves out their rows; otherwise every aggregate shows their
    demand as under-forecast. Flat panels are returned as they are. Returns a new frame.
    """
    structure = panel.hierarchy
    if structure is None or backtest.empty:
        return backtest.copy()
    bottom = panel.bottom[["unique_id", "ds", "y"]]
    first = bottom.groupby("unique_id", sort=False)["ds"].min()
    col = pd.Index(structure.bottom_ids).get_indexer(bottom["unique_id"].astype(str))
    out = backtest.copy()
    row = pd.Index(structure.ids).get_indexer(out["unique_id"].astype(str))
    for cutoff in out["cutoff"].unique():
        mine = (out["cutoff"] == cutoff).to_numpy()
        dates = pd.Index(np.sort(out.loc[mine, "ds"].unique()))
        at = dates.get_indexer(bottom["ds"])
        known = bottom["unique_id"].map(first).to_numpy() <= np.datetime64(pd.Timestamp(cutoff))
        take = (at >= 0) & (col >= 0) & known
        base = np.zeros((len(structure.bottom_ids), len(dates)))
        base[col[take], at[take]] = bottom["y"].to_numpy(dtype=float)[take]
        summed = structure.S @ base
        rows = np.flatnonzero(mine & (row >= 0))
        out.iloc[rows, out.columns.get_loc("y")] = summed[row[rows], dates.get_indexer(out["ds"].iloc[rows])]
    return out


def _naive_window(Y: pd.DataFrame, ids: list[str], window: pd.DataFrame, cutoff) -> pd.DataFrame:
    """Naive backtest rows for ``ids`` on the window's dates."""
    dates = np.sort(window["ds"].unique())
    grid = pd.DataFrame({"unique_id": np.repeat(ids, len(dates)), "ds": np.tile(dates, len(ids))})
    part = Y[Y["unique_id"].isin(ids)]
    last = part[part["ds"] <= cutoff].sort_values("ds").groupby("unique_id")["y"].last()
    grid = grid.merge(part[["unique_id", "ds", "y"]], on=["unique_id", "ds"], how="left")
    return grid.assign(
        y=grid["y"].fillna(0.0),
        forecast=grid["unique_id"].map(last).fillna(0.0).to_numpy(),
        cutoff=cutoff,
    )


def level_accuracy(
    chosen: pd.DataFrame,
    panel: Panel,
    config: ForecastConfig,
    season_length: int,
    methods: list[str] | None = None,
) -> pd.DataFrame:
    """Accuracy per level of the base backtest forecasts and of each reconciliation method
    (:func:`reconciled_backtest`): one row per level and method."""
    merged, columns = reconciled_backtest(chosen, panel, config, methods)
    return score_levels(merged, columns, panel, season_length)


def score_levels(merged: pd.DataFrame, columns: list[str], panel: Panel, season_length: int) -> pd.DataFrame:
    """Accuracy per level of each forecast column of a reconciled backtest."""
    Y, tags = panel.Y, panel.tags
    train = Y[Y["ds"] <= merged["cutoff"].min()]
    # series launched after the first origin have no scale for MASE: scored where they can be
    merged = merged[merged["unique_id"].isin(train["unique_id"].unique())]
    scored = evaluate_backtest(merged, train, columns, season_length=season_length)
    table = summarise_metrics(scored, merged, by=level_of(tags))
    table = table.rename(columns={"group": "level", "model": "method"})
    order = {name: i for i, name in enumerate(tags)}
    table["_o"] = table["level"].map(order)
    out = table.sort_values(["_o", "method"]).drop(columns="_o").reset_index(drop=True)
    return out.replace([np.inf, -np.inf], np.nan)
