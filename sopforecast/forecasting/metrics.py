"""Forecast accuracy metrics on backtest frames, per series, per model, per level and overall.

Point metrics: MASE, RMSSE (scaled by the in-sample seasonal naive error, so they compare
across series of any size), sMAPE (M-competition definition, 0-200), WAPE and bias (mean
error over mean actual, positive = over-forecast). Interval metrics: coverage of each level
and the scaled pinball loss of its bounds. utilsforecast computes what it has.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
from utilsforecast import losses
from utilsforecast.evaluation import evaluate

__all__ = [
    "POINT_METRICS",
    "mase_scale",
    "evaluate_backtest",
    "summarise_metrics",
    "smape",
    "smape_m3",
    "bias_ratio",
]

POINT_METRICS = ("mase", "rmsse", "smape", "wape", "bias")
# metrics where the level-wide value is a ratio of sums, not a mean of series values
_RATIO_METRICS = ("wape", "bias")


def mase_scale(
    history: pd.DataFrame,
    season: int = 1,
    *,
    id_col: str = "unique_id",
    time_col: str = "ds",
    target_col: str = "y",
) -> pd.Series:
    """The MASE scale of every series, the one every part of sopforecast uses: utilsforecast's
    in-sample seasonal-naive MAE (``mean |y[t] - y[t - season]|``).

    Where it is undefined (a series no longer than a season) or zero, the one-step naive MAE;
    then the mean absolute demand (a flat series: errors relative to its level); then 1 (no
    demand at all: errors in units). Vectorised: one pass over the sorted history.

    Returns
    -------
    pandas.Series
        ``scale`` indexed by ``unique_id``, every value positive.
    """
    if season < 1:
        from ..errors import ConfigError

        raise ConfigError(f"season must be a positive number of periods, got {season}", setting="season")
    frame = history[[id_col, time_col, target_col]].sort_values([id_col, time_col], kind="stable")
    y = frame[target_col].astype(float)
    ids = frame[id_col]
    grouped = y.groupby(ids, sort=True)
    scale = (y - grouped.shift(season)).abs().groupby(ids, sort=True).mean()
    for fallback in (
        (y - grouped.shift(1)).abs().groupby(ids, sort=True).mean(),
        y.abs().groupby(ids, sort=True).mean(),
    ):
        scale = scale.where(scale > 0, fallback)
    scale = scale.where(scale > 0, 1.0)
    scale.index.name = "unique_id"
    return scale.rename("scale")


def smape_m3(df, models, id_col="unique_id", target_col="y", cutoff_col="cutoff"):
    """sMAPE as in the M3 competition: mean of 200 |y - f| / (|y| + |f|), 0 to 200."""
    out = losses.smape(df, models, id_col=id_col, target_col=target_col, cutoff_col=cutoff_col)
    out[models] = out[models] * 200.0
    return out


def bias_ratio(df, models, id_col="unique_id", target_col="y", cutoff_col="cutoff"):
    """Mean error over mean actual per series: +0.1 means forecasts 10% too high."""
    keys = [id_col, cutoff_col] if cutoff_col in df.columns else [id_col]
    grouped = df.groupby(keys, sort=True, observed=True)
    mean_y = grouped[target_col].mean()
    out = pd.DataFrame(index=mean_y.index)
    for model in models:
        err = (df[model] - df[target_col]).groupby([df[k] for k in keys], sort=True).mean()
        out[model] = (err / mean_y.replace(0.0, np.nan)).to_numpy()
    return out.reset_index()


def evaluate_backtest(
    cv: pd.DataFrame,
    train: pd.DataFrame,
    models: list[str],
    *,
    season_length: int = 1,
    level: tuple[int, ...] = (),
) -> pd.DataFrame:
    """Metrics of every series, window (cutoff) and model of a backtest.

    Parameters
    ----------
    cv : pandas.DataFrame
        Backtest frame ``unique_id, ds, cutoff, y`` plus one column per model (and
        ``MODEL-lo-80``... for intervals).
    train : pandas.DataFrame
        History ``unique_id, ds, y`` up to the first cutoff, which sets the MASE/RMSSE scale.
    models : list of str
        Model columns to score.
    season_length : int, default 1
        Seasonality of the naive scale.
    level : tuple of int
        Interval levels to score (coverage, scaled pinball loss of each bound).

    Returns
    -------
    pandas.DataFrame
        Long frame ``unique_id, cutoff, metric, model, value``.
    """
    metrics = [
        partial(losses.mase, seasonality=season_length),
        partial(losses.rmsse, seasonality=season_length),
        smape_m3,
        losses.wape,
        bias_ratio,
    ]
    names = ["mase", "rmsse", "smape", "wape", "bias"]
    for fn, name in zip(metrics, names, strict=True):
        fn.__name__ = name  # evaluate() labels rows by the function name
    scale = train[["unique_id", "ds", "y"]]
    frames = []
    # under auto each series runs only its class's models: score each model where it ran
    for model in models:
        rows = cv[cv[model].notna()]
        if rows.empty:
            continue
        part = scale[scale["unique_id"].isin(rows["unique_id"].unique())]
        frames.append(_score(rows, part, model, metrics, season_length, level))
    if not frames:
        return pd.DataFrame(columns=["unique_id", "cutoff", "metric", "model", "value"])
    out = pd.concat(frames, ignore_index=True)
    return out.dropna(subset=["value"]).reset_index(drop=True)


def _score(cv, scale, model, metrics, season_length, level) -> pd.DataFrame:
    wide = evaluate(cv, metrics=metrics, models=[model], train_df=scale, cutoff_col="cutoff")
    frames = [wide]
    for lv in level:
        if f"{model}-lo-{lv}" not in cv.columns:
            continue
        cov = losses.coverage(cv, [model], level=lv, cutoff_col="cutoff")
        cov["metric"] = f"coverage_{lv}"
        frames.append(cov)
        for side in ("lo", "hi"):
            q = (100 - lv) / 200 if side == "lo" else 1 - (100 - lv) / 200
            pin = losses.scaled_quantile_loss(
                cv,
                {model: f"{model}-{side}-{lv}"},
                seasonality=season_length,
                train_df=scale,
                q=q,
                cutoff_col="cutoff",
            )
            pin["metric"] = f"pinball_{side}_{lv}"
            frames.append(pin)
    out = pd.concat(frames, ignore_index=True)
    return out.melt(id_vars=["unique_id", "cutoff", "metric"], var_name="model", value_name="value")


def summarise_metrics(
    scores: pd.DataFrame,
    cv: pd.DataFrame | None = None,
    *,
    by: pd.Series | None = None,
) -> pd.DataFrame:
    """Average per-series metrics into one row per model (and group, e.g. level or class).

    Scaled metrics and sMAPE are averaged over series and windows; WAPE and bias are
    recomputed as ratios of sums from ``cv`` when given, so large series weigh more, as
    a planner reading a total expects.

    Parameters
    ----------
    scores : pandas.DataFrame
        Output of :func:`evaluate_backtest`.
    cv : pandas.DataFrame, optional
        The backtest frame, for ratio metrics.
    by : pandas.Series, optional
        Group of each ``unique_id`` (index: unique_id), e.g. its hierarchy level.
    """
    frame = scores.copy()
    group_cols = ["model", "metric"]
    if by is not None:
        frame["group"] = frame["unique_id"].map(by)
        group_cols = ["group", *group_cols]
    finite = frame[np.isfinite(frame["value"])]
    table = finite.groupby(group_cols, sort=True)["value"].mean().unstack("metric")
    if cv is not None:
        models = frame["model"].unique().tolist()
        ratio = _ratio_metrics(cv, [m for m in models if m in cv.columns], by)
        for col in ratio.columns:
            table[col] = ratio[col].reindex(table.index)
    return table.reset_index().rename_axis(columns=None)


def _ratio_metrics(cv: pd.DataFrame, models: list[str], by: pd.Series | None) -> pd.DataFrame:
    rows = []
    group = cv["unique_id"].map(by) if by is not None else pd.Series("all", index=cv.index)
    for model in models:
        ran = cv[model].notna()
        err = (cv[model] - cv["y"])[ran]
        parts = pd.DataFrame({"g": group[ran], "abs": err.abs(), "err": err, "y": cv["y"][ran].abs()})
        sums = parts.groupby("g", sort=True)[["abs", "err", "y"]].sum()
        for g, row in sums.iterrows():
            denom = row["y"] if row["y"] > 0 else np.nan
            rows.append({"group": g, "model": model, "wape": row["abs"] / denom, "bias": row["err"] / denom})
    out = pd.DataFrame(rows)
    keys = ["group", "model"] if by is not None else ["model"]
    return out.set_index(keys)[list(_RATIO_METRICS)]


def smape(actual: pd.DataFrame, forecast: pd.DataFrame, column: str = "forecast") -> pd.Series:
    """M3 sMAPE (0-200) of each series: the mean over its horizon of 200 |y - f| / (|y| + |f|).

    A period where actual and forecast are both zero counts as exact (0).

    Parameters
    ----------
    actual : pandas.DataFrame
        Held-out actuals ``unique_id, ds, y``.
    forecast : pandas.DataFrame
        Forecast frame with ``unique_id, ds`` and the forecast in ``column``.
    column : str, default "forecast"
        Column of ``forecast`` to score.

    Returns
    -------
    pandas.Series
        sMAPE per ``unique_id``.

    Raises
    ------
    ValueError
        If an actual has no forecast; the message names up to five such series.
    """
    joined = actual.merge(forecast[["unique_id", "ds", column]], on=["unique_id", "ds"], how="left")
    if joined[column].isna().any():
        missing = joined.loc[joined[column].isna(), "unique_id"].unique()[:5]
        raise ValueError(f"no forecast for {list(missing)}")
    y, f = joined["y"].to_numpy(), joined[column].to_numpy()
    denom = np.abs(y) + np.abs(f)
    err = np.where(denom > 0, 200.0 * np.abs(y - f) / np.where(denom > 0, denom, 1.0), 0.0)
    return pd.Series(err).groupby(joined["unique_id"].to_numpy()).mean()
