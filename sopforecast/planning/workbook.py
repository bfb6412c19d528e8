"""The planner workbook: a plan version as the Excel sheet a planner edits, read back safely.

:func:`write_planner_workbook` writes three sheets. ``Plan`` shows, per series, its
``history`` (actuals), ``statistical`` forecast and ``consensus`` (prefilled with the plan,
the yellow cells, the only ones unlocked: the sheet is protected without a password), and
for an aggregate a ``bottom-up`` row of formulas that add up the consensus of its bottom
series as the planner types. ``Read me`` says how to edit. The hidden ``_export`` keeps the
meta (version, revision, a :func:`~.staleness.lines_checksum` of the exported plan) and every value,
label and header ``Plan`` showed, so :func:`read_planner_workbook` returns the consensus
cells a planner changed and refuses, in one error listing every cell, anything else changed.

Text cells a spreadsheet would evaluate (``=``, ``+``, ``-``, ``@``, tab, CR) are shown with
a leading ``'`` (:func:`sopforecast.exports.neutralise_text`); ``_export`` keeps ids as they
are, typed as text, and the reader maps the shown ``'-key`` back to ``-key``.

A workbook can go stale: the version may move after the export. :func:`read_workbook_export`
returns what the workbook says was exported, :func:`is_stale` compares it with the store's
revision and lines, :func:`changed_cells` lists the cells that moved and :func:`stale_error`
says so.
"""

from __future__ import annotations

import re
import zipfile
from copy import copy
from dataclasses import dataclass, field
from datetime import date
from itertools import zip_longest
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, SopforecastError, format_problems
from ..exports import neutralise_text
from .layouts import month_labels, ordered_series, value_grid, write_atomically
from .staleness import RTOL, lines_checksum

__all__ = [
    "MEASURES",
    "write_planner_workbook",
    "read_planner_workbook",
    "read_workbook_export",
    "read_workbook",
]

PLAN_SHEET, README_SHEET, EXPORT_SHEET = "Plan", "Read me", "_export"
MEASURES = ("history", "statistical", "consensus", "bottom-up")
HISTORY_MONTHS = 12
NUMBER_FORMAT = "#,##0"
MAX_FORMULA = 8000  # Excel's limit is 8,192 characters; longer sums are written as values
_EXPORT_HEADER = ["meta_key", "meta_value", None, "unique_id", "month", "consensus", "statistical", "history"]
_EXPORT_HEADER += [None, "label_id", "label", "label_value", None, "column", "header", "kind"]
_HEADER_ROW = 2  # row 1 holds the note on what to edit
_MONTH = re.compile(r"^\d{4}-\d{2}$")
_MAX_LISTED = 30
_YELLOW, _GREY, _PLAN_BLUE = "FFF2CC", "D9D9D9", "DDEBF7"
_README = """How to edit this plan

1. Edit only the yellow 'consensus' cells of the sheet 'Plan': the other cells are locked
   (Review > Unprotect Sheet unlocks them, no password), and the import refuses a workbook
   in which any other cell, header or series name changed, naming the cells.
2. Type the number you plan for that series and month. Enter 0 for zero: a blank cell is an error.
3. An edit on an aggregate (a family, a region, the Total) is spread over its children
   in proportion to their statistical forecast. The grey 'bottom-up' row of an aggregate
   adds up the consensus of its bottom series as you type; it is not read.
4. Filtering rows is fine. Sorting needs the sheet unprotected, and moves rows without
   their 'bottom-up' formulas: sort a copy if you want to keep those totals right.
5. Save the workbook, then apply the changes:
   sopforecast override apply plan.xlsx --author NAME --reason TEXT
   If the plan changed since this export, the import says which cells moved: export again.

Grey month headers are actual demand (history), blue ones the plan months.""".splitlines()


def write_planner_workbook(
    lines: pd.DataFrame,
    keys: pd.DataFrame | None,
    history: pd.DataFrame,
    path: str | Path,
    meta: dict | None = None,
) -> Path:
    """Write the workbook a planner edits: sheets ``Plan``, ``Read me`` and hidden ``_export``.

    Parameters
    ----------
    lines, keys, history : pandas.DataFrame
        Plan lines; :func:`~sopforecast.planning.lines.series_keys` (or ``None``: no key
        columns and no ``bottom-up`` rows); ``unique_id, ds, y``, monthly actual demand of
        every series.
    path : str or Path
        Target ``.xlsx`` file, written atomically.
    meta : dict, optional
        What the workbook was exported from: ``plan``, ``cycle``, ``version_id``, ``number``,
        ``name`` (``2026-01 v2``), ``status``, ``revision`` (the version's write counter).
        Kept in ``_export`` and shown in ``Read me``, with ``checksum`` (:func:`~.staleness.lines_checksum`
        of ``lines``) added.

    Returns
    -------
    Path
        The file written.
    """
    from openpyxl import Workbook

    if lines.empty:
        raise SopforecastError("the plan has no lines to export")
    ordered, head = ordered_series(lines, keys)
    shown = {neutralise_text(str(u)): str(u) for u in head.index}
    if len(shown) < len(head):
        raise SopforecastError(
            "two series ids read the same once shown safely (one with a leading '); rename one"
        )
    plan_months = sorted(set(ordered["month"]))
    months = _history_months(history, plan_months[0]) + plan_months
    grids = {
        "history": value_grid(history.assign(month=month_labels(history["ds"])), "y", head.index, months),
        "statistical": value_grid(ordered, "statistical", head.index, months),
        "consensus": value_grid(ordered, "final", head.index, months),
    }
    meta = {**(meta or {}), "checksum": lines_checksum(lines)}
    labels = ["level", "unique_id", *head.columns[1:], "measure"]
    layout = _SheetLayout.build(head, labels, months, set(plan_months))
    wb = Workbook(write_only=True)
    _write_plan_sheet(wb.create_sheet(PLAN_SHEET), head, layout, grids)
    readme = wb.create_sheet(README_SHEET)
    readme.column_dimensions["A"].width = 100
    for text in [*_README, "", *(f"{k}: {v}" for k, v in meta.items())]:
        readme.append([neutralise_text(text)])
    _write_export(wb.create_sheet(EXPORT_SHEET), meta, head, grids, layout)
    return write_atomically(Path(path), wb.save)


def read_planner_workbook(path: str | Path, *, author: str, reason: str) -> tuple[pd.DataFrame, dict]:
    """The consensus cells a planner changed in a workbook of :func:`write_planner_workbook`.

    Rows are found by ``unique_id`` and ``measure``, so filtered, sorted or moved rows read
    the same. A consensus cell is changed when it differs from its exported value by more
    than 1e-6 (relative). Values are the numbers stored in the cells (what a spreadsheet
    computed for a formula typed there); the ``bottom-up`` formula rows are not read.

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
        cell (``row``: its Excel row); ``meta``: the meta the workbook was exported with,
        ``checksum`` included.

    Raises
    ------
    sopforecast.errors.DataError
        Listing every problem of the file at once, each by its cell (``Plan!K7``): a cell
        other than a consensus cell changed (history, statistical, a key or level, a
        consensus cell of a history month), a header renamed or added, an unknown or
        repeated series, a consensus cell blank or not a number.
    """
    raw, meta, _ = read_workbook(path, author=author, reason=reason)
    return raw, meta


def read_workbook(path: str | Path, *, author: str, reason: str) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """:func:`read_planner_workbook`'s edits and meta, and :func:`read_workbook_export`'s
    exported values, from one reading of the file (a demo-sized workbook takes seconds)."""
    path = Path(path)
    wb = _open(path)
    try:
        export = _read_export(wb, path)
        ws = wb[PLAN_SHEET]
        ws.reset_dimensions()  # some tools store a wrong sheet size; read every row there is
        changes, problems = _read_changes(ws.iter_rows(values_only=True), export)
    finally:
        wb.close()
    if problems:
        raise DataError(_problems_message(path.name, problems))
    out = pd.DataFrame(changes, columns=["key", "month", "value", "row"]).astype({"value": float, "row": int})
    out = out.assign(author=author, reason=reason, source=path.name)
    return out[["key", "month", "value", "author", "reason", "row", "source"]], export.meta, _exported(export)


def read_workbook_export(path: str | Path) -> tuple[dict, pd.DataFrame]:
    """What a planner workbook says it was exported from, without reading its edits.

    Returns
    -------
    (meta, exported)
        ``meta`` as :func:`read_planner_workbook` returns it; ``exported``: ``key, month,
        value``, the consensus (the plan's ``final``) of every series and plan month as
        exported (NaN where the cell was exported blank), for :func:`changed_cells`.
    """
    path = Path(path)
    wb = _open(path)
    try:
        export = _read_export(wb, path)
    finally:
        wb.close()
    return export.meta, _exported(export)


def _exported(export) -> pd.DataFrame:
    """``key, month, value``: the consensus of every series and plan month as exported."""
    plan = set(export.plan_months)
    rows = [(u, m, v[0]) for (u, m), v in export.values.items() if m in plan]
    frame = pd.DataFrame(rows, columns=["key", "month", "value"]).astype({"key": object, "value": float})
    return frame.sort_values(["key", "month"]).reset_index(drop=True)


@dataclass
class _SheetLayout:
    """Where everything sits in the ``Plan`` sheet, and its ``bottom-up`` formulas."""

    labels: list[str]
    months: list[str]
    planned: set
    rows: dict  # unique_id -> measures of its rows, in order
    formulas: dict = field(default_factory=dict)  # unique_id -> {month: formula}

    @classmethod
    def build(cls, head: pd.DataFrame, labels: list[str], months: list[str], planned: set) -> _SheetLayout:
        members = _bottom_members(head)
        rows = {u: [*MEASURES[:3], *(["bottom-up"] if u in members else [])] for u in head.index}
        layout = cls(labels, months, planned, rows)
        if members:
            layout.formulas = layout._formulas(members)
        return layout

    @property
    def first_month(self) -> int:
        return len(self.labels) + 1

    def _formulas(self, members: dict) -> dict:
        from openpyxl.utils import get_column_letter as letter

        consensus, r = {}, _HEADER_ROW + 1
        for uid, measures in self.rows.items():
            consensus[uid] = r + measures.index("consensus")
            r += len(measures)
        measure = letter(len(self.labels))
        out = {}
        for uid, bottoms in members.items():
            rows = sorted(consensus[b] for b in bottoms)
            runs, start = [], rows[0]  # bottom series next to each other: one SUMIF over the block
            for prev, nxt in zip(rows, [*rows[1:], None], strict=True):
                if nxt != prev + len(MEASURES) - 1:
                    runs.append((start, prev))
                    start = nxt
            out[uid] = {}
            for j, month in enumerate(self.months, start=self.first_month):
                if month not in self.planned:
                    continue
                col = letter(j)
                parts = [
                    f"{col}{a}"
                    if a == b
                    else f'SUMIF(${measure}${a}:${measure}${b},"consensus",{col}{a}:{col}{b})'
                    for a, b in runs
                ]
                text = "=" + "+".join(parts)
                out[uid][month] = text if len(text) <= MAX_FORMULA else None
        return out


def _bottom_members(head: pd.DataFrame) -> dict[str, list[str]]:
    """The bottom series under every aggregate, from the key columns (none: no aggregates).

    A bottom series has every key; an aggregate the keys of its level, and its bottom series
    are those sharing them (the Total, with no key, has them all).
    """
    keys = head.iloc[:, 1:]
    if keys.shape[1] == 0:
        return {}
    values = keys.to_numpy(object)
    filled = keys.notna().to_numpy()
    bottom = filled.all(axis=1)
    if not bottom.any() or bottom.all():
        return {}
    under = values[bottom]
    ids = keys.index.to_numpy()[bottom]
    out = {}
    for uid, row, has in zip(keys.index[~bottom], values[~bottom], filled[~bottom], strict=True):
        match = (under[:, has] == row[has]).all(axis=1) if has.any() else np.ones(len(under), bool)
        if match.any():
            out[uid] = ids[match].tolist()
    return out


def _write_plan_sheet(ws, head: pd.DataFrame, layout: _SheetLayout, grids: dict) -> None:
    """Fill the write-only ``Plan`` sheet: a note, the header, then the rows of every series."""
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font, PatternFill, Protection
    from openpyxl.utils import get_column_letter as letter

    def cell(value, fill=None, bold=False, fmt=None, italic=False, locked=True):
        c = WriteOnlyCell(ws, value=value)
        c.font = Font(bold=bold, italic=italic)
        if fill:
            c.fill = PatternFill("solid", fgColor=fill)
        if fmt:
            c.number_format = fmt
        if not locked:
            c.protection = Protection(locked=False)
        return c

    months, first = layout.months, layout.first_month
    n_rows = sum(len(m) for m in layout.rows.values())
    for col in range(1, first + len(months)):
        ws.column_dimensions[letter(col)].width = 10 if col >= first else 16
    ws.freeze_panes = f"{letter(first)}{_HEADER_ROW + 1}"
    ws.auto_filter.ref = f"A{_HEADER_ROW}:{letter(first + len(months) - 1)}{_HEADER_ROW + n_rows}"
    _protect(ws)
    ws.append(
        [cell("Edit only the yellow consensus cells; the sheet 'Read me' says how to apply them.", bold=True)]
    )
    headers = [cell(m, _PLAN_BLUE if m in layout.planned else _GREY, True) for m in months]
    ws.append([*(cell(neutralise_text(t), bold=True) for t in layout.labels), *headers])
    # styles are looked up per assignment, which would dominate the time: copy templates
    styles = {
        "plain": cell(0, fmt=NUMBER_FORMAT)._style,
        "edit": cell(0, _YELLOW, fmt=NUMBER_FORMAT, locked=False)._style,
        "sum": cell(0, _GREY, fmt=NUMBER_FORMAT, italic=True)._style,
    }
    arrays = {k: g.to_numpy(float) for k, g in grids.items()}
    editable = [m in layout.planned for m in months]

    def number(value, style):
        if style != "edit" and (value is None or (isinstance(value, float) and np.isnan(value))):
            return None  # editable cells stay yellow when blank
        c = WriteOnlyCell(ws, value=None if isinstance(value, float) and np.isnan(value) else value)
        c._style = copy(styles[style])
        return c

    for i, (uid, level, *key_values) in enumerate(head.itertuples(index=True, name=None)):
        shown = [neutralise_text(v) for v in (level, uid, *key_values)]
        for measure in layout.rows[uid]:
            if measure == "bottom-up":
                sums = layout.formulas[uid]
                values = [
                    (sums.get(m) or float(arrays["consensus"][i][j])) if e else None
                    for j, (m, e) in enumerate(zip(months, editable, strict=True))
                ]
                ws.append([*shown, measure, *(number(v, "sum") for v in values)])
                continue
            grid = arrays[measure][i]
            style = ["edit" if measure == "consensus" and e else "plain" for e in editable]
            ws.append([*shown, measure, *map(number, map(float, grid), style)])


def _protect(ws) -> None:
    """Lock the sheet without a password; filtering and resizing stay allowed."""
    ws.protection.sheet = True
    ws.protection.autoFilter = False
    ws.protection.sort = False
    ws.protection.formatColumns = False
    ws.protection.formatRows = False


def _write_export(ws, meta: dict, head: pd.DataFrame, grids: dict, layout: _SheetLayout) -> None:
    """The hidden sheet: meta, every exported value, every label and every header."""
    ws.sheet_state = "hidden"
    ws.append(_EXPORT_HEADER)
    meta_rows = [(_raw(ws, str(k)), _raw(ws, _excel_value(v))) for k, v in meta.items()]
    stacked = {k: g.stack(future_stack=True) for k, g in grids.items()}  # same (uid, month) order
    index = stacked["consensus"].index
    cons, stat, hist = (stacked[m].to_numpy(float) for m in ("consensus", "statistical", "history"))
    keep = index.get_level_values(1).isin(list(layout.planned)) | ~np.isnan(stat) | ~np.isnan(hist)
    value_rows = [
        (_raw(ws, uid), month, _none(c), _none(s), _none(h))
        for (uid, month), c, s, h in zip(index[keep], cons[keep], stat[keep], hist[keep], strict=True)
    ]
    label_rows = [
        (_raw(ws, uid), _raw(ws, name), _raw(ws, value))
        for uid, rec in zip(head.index, head.to_dict("records"), strict=True)
        for name, value in rec.items()
        if value is not None
    ]
    kinds = ["label"] * len(layout.labels) + [
        "plan" if m in layout.planned else "history" for m in layout.months
    ]
    texts = [*layout.labels, *layout.months]
    header_rows = [(j, _raw(ws, t), k) for j, (t, k) in enumerate(zip(texts, kinds, strict=True), 1)]
    blocks = [meta_rows, value_rows, label_rows, header_rows]
    widths = [2, 5, 3, 3]
    for parts in zip_longest(*blocks):
        row = []
        for n, (part, width) in enumerate(zip(parts, widths, strict=True)):
            row.extend(part if part is not None else (None,) * width)
            if n < len(blocks) - 1:
                row.append(None)
        ws.append(row)


@dataclass
class _Export:
    """What ``_export`` says the workbook showed."""

    meta: dict
    values: dict  # (unique_id, month) -> (consensus, statistical, history)
    labels: dict  # unique_id -> {label: value}
    headers: dict  # column (1-based) -> (text, kind)

    @property
    def plan_months(self) -> list[str]:
        return [t for t, k in self.headers.values() if k == "plan"]


def _open(path: Path):
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (OSError, KeyError, InvalidFileException, zipfile.BadZipFile) as exc:  # not a workbook
        raise DataError(f"cannot open {path} as an Excel workbook: {exc}") from exc
    if EXPORT_SHEET not in wb.sheetnames or PLAN_SHEET not in wb.sheetnames:
        wb.close()
        raise DataError(
            f"{path.name} was not exported by `sopforecast plan export --layout planner` (no sheet "
            f"{EXPORT_SHEET!r} or {PLAN_SHEET!r}); export the plan that way and edit that workbook"
        )
    return wb


def _read_export(wb, path: Path) -> _Export:
    rows = wb[EXPORT_SHEET].iter_rows(values_only=True)
    if list(next(rows, ()))[: len(_EXPORT_HEADER)] != _EXPORT_HEADER:
        raise DataError(
            f"{path.name}: the hidden sheet {EXPORT_SHEET!r} was changed, or the workbook was exported by "
            "an older sopforecast; export the plan again and edit the new workbook"
        )
    out = _Export({}, {}, {}, {})
    width = len(_EXPORT_HEADER)
    for row in rows:
        key, value, _, uid, month, cons, stat, hist, _, lid, label, lvalue, _, col, text, kind = (
            row + (None,) * width
        )[:width]
        if key is not None:
            out.meta[str(key)] = value
        if uid is not None:
            out.values[(str(uid), str(month))] = (_float(cons), _float(stat), _float(hist))
        if lid is not None:
            out.labels.setdefault(str(lid), {})[str(label)] = lvalue
        if col is not None:
            out.headers[int(col)] = (str(text), str(kind))
    return out


def _read_changes(rows, export: _Export) -> tuple[list[tuple], list[str]]:
    """``(key, month, value, row)`` of every changed consensus cell, and every problem found."""
    from openpyxl.utils import get_column_letter as letter

    ids = {neutralise_text(uid): uid for uid in export.labels} | {uid: uid for uid, _ in export.values}
    labels = {j: t for j, (t, k) in export.headers.items() if k == "label"}
    months = {j: (t, k) for j, (t, k) in export.headers.items() if k != "label"}
    uid_col = next(j for j, t in labels.items() if t == "unique_id")
    measure_col = next(j for j, t in labels.items() if t == "measure")
    width = max(export.headers)
    header, seen, changes, problems, moved = None, set(), [], [], set()
    for number, row in enumerate(rows, start=1):
        row = tuple(row) + (None,) * max(0, width - len(row))
        if header is None:  # the header is the first row naming unique_id and measure
            if "unique_id" in row and "measure" in row:
                header = number
                moved = _check_header(row, export.headers, number, problems)
            continue
        if all(_blank(v) for v in row):
            continue
        problems.extend(
            f"{PLAN_SHEET}!{letter(j)}{number}: {row[j - 1]!r} lies outside the exported columns; delete it"
            for j in range(width + 1, len(row) + 1)
            if not _blank(row[j - 1])
        )
        where = f"{PLAN_SHEET}!{letter(uid_col)}{number}"
        uid = ids.get(_text(row[uid_col - 1]))
        measure = _text(row[measure_col - 1])
        if uid is None:
            problems.append(
                f"{where}: series {row[uid_col - 1]!r} was not exported; edit the exported rows only"
            )
            continue
        if measure not in MEASURES:
            problems.append(
                f"{PLAN_SHEET}!{letter(measure_col)}{number}: measure {row[measure_col - 1]!r} of {uid!r} "
                f"is not one of {', '.join(MEASURES)}; restore it"
            )
            continue
        if (uid, measure) in seen:
            problems.append(f"{where}: a second {measure} row for {uid!r}; delete the copy")
            continue
        seen.add((uid, measure))
        for j, name in labels.items():
            if j in (uid_col, measure_col) or j in moved:
                continue
            was = neutralise_text(export.labels.get(uid, {}).get(name))
            if _text(row[j - 1]) != _text(was):
                problems.append(
                    f"{PLAN_SHEET}!{letter(j)}{number}: {name} of {uid!r} reads {row[j - 1]!r}, exported as "
                    f"{was!r}; series names and keys are not read: restore it"
                )
        if measure == "bottom-up":  # formulas: their stored values are whatever Excel last computed
            continue
        for j, (month, kind) in months.items():
            cell = f"{PLAN_SHEET}!{letter(j)}{number}"
            value = row[j - 1]
            exported = export.values.get((uid, month), (None, None, None))
            if measure != "consensus":
                old = exported[1 if measure == "statistical" else 2]
                if not _same(_float(value, text=np.nan), old):
                    problems.append(
                        f"{cell}: the {measure} of {uid!r} for {month} reads {value!r}, exported as "
                        f"{_shown(old)}; only the yellow consensus cells are read: restore it and type "
                        "the plan in the consensus row"
                    )
                continue
            if kind != "plan":
                if not _blank(value):
                    problems.append(f"{cell}: {month} is not a plan month of {uid!r}; clear the cell")
                continue
            try:
                new = _number(value, cell)
            except DataError as exc:
                problems.append(str(exc))
                continue
            old = exported[0]
            if j in moved:
                if not _same(new, old):
                    problems.append(
                        f"{cell}: edited under a changed header (exported as {month}); restore the header"
                    )
            elif new is None and old is not None:
                problems.append(
                    f"{cell}: the consensus of {uid!r} for {month} is blank (it was {old:,.2f}); "
                    "enter 0 if you mean zero, or the exported value to keep it"
                )
            elif new is not None and not _same(new, old):
                changes.append((uid, month, new, number))
    if header is None:
        problems.append(f"{PLAN_SHEET}: no header row with unique_id and measure; export the plan again")
    return changes, problems


def _check_header(row: tuple, headers: dict, number: int, problems: list[str]) -> set:
    """Columns whose header differs from the export (each a problem), by position."""
    from openpyxl.utils import get_column_letter as letter

    moved = set()
    for j in range(1, max(len(row), max(headers)) + 1):
        got = row[j - 1] if j <= len(row) else None
        cell = f"{PLAN_SHEET}!{letter(j)}{number}"
        if j not in headers:
            if not _blank(got):
                problems.append(f"{cell}: column {got!r} was not exported; delete the column")
            continue
        text, kind = headers[j]
        same = _month_label(got) == text if kind != "label" else _text(got) == neutralise_text(text)
        if not same:
            moved.add(j)
            problems.append(f"{cell}: the header reads {got!r}, exported as {text!r}; restore it")
    return moved


def _problems_message(source: str, problems: list[str]) -> str:
    return (
        f"{source}: {len(problems)} problem(s) in the workbook; nothing was applied:\n"
        + format_problems(problems, _MAX_LISTED)
        + f"\nOnly the yellow consensus cells of the sheet {PLAN_SHEET!r} are read: type numbers there "
        "(0 for zero), keep every other cell, header and series as exported, and apply the workbook "
        "again (or export the plan again and redo the edits)."
    )


def _month_label(header) -> str | None:
    """``YYYY-MM`` of a month header (text, or a date if a spreadsheet converted it)."""
    if isinstance(header, date):
        return header.strftime("%Y-%m")
    text = str(header).strip() if header is not None else ""
    return text if _MONTH.match(text) else None


def _history_months(history: pd.DataFrame, first_plan: str) -> list[str]:
    """The :data:`HISTORY_MONTHS` calendar months up to the last actual before the plan."""
    before = [m for m in month_labels(history["ds"]) if m < first_plan]
    if not before:
        return []
    return pd.period_range(end=max(before), periods=HISTORY_MONTHS, freq="M").strftime("%Y-%m").tolist()


def _raw(ws, value):
    """A value stored as it is: text that openpyxl would take for a formula is typed as text."""
    if isinstance(value, str) and value.startswith("="):
        from openpyxl.cell import WriteOnlyCell

        c = WriteOnlyCell(ws, value=value)
        c.data_type = "s"
        return c
    return value


def _excel_value(value):
    """A meta value openpyxl can store: scalars as they are, anything else as text."""
    if isinstance(value, np.generic):
        value = value.item()
    return value if value is None or isinstance(value, str | int | float | bool | date) else str(value)


def _none(value):
    return None if value != value else float(value)  # NaN is the only value unequal to itself


def _float(value, *, text=None) -> float | None:
    """A stored cell as a float; ``None`` when blank; ``text`` for anything else."""
    if _blank(value):
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return text
    try:
        return float(value)
    except ValueError:
        return text


def _number(value, cell: str) -> float | None:
    """A consensus cell as a number (``None`` if blank); anything else is an error."""
    number = _float(value, text=np.nan)
    if number is not None and not np.isfinite(number):
        raise DataError(
            f"{cell}: {value!r} is not a number; type a number in the consensus cell "
            "(0 for zero, the exported value to keep it)"
        )
    return number


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if np.isnan(a) or np.isnan(b):
        return False
    return abs(a - b) <= RTOL * max(abs(a), abs(b))


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _text(value) -> str | None:
    """A label cell as text (``None`` when blank); numbers as Excel shows them."""
    if _blank(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _shown(value) -> str:
    return "blank" if value is None or value != value else f"{value:,.6g}"
