"""The plan in money: prices, revenue and margin per series, and the gap to the budget.

Prices sit on bottom series only (per series, or per month where a price list gives months);
revenue and cost are computed on the bottom lines and summed up the hierarchy, so every
aggregate's revenue is the sum of its children's. Units without a price add no revenue and
are counted in ``unpriced_units``, so a view says how much of the volume it leaves out.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.hierarchy import PATH_SEP
from ..data.io import read_source
from ..errors import DataError, format_examples, format_rows
from .lines import rollup

__all__ = ["prices_from_history", "prices_from_cost", "read_prices", "attach_prices", "revenue"]
__all__ += ["read_budget", "budget_gap"]

logger = logging.getLogger(__name__)

_PERIODS = ("month", "quarter", "year")


def prices_from_history(history: pd.DataFrame, *, price_col: str = "price", months: int = 12) -> pd.DataFrame:
    """Price per bottom series (``history``: ``unique_id, ds, price_col``): the mean of its last
    ``months`` months with a positive price.

    Returns
    -------
    pandas.DataFrame
        ``unique_id, price``; NaN (and a logged warning) where no month had a positive price.
    """
    _require(history, ["unique_id", "ds", price_col], "the history")
    price = pd.to_numeric(history[price_col], errors="coerce")
    priced = history.assign(price=price)[price > 0].sort_values("ds", kind="stable")
    mean = priced.groupby("unique_id").tail(months).groupby("unique_id")["price"].mean()
    return _per_series(history, mean, "no positive price")


def prices_from_cost(
    history: pd.DataFrame, *, cost_col: str = "Cost", units_col: str = "y", months: int = 12
) -> pd.DataFrame:
    """Price per bottom series as ``sum(cost_col) / sum(units_col)`` over its last ``months`` months.

    The PBS way: the data holds what was paid in total, not a unit price. The window is
    calendar months up to the series' last month; a series without units in it falls back to
    its whole history.

    Returns
    -------
    pandas.DataFrame
        ``unique_id, price``; NaN (and a logged warning) for series that never sold a unit.
    """
    _require(history, ["unique_id", "ds", cost_col, units_col], "the history")
    month = _month_number(history["ds"])
    recent = month > month.groupby(history["unique_id"]).transform("max") - months
    cost = pd.to_numeric(history[cost_col], errors="coerce").fillna(0.0)
    units = pd.to_numeric(history[units_col], errors="coerce").fillna(0.0)
    frame = pd.DataFrame({"cost": cost, "units": units})
    whole = frame.groupby(history["unique_id"]).sum()
    last = frame.where(recent, 0.0).groupby(history["unique_id"]).sum()
    price = (last["cost"] / last["units"].where(last["units"] > 0)).fillna(
        whole["cost"] / whole["units"].where(whole["units"] > 0)
    )
    return _per_series(history, price, "no units")


def read_prices(path: str | Path, keys: list[str]) -> pd.DataFrame:
    """Read a price list (CSV or Excel): ``unique_id`` or the key columns, ``price``, optional
    ``unit_cost`` and ``month`` (``YYYY-MM``: a price from that month on).

    Parameters
    ----------
    keys : list of str
        The hierarchy's key columns, joined with ``/`` into ``unique_id`` when the file has none.

    Returns
    -------
    pandas.DataFrame
        ``unique_id``, ``ds`` (if the file has months; empty = every month), ``price``,
        ``unit_cost`` (if given). A :class:`DataError` names the file, column and rows at fault.
    """
    raw, where = _read(path, ["price"])
    if "unique_id" in raw.columns:
        ids = raw["unique_id"].astype(str).str.strip()
    else:
        _require(raw, keys, where, hint="give a unique_id column or every key column")
        ids = raw[keys].astype(str).apply(lambda c: c.str.strip()).agg(PATH_SEP.join, axis=1)
    out = pd.DataFrame({"unique_id": ids})
    if "month" in raw.columns:
        out["ds"] = _months(raw, where, required=False)
    out["price"] = _amounts(raw, "price", where, required=True)
    if "unit_cost" in raw.columns:
        out["unit_cost"] = _amounts(raw, "unit_cost", where, required=False)
    shown = ["unique_id"] if "unique_id" in raw.columns else list(keys)
    _no_duplicates(raw, out, ["unique_id", "ds"], where, [*shown, *(["month"] if "ds" in out else [])])
    return out


def attach_prices(
    lines: pd.DataFrame, prices: pd.DataFrame, *, bottom: Iterable[str] | None = None
) -> pd.DataFrame:
    """Set ``price`` (and ``unit_cost``) on the bottom lines of a plan; aggregates stay NaN.

    Parameters
    ----------
    prices : pandas.DataFrame
        From :func:`read_prices` or ``prices_from_*``. A monthly price (``ds``) holds from its
        month until the next; a row without a month fills the months before the first one;
        failing that a series takes its first monthly price.
    bottom : iterable of str, optional
        The bottom series ids (``S.columns``); default the level with the most series.

    Returns
    -------
    pandas.DataFrame
        A copy of ``lines`` with ``price`` and, when ``prices`` has it, ``unit_cost``.
    """
    values = [c for c in ("price", "unit_cost") if c in prices.columns]
    out = lines.drop(columns=values, errors="ignore")
    ids = set(bottom) if bottom is not None else _bottom_ids(lines)
    rows = out.loc[out["unique_id"].isin(ids), ["unique_id", "ds"]]
    rows = rows.assign(ds=_month_start(rows["ds"]))
    dated = prices["ds"].notna() if "ds" in prices.columns else pd.Series(False, index=prices.index)
    flat = prices.loc[~dated, ["unique_id", *values]].drop_duplicates("unique_id", keep="last")
    found = rows.merge(flat, on="unique_id", how="left").set_index(rows.index)[values]
    if dated.any():
        monthly = prices.loc[dated, ["unique_id", "ds", *values]].assign(ds=lambda f: _month_start(f["ds"]))
        monthly = monthly.sort_values("ds")
        ordered = rows.assign(row=rows.index).sort_values("ds")
        back, ahead = (
            pd.merge_asof(ordered, monthly, on="ds", by="unique_id", direction=d).set_index("row")[values]
            for d in ("backward", "forward")
        )
        found = back.combine_first(found).combine_first(ahead).reindex(index=rows.index, columns=values)
    for col in values:
        out[col] = found[col].reindex(out.index).astype(float)
    return out


def revenue(lines: pd.DataFrame, S: pd.DataFrame, column: str = "final") -> pd.DataFrame:
    """Units, revenue, cost and margin of every series and month, summed up from the bottom.

    Parameters
    ----------
    lines : pandas.DataFrame
        Plan lines with ``price`` (and ``unit_cost``) on the bottom lines (:func:`attach_prices`).
    S : pandas.DataFrame
        The summing frame of :func:`sopforecast.planning.lines.summing`.

    Returns
    -------
    pandas.DataFrame
        ``unique_id, level, ds, units, revenue, cost, margin, unpriced_units``. Revenue, cost
        and margin cover priced units only. Cost (and margin) is NaN where a priced unit has
        no ``unit_cost``, and everywhere when no line has one.
    """
    bottom = lines[lines["unique_id"].isin(S.columns)]
    units = bottom[column].astype(float).fillna(0.0)
    price = bottom["price"].astype(float) if "price" in bottom else pd.Series(np.nan, index=bottom.index)
    unit_cost = bottom["unit_cost"].astype(float) if "unit_cost" in bottom else price * np.nan
    priced = price.notna()
    parts = bottom[["unique_id", "ds"]].assign(
        units=units,
        revenue=(units * price).where(priced, 0.0),
        cost=(units * unit_cost).where(priced, 0.0).fillna(0.0),
        # a priced unit without a cost makes the cost of every series above it unknown
        uncosted=(units.abs() * (priced & unit_cost.isna())),
        unpriced_units=units.where(~priced, 0.0),
    )
    measures = ["units", "revenue", "cost", "uncosted", "unpriced_units"]
    view = pd.concat([rollup(parts, S, m) for m in measures], axis=1).reset_index()
    # no unit cost anywhere: the plan has no cost, not a cost of zero
    view["cost"] = view["cost"].where((view["uncosted"] == 0) & unit_cost.notna().any())
    view["margin"] = view["revenue"] - view["cost"]
    view["level"] = view["unique_id"].map(lines.drop_duplicates("unique_id").set_index("unique_id")["level"])
    return view[["unique_id", "level", "ds", "units", "revenue", "cost", "margin", "unpriced_units"]]


def read_budget(path: str | Path) -> pd.DataFrame:
    """Read the annual operating plan: ``key``, ``month`` (``YYYY-MM``), ``revenue`` and/or ``units``.

    Returns
    -------
    pandas.DataFrame
        ``key, ds`` and the measures the file has. A :class:`DataError` names the file, column
        and rows at fault.
    """
    raw, where = _read(path, ["key", "month"])
    measures = [c for c in ("revenue", "units") if c in raw.columns]
    if not measures:
        raise DataError(f"{where}: no revenue or units column. Add one (or both) beside key and month.")
    out = pd.DataFrame({"key": raw["key"].astype(str).str.strip(), "ds": _months(raw, where, required=True)})
    for m in measures:
        out[m] = _amounts(raw, m, where, required=True)
    _no_duplicates(raw, out, ["key", "ds"], where, ["key", "month"])
    return out


def budget_gap(view: pd.DataFrame, budget: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Plan against budget by month, quarter and year.

    Parameters
    ----------
    view, budget : pandas.DataFrame
        From :func:`revenue` (``unique_id, ds``, measures) and :func:`read_budget` (``key``, a
        series id, ``ds``, ``revenue`` and/or ``units``).

    Returns
    -------
    dict of str to pandas.DataFrame
        ``"month"``, ``"quarter"``, ``"year"``: ``key, measure, period`` (``2027-01``,
        ``2027-Q1``, ``2027``), ``months`` compared, ``plan, budget, gap`` (plan - budget) and
        ``gap_pct`` (gap / budget). Only months in both are compared, so a period the plan
        covers in part says so in ``months``.
    """
    measures = [m for m in ("revenue", "units") if m in budget.columns and m in view.columns]
    if not measures:
        raise DataError("the budget and the plan share no measure: give revenue or units in the budget.")
    unknown = sorted(set(budget["key"]) - set(view["unique_id"]))
    if len(unknown) == budget["key"].nunique():
        raise DataError(
            f"no budget key is a series of the plan: {format_examples(unknown)}. "
            f"Use series ids such as {format_examples(view['unique_id'].drop_duplicates().head(5))}."
        )
    if unknown:
        logger.warning("Budget keys not in the plan, left out: %s", format_examples(unknown))
    plan = view.rename(columns={"unique_id": "key"}).assign(ds=lambda f: _month_start(f["ds"]))
    plan = plan.melt(["key", "ds"], measures, "measure", "plan").groupby(["key", "ds", "measure"]).sum()
    goal = budget.assign(ds=_month_start(budget["ds"])).melt(["key", "ds"], measures, "measure", "budget")
    both = goal.join(plan, on=["key", "ds", "measure"], how="inner").dropna(subset=["plan", "budget"])
    both = both.assign(months=1)
    out = {}
    for name, period in zip(_PERIODS, _period_labels(both["ds"]), strict=True):
        table = both.assign(period=period).groupby(["key", "measure", "period"], as_index=False)
        table = table[["months", "plan", "budget"]].sum()
        table["gap"] = table["plan"] - table["budget"]
        table["gap_pct"] = table["gap"] / table["budget"].where(table["budget"] != 0)
        out[name] = table
    return out


def _read(path: str | Path, needed: list[str]) -> tuple[pd.DataFrame, str]:
    """A price or budget file with its column names trimmed and lower-cased; ``needed`` checked.

    Cells are read as written, so keys stay text (``00101``, ``NA``); empty cells of the
    amount and month columns are missing values.
    """
    raw = read_source(path, as_text=True)
    raw.columns = [str(c).strip() for c in raw.columns]
    # the fixed column names may come in any case from a spreadsheet; key columns keep theirs
    fixed = {"unique_id", "price", "unit_cost", "month", "key", "revenue", "units"}
    raw = raw.rename(columns={c: c.lower() for c in raw.columns if c.lower() in fixed})
    where = str(Path(path))
    _require(raw, needed, where)
    for col in fixed - {"unique_id", "key", "month"} & set(raw.columns):
        raw[col] = raw[col].map(_cell_number).astype(object)
    if "month" in raw.columns:
        raw["month"] = raw["month"].where(raw["month"].astype(str).str.strip() != "", None)
    return raw, where


def _cell_number(text):
    """An amount cell as a float; ``None`` when empty; the text when it is no number."""
    if text is None or not str(text).strip():
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _require(frame: pd.DataFrame, columns: list[str], where: str, hint: str = "") -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{where}: missing column{'s' if len(missing) > 1 else ''} {format_examples(missing)}"
            f"{f' ({hint})' if hint else ''}. Columns there: {format_examples(list(frame.columns), 12)}."
        )


def _amounts(raw: pd.DataFrame, col: str, where: str, *, required: bool) -> pd.Series:
    """``col`` as numbers; raises naming the rows that are not numbers (or empty, if required)
    or are negative."""
    values = pd.to_numeric(raw[col], errors="coerce")
    bad = values.isna() & (raw[col].notna() | required)
    if bad.any():
        raise DataError(f"{where}: column {col!r} must be a number:\n{format_rows(raw, bad, [col])}")
    if (values < 0).any():
        raise DataError(
            f"{where}: column {col!r} must not be negative:\n{format_rows(raw, values < 0, [col])}"
        )
    return values.astype(float)


def _months(raw: pd.DataFrame, where: str, *, required: bool) -> pd.Series:
    text = raw["month"].astype("string").str.strip().str[:7]
    ds = pd.to_datetime(text, format="%Y-%m", errors="coerce")
    bad = ds.isna() & (raw["month"].notna() | required)
    if bad.any():
        raise DataError(f"{where}: column 'month' must read YYYY-MM:\n{format_rows(raw, bad, ['month'])}")
    return ds


def _no_duplicates(raw: pd.DataFrame, out: pd.DataFrame, cols: list[str], where: str, shown: list) -> None:
    dup = out.duplicated([c for c in cols if c in out.columns], keep=False).to_numpy()
    if dup.any():
        raise DataError(f"{where}: rows given twice; keep one:\n{format_rows(raw, dup, shown)}")


def _per_series(history: pd.DataFrame, price: pd.Series, why: str) -> pd.DataFrame:
    """``unique_id, price`` for every series of ``history``; warns how many have none."""
    ids = history["unique_id"].drop_duplicates()
    out = pd.DataFrame({"unique_id": ids.to_numpy(), "price": price.reindex(ids).to_numpy(dtype=float)})
    missing = int(out["price"].isna().sum())
    if missing:
        logger.warning("%d series without a price (%s): their units add no revenue", missing, why)
    return out


def _bottom_ids(lines: pd.DataFrame) -> set:
    """Ids of the level with the most series: the bottom (every other level coarsens it)."""
    counts = lines.groupby("level", sort=False)["unique_id"].nunique()
    return set(lines.loc[lines["level"] == counts[::-1].idxmax(), "unique_id"])


def _month_number(ds: pd.Series) -> pd.Series:
    ds = pd.to_datetime(ds)
    return ds.dt.year * 12 + ds.dt.month


def _month_start(ds: pd.Series) -> pd.Series:
    return pd.to_datetime(ds).dt.to_period("M").dt.to_timestamp().astype("datetime64[ns]")


def _period_labels(ds: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    year = ds.dt.year.astype(str)
    return ds.dt.strftime("%Y-%m"), year + "-Q" + ds.dt.quarter.astype(str), year
