"""A plan version as files: long and wide tables, and the workbook a planner edits.

``long`` is one row per series and month; ``wide`` one row per series and one column per
month, the way an ERP import takes it; ``planner`` an Excel workbook with a yellow, editable
``consensus`` row per series. That workbook keeps what it exported in a hidden sheet, so
:func:`read_planner_workbook` returns only the cells a planner changed.
"""

from __future__ import annotations

import os
import re
import secrets
import zipfile
from collections.abc import Callable
from copy import copy
from datetime import date
from itertools import zip_longest
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import SopforecastError
from .lines import interval_columns

__all__ = [
    "LAYOUTS",
    "FORMATS",
    "long_layout",
    "wide_layout",
    "write_plan",
    "write_planner_workbook",
    "read_planner_workbook",
]

LAYOUTS = ("long", "wide", "planner")
FORMATS = (".csv", ".xlsx", ".parquet")
PLAN_SHEET, README_SHEET, EXPORT_SHEET, META_SHEET = "Plan", "Read me", "_export", "_meta"
HISTORY_MONTHS = 12
NUMBER_FORMAT = "#,##0"
RTOL = 1e-6  # relative change that counts as an edit; Excel keeps 15 digits, so no float noise
_EXPORT_HEADER = ["meta_key", "meta_value", None, "unique_id", "month", "value"]
_MONTH = re.compile(r"^\d{4}-\d{2}$")
_HEADER_ROW = 2  # row 1 holds the note on what to edit
_ABSENT = object()  # a month the export has no value for (a history month)
_README = """How to edit this plan

1. Edit only the yellow 'consensus' cells of the sheet 'Plan'; other rows are not read.
2. Type the number you plan for that series and month. Enter 0 for zero: a blank cell is an error.
3. An edit on an aggregate (a family, a region, the Total) is spread over its children
   in proportion to their statistical forecast.
4. Sorting, filtering and moving rows is fine; do not rename headers or series.
5. Save the workbook, then apply the changes:
   sopforecast override apply plan.xlsx --author NAME --reason TEXT

Grey month headers are actual demand (history), blue ones the plan months.""".splitlines()


def long_layout(lines: pd.DataFrame) -> pd.DataFrame:
    """The plan lines (:mod:`~sopforecast.planning.lines`) as a table, one row per series and month.

    Returns
    -------
    pandas.DataFrame
        ``unique_id, level, ds, statistical, consensus, final``, the interval columns,
        ``author``; sorted by level (in the order levels first appear), ``unique_id``, ``ds``.
    """
    columns = ["unique_id", "level", "ds", "statistical", "consensus", "final", *interval_columns(lines)]
    return _sorted(lines).reindex(columns=[*columns, "author"]).reset_index(drop=True)


def wide_layout(lines: pd.DataFrame, keys: pd.DataFrame | None, column: str = "final") -> pd.DataFrame:
    """One row per series, one column per month (``YYYY-MM``) holding ``column``.

    Parameters
    ----------
    lines : pandas.DataFrame
        Plan lines.
    keys : pandas.DataFrame or None
        :func:`~sopforecast.planning.lines.series_keys` of the hierarchy; ``None``: no key columns.
    column : str, default "final"
        The value shown per month.

    Returns
    -------
    pandas.DataFrame
        ``unique_id, level``, the key columns, then the months; rows in level order.
    """
    if column not in lines.columns:
        raise SopforecastError(f"the plan lines have no column {column!r}; choose one of {list(lines)}")
    ordered, head = _ordered(lines, keys)
    wide = _grid(ordered, column, head.index, sorted(set(ordered["month"])))
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
        Version id, plan name, cycle, status: kept in a hidden sheet of a workbook, ignored
        for csv and parquet.

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
        if suffix != ".xlsx":
            raise SopforecastError(f"the planner layout is a workbook: name the file .xlsx, not {suffix}")
        if history is None:
            raise SopforecastError("the planner layout shows actual demand: pass the history")
        return write_planner_workbook(lines, keys, history, path, meta)
    frame = long_layout(lines) if layout == "long" else wide_layout(lines, keys)
    return _atomic(path, lambda tmp: _write_frame(frame, tmp, suffix, meta))


def write_planner_workbook(
    lines: pd.DataFrame,
    keys: pd.DataFrame | None,
    history: pd.DataFrame,
    path: str | Path,
    meta: dict | None = None,
) -> Path:
    """Write the workbook a planner edits: sheets ``Plan``, ``Read me`` and hidden ``_export``.

    ``Plan`` has three rows per series: ``history`` (actuals; the 12 months before the plan
    have their own columns), ``statistical`` and ``consensus`` (prefilled with ``final``, the
    yellow editable row). ``_export`` keeps ``meta`` and the exported consensus values.

    Parameters
    ----------
    lines, keys, history : pandas.DataFrame
        Plan lines; :func:`~sopforecast.planning.lines.series_keys` (or ``None``);
        ``unique_id, ds, y``, monthly actual demand of every series.
    path : str or Path
        Target ``.xlsx`` file, written atomically.
    meta : dict, optional
        Version id, plan name, cycle, status, ...

    Returns
    -------
    Path
        The file written.
    """
    from openpyxl import Workbook

    if lines.empty:
        raise SopforecastError("the plan has no lines to export")
    ordered, head = _ordered(lines, keys)
    plan_months = sorted(set(ordered["month"]))
    months = _history_months(history, plan_months[0]) + plan_months
    grids = {
        "history": _grid(history.assign(month=_months(history["ds"])), "y", head.index, months),
        "statistical": _grid(ordered, "statistical", head.index, months),
        "consensus": _grid(ordered, "final", head.index, months),
    }
    wb = Workbook(write_only=True)
    _write_plan_sheet(wb.create_sheet(PLAN_SHEET), head, months, set(plan_months), grids)
    readme = wb.create_sheet(README_SHEET)
    readme.column_dimensions["A"].width = 100
    for text in [*_README, "", *(f"{k}: {v}" for k, v in (meta or {}).items())]:
        readme.append([text])
    export = wb.create_sheet(EXPORT_SHEET)
    export.sheet_state = "hidden"
    export.append(_EXPORT_HEADER)
    flat = grids["consensus"][plan_months].stack(future_stack=True)  # keep blanks: they stay blank
    values = [(uid, month, None if np.isnan(v) else v) for (uid, month), v in flat.items()]
    items = [(str(k), _excel_value(v)) for k, v in (meta or {}).items()]
    for pair, value in zip_longest(items, values, fillvalue=(None, None, None)):
        export.append([*pair[:2], None, *value])
    return _atomic(Path(path), wb.save)


def read_planner_workbook(path: str | Path, *, author: str, reason: str) -> tuple[pd.DataFrame, dict]:
    """The consensus cells a planner changed in a workbook of :func:`write_planner_workbook`.

    Rows are found by ``unique_id`` and ``measure``, months by header text, so sorted,
    filtered or moved rows read the same. A cell is changed when it differs from its exported
    value by more than 1e-6 (relative).

    Parameters
    ----------
    path : str or Path
        The edited workbook.
    author, reason : str
        Who changed the plan and why, copied to every override.

    Returns
    -------
    (overrides, meta)
        ``overrides``: ``key, month, value, author, reason, row, source``, one row per changed
        cell (``row``: its Excel row); ``meta``: the meta the workbook was exported with.
    """
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    path = Path(path)
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (OSError, KeyError, InvalidFileException, zipfile.BadZipFile) as exc:  # not a workbook
        raise SopforecastError(f"cannot open {path} as an Excel workbook: {exc}") from exc
    try:
        if EXPORT_SHEET not in wb.sheetnames or PLAN_SHEET not in wb.sheetnames:
            raise SopforecastError(
                f"{path.name} was not exported by `sopforecast plan export --layout planner` (no sheet "
                f"{EXPORT_SHEET!r} or {PLAN_SHEET!r}); export the plan that way and edit that workbook"
            )
        meta, exported = _read_export(wb[EXPORT_SHEET])
        ws = wb[PLAN_SHEET]
        ws.reset_dimensions()  # some tools store a wrong sheet size; read every row there is
        changes = _read_changes(ws.iter_rows(values_only=True), exported, path.name)
    finally:
        wb.close()
    out = pd.DataFrame(changes, columns=["key", "month", "value", "row"]).astype({"value": float, "row": int})
    out = out.assign(author=author, reason=reason, source=path.name)
    return out[["key", "month", "value", "author", "reason", "row", "source"]], meta


def _sorted(lines: pd.DataFrame) -> pd.DataFrame:
    """Lines by level (in the order levels first appear), then ``unique_id`` and ``ds``."""
    order = pd.Categorical(lines["level"], categories=pd.unique(lines["level"]), ordered=True)
    return lines.assign(_order=order).sort_values(["_order", "unique_id", "ds"]).drop(columns="_order")


def _ordered(lines: pd.DataFrame, keys: pd.DataFrame | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sorted lines with their ``month``; ``level`` and key columns of every series in that order."""
    ordered = _sorted(lines).assign(month=lambda f: _months(f["ds"]))
    head = ordered.drop_duplicates("unique_id").set_index("unique_id")[["level"]]
    if keys is not None:  # keys below a series' level (or of unknown series) stay empty
        head = head.join(keys.reindex(head.index).astype(object).where(lambda k: k.notna(), None))
    return ordered, head


def _months(ds: pd.Series) -> list[str]:
    """``YYYY-MM`` of every date (formatted once per distinct date: strftime is slow)."""
    codes, uniques = pd.factorize(pd.to_datetime(ds))
    return pd.DatetimeIndex(uniques).strftime("%Y-%m").to_numpy()[codes].tolist()


def _grid(frame: pd.DataFrame, column: str, ids: pd.Index, months: list[str]) -> pd.DataFrame:
    """``column`` by series (rows ``ids``) and month (columns ``months``); blank where absent."""
    values = frame.groupby(["unique_id", "month"])[column].sum(min_count=1)
    return values.unstack().reindex(ids, columns=months)


def _history_months(history: pd.DataFrame, first_plan: str) -> list[str]:
    """The :data:`HISTORY_MONTHS` calendar months up to the last actual before the plan."""
    before = [m for m in _months(history["ds"]) if m < first_plan]
    if not before:
        return []
    return pd.period_range(end=max(before), periods=HISTORY_MONTHS, freq="M").strftime("%Y-%m").tolist()


def _excel_value(value):
    """A meta value openpyxl can store: scalars as they are, anything else as text."""
    return value if value is None or isinstance(value, str | int | float | bool | date) else str(value)


def _atomic(path: Path, write: Callable[[Path], object]) -> Path:
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
    """Write a long or wide table as csv, parquet or a workbook (meta in a hidden sheet)."""
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        with pd.ExcelWriter(path, engine="openpyxl", datetime_format="YYYY-MM-DD") as xw:
            frame.to_excel(xw, sheet_name=PLAN_SHEET, index=False, freeze_panes=(1, 0))
            if meta:
                rows = [(str(k), _excel_value(v)) for k, v in meta.items()]
                pd.DataFrame(rows, columns=["key", "value"]).to_excel(xw, sheet_name=META_SHEET, index=False)
                xw.book[META_SHEET].sheet_state = "hidden"


def _write_plan_sheet(ws, head: pd.DataFrame, months: list[str], planned: set, grids: dict) -> None:
    """Fill the write-only ``Plan`` sheet: a note, the header, then one row per series and measure."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter as letter

    def cell(value, fill=None, bold=False, fmt=None):
        c = WriteOnlyCell(ws, value=value)
        c.font = Font(bold=bold)
        if fill:
            c.fill = PatternFill("solid", fgColor=fill)
        if fmt:
            c.number_format = fmt
        return c

    labels = ["level", "unique_id", *head.columns[1:], "measure"]
    first = len(labels) + 1  # first month column
    for col in range(1, first + len(months)):
        ws.column_dimensions[letter(col)].width = 10 if col >= first else 16
    ws.freeze_panes = f"{letter(first)}{_HEADER_ROW + 1}"
    ws.auto_filter.ref = f"A{_HEADER_ROW}:{letter(first + len(months) - 1)}{_HEADER_ROW + 3 * len(head)}"
    ws.append(
        [cell("Edit only the yellow consensus cells; the sheet 'Read me' says how to apply them.", bold=True)]
    )
    headers = [cell(m, "DDEBF7" if m in planned else "D9D9D9", True) for m in months]
    ws.append([*(cell(t, bold=True) for t in labels), *headers])
    # styles are looked up per assignment, which would dominate the time: copy two templates
    styles = {False: cell(0, fmt=NUMBER_FORMAT)._style, True: cell(0, "FFF2CC", fmt=NUMBER_FORMAT)._style}
    arrays = {k: g.to_numpy(float) for k, g in grids.items()}
    editable = [m in planned for m in months]

    def number(value, edit):
        if np.isnan(value) and not edit:  # editable cells stay yellow when blank
            return None
        c = WriteOnlyCell(ws, value=None if np.isnan(value) else float(value))
        c._style = copy(styles[edit])
        return c

    for i, (uid, level, *key_values) in enumerate(head.itertuples(index=True, name=None)):
        for measure, grid in arrays.items():
            edit = [measure == "consensus" and e for e in editable]
            ws.append([level, uid, *key_values, measure, *map(number, grid[i], edit)])


def _read_export(ws) -> tuple[dict, dict]:
    """Meta and the exported consensus values ``{(unique_id, month): value or None}``."""
    rows = ws.iter_rows(values_only=True)
    if list(next(rows, ()))[: len(_EXPORT_HEADER)] != _EXPORT_HEADER:
        raise SopforecastError(f"the hidden sheet {EXPORT_SHEET!r} was changed; export the plan again")
    meta, exported = {}, {}
    for key, value, _, uid, month, number, *_ in (r + (None,) * 6 for r in rows):
        if key is not None:
            meta[str(key)] = value
        if uid is not None:
            exported[(str(uid), str(month))] = None if number is None else float(number)
    return meta, exported


def _read_changes(rows, exported: dict, source: str) -> list[tuple]:
    """``(key, month, value, row)`` of every consensus cell that differs from its exported value."""
    from openpyxl.utils import get_column_letter as letter

    ids = {uid for uid, _ in exported}
    header, seen, changes = None, set(), []
    for number, row in enumerate(rows, start=1):
        if header is None:  # the header is the first row naming unique_id and measure
            if "unique_id" in row and "measure" in row:
                header = row
                uid_col, measure_col = header.index("unique_id"), header.index("measure")
                months = {j: m for j, h in enumerate(header) if (m := _month_label(h))}
            continue
        if len(row) <= max(uid_col, measure_col) or row[measure_col] != "consensus":
            continue
        uid, where = str(row[uid_col]), f"{PLAN_SHEET}!{letter(uid_col + 1)}{number}"
        if uid not in ids:
            raise SopforecastError(f"{where}: series {uid!r} was not exported; edit the exported rows only")
        if uid in seen:
            raise SopforecastError(f"{where}: a second consensus row for {uid!r}; delete the copy")
        seen.add(uid)
        for j, month in months.items():
            cell = f"{PLAN_SHEET}!{letter(j + 1)}{number}"
            value = _number(row[j] if j < len(row) else None, cell)
            old = exported.get((uid, month), _ABSENT)
            if old is _ABSENT:
                if value is not None:
                    raise SopforecastError(f"{cell}: {month} is not a plan month of {uid!r}; clear the cell")
            elif value is None and old is not None:
                raise SopforecastError(
                    f"{cell}: the consensus of {uid!r} for {month} is blank (it was {old:,.2f}); "
                    "enter 0 if you mean zero, or the exported value to keep it"
                )
            elif value is not None and (old is None or abs(value - old) > RTOL * max(abs(value), abs(old))):
                changes.append((uid, month, value, number))
    if header is None:
        raise SopforecastError(f"{source}: the sheet {PLAN_SHEET!r} has no header with unique_id and measure")
    return changes


def _month_label(header) -> str | None:
    """``YYYY-MM`` of a month header (text, or a date if a spreadsheet converted it)."""
    if isinstance(header, date):
        return header.strftime("%Y-%m")
    text = str(header).strip() if header is not None else ""
    return text if _MONTH.match(text) else None


def _number(value, cell: str) -> float | None:
    """A consensus cell as a number (``None`` if blank); anything else is an error."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:  # a number stored as text (a text-formatted cell) still counts
        number = (
            np.nan if isinstance(value, bool) or not isinstance(value, int | float | str) else float(value)
        )
    except ValueError:
        number = np.nan
    if not np.isfinite(number):
        raise SopforecastError(
            f"{cell}: {value!r} is not a number; type a number in the consensus cell "
            "(0 for zero, the exported value to keep it)"
        )
    return number
