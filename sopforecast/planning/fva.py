"""Forecast value added: does each step of the planning process make the plan more accurate?

Published plan versions are scored against what was sold, by ``level`` of the hierarchy and
by lag (how many months ahead the plan was made). Three forecasts are compared:

* ``naive``: the last month of history known when the plan was made;
* ``statistical``: the reconciled statistical forecast;
* ``final``: the plan after overrides (the consensus).

Accuracy is WAPE, ``sum|f - y| / sum|y|``, and bias is ``sum(f - y) / sum|y|`` (positive =
over-forecast). Forecast value added is the drop in WAPE from one step to the next, so a
positive value says the step helped: ``fva_statistical`` = naive - statistical,
``fva_consensus`` = statistical - final.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["FORECASTS", "NO_OVERRIDE", "with_lags", "fva_table", "fva_by_author", "fva_chart"]

FORECASTS = ("naive", "statistical", "final")
NO_OVERRIDE = "(no override)"
TITLE = "Forecast value added: WAPE by level and lag (lower is better)"

_TABLE_COLUMNS = [
    "level",
    "lag",
    "n",
    "actual",
    *(f"wape_{f}" for f in FORECASTS),
    *(f"bias_{f}" for f in FORECASTS),
    "fva_statistical",
    "fva_consensus",
]
_AUTHOR_COLUMNS = [
    "author",
    "level",
    "lag",
    "n",
    "wape_statistical",
    "wape_final",
    "bias_statistical",
    "bias_final",
    "fva_consensus",
]
_COLORS = {"naive": "#b0b0b0", "statistical": "#1f77b4", "final": "#ff7f0e"}


def with_lags(plans: pd.DataFrame) -> pd.DataFrame:
    """Add ``lag``: months from the first month of the line's version, plus one.

    Parameters
    ----------
    plans : pandas.DataFrame
        Plan versions stacked, with ``version_id`` and ``ds`` (month start).

    Returns
    -------
    pandas.DataFrame
        A copy of ``plans`` with an integer ``lag`` column (1 = the version's first month).
    """
    out = plans.copy()
    month = _month_number(out["ds"])
    out["lag"] = (month - month.groupby(out["version_id"]).transform("min") + 1).astype("int64")
    return out


def fva_table(
    plans: pd.DataFrame, actuals: pd.DataFrame, lags: Sequence[int] | None = (1, 3, 6)
) -> pd.DataFrame:
    """WAPE, bias and forecast value added of naive, statistical and final, by level and lag.

    Parameters
    ----------
    plans : pandas.DataFrame
        Plan versions stacked: ``version_id, unique_id, level, ds, naive, statistical, final``.
    actuals : pandas.DataFrame
        ``unique_id, ds, y`` for every series of every level.
    lags : sequence of int, optional
        The lags to score; ``None`` scores every lag.

    Returns
    -------
    pandas.DataFrame
        One row per ``level`` (in order of first appearance in ``plans``) and ``lag``, over the
        lines that have an actual: ``n`` lines, ``actual`` (sum of ``y``), ``wape_<f>`` and
        ``bias_<f>`` for each forecast, ``fva_statistical`` and ``fva_consensus``. Empty (with
        these columns) when no line has an actual yet.
    """
    scored = _scored(plans, actuals, lags)
    table = _metrics(scored, ["level", "lag"], FORECASTS)
    table["fva_statistical"] = table["wape_naive"] - table["wape_statistical"]
    table["fva_consensus"] = table["wape_statistical"] - table["wape_final"]
    table = table.reset_index()
    order = _first_seen(plans["level"])
    table = table.sort_values(["level", "lag"], key=lambda s: s.map(order) if s.name == "level" else s)
    return table.reindex(columns=_TABLE_COLUMNS).reset_index(drop=True)


def fva_by_author(
    plans: pd.DataFrame, actuals: pd.DataFrame, lags: Sequence[int] | None = (1, 3, 6)
) -> pd.DataFrame:
    """WAPE, bias and consensus value added per override author, level and lag.

    Scored per level because an override at an aggregate also changes its children: pooling
    levels would count the same units several times.

    Parameters
    ----------
    plans, actuals, lags
        As for :func:`fva_table`. Lines without an ``author`` are grouped as
        ``"(no override)"``.

    Returns
    -------
    pandas.DataFrame
        ``author, level, lag, n, wape_statistical, wape_final, bias_statistical, bias_final,
        fva_consensus``; authors in alphabetical order, ``"(no override)"`` last.
    """
    scored = _scored(plans, actuals, lags)
    author = scored["author"].astype(object) if "author" in scored else pd.Series(None, index=scored.index)
    blank = author.isna() | (author.astype(str).str.strip() == "")
    scored["author"] = author.astype(str).where(~blank, NO_OVERRIDE)
    table = _metrics(scored, ["author", "level", "lag"], ("statistical", "final"))
    table["fva_consensus"] = table["wape_statistical"] - table["wape_final"]
    table = table.reset_index()
    order = _first_seen(plans["level"])

    def _key(s: pd.Series) -> pd.Series:
        if s.name == "author":
            # "(no override)" sorts after every author
            return (s == NO_OVERRIDE).map({True: "1", False: "0"}) + s
        return s.map(order) if s.name == "level" else s

    table = table.sort_values(["author", "level", "lag"], key=_key)
    return table.reindex(columns=_AUTHOR_COLUMNS).reset_index(drop=True)


def fva_chart(table: pd.DataFrame, path: str | Path) -> Path:
    """Draw WAPE of naive, statistical and final per level, one panel per lag, to a PNG.

    Parameters
    ----------
    table : pandas.DataFrame
        The output of :func:`fva_table`.
    path : str or Path
        The PNG to write (its folder is created).

    Returns
    -------
    Path
        ``path``. An empty ``table`` gives a figure that says there are no actuals yet.
    """
    # a bare Figure draws with Agg without touching pyplot's global state or any display
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    path = Path(path)
    lags = sorted(table["lag"].unique()) if len(table) else []
    levels = list(dict.fromkeys(table["level"])) if len(table) else []
    width = max(6.0, 1.2 + 0.9 * len(levels))
    fig = Figure(figsize=(width, 0.9 + 2.9 * max(len(lags), 1)))
    fig.suptitle(TITLE, fontsize=11)
    if not lags:
        ax = fig.add_subplot()
        ax.axis("off")
        ax.text(0.5, 0.5, "no actuals yet", ha="center", va="center", fontsize=14, color="#555555")
    axes = fig.subplots(len(lags), 1, squeeze=False).ravel() if lags else []
    x = np.arange(len(levels))
    bar = 0.8 / len(FORECASTS)
    for ax, lag in zip(axes, lags, strict=True):
        part = table[table["lag"] == lag].set_index("level").reindex(levels)
        for i, name in enumerate(FORECASTS):
            values = part[f"wape_{name}"].to_numpy(dtype=float)
            bars = ax.bar(x + (i - 1) * bar, values, bar, label=name, color=_COLORS[name])
            labels = [f"{v:.0%}" if np.isfinite(v) else "" for v in values]
            ax.bar_label(bars, labels=labels, fontsize=7, padding=1)
        ax.set_title(f"lag {lag} (planned {lag} month{'s' if lag != 1 else ''} ahead)", fontsize=9)
        ax.set_ylabel("WAPE", fontsize=8)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        tilt = len(levels) > 4  # long level names overlap when many sit side by side
        ax.set_xticks(x, levels, fontsize=8, rotation=20 if tilt else 0, ha="right" if tilt else "center")
        ax.margins(y=0.18)
        ax.tick_params(axis="y", labelsize=8)
    # one legend under the panels: inside a panel it would cover the bars
    bottom = 0.0
    if lags:
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncols=len(FORECASTS), fontsize=8, frameon=False)
        bottom = 0.35 / fig.get_figheight()
    fig.tight_layout(rect=(0, bottom, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


def _scored(plans: pd.DataFrame, actuals: pd.DataFrame, lags: Sequence[int] | None) -> pd.DataFrame:
    """Plan lines of the wanted lags joined to their actual; lines without one are dropped."""
    lines = with_lags(plans)
    if lags is not None:
        lines = lines[lines["lag"].isin(list(lags))]
    lines = lines.assign(ds=pd.to_datetime(lines["ds"]).astype("datetime64[ns]"))
    known = actuals.loc[actuals["y"].notna(), ["unique_id", "ds", "y"]]
    known = known.assign(ds=pd.to_datetime(known["ds"]).astype("datetime64[ns]"))
    return lines.drop(columns="y", errors="ignore").merge(known, on=["unique_id", "ds"], how="inner")


def _metrics(scored: pd.DataFrame, keys: list[str], forecasts: Sequence[str]) -> pd.DataFrame:
    """``n``, ``actual``, ``wape_<f>`` and ``bias_<f>`` per group of ``keys``.

    Each forecast is scored over the lines where it is known (a new series has no naive), so
    its denominator is the actual of those lines only.
    """
    y = scored["y"].astype(float)
    parts = {"n": y, "actual": y}
    for f in forecasts:
        error = scored[f].astype(float) - y
        parts[f"abs_{f}"] = error.abs()
        parts[f"err_{f}"] = error
        parts[f"scale_{f}"] = y.abs().where(error.notna())
    frame = pd.DataFrame(parts).join(scored[keys])
    grouped = frame.groupby(keys, sort=False)
    sums = grouped.sum(min_count=1)
    out = pd.DataFrame({"n": grouped["n"].size().astype("int64"), "actual": sums["actual"]})
    # an all-zero actual has no WAPE: NaN, not inf
    for f in forecasts:
        scale = sums[f"scale_{f}"].where(sums[f"scale_{f}"] > 0)
        out[f"wape_{f}"] = sums[f"abs_{f}"] / scale
    for f in forecasts:
        scale = sums[f"scale_{f}"].where(sums[f"scale_{f}"] > 0)
        out[f"bias_{f}"] = sums[f"err_{f}"] / scale
    return out


def _month_number(ds: pd.Series) -> pd.Series:
    """Months since year 0, so differences of two dates count calendar months."""
    ds = pd.to_datetime(ds)
    return ds.dt.year * 12 + ds.dt.month


def _first_seen(values: pd.Series) -> dict[object, int]:
    """Rank of each value by its first appearance."""
    return {v: i for i, v in enumerate(dict.fromkeys(values))}
