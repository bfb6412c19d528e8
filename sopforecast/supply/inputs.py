"""Supply inputs: capacity, routing and inventory tables, checked once where they enter.

Each table is a CSV or Excel file or a SQL table that a planner fills in; the readers in
:mod:`sopforecast.data.supply_files` read it, ids as text (``00101``, ``NA``), and the validators
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
import logging

import numpy as np
import pandas as pd

from ..data.io import blank_rows
from ..errors import DataError, format_examples
from .cells import (
    UNITS,
    duplicates,
    given,
    months,
    numbers,
    overlaps,
    raise_problems,
    refuse,
    text_cells,
    units,
    unknown_keys,
)

__all__ = [
    "CAPACITY_COLUMNS",
    "ROUTING_COLUMNS",
    "INVENTORY_COLUMNS",
    "UNITS",
    "TEXT_COLUMNS",
    "validate_capacity",
    "validate_routing",
    "validate_inventory",
]

logger = logging.getLogger(__name__)

#: Columns of a validated capacity frame: one row per resource and month.
CAPACITY_COLUMNS = ["resource", "ds", "capacity", "unit"]
#: Columns of a validated routing frame: one row per key and resource.
ROUTING_COLUMNS = ["key", "resource", "rate", "priority"]
#: Columns of a validated inventory frame: one row per key (empty optional cells are NaN).
INVENTORY_COLUMNS = ["key", "on_hand", "lead_time", "service_level", "batch_size", "shelf_life"]
#: Units a capacity may be given in.

# (required, optional) columns of each table
_SPECS = {
    "capacity": (["resource", "ds", "capacity"], ["unit"]),
    "routing": (["key", "resource", "rate"], ["priority"]),
    "inventory": (["key", "on_hand", "lead_time", "service_level"], ["batch_size", "shelf_life"]),
}
#: Columns read as text, whatever they hold.
TEXT_COLUMNS = {"capacity": ["resource", "unit"], "routing": ["key", "resource"], "inventory": ["key"]}
_ALIASES = {"month": "ds", "date": "ds", "period": "ds", "sku": "key", "unique_id": "key", "series": "key"}
# a key with more parts than this is checked against its path prefixes only (2**n subsets)


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
    out["resource"] = text_cells(frame, "resource", problems, show)
    out["ds"] = months(frame, "ds", where, problems, show)
    out["capacity"] = numbers(frame, "capacity", problems, show)
    refuse(
        problems,
        frame,
        out["capacity"] < 0,
        [*show, "capacity"],
        "column 'capacity' has negative values",
        "Capacity is what the resource can do in the month; write 0 for a shutdown.",
    )
    out["unit"] = units(frame, problems, show)
    if not problems:
        two = out.groupby("resource")["unit"].transform("nunique") > 1
        refuse(
            problems,
            frame,
            two,
            [*show, "unit"],
            "column 'unit' gives one resource two units",
            "Give each resource one unit (units or hours) in every month.",
        )
        duplicates(problems, frame, out, ["resource", "ds"], "a resource and month")
    raise_problems(where, problems)
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
    out["key"] = text_cells(frame, "key", problems, show)
    out["resource"] = text_cells(frame, "resource", problems, show)
    out["rate"] = numbers(frame, "rate", problems, show)
    refuse(
        problems,
        frame,
        out["rate"] <= 0,
        [*show, "rate"],
        "column 'rate' must be above 0",
        "The rate is the resource's units or hours per unit of demand; drop the row if the "
        "series does not load the resource.",
    )
    out["priority"] = numbers(frame, "priority", problems, show, default=1.0)
    bad = given(out["priority"], lambda v: (v < 1) | (v % 1 != 0))
    refuse(
        problems,
        frame,
        bad,
        [*show, "priority"],
        "column 'priority' must be a whole number from 1",
        "Write 1 for the series served first, 2 next, and so on; leave it empty for 1.",
    )
    if not problems:
        duplicates(problems, frame, out, ["key", "resource"], "a key and resource")
        if plan_keys is not None:
            unknown_keys(problems, frame, out["key"], plan_keys)
        overlaps(problems, frame, out)
    raise_problems(where, problems)
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
    out["key"] = text_cells(frame, "key", problems, show)
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
        out[col] = numbers(frame, col, problems, show)
        refuse(problems, frame, given(out[col], rule), [*show, col], f"column {col!r} is out of range", fix)
    for col, rule, fix in (
        ("batch_size", lambda v: v <= 0, "A batch size is above 0; leave the cell empty for none."),
        (
            "shelf_life",
            lambda v: (v <= 0) | (v % 1 != 0),
            "Give the shelf life in whole months above 0; leave the cell empty for none.",
        ),
    ):
        out[col] = numbers(frame, col, problems, show, default=np.nan)
        refuse(problems, frame, given(out[col], rule), [*show, col], f"column {col!r} is out of range", fix)
    if not problems:
        duplicates(problems, frame, out, ["key"], "a key")
        if plan_keys is not None:
            unknown_keys(problems, frame, out["key"], plan_keys)
    raise_problems(where, problems)
    return _finish(out.astype({"lead_time": "int64"}), INVENTORY_COLUMNS, ["key"])


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


def _finish(out: pd.DataFrame, columns: list[str], order: list[str]) -> pd.DataFrame:
    return out[columns].sort_values(order, kind="stable").reset_index(drop=True)
