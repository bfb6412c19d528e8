"""Accuracy of published plans once actuals arrive: WAPE, bias, MASE, tracking signal, coverage.

Every function reads the *scored* frame: one row per published plan version x series (every
level) x month that has an actual, with ``version_id, cycle, unique_id, level, ds, lag``, the
forecasts ``statistical`` and ``final``, ``naive``, the actual ``y``, the interval bounds
``statistical-lo-80`` / ``statistical-hi-80`` and, on bottom series, the optional segment
columns ``demand_class, abc, xyz``.

Definitions, per group of rows (``f`` a forecast, ``e = f - y``):

* ``wape = sum|e| / sum|y|`` and ``accuracy = 1 - wape`` (negative when errors exceed demand);
* ``bias = sum(e) / sum|y|``, positive = over-forecast;
* ``mase = mean(|e| / scale)``, the scale being each series' in-sample seasonal-naive MAE;
* ``tracking_signal = sum(e) / mean|e|``: beyond about +-4 the errors no longer cancel out;
* ``coverage``: share of actuals inside the interval, ``coverage_gap = coverage - level``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import ConfigError, DataError, format_examples
from ..forecasting.metrics import mase_scale as metrics_mase_scale

__all__ = [
    "FORECASTS",
    "METRICS",
    "TABLE_COLUMNS",
    "mase_scale",
    "accuracy_table",
    "tracking_signal_by_series",
]

FORECASTS = ("statistical", "final")
METRICS = ("wape", "accuracy", "bias", "mase", "tracking_signal", "coverage")
TABLE_COLUMNS = ["lag", "forecast", "n", "actual", *METRICS, "coverage_gap"]
# these keys have a natural order (time); other keys keep their order of first appearance
_SORTED_KEYS = ("cycle", "ds", "version_id", "lag")


def mase_scale(
    history: pd.DataFrame,
    season: int = 12,
    *,
    id_col: str = "unique_id",
    time_col: str = "ds",
    target_col: str = "y",
) -> pd.Series:
    """The MASE denominator of every series: the forecast's own scale
    (:func:`sopforecast.forecasting.metrics.mase_scale`: in-sample seasonal-naive MAE; naive,
    then mean demand, then 1 where it is undefined or zero), on any level's history."""
    _require(history, [id_col, time_col, target_col], "history")
    return metrics_mase_scale(history, season, id_col=id_col, time_col=time_col, target_col=target_col)


def accuracy_table(
    scored: pd.DataFrame,
    by: Sequence[str] = ("level",),
    lags: Sequence[int] | None = (1, 3, 6),
    scale: pd.Series | None = None,
    interval: int = 80,
) -> pd.DataFrame:
    """Accuracy metrics of the statistical and final forecasts, per group, lag and forecast.

    Parameters
    ----------
    scored : pandas.DataFrame
        The scored frame (see the module docstring); rows without an actual are ignored.
    by : sequence of str, default ("level",)
        Grouping columns: ``level``, ``cycle`` (a trend over time), ``unique_id``, segment
        columns (``demand_class``, ``abc``, ``xyz``), ... Rows with an empty key are left out,
        so grouping by a segment column scores the bottom series only.
    lags : sequence of int, optional, default (1, 3, 6)
        The lags to score; ``None`` keeps every lag.
    scale : pandas.Series, optional
        :func:`mase_scale` by ``unique_id``; without it ``mase`` is NaN.
    interval : int, default 80
        The interval level whose bounds ``<forecast>-lo-<interval>`` / ``-hi-`` give
        ``coverage``; NaN for a forecast without them (``final`` usually).

    Returns
    -------
    pandas.DataFrame
        Long form, one row per group, ``lag`` and ``forecast`` (where the forecast is known):
        the ``by`` columns, ``lag, forecast, n, actual, wape, accuracy, bias, mase,
        tracking_signal, coverage, coverage_gap``. ``wape``/``bias`` are NaN when the actuals
        sum to 0, ``tracking_signal`` when every error is 0.
    """
    keys = [c for c in dict.fromkeys(by) if c not in ("lag", "forecast")]
    needed = [*keys, "lag", "y", *FORECASTS, *(["unique_id"] if scale is not None else [])]
    _require(scored, needed, "scored")
    rows = scored[scored["y"].notna()]
    if lags is not None:
        rows = rows[rows["lag"].isin(list(lags))]
    y = rows["y"].to_numpy(dtype=float)
    per_unit = (
        rows["unique_id"].map(scale).to_numpy(dtype=float) if scale is not None else np.full(len(y), np.nan)
    )
    # one stacked frame for both forecasts, so one groupby scores every group, lag and forecast
    parts = []
    for f in FORECASTS:
        error = rows[f].to_numpy(dtype=float) - y
        known = ~np.isnan(error)
        parts.append(
            pd.DataFrame(
                {
                    **{k: rows[k].to_numpy() for k in keys},
                    "lag": rows["lag"].to_numpy(),
                    "forecast": f,
                    "abs": np.abs(error),
                    "err": error,
                    # each forecast is judged on the actuals of the rows where it is known
                    "absy": np.where(known, np.abs(y), np.nan),
                    "y": np.where(known, y, np.nan),
                    "scaled": np.abs(error) / per_unit,
                    "inside": _inside(rows, f, y, known, interval),
                }
            )
        )
    long = pd.concat(parts, ignore_index=True)
    for k in keys:  # keep categorical segment columns categorical for the groupby
        if isinstance(rows[k].dtype, pd.CategoricalDtype):
            long[k] = long[k].astype(rows[k].dtype)
    grouped = long.groupby([*keys, "lag", "forecast"], sort=False, observed=True, dropna=True)
    sums = grouped[["abs", "err", "absy", "y"]].sum(min_count=1)
    out = pd.DataFrame({"n": grouped["abs"].count().astype("int64"), "actual": sums["y"]})
    denominator = sums["absy"].where(sums["absy"] > 0)
    out["wape"] = sums["abs"] / denominator
    out["accuracy"] = 1.0 - out["wape"]
    out["bias"] = sums["err"] / denominator
    out["mase"] = grouped["scaled"].mean()
    mad = grouped["abs"].mean()
    out["tracking_signal"] = sums["err"] / mad.where(mad > 0)
    out["coverage"] = grouped["inside"].mean()
    out["coverage_gap"] = out["coverage"] - interval / 100
    out = out[out["n"] > 0].reset_index()
    out = _ordered(out, rows, [*keys, "lag", "forecast"])
    return out.reindex(columns=[*keys, *TABLE_COLUMNS]).reset_index(drop=True)


def tracking_signal_by_series(
    scored: pd.DataFrame, lag: int = 1, window: int = 6, forecast: str = "final"
) -> pd.DataFrame:
    """The running tracking signal of every series over its last ``window`` months at ``lag``.

    Parameters
    ----------
    scored : pandas.DataFrame
        The scored frame.
    lag : int, default 1
        The lag whose errors are tracked.
    window : int, default 6
        Months in the rolling window (fewer at the start of a series).
    forecast : {"final", "statistical"}, default "final"
        The forecast tracked.

    Returns
    -------
    pandas.DataFrame
        ``unique_id, level, ds, error, tracking_signal``, sorted by series and month:
        ``error = forecast - y`` and ``tracking_signal`` = the sum of the window's errors over
        their mean absolute error (NaN when every error of the window is 0).
    """
    if window < 1:
        raise ConfigError(f"window must be a positive number of months, got {window}", setting="window")
    if forecast not in FORECASTS:
        raise ConfigError(f"unknown forecast {forecast!r}; choose one of: {', '.join(FORECASTS)}")
    _require(scored, ["unique_id", "level", "ds", "lag", "y", forecast], "scored")
    rows = scored[(scored["lag"] == lag) & scored["y"].notna() & scored[forecast].notna()]
    if "version_id" in rows:
        # a month planned twice at the same lag (a re-published cycle): the latest plan counts
        rows = rows.sort_values("version_id", kind="stable").drop_duplicates(["unique_id", "ds"], keep="last")
    rows = rows.sort_values(["unique_id", "ds"], kind="stable")
    error = (rows[forecast].astype(float) - rows["y"].astype(float)).rename("error")
    ids = rows["unique_id"]
    running = error.groupby(ids, sort=False).rolling(window, min_periods=1).sum()
    mad = error.abs().groupby(ids, sort=False).rolling(window, min_periods=1).mean()
    running = running.reset_index(level=0, drop=True).reindex(error.index)
    mad = mad.reset_index(level=0, drop=True).reindex(error.index)
    out = rows[["unique_id", "level", "ds"]].assign(error=error, tracking_signal=running / mad.where(mad > 0))
    return out.reset_index(drop=True)


def _inside(rows: pd.DataFrame, forecast: str, y: np.ndarray, known: np.ndarray, interval: int) -> np.ndarray:
    """1/0 per row for an actual inside the forecast's interval; NaN where bounds are unknown."""
    level = f"{interval:g}"
    lo, hi = f"{forecast}-lo-{level}", f"{forecast}-hi-{level}"
    if lo not in rows or hi not in rows:
        return np.full(len(y), np.nan)
    low, high = rows[lo].to_numpy(dtype=float), rows[hi].to_numpy(dtype=float)
    valid = known & ~np.isnan(low) & ~np.isnan(high)
    return np.where(valid, ((low <= y) & (y <= high)).astype(float), np.nan)


def _ordered(table: pd.DataFrame, rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Sort by ``keys``: time-like keys by value, ``forecast`` as in FORECASTS, others as first seen."""

    def _key(s: pd.Series) -> pd.Series:
        if s.name == "forecast":
            return s.map({f: i for i, f in enumerate(FORECASTS)})
        if s.name in _SORTED_KEYS:
            return s
        seen = {v: i for i, v in enumerate(pd.unique(rows[s.name].dropna()))}
        return s.map(seen).astype(float)

    return table.sort_values(keys, key=_key, kind="stable")


def _require(frame: pd.DataFrame, columns: list[str], name: str) -> None:
    """Raise a DataError naming the columns ``frame`` lacks."""
    missing = [c for c in dict.fromkeys(columns) if c not in frame.columns]
    if missing:
        raise DataError(
            f"{name} lacks the column(s) {missing}; it has {format_examples(list(frame.columns), 12)}. "
            "Score plan lines against their actuals first (one row per version, series and month)."
        )
