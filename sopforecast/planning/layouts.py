"""A plan version as files: long and wide tables, and the workbook a planner edits.

``long`` is one row per series and month; ``wide`` one row per series and one column per
month, the way an ERP import takes it (rounded to ``decimals``, some levels only if asked);
``planner`` the Excel workbook of :mod:`sopforecast.planning.workbook`, whose consensus
cells a planner edits and :func:`~sopforecast.planning.workbook.read_planner_workbook`
reads back.

Every text cell a spreadsheet would evaluate (``=``, ``+``, ``-``, ``@``, tab, CR) is written
with a leading ``'`` in CSV and Excel files (:func:`sopforecast.exports.neutralise`); Parquet
keeps the text as it is. Ids are text and written as they are (``00101``, ``NA``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

import pandas as pd

from ..errors import SopforecastError
from ..exports import neutralise, neutralise_text
from .lines import interval_columns

__all__ = ["LAYOUTS", "FORMATS", "ERP_DECIMALS", "long_layout", "wide_layout", "write_plan"]
# building blocks the planner workbook (:mod:`sopforecast.planning.workbook`) shares
__all__ += ["ordered_series", "month_labels", "value_grid", "write_atomically"]

LAYOUTS = ("long", "wide", "planner")
FORMATS = (".csv", ".xlsx", ".parquet")
#: Decimals an ERP import of the wide layout should get: demand plans are released in whole
#: base units (an ERP's planned independent requirements of a piece-counted item take no
#: fractions, and a fraction left to the ERP is rounded or refused line by line).
ERP_DECIMALS = 0
PLAN_SHEET, META_SHEET = "Plan", "_meta"


def long_layout(lines: pd.DataFrame, *, levels: Sequence[str] | None = None) -> pd.DataFrame:
    """The plan lines (:mod:`~sopforecast.planning.lines`) as a table, one row per series and month.

    Parameters
    ----------
    lines : pandas.DataFrame
        Plan lines.
    levels : sequence of str, optional
        Keep only these levels (``["Total", "category"]``); default every level.

    Returns
    -------
    pandas.DataFrame
        ``unique_id, level, ds, statistical, consensus, final``, the interval columns,
        ``author``; sorted by level (in the order levels first appear), ``unique_id``, ``ds``.
    """
    lines = _levels(lines, levels)
    columns = ["unique_id", "level", "ds", "statistical", "consensus", "final", *interval_columns(lines)]
    return _sorted(lines).reindex(columns=[*columns, "author"]).reset_index(drop=True)


def wide_layout(
    lines: pd.DataFrame,
    keys: pd.DataFrame | None,
    column: str = "final",
    *,
    decimals: int | None = None,
    levels: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per series, one column per month (``YYYY-MM``) holding ``column``.

    Parameters
    ----------
    lines : pandas.DataFrame
        Plan lines.
    keys : pandas.DataFrame or None
        :func:`~sopforecast.planning.lines.series_keys` of the hierarchy; ``None``: no key columns.
    column : str, default "final"
        The value shown per month.
    decimals : int, optional
        Round every month's value to this many decimals (0: whole units, as integers);
        default full precision. Each cell is rounded on its own, so a rounded aggregate
        may differ from the sum of its rounded children by a few units.
    levels : sequence of str, optional
        Keep only these levels (an ERP usually takes the bottom level only); default all.

    Returns
    -------
    pandas.DataFrame
        ``unique_id, level``, the key columns, then the months; rows in level order.
    """
    if column not in lines.columns:
        raise SopforecastError(f"the plan lines have no column {column!r}; choose one of {list(lines)}")
    if decimals is not None and (isinstance(decimals, bool) or not isinstance(decimals, int) or decimals < 0):
        raise SopforecastError(
            f"decimals must be a whole number of 0 or more, got {decimals!r}", setting="decimals"
        )
    ordered, head = ordered_series(_levels(lines, levels), keys)
    months = sorted(set(ordered["month"]))
    wide = value_grid(ordered, column, head.index, months)
    if decimals is not None:
        wide = wide.round(decimals)
        if decimals == 0:  # whole units: written 12, not 12.0
            wide = wide.astype("Int64")
    out = pd.concat([head, wide], axis=1).rename_axis("unique_id").reset_index()
    out.columns.name = None
    return out


def write_plan(
    lines: pd.DataFrame,
    path: str | Path,
    *,
    layout: str = "long",
    keys: pd.DataFrame | None = None,
    history: pd.DataFrame | None = None,
    meta: dict | None = None,
    decimals: int | None = None,
    levels: Sequence[str] | None = None,
) -> Path:
    """Write a plan version to ``path`` in the format of its extension, atomically.

    Parameters
    ----------
    lines : pandas.DataFrame
        Plan lines.
    path : str or Path
        Target file: ``.csv``, ``.xlsx`` or ``.parquet``.
    layout : {"long", "wide", "planner"}, default "long"
        ``planner``, the editable workbook, needs ``.xlsx`` and ``history``.
    keys, history : pandas.DataFrame, optional
        Key columns of every series (``wide``, ``planner``); actual demand (``planner``).
    meta : dict, optional
        What was exported: ``plan``, ``cycle``, ``version_id``, ``number``, ``name``,
        ``status``, ``revision``. Kept with a ``checksum``
        (:func:`~sopforecast.planning.staleness.lines_checksum`) in the hidden sheet of a
        workbook; csv and parquet files carry no meta.
    decimals : int, optional
        ``wide`` only: round to this many decimals (:data:`ERP_DECIMALS` for an ERP
        import); default full precision.
    levels : sequence of str, optional
        ``long`` and ``wide``: only these levels; default all (the planner workbook always
        has every level, so its aggregates add up).

    Returns
    -------
    Path
        The file written. A failed export leaves no file (and an older one untouched).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise SopforecastError(
            f"cannot write a plan as {suffix or 'a file without extension'!r} ({path.name}); "
            f"use one of {', '.join(FORMATS)}"
        )
    if layout not in LAYOUTS:
        raise SopforecastError(f"unknown plan layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    if layout == "planner":
        from .workbook import write_planner_workbook

        if suffix != ".xlsx":
            raise SopforecastError(f"the planner layout is a workbook: name the file .xlsx, not {suffix}")
        if history is None:
            raise SopforecastError("the planner layout shows actual demand: pass the history")
        if levels is not None or decimals is not None:
            raise SopforecastError(
                "the planner workbook has every level at full precision, so that edits read back exactly; "
                "choose levels and decimals for the long or wide layout",
                setting="levels" if levels is not None else "decimals",
            )
        return write_planner_workbook(lines, keys, history, path, meta)
    if layout == "long":
        frame = long_layout(lines, levels=levels)
    else:
        frame = wide_layout(lines, keys, decimals=decimals, levels=levels)
    if suffix == ".xlsx":
        from .staleness import lines_checksum

        meta = {**(meta or {}), "checksum": lines_checksum(lines)}
    return write_atomically(path, lambda tmp: _write_frame(frame, tmp, suffix, meta))


def __getattr__(name: str):
    # the planner workbook moved to its own module; these names stay importable from here
    if name in ("write_planner_workbook", "read_planner_workbook"):
        from . import workbook

        return getattr(workbook, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _levels(lines: pd.DataFrame, levels: Sequence[str] | None) -> pd.DataFrame:
    """The lines of ``levels`` only (all when ``None``); an unknown level is an error."""
    if levels is None:
        return lines
    if isinstance(levels, str):
        levels = [levels]
    known = list(pd.unique(lines["level"]))
    unknown = [lv for lv in levels if lv not in known]
    if unknown or not levels:
        raise SopforecastError(
            f"level(s) {unknown or list(levels)} not in the plan; choose from {known}", setting="levels"
        )
    return lines[lines["level"].isin(list(levels))]


def _sorted(lines: pd.DataFrame) -> pd.DataFrame:
    """Lines by level (in the order levels first appear), then ``unique_id`` and ``ds``."""
    order = pd.Categorical(lines["level"], categories=pd.unique(lines["level"]), ordered=True)
    return lines.assign(_order=order).sort_values(["_order", "unique_id", "ds"]).drop(columns="_order")


def ordered_series(lines: pd.DataFrame, keys: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sorted lines with their ``month``; ``level`` and key columns of every series in that order."""
    ordered = _sorted(lines).assign(month=lambda f: month_labels(f["ds"]))
    head = ordered.drop_duplicates("unique_id").set_index("unique_id")[["level"]]
    if keys is not None:  # keys below a series' level (or of unknown series) stay empty
        head = head.join(keys.reindex(head.index).astype(object).where(lambda k: k.notna(), None))
    return ordered, head


def month_labels(ds: pd.Series) -> list[str]:
    """``YYYY-MM`` of every date (formatted once per distinct date: strftime is slow)."""
    codes, uniques = pd.factorize(pd.to_datetime(ds))
    return pd.DatetimeIndex(uniques).strftime("%Y-%m").to_numpy()[codes].tolist()


def value_grid(frame: pd.DataFrame, column: str, ids: pd.Index, months: list[str]) -> pd.DataFrame:
    """``column`` by series (rows ``ids``) and month (columns ``months``); blank where absent."""
    values = frame.groupby(["unique_id", "month"])[column].sum(min_count=1)
    return values.unstack().reindex(ids, columns=months)


def _excel_value(value):
    """A meta value openpyxl can store: scalars as they are, anything else as text."""
    return value if value is None or isinstance(value, str | int | float | bool | date) else str(value)


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Run ``write`` on a temporary file next to ``path``, then move it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # same folder so os.replace is a rename; the real suffix so writers pick the right format
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _write_frame(frame: pd.DataFrame, path: Path, suffix: str, meta: dict | None) -> None:
    """Write a long or wide table as csv, parquet or a workbook (meta in a hidden sheet);
    text cells of csv and workbooks neutralised."""
    if suffix == ".csv":
        neutralise(frame).to_csv(path, index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        with pd.ExcelWriter(path, engine="openpyxl", datetime_format="YYYY-MM-DD") as xw:
            neutralise(frame).to_excel(xw, sheet_name=PLAN_SHEET, index=False, freeze_panes=(1, 0))
            if meta:
                rows = [(neutralise_text(str(k)), neutralise_text(_excel_value(v))) for k, v in meta.items()]
                pd.DataFrame(rows, columns=["key", "value"]).to_excel(xw, sheet_name=META_SHEET, index=False)
                xw.book[META_SHEET].sheet_state = "hidden"
