"""Safety stock from the delivered forecast's own backtest errors over the lead time.

Two steps, both pure:

1. :func:`lead_time_errors`: per series and backtest window, the cumulative error
   ``sum(y - forecast)`` over the first ``L = lead_time + review`` months after the cutoff.
   An order placed at a monthly review arrives ``lead_time`` months later, and the next
   chance to correct is the next review: the stock on hand must cover the demand of the
   lead time *and* of the review month before the following order lands (the periodic-review
   "protection interval"). A lead time of 0 still leaves one month exposed.
2. :func:`safety_stock`: the service-level quantile of those errors, not a normal
   approximation. A series has only a few windows, so, as the conformal intervals do
   (:mod:`sopforecast.forecasting.intervals`), errors are divided by each series' scale,
   pooled (per demand class, level or any pool the caller names), the quantile taken on the
   pool and multiplied back by the series' own scale:

   ``safety_stock = max(0, q_pool(service_level) * s_series)``

The scale ``s`` is the intervals' one (``ErrorProfile.scale``): the series' mean absolute
monthly backtest error of the delivered forecast. It is the only one of the package's
scales that carries the forecast's own error: a mean-demand scale would give a smooth and a
noisy series of the same mean the same stock from a shared pool, and the seasonal-naive MAE
(the MASE scale) measures the history's month-to-month change, large for a seasonal series
the forecast gets right. As in the intervals, a window's error is divided by the scale of
the series' *other* windows (cross-fitted), so the pooled quantile carries the error of
estimating ``s``. A caller may pass another scale (``scale=``), e.g. the MASE scale.

The quantile position is the intervals' finite-sample rule for ``m`` series-windows,
``(m + 1) * level / m``, interpolated. A pool too small for it (``m`` at most 19 at 95%)
borrows from every series with the same ``L`` (all pools together); if that is still too
small the largest error is taken, and ``method`` says which applied.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from statistics import NormalDist

import numpy as np
import pandas as pd

from ..errors import DataError, format_examples

__all__ = ["REVIEW_MONTHS", "lead_time_errors", "safety_stock"]

logger = logging.getLogger(__name__)

REVIEW_MONTHS = 1  # monthly review: one month more than the lead time is exposed
ALL = "all"


def _require(frame: pd.DataFrame, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{what} lacks the columns {missing}; found {list(frame.columns)}. "
            f"Expected {columns} (one row per series and month)."
        )


def _month_index(dates: pd.Series) -> np.ndarray:
    d = pd.to_datetime(dates)
    return (d.dt.year * 12 + d.dt.month).to_numpy()


def _per_series(value, ids: pd.Series, name: str) -> pd.Series:
    """An int, a mapping or a Series by id, as one value per row of ``ids``."""
    if isinstance(value, (int, np.integer)):
        return pd.Series(int(value), index=ids.index)
    if isinstance(value, (pd.Series, Mapping)):
        return ids.map(value)
    raise DataError(f"{name} must be a whole number of months or a Series by series id, got {type(value)}")


def lead_time_errors(
    backtest: pd.DataFrame,
    *,
    lead_time: int | pd.Series | Mapping[str, int],
    review: int = REVIEW_MONTHS,
    column: str = "forecast",
    id_col: str = "unique_id",
    time_col: str = "ds",
    target_col: str = "y",
    cutoff_col: str = "cutoff",
) -> pd.DataFrame:
    """Cumulative forecast error over the lead time, per series and backtest window.

    Parameters
    ----------
    backtest : pandas.DataFrame
        Backtest of the delivered forecast, long format: ``unique_id, cutoff, ds, y`` and the
        forecast ``column``, one row per series, window and month (the frame the intervals
        are calibrated from: ``Forecaster.backtest_.chosen_cv``, reconciled and clipped at
        zero as delivered). Rows without an actual or a forecast are left out.
    lead_time : int, pandas.Series or mapping
        Whole months from order to receipt, one for all or per series id. Series missing
        from a mapping are left out.
    review : int, default 1
        Months between reviews: ``L = lead_time + review`` months are summed.
    column : str, default "forecast"
        The forecast column.
    id_col, time_col, target_col, cutoff_col : str, default "unique_id", "ds", "y", "cutoff"
        Column names.

    Returns
    -------
    pandas.DataFrame
        ``unique_id, cutoff, months, error, y, forecast, scale, scale_other, sigma``: ``error``
        is ``sum(y - forecast)`` over the ``months`` (``L``) first months after the cutoff;
        windows shorter than ``L`` are dropped. Per series: ``scale`` its mean absolute
        monthly error over every backtest row (the intervals' scale), ``scale_other`` the same
        over its other windows (the window's own with a single window), ``sigma`` its root
        mean square monthly error (the normal approximation's sigma).
    """
    _require(backtest, [id_col, cutoff_col, time_col, target_col, column], "The backtest")
    frame = backtest[[id_col, cutoff_col, time_col, target_col, column]].dropna(subset=[target_col, column])
    frame = frame.rename(
        columns={
            id_col: "unique_id",
            cutoff_col: "cutoff",
            time_col: "ds",
            target_col: "y",
            column: "forecast",
        }
    )
    months = _per_series(lead_time, frame["unique_id"], "lead_time") + review
    unknown = frame.loc[months.isna(), "unique_id"].unique()
    if len(unknown):
        logger.info(
            "%d series have no lead time and are left out: %s", len(unknown), format_examples(unknown)
        )
    e = frame["y"] - frame["forecast"]
    frame = frame.assign(
        months=months,
        e=e,
        a=e.abs(),
        e2=e**2,
        step=_month_index(frame["ds"]) - _month_index(frame["cutoff"]),
    )
    per_series = frame.groupby("unique_id")
    scale, sigma = per_series["a"].mean(), np.sqrt(per_series["e2"].mean())
    a_sum, n = per_series["a"].sum(), per_series["a"].size()
    within = frame[frame["months"].notna() & (frame["step"] >= 1) & (frame["step"] <= frame["months"])]
    windows = within.groupby(["unique_id", "cutoff"], sort=True).agg(
        months=("months", "first"), steps=("step", "nunique"), error=("e", "sum"), y=("y", "sum"),
        forecast=("forecast", "sum"),
    )  # fmt: skip
    rows = frame.groupby(["unique_id", "cutoff"]).agg(a=("a", "sum"), n=("a", "size"))
    windows = windows.join(rows).reset_index()
    short = windows["steps"] < windows["months"]
    if short.any():
        lost = sorted(set(windows.loc[short, "unique_id"]) - set(windows.loc[~short, "unique_id"]))
        logger.info(
            "%d backtest windows are shorter than their series' lead time + review and are left out; "
            "%d series keep none: %s",
            int(short.sum()),
            len(lost),
            format_examples(lost),
        )
    windows = windows[~short]
    ids = windows["unique_id"]
    rest_n = ids.map(n) - windows["n"]
    other = (ids.map(a_sum) - windows["a"]) / rest_n.where(rest_n > 0)
    return pd.DataFrame(
        {
            "unique_id": ids,
            "cutoff": windows["cutoff"],
            "months": windows["months"].astype(int),
            "error": windows["error"],
            "y": windows["y"],
            "forecast": windows["forecast"],
            "scale": ids.map(scale),
            "scale_other": other.fillna(ids.map(scale)),
            "sigma": ids.map(sigma),
        }
    ).reset_index(drop=True)


def _pools(pool_by, inventory: pd.DataFrame) -> pd.Series:
    """Pool of each inventory row: one pool, a column of ``inventory``, a Series by key, or a
    class frame (``unique_id`` and ``demand_class`` or ``level``)."""
    keys = inventory["key"]
    if pool_by is None:
        return pd.Series(ALL, index=inventory.index)
    if isinstance(pool_by, str):
        _require(inventory, [pool_by], "The inventory")
        return inventory[pool_by].astype(str)
    if isinstance(pool_by, pd.DataFrame):
        column = next((c for c in ("demand_class", "level", "pool") if c in pool_by.columns), None)
        if "unique_id" not in pool_by.columns or column is None:
            raise DataError(
                f"pool_by frame has the columns {list(pool_by.columns)}; expected unique_id and one "
                "of demand_class, level or pool (the output of classify_demand, for instance)."
            )
        pool_by = pool_by.set_index("unique_id")[column]
    return keys.map(pool_by).astype(object).where(lambda s: s.notna(), ALL).astype(str)


def _position(m: int, level: float) -> float | None:
    """The intervals' finite-sample quantile position for ``m`` blocks, None past 1."""
    if m < 1:
        return None
    position = (m + 1) * level / m
    return position if position <= 1 else None


def _quantiles(scores: pd.DataFrame, wanted: pd.DataFrame) -> pd.DataFrame:
    """Scaled quantile and its method for each ``(pool, months, service_level)`` wanted."""
    rows = []
    for (pool, months, level), _ in wanted.groupby(["pool", "months", "service_level"], sort=False):
        own = scores.loc[(scores["pool"] == pool) & (scores["months"] == months), "u"].to_numpy()
        every = scores.loc[scores["months"] == months, "u"].to_numpy()
        usable = [
            (v, name, _position(len(v), level))
            for v, name in ((own, "pool quantile"), (every, "all-series quantile"))
            if _position(len(v), level) is not None
        ]
        if usable:
            values, method, position = usable[0]
            q = float(np.quantile(values, position))
        else:
            values, method = (own if len(own) else every), "largest error"
            q = float(values.max()) if len(values) else np.nan
        rows.append(
            {
                "pool": pool,
                "months": months,
                "service_level": level,
                "q": q,
                "method": method,
                "m": len(values),
            }
        )
    return pd.DataFrame(rows, columns=["pool", "months", "service_level", "q", "method", "m"])


def _check_inventory(inventory: pd.DataFrame) -> None:
    _require(inventory, ["key", "lead_time", "service_level"], "The inventory")
    level = pd.to_numeric(inventory["service_level"], errors="coerce")
    lead = pd.to_numeric(inventory["lead_time"], errors="coerce")
    bad = ~level.between(0, 1, inclusive="neither") | ~(lead >= 0) | (lead % 1 != 0)
    twice = inventory["key"].astype(str).duplicated(keep=False)
    if twice.any():
        raise DataError(
            f"{int(twice.sum())} inventory rows repeat a key: "
            f"{format_examples(inventory.loc[twice, 'key'])}; give each key (series id) one row."
        )
    if bad.any():
        raise DataError(
            f"{int(bad.sum())} inventory rows have a service level outside (0, 1) or a lead time that is "
            f"not a whole number of months >= 0: {format_examples(inventory.loc[bad, 'key'])}. "
            "Write service levels as fractions (0.95) and lead times in months."
        )


def safety_stock(
    errors: pd.DataFrame,
    inventory: pd.DataFrame,
    *,
    scale: pd.Series | None = None,
    pool_by: str | pd.Series | pd.DataFrame | None = None,
    review: int = REVIEW_MONTHS,
) -> pd.DataFrame:
    """Safety stock per inventory key: the service-level quantile of its lead-time errors.

    Parameters
    ----------
    errors : pandas.DataFrame
        Output of :func:`lead_time_errors` for the inventory's lead times.
    inventory : pandas.DataFrame
        ``key`` (a series id), ``lead_time`` (months), ``service_level`` (0.95), and the pool
        column if ``pool_by`` names one.
    scale : pandas.Series, optional
        Scale of each series id; default ``errors``' own (the intervals' scale, cross-fitted
        between windows). With a given scale, no cross-fitting.
    pool_by : str, pandas.Series or pandas.DataFrame, optional
        Pool whose errors each key shares: a column of ``inventory``, a Series by key, or a
        class frame (``unique_id, demand_class``, e.g. from ``classify_demand``). Default:
        one pool. Keys not found are pooled as ``"all"``.
    review : int, default 1
        Review months (for keys without errors, whose ``L`` is ``lead_time + review``).

    Returns
    -------
    pandas.DataFrame
        ``key, lead_time, service_level, safety_stock, method, sigma_normal,
        safety_stock_normal`` and ``pool, months, scale, quantile, windows, pool_size``.
        ``safety_stock`` is never negative and NaN for keys without backtest errors (method
        ``no backtest``); ``safety_stock_normal`` is ``z(service_level) * sigma * sqrt(L)``.
    """
    _check_inventory(inventory)
    _require(
        errors, ["unique_id", "months", "error", "scale", "scale_other", "sigma"], "The lead-time errors"
    )
    inv = inventory.assign(key=inventory["key"].astype(str), pool=_pools(pool_by, inventory))
    per_series = errors.groupby("unique_id").agg(
        months=("months", "first"),
        scale=("scale", "first"),
        sigma=("sigma", "first"),
        windows=("error", "size"),
    )
    if scale is not None:
        per_series["scale"] = per_series.index.map(scale)
    errs = errors.merge(inv[["key", "pool"]], left_on="unique_id", right_on="key", how="inner")
    spread = errs["scale_other"] if scale is None else errs["unique_id"].map(scale)
    errs = errs.assign(u=errs["error"] / spread.where(spread > 0))
    scores = errs.dropna(subset=["u"])
    out = inv[["key", "lead_time", "service_level", "pool"]].join(per_series, on="key")
    out["months"] = out["months"].fillna(out["lead_time"].astype(int) + review).astype(int)
    table = _quantiles(scores, out[out["windows"].notna()])
    out = out.merge(table, on=["pool", "months", "service_level"], how="left")
    stock = (out["q"] * out["scale"]).clip(lower=0.0)
    no_backtest = out["windows"].isna()
    out["method"] = out["method"].where(~no_backtest, "no backtest")
    if no_backtest.any():
        logger.warning(
            "%d inventory keys have no backtest errors at their lead time: no safety stock from errors: %s",
            int(no_backtest.sum()),
            format_examples(out.loc[no_backtest, "key"]),
        )
    z = out["service_level"].map(lambda p: NormalDist().inv_cdf(float(p)))
    normal = (z * out["sigma"] * np.sqrt(out["months"])).clip(lower=0.0)
    return pd.DataFrame(
        {
            "key": out["key"],
            "lead_time": out["lead_time"],
            "service_level": out["service_level"],
            "safety_stock": stock.where(~no_backtest),
            "method": out["method"],
            "sigma_normal": out["sigma"],
            "safety_stock_normal": normal,
            "pool": out["pool"],
            "months": out["months"],
            "scale": out["scale"],
            "quantile": out["q"],
            "windows": out["windows"].fillna(0).astype(int),
            "pool_size": out["m"].fillna(0).astype(int),
        }
    )
