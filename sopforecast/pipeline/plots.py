"""Forecast plots for a run: history, forecast and intervals, one figure per level."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["plot_series", "run_plots"]

_HISTORY_PERIODS = 48


def plot_series(
    history: pd.DataFrame, forecast: pd.DataFrame, ids: list[str], title: str, path: Path
) -> Path:
    """One panel per series: recent history, the forecast and its widest and narrowest bands.

    Drawn on a bare :class:`matplotlib.figure.Figure` (no pyplot), so the process's backend
    and a notebook's inline plots are left as they are.
    """
    from matplotlib.figure import Figure

    n = len(ids)
    cols = 1 if n == 1 else 2
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(6.5 * cols, 2.8 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    levels = sorted({int(c.rsplit("-", 1)[1]) for c in forecast.columns if c.startswith("forecast-lo-")})
    history = history[history["unique_id"].isin(ids)]
    forecast = forecast[forecast["unique_id"].isin(ids)]
    for ax, uid in zip(axes.ravel(), ids, strict=False):
        hist = history[history["unique_id"] == uid].tail(_HISTORY_PERIODS)
        fc = forecast[forecast["unique_id"] == uid]
        ax.plot(hist["ds"], hist["y"], color="#333333", lw=1.2, label="history")
        for lv, alpha in zip(sorted(levels, reverse=True), (0.18, 0.32), strict=False):
            ax.fill_between(
                fc["ds"],
                fc[f"forecast-lo-{lv}"],
                fc[f"forecast-hi-{lv}"],
                color="#1f77b4",
                alpha=alpha,
                lw=0,
                label=f"{lv}% interval",
            )
        ax.plot(fc["ds"], fc["forecast"], color="#1f77b4", lw=1.6, label="forecast")
        model = fc["model"].iloc[0] if "model" in fc.columns and len(fc) else ""
        ax.set_title(f"{uid}  [{model}]", fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    axes.ravel()[0].legend(fontsize=7, loc="upper left")
    # fixed margins in inches (tight_layout measured every label: a third of the time)
    width, height = fig.get_size_inches()
    fig.suptitle(title, fontsize=11, y=1 - 0.12 / height)
    fig.subplots_adjust(
        left=0.65 / width,
        right=1 - 0.15 / width,
        bottom=0.35 / height,
        top=1 - 0.55 / height,
        wspace=0.12,  # of an axes' width (about 6 in): room for the tick labels
        hspace=0.3,  # of an axes' height (about 2.3 in): the ticks and the next title
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_").lower() or "total"


def run_plots(history: pd.DataFrame, forecast: pd.DataFrame, folder: Path, per_level: int = 6) -> list[Path]:
    """A figure per aggregate level (its largest series) and one of the largest bottom series.

    ``forecast`` may carry a ``level`` column (hierarchies); ``history`` must then hold every
    level's series.
    """
    volume = history.groupby("unique_id")["y"].sum().sort_values(ascending=False)
    figures = []  # (ids, title, file)
    if "level" in forecast.columns:
        # aggregates from the top (fewest series) down; the bottom level has the most series
        levels = list(forecast.groupby("level")["unique_id"].nunique().sort_values(kind="stable").index)
        ids_of = forecast.drop_duplicates("unique_id").groupby("level")["unique_id"].agg(set)
        for level in levels[:-1]:
            ids = _largest(volume, ids_of[level], per_level)
            figures.append((ids, f"Level {level}", folder / f"level_{_slug(level)}.png"))
        largest = _largest(volume, ids_of[levels[-1]], per_level)
    else:
        largest = list(volume.index[:per_level])
    figures.append((largest, "Largest series", folder / "largest_series.png"))
    # the plotted series only, picked from the whole frames once
    shown = {uid for ids, _, _ in figures for uid in ids}
    history = history[history["unique_id"].isin(shown)]
    forecast = forecast[forecast["unique_id"].isin(shown)]
    return [plot_series(history, forecast, ids, title, path) for ids, title, path in figures]


def _largest(volume: pd.Series, ids: set, n: int) -> list[str]:
    """The ``n`` ids of ``ids`` with the most volume (``volume`` sorted, largest first)."""
    return list(volume.index[volume.index.isin(ids)][:n])
