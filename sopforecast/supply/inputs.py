"""Supply inputs: capacity, routing and inventory tables, checked once where they enter.

Each table is a CSV or Excel file or a SQL table that a planner fills in; the readers
(:func:`read_capacity`, :func:`read_routing`, :func:`read_inventory`) read it with
:func:`sopforecast.data.io.read_source`, ids as text (``00101``, ``NA``), and the validators
(:func:`validate_capacity`, :func:`validate_routing`, :func:`validate_inventory`) turn it into
the frame every supply module uses, or raise one :class:`~sopforecast.errors.DataError` that
lists every problem found: the file, the column, a few offending rows and the fix.

Months are read as written (``2026-03``, ``2026-03-01``, a workbook's dates); a date inside a
month means that month. Routing keys are series of the plan at any level; a key and one of its
descendants routed to the same resource would load it twice and are refused. A descendant is
told by its path: every part of the aggregate's path appears, in order, in the descendant's
(``Beverages/North`` is above ``Beverages/Juice/SKU-1/North/Retail``), and ``Total`` is above
every series. Validators never modify their input and write nothing.
"""

from __future__ import annotations

import difflib
import itertools
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.dates import implausible_dates, parse_dates
from ..data.hierarchy import PATH_SEP, TOTAL
from ..data.io import NA_TEXT, blank_rows, read_source
from ..data.schema import MAX_ABS_VALUE
from ..errors import DataError, format_examples, format_rows

__all__ = [
    "CAPACITY_COLUMNS",
    "ROUTING_COLUMNS",
    "INVENTORY_COLUMNS",
    "UNITS",
    "validate_capacity",
    "validate_routing",
    "validate_inventory",
    "read_capacity",
    "read_routing",
    "read_inventory",
]

logger = logging.getLogger(__name__)

#: Columns of a validated capacity frame: one row per resource and month.
CAPACITY_COLUMNS = ["resource", "ds", "capacity", "unit"]
#: Columns of a validated routing frame: one row per key and resource.
ROUTING_COLUMNS = ["key", "resource", "rate", "priority"]
#: Columns of a validated inventory frame: one row per key (empty optional cells are NaN).
INVENTORY_COLUMNS = ["key", "on_hand", "lead_time", "service_level", "batch_size", "shelf_life"]
#: Units a capacity may be given in.
UNITS = ("units", "hours")

# (required, optional) columns of each table
_SPECS = {
    "capacity": (["resource", "ds", "capacity"], ["unit"]),
    "routing": (["key", "resource", "rate"], ["priority"]),
    "inventory": (["key", "on_hand", "lead_time", "service_level"], ["batch_size", "shelf_life"]),
}
_TEXT = {"capacity": ["resource", "unit"], "routing": ["key", "resource"], "inventory": ["key"]}
_ALIASES = {"month": "ds", "date": "ds", "period": "ds", "sku": "key", "unique_id": "key", "series": "key"}
_UNIT_WORDS = {"units": "units", "unit": "units", "hours": "hours", "hour": "hours", "h": "hours"}
_THOUSANDS = re.compile(r"^\s*-?\d{1,3}(,\d{3})+(\.\d+)?\s*$")
_YEAR_MONTH = r"^(\d{4})-(\d{1,2})$"
# a key with more parts than this is checked against its path prefixes only (2**n subsets)
_MAX_PARTS = 10


def validate_capacity(raw: pd.DataFrame, *, source: str | None = None) -> pd.DataFrame:
    """Check a capacity table and return it as :data:`CAPACITY_COLUMNS`.

    Parameters
    ----------
    raw : pandas.DataFrame
        ``resource, ds, capacity`` and optionally ``unit`` (``units`` or ``hours``, default
        ``units``); one row per resource and month; a planned shutdown is a month with
        reduced or zero capacity. Not modified.
    source : str, optional
        Name of the source for messages; default ``raw.attrs["source"]`` or ``"capacity"``.

    Returns
    -------
    pandas.DataFrame
        ``resource`` (text), ``ds`` (month start), ``capacity`` (float >= 0), ``unit``,
        sorted by resource and month.

    Raises
    ------
    DataError
        Listing every problem: columns, numbers, months, units, duplicate rows.
    """
    where, frame, problems = _start(raw, source, "capacity")
    show = ["resource", "ds"]
    out = pd.DataFrame(index=frame.index)
    out["resource"] = _text(frame, "resource", problems, show)
    out["ds"] = _months(frame, "ds", where, problems, show)
    out["capacity"] = _number(frame, "capacity", problems, show)
    _refuse(
        problems,
        frame,
        out["capacity"] < 0,
        [*show, "capacity"],
        "column 'capacity' has negative values",
        "Capacity is what the resource can do in the month; write 0 for a shutdown.",
    )
    out["unit"] = _units(frame, problems, show)
    if not problems:
        two = out.groupby("resource")["unit"].transform("nunique") > 1
        _refuse(
            problems,
            frame,
            two,
            [*show, "unit"],
            "column 'unit' gives one resource two units",
            "Give each resource one unit (units or hours) in every month.",
        )
        _duplicates(problems, frame, out, ["resource", "ds"], "a resource and month")
    _raise(where, problems)
    return _finish(out, CAPACITY_COLUMNS, ["resource", "ds"])


def validate_routing(
    raw: pd.DataFrame, *, source: str | None = None, plan_keys: set[str] | None = None
) -> pd.DataFrame:
    """Check a routing table and return it as :data:`ROUTING_COLUMNS`.

    Parameters
    ----------
    raw : pandas.DataFrame
        ``key, resource, rate`` and optionally ``priority`` (1 = served first, default 1);
        ``rate`` is resource units (or hours) per unit of demand. Not modified.
    source : str, optional
        Name of the source for messages; default ``raw.attrs["source"]`` or ``"routing"``.
    plan_keys : set of str, optional
        The plan's series ids; when given, every key must be one of them.

    Returns
    -------
    pandas.DataFrame
        ``key, resource`` (text), ``rate`` (float > 0), ``priority`` (int >= 1), sorted.

    Raises
    ------
    DataError
        Listing every problem: columns, numbers, duplicates, unknown or overlapping keys.
    """
    where, frame, problems = _start(raw, source, "routing")
    show = ["key", "resource"]
    out = pd.DataFrame(index=frame.index)
    out["key"] = _text(frame, "key", problems, show)
    out["resource"] = _text(frame, "resource", problems, show)
    out["rate"] = _number(frame, "rate", problems, show)
    _refuse(
        problems,
        frame,
        out["rate"] <= 0,
        [*show, "rate"],
        "column 'rate' must be above 0",
        "The rate is the resource's units or hours per unit of demand; drop the row if the "
        "series does not load the resource.",
    )
    out["priority"] = _number(frame, "priority", problems, show, default=1.0)
    bad = _given(out["priority"], lambda v: (v < 1) | (v % 1 != 0))
    _refuse(
        problems,
        frame,
        bad,
        [*show, "priority"],
        "column 'priority' must be a whole number from 1",
        "Write 1 for the series served first, 2 next, and so on; leave it empty for 1.",
    )
    if not problems:
        _duplicates(problems, frame, out, ["key", "resource"], "a key and resource")
        if plan_keys is not None:
            _unknown_keys(problems, frame, out["key"], plan_keys)
        _overlaps(problems, frame, out)
    _raise(where, problems)
    return _finish(out.astype({"priority": "int64"}), ROUTING_COLUMNS, ["key", "resource"])


def validate_inventory(
    raw: pd.DataFrame, *, source: str | None = None, plan_keys: set[str] | None = None
) -> pd.DataFrame:
    """Check an inventory table and return it as :data:`INVENTORY_COLUMNS`.

    Parameters
    ----------
    raw : pandas.DataFrame
        ``key, on_hand, lead_time, service_level`` and optionally ``batch_size`` and
        ``shelf_life``; stock on hand at the plan's start, lead time in whole months,
        service level as a fraction (0.95). Not modified.
    source : str, optional
        Name of the source for messages; default ``raw.attrs["source"]`` or ``"inventory"``.
    plan_keys : set of str, optional
        The plan's series ids; when given, every key must be one of them.

    Returns
    -------
    pandas.DataFrame
        ``key`` (text), ``on_hand`` (float >= 0), ``lead_time`` (int >= 0), ``service_level``
        (0.5 <= x < 1), ``batch_size`` (> 0) and ``shelf_life`` (whole months > 0), NaN when
        not given; sorted by key.

    Raises
    ------
    DataError
        Listing every problem: columns, numbers, ranges, duplicate or unknown keys.
    """
    where, frame, problems = _start(raw, source, "inventory")
    show = ["key"]
    out = pd.DataFrame(index=frame.index)
    out["key"] = _text(frame, "key", problems, show)
    for col, rule, fix in (
        ("on_hand", lambda v: v < 0, "Stock on hand cannot be negative; write 0 when there is none."),
        (
            "lead_time",
            lambda v: (v < 0) | (v % 1 != 0),
            "Give the lead time in whole months (0 when supply arrives in the month ordered).",
        ),
        (
            "service_level",
            lambda v: (v < 0.5) | (v >= 1),
            "Give the target as a fraction from 0.5 to below 1: 95% is 0.95.",
        ),
    ):
        out[col] = _number(frame, col, problems, show)
        _refuse(problems, frame, _given(out[col], rule), [*show, col], f"column {col!r} is out of range", fix)
    for col, rule, fix in (
        ("batch_size", lambda v: v <= 0, "A batch size is above 0; leave the cell empty for none."),
        (
            "shelf_life",
            lambda v: (v <= 0) | (v % 1 != 0),
            "Give the shelf life in whole months above 0; leave the cell empty for none.",
        ),
    ):
        out[col] = _number(frame, col, problems, show, default=np.nan)
        _refuse(problems, frame, _given(out[col], rule), [*show, col], f"column {col!r} is out of range", fix)
    if not problems:
        _duplicates(problems, frame, out, ["key"], "a key")
        if plan_keys is not None:
            _unknown_keys(problems, frame, out["key"], plan_keys)
    _raise(where, problems)
    return _finish(out.astype({"lead_time": "int64"}), INVENTORY_COLUMNS, ["key"])


def read_capacity(path: str | Path, *, table: str | None = None, sheet: str | int | None = None):
    """Read and validate a capacity table (CSV, Excel, or a SQL URL with ``table``).

    Returns
    -------
    pandas.DataFrame
        As :func:`validate_capacity` returns it.
    """
    raw = read_source(path, table=table, sheet=sheet, text_columns=_TEXT["capacity"])
    return validate_capacity(raw, source=raw.attrs.get("source"))


def read_routing(
    path: str | Path,
    *,
    plan_keys: set[str] | None = None,
    table: str | None = None,
    sheet: str | int | None = None,
):
    """Read and validate a routing table (CSV, Excel, or a SQL URL with ``table``).

    Returns
    -------
    pandas.DataFrame
        As :func:`validate_routing` returns it.
    """
    raw = read_source(path, table=table, sheet=sheet, text_columns=_TEXT["routing"])
    return validate_routing(raw, source=raw.attrs.get("source"), plan_keys=plan_keys)


def read_inventory(
    path: str | Path,
    *,
    plan_keys: set[str] | None = None,
    table: str | None = None,
    sheet: str | int | None = None,
):
    """Read and validate an inventory table (CSV, Excel, or a SQL URL with ``table``).

    Returns
    -------
    pandas.DataFrame
        As :func:`validate_inventory` returns it.
    """
    raw = read_source(path, table=table, sheet=sheet, text_columns=_TEXT["inventory"])
    return validate_inventory(raw, source=raw.attrs.get("source"), plan_keys=plan_keys)


def _start(raw: pd.DataFrame, source: str | None, what: str) -> tuple[str, pd.DataFrame, list[str]]:
    """The source's name, its rows (columns named as the contract names them), no problems yet."""
    where = source or raw.attrs.get("source") or what
    required, optional = _SPECS[what]
    known = {*required, *optional}
    # a workbook's "Resource " is resource; anything else must be spelled as the contract says
    names = {c: str(c).strip().lower() for c in raw.columns if str(c).strip().lower() in known}
    frame = raw.rename(columns=names).reset_index(drop=True)
    frame = frame[~blank_rows(frame).to_numpy()]
    present = [str(c) for c in frame.columns]
    missing = [c for c in required if c not in present]
    unknown = [c for c in present if c not in known]
    if missing or unknown:
        hints = []
        for col in unknown:
            guess = _ALIASES.get(col.strip().lower()) or next(
                iter(difflib.get_close_matches(col.strip().lower(), sorted(known), n=1, cutoff=0.6)), None
            )
            if guess:
                hints.append(f"column {col!r} looks like {guess!r}")
        raise DataError(
            f"{where}: "
            + (f"missing column(s) {missing}; " if missing else "")
            + (f"unknown column(s) {format_examples(unknown, 8)}; " if unknown else "")
            + f"a {what} table has the columns {required} (required) and {optional} "
            f"(optional). Columns found: {format_examples(present, 12)}. "
            + (f"{'; '.join(hints)}. " if hints else "")
            + "Rename the columns in the file, or drop the ones that are not listed."
        )
    if frame.empty:
        raise DataError(f"{where}: no rows. Fill in the {what} table, one row per {_row_of(what)}.")
    return where, frame, []


def _row_of(what: str) -> str:
    return {"capacity": "resource and month", "routing": "key and resource", "inventory": "key"}[what]


def _raise(where: str, problems: list[str]) -> None:
    if not problems:
        return
    if len(problems) == 1:
        raise DataError(f"{where}: {problems[0]}")
    listed = "\n\n".join(f"{i}. {p}" for i, p in enumerate(problems, 1))
    raise DataError(
        f"{where}: {len(problems)} problems; fix them all before reading the file again.\n\n{listed}"
    )


def _refuse(problems: list[str], frame: pd.DataFrame, mask: pd.Series, cols: list[str], what: str, fix: str):
    mask = mask.fillna(False).astype(bool)
    cols = [c for c in cols if c in frame.columns]
    if mask.any():
        problems.append(f"{what} in {int(mask.sum())} row(s):\n{format_rows(frame, mask, cols)}\n{fix}")


def _given(values: pd.Series, rule) -> pd.Series:
    """Where ``rule`` refuses a value; empty and unreadable cells are reported on their own."""
    return values.notna() & rule(values)


def _text(frame: pd.DataFrame, col: str, problems: list[str], show: list[str]) -> pd.Series:
    """A text column as text (ids are names: ``00101``, ``NA``), stripped; empty cells refused."""
    values = frame[col]
    if pd.api.types.is_float_dtype(values):  # a numeric id read as float: 101.0 is 101
        whole = values.notna() & (values % 1 == 0)
        text = values.astype(object).where(~whole, values.where(whole, 0).astype("int64").astype(str))
    else:
        text = values.astype(object)
    text = text.where(text.isna(), text.astype(str).str.strip())
    empty = text.isna() | (text == "")
    _refuse(
        problems,
        frame,
        empty,
        show,
        f"column {col!r} is empty",
        f"Every row needs its {col}; fill the cells or drop the rows.",
    )
    return text.astype(object)


def _number(
    frame: pd.DataFrame, col: str, problems: list[str], show: list[str], *, default: float | None = None
) -> pd.Series:
    """A numeric column as floats; text, infinite or huge values refused, and empty cells too
    unless the column is optional (``default``: the value of an empty cell or a missing column)."""
    if col not in frame.columns:
        return pd.Series(default, index=frame.index, dtype=float)
    values = frame[col]
    if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
        parsed, bad = values.astype(float), pd.Series(False, index=values.index)
    else:
        text = values.astype("string").str.strip()
        text = text.where(~text.fillna("").str.match(_THOUSANDS), text.str.replace(",", "", regex=False))
        text = text.where(~text.isin(NA_TEXT), pd.NA)
        parsed = pd.to_numeric(text, errors="coerce").astype(float)
        bad = parsed.isna() & text.notna()
    _refuse(
        problems,
        frame,
        bad,
        [*show, col],
        f"column {col!r} must hold numbers, found text",
        "Remove units and labels from the cells (e.g. '120 h' -> 120).",
    )
    huge = ~np.isfinite(parsed) & parsed.notna() | (parsed.abs() > MAX_ABS_VALUE)
    _refuse(
        problems,
        frame,
        huge,
        [*show, col],
        f"column {col!r} has infinite or huge values",
        f"No {col} comes near {MAX_ABS_VALUE:.0e}; correct the cells.",
    )
    if default is None:
        _refuse(
            problems,
            frame,
            parsed.isna() & ~bad,
            [*show, col],
            f"column {col!r} is empty",
            "Every row needs a value here; fill the cells.",
        )
    else:
        parsed = parsed.fillna(default)
    return parsed.where(~(bad | huge))


def _months(frame: pd.DataFrame, col: str, where: str, problems: list[str], show: list[str]) -> pd.Series:
    """The month of each row (its first day): ``2026-03``, ``2026-03-01`` or a date in it."""
    values = frame[col]
    if not pd.api.types.is_datetime64_any_dtype(values):
        values = values.astype("string").str.strip().str.replace(_YEAR_MONTH, r"\1-\2-01", regex=True)
    try:
        stamps = parse_dates(values, column=col, where=where)
    except DataError as exc:
        # no date_format setting here: a month is written 2026-03 or as a date
        text = re.sub(r",? or set date_format[^.]*\([^)]*\)\.", "; a month may be written 2026-03.", str(exc))
        problems.append(text.removeprefix(f"{where}: "))
        return pd.Series(pd.NaT, index=frame.index)
    found = implausible_dates(stamps)
    if found is not None:
        mask, rule = found
        _refuse(problems, frame, mask, show, f"column {col!r} has {rule}", "Correct the year in these rows.")
    months = stamps.dt.to_period("M").dt.start_time
    if moved := int((months != stamps).sum()):
        logger.info("%s: %d date(s) read as the month they fall in", where, moved)
    return months.astype("datetime64[ns]")


def _units(frame: pd.DataFrame, problems: list[str], show: list[str]) -> pd.Series:
    if "unit" not in frame.columns:
        return pd.Series("units", index=frame.index, dtype=object)
    text = frame["unit"].astype("string").str.strip().str.lower().fillna("units").replace("", "units")
    units = text.map(_UNIT_WORDS)
    _refuse(
        problems,
        frame,
        units.isna(),
        [*show, "unit"],
        "column 'unit' has unknown units",
        f"Write one of {list(UNITS)} (empty means units).",
    )
    return units.astype(object)


def _duplicates(problems: list[str], frame: pd.DataFrame, out: pd.DataFrame, cols: list[str], what: str):
    dup = out.duplicated(cols, keep=False)
    _refuse(
        problems,
        frame,
        dup,
        cols,
        f"rows repeat {what}",
        f"Give one row per {what}: add the rows up or delete the extra ones.",
    )


def _unknown_keys(problems: list[str], frame: pd.DataFrame, keys: pd.Series, plan_keys: set[str]) -> None:
    unknown = ~keys.isin(plan_keys)
    if not unknown.any():
        return
    choices = sorted(plan_keys)
    hints = []
    for key in keys[unknown].drop_duplicates().head(3):
        close = difflib.get_close_matches(key, choices, n=2, cutoff=0.7)
        if close:
            hints.append(f"{key!r} looks like {' or '.join(map(repr, close))}")
    _refuse(
        problems,
        frame,
        unknown,
        ["key"],
        "column 'key' names series that are not in the plan",
        "Write each key as the plan's series id, the path of its level (e.g. "
        "Beverages/Juice/SKU-00001/North/Retail)" + (f"; {'; '.join(hints)}" if hints else "") + ".",
    )


def _ancestors(key: str) -> list[str]:
    """Ids of the series above ``key`` in any hierarchy: ``Total`` and every in-order subset
    of its path's parts (the prefixes only, for very long paths)."""
    parts = key.split(PATH_SEP)
    if len(parts) > _MAX_PARTS:
        return [TOTAL, *(PATH_SEP.join(parts[:i]) for i in range(1, len(parts)))]
    subsets = (c for n in range(1, len(parts)) for c in itertools.combinations(parts, n))
    return [TOTAL, *(PATH_SEP.join(c) for c in subsets)] if key != TOTAL else []


def _overlaps(problems: list[str], frame: pd.DataFrame, out: pd.DataFrame) -> None:
    routed = out[["key", "resource"]]
    keys = routed["key"].drop_duplicates()
    above = pd.DataFrame({"key": keys, "above": keys.map(_ancestors)}).explode("above").dropna()
    pairs = routed.merge(above, on="key").merge(
        routed.rename(columns={"key": "above"}), on=["above", "resource"]
    )
    for row in pairs.head(3).itertuples(index=False):
        both = (out["resource"] == row.resource) & out["key"].isin([row.key, row.above])
        _refuse(
            problems,
            frame,
            both,
            ["key", "resource"],
            f"key {row.above!r} and its descendant {row.key!r} are both routed to resource "
            f"{row.resource!r}, which would load it twice",
            "The aggregate's demand includes its descendant's: route either the aggregate or "
            "the series below it to this resource, not both.",
        )
    if len(pairs) > 3:
        problems.append(f"... and {len(pairs) - 3} more overlapping key pairs.")


def _finish(out: pd.DataFrame, columns: list[str], order: list[str]) -> pd.DataFrame:
    return out[columns].sort_values(order, kind="stable").reset_index(drop=True)
