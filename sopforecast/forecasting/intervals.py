"""Prediction intervals calibrated per hierarchy level from the backtest of the delivered
forecast (reconciled and made non-negative, as delivered).

A series' interval half-width at horizon step ``h`` is ``q[level] * s[series] * g[level](h)``:

* ``s`` is the series' own error scale: its mean absolute backtest error. A smooth total
  and a noisy SKU get widths of their own instead of one pooled, scaled width.
* ``g`` is the level's growth of error with the horizon: the mean of ``|e| / s`` per step
  over the level's series, made non-decreasing (isotonic) and averaging 1.
* ``q`` is the level's conformal quantile of ``|e| / (s * g)``, cross-fitted between
  backtest windows: the scale applied to a window's errors is estimated from the *other*
  windows, so ``q`` carries the error of estimating ``s`` and the change between periods,
  as the future will. With a single window ``q`` is the in-sample quantile. The errors of
  one series in one window move together, so the conformal finite-sample correction
  counts series-windows, not single errors: a level of 4 series and 2 windows takes the
  90% quantile of its scores for an 80% interval (``9 * 0.8 / 8``), interpolated, so that
  its expected coverage is the nominal one rather than at least the nominal one.
  A level with too few series-windows for that (``(m + 1) * level / m >= 1``: 4 or fewer
  for 80%, 19 or fewer for 95%; the Total has one series) would get its largest score,
  the single worst error of its backtest rather than a quantile. Its position is found by
  leaving series-windows out instead: the lowest position at or above the nominal level
  whose quantile of the other series-windows covers the left-out ones' errors at the
  nominal rate on average (:func:`_held_out_quantile`).

A level resting on few series-windows (the Total has one series) borrows strength from
all levels pooled: its ``g`` and ``q`` are weighted averages of its own and the pool's,
its own weighing ``n / (n + 10)`` for ``n`` series-windows.

Series without backtest errors (new items) get their level's median ratio of ``s`` to
mean absolute demand, times their own mean absolute demand. Lower bounds stop at zero, so
every interval contains its point forecast.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["ErrorProfile", "error_profile", "interval_bounds"]

ALL = "all"
PRIOR_PAIRS = 10  # series-windows of errors a level needs to weigh as much as the pool
HELD_OUT_FOLDS = 10  # folds of series-windows for a small level's held-out quantile


@dataclass
class ErrorProfile:
    """What intervals are made of: per-series scales, per-level growth and quantiles."""

    scale: pd.Series  # unique_id -> mean absolute backtest error
    growth: pd.DataFrame  # level x step -> relative error at that step (mean 1)
    quantile: pd.DataFrame  # level x interval level (percent) -> multiplier
    demand_ratio: pd.Series  # level -> median (scale / mean |y|), for series without errors
    windows: int


def _isotonic(values: np.ndarray) -> np.ndarray:
    """Non-decreasing least-squares fit (pool adjacent violators), NaNs carried over."""
    out = np.asarray(values, dtype=float).copy()
    ok = np.isfinite(out)
    y = out[ok]
    blocks: list[list[float]] = []  # [mean, weight]
    for v in y:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2 = blocks.pop()
            m1, w1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2])
    fitted = np.concatenate([np.full(int(w), m) for m, w in blocks]) if blocks else y
    out[ok] = fitted
    return out


def _shrink(own: pd.DataFrame, pooled: pd.Series, pairs: pd.Series) -> pd.DataFrame:
    """Each level's estimate pulled towards the pooled one by how little it rests on: a
    level with ``PRIOR_PAIRS`` series-windows of errors gets half its own, half the pool's."""
    weight = (pairs / (pairs + PRIOR_PAIRS)).reindex(own.index).fillna(0.0).to_numpy()[:, None]
    return own.fillna(pooled) * weight + pooled.to_numpy()[None, :] * (1 - weight)


def _growth(frame: pd.DataFrame, steps: int, pairs: pd.Series) -> pd.DataFrame:
    """Per level, relative error by horizon step: isotonic in the step, mean 1."""
    mean = frame.groupby(["level", "step"])["z"].mean().unstack("step").reindex(columns=range(1, steps + 1))
    pooled = frame.groupby("step")["z"].mean().reindex(range(1, steps + 1))
    mean = _shrink(mean, pooled.ffill().bfill(), pairs)
    rows = {}
    for level, row in mean.iterrows():
        fitted = pd.Series(_isotonic(row.to_numpy()), index=row.index).ffill().bfill()
        rows[level] = fitted / fitted.mean() if fitted.mean() > 0 else fitted * 0 + 1.0
    return pd.DataFrame(rows).T


def _conformal_quantile(u: pd.Series, level: float, m: int) -> float:
    """Split-conformal quantile of the scores ``u`` at ``level``.

    The scores of one series in one backtest window move together (a forecast that starts
    high stays high), so the exchangeable units are the ``m`` series-windows, not the
    single scores: the quantile is taken at ``(m + 1) * level / m`` for ``m`` blocks,
    interpolated between the sorted scores. That is the position whose expected coverage of
    a new block is about ``level`` (the k-th smallest of m scores covers a new one with
    probability k / (m + 1)). Rounding the position up to a whole score, as the
    split-conformal guarantee does, would promise *at least* ``level``: with 8 blocks an
    80% interval would take the largest score and cover 8/9 = 89% on average. Positions at
    or past 1 are not asked here (:func:`_level_quantile` holds those levels out instead).
    """
    values = u.dropna().to_numpy()
    if len(values) == 0:
        return np.nan
    return float(np.quantile(values, (m + 1) * level / m))


def _held_out_quantile(u: pd.Series, blocks: np.ndarray, level: float, folds: int = HELD_OUT_FOLDS) -> float:
    """Quantile of ``u`` at the lowest position ``p >= level`` whose out-of-fold coverage
    averages ``level``.

    The series-windows (``blocks``: one label per score) are split into ``min(m, folds)``
    folds; each fold's scores are compared with the other folds' quantile at ``p``. Where
    a series-window's errors move together, away from the others' (one bad window), the
    left-out window falls outside more often and ``p`` rises, up to the largest score;
    where the windows scatter alike, ``p`` stays near ``level``. One series-window: the
    plain quantile at ``level``.
    """
    ok = u.notna().to_numpy()
    values, labels = u.to_numpy()[ok], np.asarray(blocks)[ok]
    if len(values) == 0:
        return np.nan
    _, block = np.unique(labels, return_inverse=True)
    m = int(block.max()) + 1
    if m < 2:
        return float(np.quantile(values, level))
    k = min(m, folds)
    fold = (np.random.default_rng(0).permutation(m) % k)[block]
    positions = np.linspace(level, 1.0, 101)
    covered = np.zeros(len(positions))
    for j in range(k):
        q = np.quantile(values[fold != j], positions)
        left_out = np.sort(values[fold == j])
        covered += np.searchsorted(left_out, q, side="right") / len(left_out)
    reached = np.flatnonzero(covered / k >= level - 1e-12)
    return float(np.quantile(values, positions[reached[0]] if len(reached) else 1.0))


def _level_quantile(u: pd.Series, blocks: np.ndarray, level: float, m: int) -> float:
    """A level's quantile of its scores: conformal over its ``m`` series-windows, or held
    out by folds of them where the conformal position would be its largest score."""
    if (m + 1) * level >= m:
        return _held_out_quantile(u, blocks, level)
    return _conformal_quantile(u, level, m)


def error_profile(
    backtest: pd.DataFrame,
    column: str,
    levels: pd.Series | None,
    interval_levels: list[int],
) -> ErrorProfile:
    """Calibrate intervals from a backtest.

    Parameters
    ----------
    backtest : pandas.DataFrame
        ``unique_id, cutoff, ds, y`` and the delivered forecast ``column``, one row per
        series, window and period.
    levels : pandas.Series, optional
        Hierarchy level of each series id; ``None`` for flat data (one level).
    interval_levels : list of int
        Interval levels in percent.
    """
    frame = backtest[["unique_id", "cutoff", "ds", "y", column]].dropna(subset=["y", column])
    frame = frame.sort_values(["unique_id", "cutoff", "ds"])
    frame = frame.assign(
        step=frame.groupby(["unique_id", "cutoff"], sort=False).cumcount() + 1,
        a=(frame["y"] - frame[column]).abs(),
        level=frame["unique_id"].map(levels) if levels is not None else ALL,
    )
    steps = int(frame["step"].max())
    scale = frame.groupby("unique_id")["a"].mean()
    scale = scale[scale > 0]
    frame = frame[frame["unique_id"].isin(scale.index)]
    frame = frame.assign(z=frame["a"] / frame["unique_id"].map(scale))
    block = frame.groupby(["unique_id", "cutoff"], sort=False).ngroup()  # series-window of each error
    pairs = block.groupby(frame["level"]).nunique()
    growth = _growth(frame, steps, pairs)
    g = growth.stack().rename("g")
    frame = frame.join(g, on=["level", "step"])
    # a series' backtest windows, counted per series: series that end at different dates
    # (competition data, items delisted) have cutoffs of their own
    window = frame.groupby("unique_id")["cutoff"].rank(method="dense").astype(int)
    windows = int(window.max()) if len(window) else 0
    if windows > 1:
        # each window's errors over the scale the series' other windows give (a series with
        # one window, a young one, has no such score and is left out)
        parts = []
        for w in range(1, windows + 1):
            other = frame[window != w].groupby("unique_id")["a"].mean()
            part = frame[window == w]
            s = part["unique_id"].map(other[other > 0])
            parts.append(part["a"] / (s * part["g"]))
        u = pd.concat(parts).reindex(frame.index)
    else:
        u = frame["z"] / frame["g"]  # one window per series: in-sample
    u = u.replace([np.inf, -np.inf], np.nan)
    scores = u.groupby(frame["level"])
    quantile = pd.DataFrame(
        {
            lv: pd.Series(
                {
                    level: _level_quantile(part, block.loc[part.index].to_numpy(), lv / 100, pairs[level])
                    for level, part in scores
                }
            )
            for lv in interval_levels
        }
    )
    pooled = pd.Series(
        {
            lv: _level_quantile(u, block.loc[u.index].to_numpy(), lv / 100, int(pairs.sum()))
            for lv in interval_levels
        }
    )
    quantile = _shrink(quantile, pooled, pairs)
    mean_demand = backtest["y"].abs().groupby(backtest["unique_id"]).mean()
    ratio = (scale / mean_demand.reindex(scale.index)).replace([np.inf, -np.inf], np.nan)
    level_of = scale.index.map(levels) if levels is not None else pd.Index([ALL] * len(scale))
    demand_ratio = ratio.groupby(level_of).median()
    return ErrorProfile(scale, growth, quantile, demand_ratio, windows)


def interval_bounds(
    point: pd.DataFrame,
    profile: ErrorProfile,
    levels: pd.Series | None,
    interval_levels: list[int],
    demand: pd.Series,
    floor: float | None = 0.0,
) -> pd.DataFrame:
    """Bounds for ``point`` (``unique_id, ds, forecast`` sorted by id and date).

    Parameters
    ----------
    demand : pandas.Series
        Mean absolute demand of each series id (for series without backtest errors).
    floor : float, optional
        Lowest lower bound (no demand below zero); ``None``: symmetric bounds.

    Returns
    -------
    pandas.DataFrame
        ``forecast-lo-L, forecast-hi-L`` per level, aligned with ``point``'s rows.
    """
    level = point["unique_id"].map(levels) if levels is not None else pd.Series(ALL, index=point.index)
    scale = point["unique_id"].map(profile.scale)
    fallback = point["unique_id"].map(demand) * level.map(profile.demand_ratio)
    scale = scale.fillna(fallback).fillna(0.0)
    steps = profile.growth.shape[1]
    step = (point.groupby("unique_id", sort=False).cumcount() + 1).clip(upper=steps)
    g = profile.growth.stack()
    growth = pd.Series(g.reindex(pd.MultiIndex.from_arrays([level, step])).to_numpy(), index=point.index)
    growth = growth.fillna(1.0)
    forecast = point["forecast"].to_numpy(dtype=float)
    out = pd.DataFrame(index=point.index)
    for lv in interval_levels:
        q = level.map(profile.quantile[lv]).fillna(profile.quantile[lv].max())
        width = (q * scale * growth).to_numpy(dtype=float)
        out[f"forecast-lo-{lv}"] = (
            forecast - width if floor is None else np.clip(forecast - width, floor, None)
        )
        out[f"forecast-hi-{lv}"] = forecast + width
    return out
