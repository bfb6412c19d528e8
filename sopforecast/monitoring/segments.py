"""Segments of the bottom series, so accuracy can be judged per kind of demand.

* ``demand_class``: smooth, erratic, intermittent, lumpy or zero (:func:`classify_demand`);
* ``abc``: A for the series making up the first 80% of revenue, B for the next 15%, C for
  the rest (Pareto, largest first);
* ``xyz``: X for steady demand (coefficient of variation below 0.5), Y for variable (below 1),
  Z for erratic.

Aggregates have no segment: a category mixes A and C items, so only bottom rows carry one.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..data.profile import DEMAND_CLASSES, classify_demand
from ..errors import ConfigError
from .accuracy import accuracy_table

__all__ = [
    "SEGMENT_COLUMNS",
    "SEGMENT_VALUES",
    "ALL",
    "abc",
    "xyz",
    "segment_table",
    "with_segments",
    "segment_accuracy",
]

SEGMENT_COLUMNS = ("demand_class", "abc", "xyz")
SEGMENT_VALUES = {"demand_class": DEMAND_CLASSES, "abc": ("A", "B", "C"), "xyz": ("X", "Y", "Z")}
ALL = "all"  # the segment of every bottom series


def abc(revenue: pd.Series, cuts: tuple[float, float] = (0.8, 0.95)) -> pd.Series:
    """ABC class of every series by its cumulative share of revenue, largest first.

    Parameters
    ----------
    revenue : pandas.Series
        Revenue (or any value) indexed by ``unique_id``; missing or negative counts as 0.
    cuts : (float, float), default (0.8, 0.95)
        Cumulative shares closing classes A and B.

    Returns
    -------
    pandas.Series
        ``'A'``, ``'B'`` or ``'C'`` indexed by ``unique_id`` (the input's order), named ``abc``.
        A series is A while the revenue of the larger series before it is below the first
        cut, so the series crossing a cut still belongs to the class it completes (a single
        series with 90% of revenue is A). Series without revenue are C.
    """
    a, b = _cuts(cuts, "cuts", upper=1.0)
    value = revenue.astype(float).fillna(0.0).clip(lower=0.0)
    total = float(value.sum())
    # ties keep their input order, so the classes do not depend on the sort algorithm
    order = value.sort_values(ascending=False, kind="stable")
    before = (order.cumsum() - order) / total if total > 0 else pd.Series(1.0, index=order.index)
    cls = np.select([(order > 0) & (before < a), (order > 0) & (before < b)], ["A", "B"], default="C")
    out = pd.Series(cls, index=order.index, name="abc").reindex(revenue.index)
    out.index.name = "unique_id"
    return out


def xyz(
    history: pd.DataFrame,
    cuts: tuple[float, float] = (0.5, 1.0),
    months: int = 12,
    *,
    id_col: str = "unique_id",
    time_col: str = "ds",
    target_col: str = "y",
) -> pd.Series:
    """XYZ class of every series by the coefficient of variation of its recent demand.

    Parameters
    ----------
    history : pandas.DataFrame
        Long-format demand history (zeros included).
    cuts : (float, float), default (0.5, 1.0)
        ``X`` below the first, ``Y`` below the second, ``Z`` from there.
    months : int, default 12
        The last periods of each series used (a year: seasonality counts as variability).
    id_col, time_col, target_col : str, default "unique_id", "ds", "y"
        Column names.

    Returns
    -------
    pandas.Series
        ``'X'``, ``'Y'`` or ``'Z'`` indexed by ``unique_id`` (sorted), named ``xyz``. The CV is
        the population standard deviation over the mean; a series without demand is Z.
    """
    a, b = _cuts(cuts, "cuts", upper=np.inf)
    if months < 1:
        raise ConfigError(f"months must be a positive number of periods, got {months}", setting="months")
    frame = history[[id_col, time_col, target_col]].sort_values([id_col, time_col], kind="stable")
    recent = frame.groupby(id_col, sort=False).tail(months)
    grouped = recent[target_col].astype(float).groupby(recent[id_col], sort=True)
    mean, std = grouped.mean(), grouped.std(ddof=0)
    cv = (std / mean.where(mean > 0)).to_numpy()
    cls = np.select([cv < a, cv < b], ["X", "Y"], default="Z")  # NaN (no demand) compares False: Z
    out = pd.Series(cls, index=mean.index, name="xyz")
    out.index.name = "unique_id"
    return out


def segment_table(history_bottom: pd.DataFrame, revenue: pd.Series) -> pd.DataFrame:
    """Demand class, ABC and XYZ of every bottom series.

    Parameters
    ----------
    history_bottom : pandas.DataFrame
        ``unique_id, ds, y`` of the bottom series.
    revenue : pandas.Series
        Revenue by ``unique_id`` (e.g. last year's units x price); series absent from it are C.

    Returns
    -------
    pandas.DataFrame
        ``unique_id, demand_class, abc, xyz``, one row per series of ``history_bottom``.
    """
    classes = classify_demand(history_bottom)[["unique_id", "demand_class"]]
    ids = pd.Index(classes["unique_id"])
    value = revenue.groupby(level=0).sum().reindex(ids, fill_value=0.0)
    out = classes.assign(
        abc=abc(value).reindex(ids).to_numpy(),
        xyz=xyz(history_bottom).reindex(ids).to_numpy(),
    )
    return out.reset_index(drop=True)


def with_segments(scored: pd.DataFrame, segments: pd.DataFrame) -> pd.DataFrame:
    """Put the segment columns of :func:`segment_table` on the bottom rows of ``scored``.

    Parameters
    ----------
    scored : pandas.DataFrame
        The scored frame (see :mod:`sopforecast.monitoring.accuracy`).
    segments : pandas.DataFrame
        ``unique_id`` and any of ``demand_class, abc, xyz``, one row per bottom series.

    Returns
    -------
    pandas.DataFrame
        A copy of ``scored`` with the segment columns (replacing any already there); rows of
        aggregates, whose ids are not in ``segments``, get NaN.
    """
    columns = [c for c in segments.columns if c != "unique_id"]
    table = segments.drop_duplicates("unique_id")
    out = scored.drop(columns=[c for c in columns if c in scored.columns])
    out = out.merge(table, on="unique_id", how="left", validate="many_to_one")
    out.index = scored.index
    return out


def segment_accuracy(
    scored: pd.DataFrame,
    columns: Sequence[str] = SEGMENT_COLUMNS,
    by: Sequence[str] = (),
    lags: Sequence[int] | None = (1, 3, 6),
    scale: pd.Series | None = None,
    interval: int = 80,
) -> pd.DataFrame:
    """:func:`accuracy_table` per segment column, stacked, with a row for all bottom series.

    Parameters
    ----------
    scored : pandas.DataFrame
        The scored frame with segment columns (:func:`with_segments`).
    columns : sequence of str, default ("demand_class", "abc", "xyz")
        Segment columns to score; those absent from ``scored`` are skipped.
    by : sequence of str, default ()
        Extra keys, e.g. ``("cycle",)`` for a trend per segment.
    lags, scale, interval
        As for :func:`accuracy_table`.

    Returns
    -------
    pandas.DataFrame
        The segment columns (one set per row, the others NaN; all NaN on the rows of every
        bottom series, the ``'all'`` segment), the ``by`` columns and the metric columns.
    """
    present = [c for c in columns if c in scored.columns]
    bottom = scored[scored[present].notna().any(axis=1)] if present else scored.iloc[:0]
    tables = [accuracy_table(bottom, by=(*by, c), lags=lags, scale=scale, interval=interval) for c in present]
    tables.append(accuracy_table(bottom, by=tuple(by), lags=lags, scale=scale, interval=interval))
    out = pd.concat([t.astype({c: object for c in present if c in t}) for t in tables], ignore_index=True)
    return out.reindex(columns=[*present, *[c for c in out.columns if c not in present]])


def _cuts(cuts: tuple[float, float], setting: str, upper: float) -> tuple[float, float]:
    """The two cut points, checked to be increasing and in range."""
    try:
        a, b = (float(c) for c in cuts)
    except (TypeError, ValueError):
        raise ConfigError(f"{setting} must be two numbers, got {cuts!r}", setting=setting) from None
    if not 0 < a < b <= upper:
        raise ConfigError(
            f"{setting} must be increasing and between 0 and {upper:g}, got {cuts!r}", setting=setting
        )
    return a, b
