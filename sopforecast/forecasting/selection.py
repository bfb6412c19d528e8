"""Model selection and ensembles from backtest errors, by demand class.

For every demand class the strategies compete on out-of-sample scaled error (MAE over the
in-sample naive MAE): each single model for all series of the class, the mean of the class's
k best models (``class_top3``: the same members for every series), the per-series best
model, the mean of each series' own top-k models, and the mean and median of all candidates.
Per-series choices (best, top-k) are scored honestly: a series' ranking for one backtest
window comes from its other windows, so they need at least two windows and are not offered
with one. The median of the class's candidates is the default: backtests are short and
noisy, and a simple combination is hard to beat out of sample, so another strategy replaces
it only when it is better in every backtest window (so never with one window) and over the
class's series with a paired z-score above ``z`` (2 by default); then the lowest-error such
strategy wins. The winner is fitted on all windows
and applied; the ``model`` column says what each series got.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .metrics import mase_scale

__all__ = ["Selection", "series_scale", "select_models", "combine_forecasts", "member_label"]


@dataclass
class Selection:
    """Chosen strategy per class and members per series."""

    per_series: pd.DataFrame  # unique_id, demand_class, strategy, members (tuple of aliases)
    scores: pd.DataFrame  # demand_class, strategy, error (mean scaled MAE), series


def series_scale(train: pd.DataFrame, season_length: int) -> pd.Series:
    """The per-series error scale of model selection: the MASE scale
    (:func:`~sopforecast.forecasting.metrics.mase_scale`), so selection, the backtest's
    MASE and the monitor measure a series the same way."""
    return mase_scale(train, max(int(season_length), 1))


def member_label(members: tuple[str, ...], how: str = "mean") -> str:
    """``AutoETS`` for one model, ``mean(AutoETS,CES)`` for a combination."""
    return members[0] if len(members) == 1 else f"{how}({','.join(members)})"


def _window_errors(cv: pd.DataFrame, models: list[str], scale: pd.Series) -> pd.DataFrame:
    """Scaled MAE per series, window and model: index (unique_id, cutoff), columns models."""
    err = cv[models].sub(cv["y"], axis=0).abs()
    err = err.div(cv["unique_id"].map(scale).to_numpy(), axis=0)
    err[["unique_id", "cutoff"]] = cv[["unique_id", "cutoff"]]
    return err.groupby(["unique_id", "cutoff"], sort=True)[models].mean()


def _combo_errors(cv, members_of, scale, how="mean") -> pd.Series:
    """Scaled MAE per (series, window) of a per-series combination."""
    models = sorted({m for ms in members_of.values() for m in ms})
    values = cv[models].to_numpy()
    mask = np.zeros((len(cv), len(models)), dtype=bool)
    index = {m: i for i, m in enumerate(models)}
    keys = list(zip(cv["unique_id"], cv["cutoff"], strict=True))
    for row, key in enumerate(keys):
        for m in members_of.get(key, ()):
            mask[row, index[m]] = True
    masked = np.where(mask, values, np.nan)
    combined = np.nanmedian(masked, axis=1) if how == "median" else np.nanmean(masked, axis=1)
    err = np.abs(combined - cv["y"].to_numpy()) / cv["unique_id"].map(scale).to_numpy()
    return pd.Series(err, index=pd.MultiIndex.from_tuples(keys)).groupby(level=[0, 1]).mean()


def _loo_top(errors: pd.DataFrame, k: int) -> dict:
    """For each (series, window), the k best models by the series' other windows."""
    total = errors.groupby(level=0, sort=False).transform("sum")
    n = errors.groupby(level=0, sort=False)[errors.columns[0]].transform("size").to_numpy()
    other = (total - errors).to_numpy() / np.maximum(n - 1, 1)[:, None]
    order = np.argsort(other, axis=1, kind="stable")[:, :k]
    names = np.asarray(errors.columns)
    return {key: tuple(names[row]) for key, row in zip(errors.index, order, strict=True)}


def _window_means(err: pd.Series) -> pd.Series:
    """Mean error per backtest window, windows numbered within each series (series may end
    on different dates, so the same window has different cutoffs)."""
    err = err.sort_index()
    number = err.groupby(level=0).cumcount().to_numpy()
    return err.groupby(number).mean()


def _winner(options: dict[str, pd.Series], table: pd.DataFrame, default: str, z: float) -> str:
    """The default strategy unless another beats it significantly over the class's series
    and in every backtest window (one window is one stretch of the calendar, whose shocks
    all series share, so it cannot show a lasting edge); then the best of those."""
    mean_err = table.mean()
    if default not in table.columns:
        return str(mean_err.idxmin())
    by_window = pd.DataFrame({k: _window_means(v) for k, v in options.items()})
    if len(by_window) < 2:
        return default
    winner = default
    for name in table.columns:
        diff = (table[default] - table[name]).dropna()
        if name == default or len(diff) < 2 or not (by_window[name] < by_window[default]).all():
            continue
        spread = diff.std(ddof=1)
        score = diff.mean() / (spread / np.sqrt(len(diff))) if spread > 0 else np.inf * np.sign(diff.mean())
        if score > z and mean_err[name] < mean_err[winner]:
            winner = str(name)
    return winner


def select_models(
    cv: pd.DataFrame,
    scale: pd.Series,
    classes: pd.Series,
    candidates: dict[str, list[str]],
    *,
    top_k: tuple[int, ...] = (2, 3),
    default: str = "median",
    z: float = 2.0,
) -> Selection:
    """Choose a strategy per demand class from backtest errors.

    Parameters
    ----------
    cv : pandas.DataFrame
        Backtest frame with ``unique_id, cutoff, y`` and a column per model alias.
    scale : pandas.Series
        Per-series error scale (:func:`series_scale`).
    classes : pandas.Series
        Demand class per series (index unique_id).
    candidates : dict
        Model aliases to consider per demand class.
    top_k : tuple of int, default (2, 3)
        Sizes of per-series top-k mean combinations to try.
    default : str, default "median"
        Strategy kept unless another is significantly better.
    z : float, default 2.0
        Paired z-score (over the class's series) another strategy needs to replace the default.
    """
    rows, scores = [], []
    for cls, ids in classes.groupby(classes, observed=True).groups.items():
        models = [m for m in candidates.get(cls, []) if m in cv.columns]
        part = cv[cv["unique_id"].isin(ids)]
        if not models or part.empty:
            continue
        errors = _window_errors(part, models, scale)
        class_rank = list(errors.mean().sort_values(kind="stable").index)
        windows = int(errors.groupby(level=0).size().min())
        options: dict[str, pd.Series] = {m: errors[m] for m in models}
        if len(models) > 1:
            for k in sorted({2, 3, 4, *top_k}):
                if k < len(models):
                    fixed = {key: tuple(class_rank[:k]) for key in errors.index}
                    options[f"class_top{k}"] = _combo_errors(part, fixed, scale)
            if windows > 1:
                options["best"] = _combo_errors(part, _loo_top(errors, 1), scale)
                for k in top_k:
                    if k < len(models):
                        options[f"top{k}"] = _combo_errors(part, _loo_top(errors, k), scale)
            every = {key: tuple(models) for key in errors.index}
            options["mean"] = _combo_errors(part, every, scale)
            options["median"] = _combo_errors(part, every, scale, how="median")
        table = pd.DataFrame({name: err.groupby(level=0).mean() for name, err in options.items()})
        table = table.replace([np.inf, -np.inf], np.nan)
        mean_err = table.mean()
        winner = _winner(options, table, default, z)
        scores.extend(
            {"demand_class": cls, "strategy": s, "error": float(e), "series": len(table)}
            for s, e in mean_err.items()
        )
        by_series = errors.groupby(level=0).mean()
        rows.extend(_members_per_series(by_series, winner, models, class_rank, cls, table[winner]))
    per_series = pd.DataFrame(
        rows, columns=["unique_id", "demand_class", "strategy", "members", "how", "backtest_error"]
    )
    return Selection(per_series, pd.DataFrame(scores))


def _members_per_series(
    by_series: pd.DataFrame, winner: str, models: list[str], class_rank: list[str], cls, error: pd.Series
) -> list[dict]:
    """Each series' members under the class's winning strategy. Its models ranked by mean
    backtest error (ties in column order); a member that could not forecast the series
    (LightGBM on a short launch) drops out, and if none is left its best model stands in."""
    names = np.asarray(by_series.columns, dtype=object)
    values = by_series.to_numpy(dtype=float)
    scored = ~np.isnan(values)
    order = np.argsort(np.where(scored, values, np.inf), axis=1, kind="stable")
    counts = scored.sum(axis=1)
    error = error.reindex(by_series.index).to_numpy(dtype=float)
    if winner in models:
        fixed, how = (winner,), "mean"
    elif winner.startswith("class_top"):
        fixed, how = tuple(sorted(class_rank[: int(winner[9:])])), "mean"
    elif winner == "best" or winner.startswith("top"):
        fixed, how = None, "mean"
    else:
        fixed, how = tuple(models), winner
    take = 1 if winner == "best" else int(winner[3:]) if fixed is None else 0
    rows = []
    for row, uid in enumerate(by_series.index):
        if not counts[row]:
            continue
        ranked = tuple(names[order[row, : counts[row]]])
        members = ranked[:1] if winner == "best" else tuple(sorted(ranked[:take])) if fixed is None else fixed
        own = set(ranked)
        members = tuple(m for m in members if m in own) or ranked[:1]
        rows.append(
            {
                "unique_id": uid,
                "demand_class": cls,
                "strategy": winner,
                "members": members,
                "how": how,
                "backtest_error": error[row],
            }
        )
    return rows


def combine_forecasts(wide: pd.DataFrame, selection: pd.DataFrame) -> pd.DataFrame:
    """Apply each series' chosen members to a wide forecast (or backtest) frame.

    Returns the input's id/date columns plus ``forecast`` and ``model``.
    """
    chosen = selection.set_index("unique_id")
    keep = [c for c in ("unique_id", "ds", "cutoff", "y") if c in wide.columns]
    parts = []
    for (members, how), ids in chosen.groupby(["members", "how"], sort=False).groups.items():
        block = wide[wide["unique_id"].isin(ids)]
        values = block[list(members)]
        point = values.median(axis=1) if how == "median" else values.mean(axis=1)
        parts.append(block[keep].assign(forecast=point.to_numpy(), model=member_label(members, how)))
    out = pd.concat(parts, ignore_index=True)
    order = [c for c in ("unique_id", "cutoff", "ds") if c in out.columns]
    return out.sort_values(order, kind="stable").reset_index(drop=True)
