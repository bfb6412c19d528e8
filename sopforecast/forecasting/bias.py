"""Bias correction: a level's systematic lean, measured in the backtest, taken out.

The candidates a backtest selects can share a lean: on growing demand the seasonal naive
has no trend, ETS damps it and the median of a combination sits with the slower models, so
every level under-forecasts by more the further ahead it looks. The correction is a factor
per hierarchy level and horizon step, ``exp(a + b * step)``: the log of the ratio of actual
to forecast demand at each step, pooled over the level's series and the backtest windows,
fitted by least squares weighted by the forecast volume of the step. A level with few series
(the Total) borrows from all levels pooled, with weight ``n / (n + 10)`` on its own
(``n`` its series-windows). A level is corrected only where every window leans the same way
(all under or all over): a lean that changes sign between windows is noise, not a bias.
Factors stay within :data:`FACTOR_RANGE`.

In the backtest the correction is cross-fitted: each window is corrected with the factors of
the other windows, so its scores stay out of sample (with one window nothing is corrected).
Which levels are corrected at all is decided once, on every window, as for the final
forecast: the backtest then shows what the delivered forecast does.
The final forecast takes the factors of all windows. ``forecast.bias_correction: true``
switches it on (off by default: on the demo's held-out months the factors, fitted on two
windows, lowered the Total's error on three seeds of four and raised it on the fourth, and
the intervals lost their calibration at the top; see BENCHMARKS.md).

Pure: frames in, frames out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["BiasFactors", "fit_factors", "apply_factors", "cross_fitted", "FACTOR_RANGE", "POOL_WEIGHT"]

FACTOR_RANGE = (0.8, 1.25)
POOL_WEIGHT = 10.0  # series-windows at which a level trusts its own lean as much as the pool's
POOLED = "*"


class BiasFactors:
    """Intercept and slope of the log correction per level (``POOLED`` for all levels)."""

    def __init__(self, table: pd.DataFrame) -> None:
        self.table = table  # level, a, b, series_windows, bias, same_sign, applied

    def factor(self, levels: pd.Series | np.ndarray, steps: np.ndarray) -> np.ndarray:
        """Factor of each row given its level and horizon step (1 = first period)."""
        coef = self.table.set_index("level")
        levels = np.asarray(levels, dtype=object)
        a = pd.Series(levels).map(coef["a"]).fillna(0.0).to_numpy()
        b = pd.Series(levels).map(coef["b"]).fillna(0.0).to_numpy()
        on = pd.Series(levels).map(coef["applied"]).fillna(False).to_numpy(dtype=bool)
        out = np.exp(a + b * np.asarray(steps, dtype=float))
        return np.where(on, np.clip(out, *FACTOR_RANGE), 1.0)

    def summary(self) -> pd.DataFrame:
        """One row per level: backtest bias, series-windows, whether it is corrected and the
        factor at the first and last step seen."""
        return self.table.copy()


def _steps(frame: pd.DataFrame) -> np.ndarray:
    """Horizon step of each row: 1 for a series-window's first forecast period."""
    keys = ["unique_id", "cutoff"] if "cutoff" in frame.columns else ["unique_id"]
    order = frame.sort_values([*keys, "ds"], kind="stable")
    steps = order.groupby(keys, sort=False).cumcount().to_numpy() + 1
    return pd.Series(steps, index=order.index).reindex(frame.index).to_numpy()


def _log_line(step: np.ndarray, y: np.ndarray, f: np.ndarray) -> tuple[float, float]:
    """Weighted least-squares line through the log ratio of actual to forecast per step."""
    frame = pd.DataFrame({"step": step, "y": y, "f": f}).groupby("step").sum()
    frame = frame[(frame["y"] > 0) & (frame["f"] > 0)]
    if frame.empty:
        return 0.0, 0.0
    x = frame.index.to_numpy(dtype=float)
    r = np.log(frame["y"].to_numpy() / frame["f"].to_numpy())
    w = frame["f"].to_numpy()
    if len(x) < 3:
        return float(np.average(r, weights=w)), 0.0
    xm = np.average(x, weights=w)
    rm = np.average(r, weights=w)
    var = np.average((x - xm) ** 2, weights=w)
    b = float(np.average((x - xm) * (r - rm), weights=w) / var) if var > 0 else 0.0
    return float(rm - b * xm), b


def fit_factors(backtest: pd.DataFrame, levels: pd.Series | None, column: str = "forecast") -> BiasFactors:
    """Correction factors from a backtest of the chosen forecasts.

    Parameters
    ----------
    backtest : pandas.DataFrame
        ``unique_id, cutoff, ds, y`` and the forecast ``column``.
    levels : pandas.Series, optional
        Level name per series id; without one every series is one level (``POOLED``).
    """
    frame = backtest[["unique_id", "cutoff", "ds", "y", column]].dropna(subset=["y", column])
    frame = frame.assign(
        step=_steps(frame),
        level=frame["unique_id"].map(levels).fillna(POOLED).to_numpy() if levels is not None else POOLED,
    )
    f = frame[column].to_numpy(dtype=float).clip(min=0.0)
    y = frame["y"].to_numpy(dtype=float)
    pa, pb = _log_line(frame["step"].to_numpy(), y, f)
    rows = []
    for level, part in frame.groupby("level", sort=False):
        idx = part.index
        lf, ly = frame.loc[idx, column].clip(lower=0.0).to_numpy(dtype=float), part["y"].to_numpy(dtype=float)
        a, b = _log_line(part["step"].to_numpy(), ly, lf)
        n = part[["unique_id", "cutoff"]].drop_duplicates().shape[0]
        own = n / (n + POOL_WEIGHT) if level != POOLED else 1.0
        a, b = own * a + (1 - own) * pa, own * b + (1 - own) * pb
        leans = part.assign(err=lf - ly).groupby("cutoff")[["err", "y"]].sum()
        window_bias = (leans["err"] / leans["y"].where(leans["y"] > 0)).dropna()
        same = len(window_bias) > 0 and (bool((window_bias < 0).all()) or bool((window_bias > 0).all()))
        bias = float((lf - ly).sum() / ly.sum()) if ly.sum() > 0 else np.nan
        rows.append(
            {
                "level": level,
                "a": a,
                "b": b,
                "series_windows": n,
                "bias": bias,
                "same_sign": same,
                "applied": same,
                "factor_first": float(np.clip(np.exp(a + b), *FACTOR_RANGE)),
                "factor_last": float(np.clip(np.exp(a + b * part["step"].max()), *FACTOR_RANGE)),
            }
        )
    return BiasFactors(pd.DataFrame(rows))


def apply_factors(
    frame: pd.DataFrame, factors: BiasFactors, levels: pd.Series | None, columns: list[str]
) -> pd.DataFrame:
    """``frame`` with ``columns`` multiplied by each row's factor (level and horizon step).
    Returns a new frame."""
    lv = frame["unique_id"].map(levels).fillna(POOLED).to_numpy() if levels is not None else POOLED
    lv = np.broadcast_to(np.asarray(lv, dtype=object), (len(frame),))
    factor = factors.factor(lv, _steps(frame))
    out = frame.copy()
    out[columns] = out[columns].mul(factor, axis=0)
    return out


def cross_fitted(backtest: pd.DataFrame, levels: pd.Series | None, column: str = "forecast") -> pd.DataFrame:
    """The backtest with each window corrected by the factors of the other windows (one
    window: returned as it is). Returns a new frame."""
    cutoffs = backtest["cutoff"].unique()
    if len(cutoffs) < 2:
        return backtest.copy()
    decided = fit_factors(backtest, levels, column).table.set_index("level")["applied"]
    parts = []
    for cutoff in cutoffs:
        mine = backtest["cutoff"] == cutoff
        factors = fit_factors(backtest[~mine], levels, column)
        factors.table["applied"] = factors.table["level"].map(decided).fillna(False).to_numpy(dtype=bool)
        parts.append(apply_factors(backtest[mine], factors, levels, [column]))
    return pd.concat(parts).reindex(backtest.index)
