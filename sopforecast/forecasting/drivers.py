"""Drivers (price, promotion flags, any numeric column): aggregation and future values.

Aggregate series of a hierarchy get aggregated drivers: every bottom series weighs in with
its mean demand over the last 12 periods of history (equal weights where a whole branch
sold nothing), so an aggregate's ``promo`` is the demand-weighted share of its children on
promotion and its ``price`` the volume-weighted mean price. The same weights serve history
and future, so a promotion calendar means the same thing before and after the origin.

Future values come from a promotion calendar / price plan (``unique_id`` or the key
columns, ``ds``, the drivers). Missing series, months or columns are an error naming what
is missing, unless ``future_fill`` says how to fill: ``carry`` repeats each driver's last
known value, ``zero`` sets flags (0/1 drivers) to 0 and carries the others.

The *baseline* of a future is the same calendar with every flag off and every other driver
at its last value before the origin: what demand would be without the plan's promotions
and price moves. The forecaster turns the gap between the two into a driver effect.

A *flag* is a driver between 0 and 1 that takes both values: 0/1 at the bottom (on
promotion or not), the share of demand on promotion at an aggregate. Each flag's value in
the period before is a feature too (``promo_prev``: the month after a promotion, when
customers who stocked up buy less); :func:`previous_flags` makes it. The *regular* history
(:func:`regular_history`) is the history with every flag off and the other drivers at their
value in the last period without a flag on: what the driver model is asked for to take the
promotions out of the history (promotion cleansing).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..data.hierarchy import PATH_SEP, Hierarchy
from ..errors import ConfigError, DataError, format_examples

__all__ = [
    "driver_weights",
    "aggregate_drivers",
    "flag_drivers",
    "future_frame",
    "baseline_future",
    "series_ids",
    "previous_flags",
    "previous_name",
    "regular_history",
    "FILLS",
    "EFFECT_RANGE",
]

FILLS = ("error", "carry", "zero")
EFFECT_RANGE = (0.2, 5.0)  # a driver moves demand by at most 5x either way
WEIGHT_PERIODS = 12


_ROUNDING = 1e-9


def flag_drivers(history: pd.DataFrame, drivers: list[str]) -> list[str]:
    """Promotion flags among the drivers: values between 0 and 1, both 0 and 1 among them, or
    only 0 and 1 (a bottom series' 0/1 flag, an aggregate's share of demand on promotion)."""
    flags = []
    for col in drivers:
        values = pd.to_numeric(history[col], errors="coerce").dropna().unique()
        # an aggregate's share is a sum of fractions: 1 can come out a rounding error above 1
        if not len(values) or values.min() < -_ROUNDING or values.max() > 1.0 + _ROUNDING:
            continue
        zero, one = np.isclose(values, 0.0, atol=_ROUNDING), np.isclose(values, 1.0, atol=_ROUNDING)
        if (zero | one).all() or (zero.any() and one.any()):
            flags.append(col)
    return flags


def previous_name(flag: str) -> str:
    """Column of a flag's value in the period before: ``promo_prev``."""
    return f"{flag}_prev"


def previous_flags(frame: pd.DataFrame, flags: list[str], last: pd.DataFrame | None = None) -> pd.DataFrame:
    """``frame`` (``unique_id, ds`` and the flags, any order) with each flag's value in the
    period before (:func:`previous_name`); a series' first period takes its value in ``last``
    (index ``unique_id``: the flags in the period before ``frame`` starts), else 0."""
    out = frame.copy()
    if not flags:
        return out
    order = out.sort_values(["unique_id", "ds"], kind="stable")
    for flag in flags:
        prev = order.groupby("unique_id", sort=False)[flag].shift(1)
        if last is not None and flag in last.columns:
            prev = prev.fillna(order["unique_id"].map(last[flag]))
        out[previous_name(flag)] = prev.fillna(0.0).reindex(out.index).to_numpy(dtype=float)
    return out


def regular_history(history: pd.DataFrame, drivers: list[str], flags: list[str]) -> pd.DataFrame:
    """The history's drivers without its promotions: flags (and their previous values) off,
    every other driver at its value in the series' last period without a flag on (the
    regular price rather than the promotion's discount). Same rows and order."""
    out = history.copy()
    if not flags:
        return out
    on = (out[flags].to_numpy(dtype=float) > 0).any(axis=1)
    order = out.sort_values(["unique_id", "ds"], kind="stable").index
    for col in drivers:
        if col in flags:
            out[col] = 0.0
            continue
        regular = out[col].where(~on).loc[order]
        ids = out.loc[order, "unique_id"]
        filled = regular.groupby(ids, sort=False).ffill().groupby(ids, sort=False).bfill()
        out[col] = filled.reindex(out.index).fillna(out[col]).to_numpy()
    for flag in flags:
        if previous_name(flag) in out.columns:
            out[previous_name(flag)] = 0.0
    return out


def driver_weights(bottom: pd.DataFrame) -> pd.Series:
    """Each bottom series' mean demand over its last 12 periods (index unique_id)."""
    recent = bottom.sort_values("ds").groupby("unique_id", sort=True).tail(WEIGHT_PERIODS)
    return recent.groupby("unique_id", sort=True)["y"].mean().clip(lower=0.0)


def aggregate_drivers(
    bottom: pd.DataFrame, structure: Hierarchy, drivers: list[str], weights: pd.Series
) -> pd.DataFrame:
    """Drivers of every series of ``structure`` (bottom and aggregates) on the dates of ``bottom``.

    Parameters
    ----------
    bottom : pandas.DataFrame
        ``unique_id, ds`` and the driver columns of the bottom series.
    structure : Hierarchy
        The hierarchy (its sparse summing matrix ``S``).
    drivers : list of str
        Driver columns.
    weights : pandas.Series
        Weight of each bottom series (:func:`driver_weights`).

    Returns
    -------
    pandas.DataFrame
        ``unique_id, ds, <drivers>`` for every series of ``structure``.
    """
    S = structure.S.tocsr().astype(float)
    w = weights.reindex(structure.bottom_ids).fillna(0.0).to_numpy()
    weighted = S.multiply(w[None, :]).tocsr()
    totals = np.asarray(weighted.sum(axis=1)).ravel()
    # a branch that sold nothing recently: its children count equally
    counts = np.asarray(S.sum(axis=1)).ravel()
    scale = np.where(totals > 0, 1.0 / np.where(totals > 0, totals, 1.0), 0.0)
    even = np.where(totals > 0, 0.0, 1.0 / np.maximum(counts, 1.0))
    wmat = sp.diags(scale) @ weighted + sp.diags(even) @ S
    dates = np.sort(bottom["ds"].unique())
    out = pd.DataFrame(
        {
            "unique_id": np.repeat(structure.ids, len(dates)),
            "ds": np.tile(dates, len(structure)),
        }
    )
    for col in drivers:
        wide = bottom.pivot(index="ds", columns="unique_id", values=col).reindex(
            index=dates, columns=structure.bottom_ids
        )
        values = wide.ffill().bfill().to_numpy()
        out[col] = np.asarray(wmat @ values.T).reshape(-1)
    return out


def series_ids(future: pd.DataFrame, keys: list[str], where: str = "future drivers") -> pd.Series:
    """Series ids (key path joined with ``/``) of a frame that names series by key columns."""
    missing = [k for k in keys if k not in future.columns]
    if missing:
        raise DataError(
            f"{where}: needs unique_id or the key columns {keys}; missing {missing} "
            f"(columns: {list(future.columns)})."
        )
    return future[keys].astype(str).agg(PATH_SEP.join, axis=1)


def future_frame(
    future: pd.DataFrame | None,
    history: pd.DataFrame,
    drivers: list[str],
    h: int,
    freq: str,
    *,
    keys: list[str] | None = None,
    fill: str = "error",
    where: str = "future drivers",
) -> pd.DataFrame:
    """The drivers of every series for the ``h`` periods after its history, checked.

    Parameters
    ----------
    future : pandas.DataFrame or None
        Promotion calendar / price plan: ``unique_id`` (or the ``keys``), ``ds``, drivers.
    history : pandas.DataFrame
        ``unique_id, ds`` and the drivers of the series to forecast.
    drivers : list of str
        Driver columns.
    h : int
        Periods ahead.
    freq : str
        pandas frequency.
    keys : list of str, optional
        Key columns that may name the series instead of ``unique_id``.
    fill : {"error", "carry", "zero"}, default "error"
        How to fill missing series and periods (setting ``future_fill``).

    Returns
    -------
    pandas.DataFrame
        ``unique_id, ds, <drivers>``: one row per series and future period.
    """
    if fill not in FILLS:
        raise ConfigError(f"future_fill {fill!r} is not one of {', '.join(FILLS)}.", setting="future_fill")
    last = history.groupby("unique_id", sort=True)["ds"].max()
    offset = pd.tseries.frequencies.to_offset(freq)
    # series share a few last dates: each one's future dates are computed once
    ends, which = np.unique(last.to_numpy(), return_inverse=True)
    ahead = np.stack(
        [pd.date_range(pd.Timestamp(d) + offset, periods=h, freq=offset).to_numpy() for d in ends]
    )
    grid = pd.DataFrame({"unique_id": np.repeat(last.index.to_numpy(), h), "ds": ahead[which].reshape(-1)})
    if future is None:
        if fill == "error":
            raise DataError(
                f"the drivers {drivers} need their future values for the {h} forecast periods: "
                f"give a promotion calendar / price plan (unique_id or key columns, ds, "
                f"{', '.join(drivers)}), or set future_fill to carry or zero.",
                setting="future",
            )
        plan = grid.assign(**{d: np.nan for d in drivers})
    else:
        plan = future.copy()
        if "unique_id" not in plan.columns:
            plan["unique_id"] = series_ids(plan, list(keys or []), where)
        else:  # ids are text, as in the history (a file of numeric ids reads 101 as a number)
            plan["unique_id"] = plan["unique_id"].astype(str)
        absent = [c for c in ["ds", *drivers] if c not in plan.columns]
        if absent:
            raise DataError(
                f"{where}: column(s) {absent} missing (columns: {list(future.columns)}); "
                f"the file needs unique_id (or the key columns), ds and {', '.join(drivers)}.",
                setting="future",
            )
        plan["ds"] = pd.to_datetime(plan["ds"], errors="coerce")
        if plan["ds"].isna().any():
            raise DataError(f"{where}: {int(plan['ds'].isna().sum())} row(s) have no readable date in ds.")
        for col in drivers:
            plan[col] = pd.to_numeric(plan[col], errors="coerce")
        bad = ~np.isfinite(plan[drivers].to_numpy(dtype=float)) & plan[drivers].notna().to_numpy()
        if bad.any():
            raise DataError(
                f"{where}: infinite driver values in {format_examples(plan.index[bad.any(axis=1)])}."
            )
        plan = plan[["unique_id", "ds", *drivers]].drop_duplicates(["unique_id", "ds"], keep="last")
        plan = grid.merge(plan, on=["unique_id", "ds"], how="left")
    holes = plan[drivers].isna()
    if holes.to_numpy().any():
        if fill == "error":
            rows = plan.loc[holes.any(axis=1), ["unique_id", "ds"]]
            ids = rows["unique_id"].unique()
            months = sorted(rows["ds"].dt.strftime("%Y-%m-%d").unique())
            cols = [c for c in drivers if holes[c].any()]
            raise DataError(
                f"{where}: {len(rows)} series-period(s) lack values of {cols}: series "
                f"{format_examples(ids)}, periods {format_examples(months)}. Add them to the file "
                "or set future_fill to carry (repeat the last value) or zero (flags off).",
                setting="future",
            )
        plan = _fill(plan, history, drivers, fill)
    return plan.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)


def _fill(plan: pd.DataFrame, history: pd.DataFrame, drivers: list[str], fill: str) -> pd.DataFrame:
    flags = set(flag_drivers(history, drivers)) if fill == "zero" else set()
    last = history.sort_values("ds").groupby("unique_id", sort=True)[drivers].last()
    plan = plan.sort_values(["unique_id", "ds"], kind="stable")
    for col in drivers:
        if col in flags:
            plan[col] = plan[col].fillna(0.0)
            continue
        carried = plan.groupby("unique_id", sort=False)[col].ffill()
        plan[col] = carried.fillna(plan["unique_id"].map(last[col])).fillna(0.0)
    return plan


def baseline_future(plan: pd.DataFrame, history: pd.DataFrame, drivers: list[str]) -> pd.DataFrame:
    """The plan without its moves: flags off, other drivers at their last value in history."""
    flags = set(flag_drivers(history, drivers))
    last = history.sort_values("ds").groupby("unique_id", sort=True)[drivers].last()
    base = plan.copy()
    for col in drivers:
        base[col] = 0.0 if col in flags else base["unique_id"].map(last[col]).fillna(base[col]).to_numpy()
    return base
