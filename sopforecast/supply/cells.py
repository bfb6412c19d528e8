"""The cell checks of the supply readers: each reads one column of a filled-in table, keeps
the valid cells and adds a problem (file, column, a few rows, the fix) for the others, so one
:class:`~sopforecast.errors.DataError` can list every problem of a file at once."""

from __future__ import annotations

import difflib
import itertools
import logging
import re

import numpy as np
import pandas as pd

from ..data.dates import implausible_dates, parse_dates
from ..data.hierarchy import PATH_SEP, TOTAL
from ..data.io import NA_TEXT
from ..data.schema import MAX_ABS_VALUE
from ..errors import DataError, format_rows

__all__ = [
    "UNITS",
    "raise_problems",
    "refuse",
    "given",
    "text_cells",
    "numbers",
    "months",
    "units",
    "duplicates",
    "unknown_keys",
    "ancestors",
    "overlaps",
]

logger = logging.getLogger(__name__)

UNITS = ("units", "hours")
_THOUSANDS = re.compile(r"^\s*-?\d{1,3}(,\d{3})+(\.\d+)?\s*$")
_YEAR_MONTH = r"^(\d{4})-(\d{1,2})$"
_UNIT_WORDS = {"units": "units", "unit": "units", "hours": "hours", "hour": "hours", "h": "hours"}
_MAX_PARTS = 10


def raise_problems(where: str, problems: list[str]) -> None:
    if not problems:
        return
    if len(problems) == 1:
        raise DataError(f"{where}: {problems[0]}")
    listed = "\n\n".join(f"{i}. {p}" for i, p in enumerate(problems, 1))
    raise DataError(
        f"{where}: {len(problems)} problems; fix them all before reading the file again.\n\n{listed}"
    )


def refuse(problems: list[str], frame: pd.DataFrame, mask: pd.Series, cols: list[str], what: str, fix: str):
    mask = mask.fillna(False).astype(bool)
    cols = [c for c in cols if c in frame.columns]
    if mask.any():
        problems.append(f"{what} in {int(mask.sum())} row(s):\n{format_rows(frame, mask, cols)}\n{fix}")


def given(values: pd.Series, rule) -> pd.Series:
    """Where ``rule`` refuses a value; empty and unreadable cells are reported on their own."""
    return values.notna() & rule(values)


def text_cells(frame: pd.DataFrame, col: str, problems: list[str], show: list[str]) -> pd.Series:
    """A text column as text (ids are names: ``00101``, ``NA``), stripped; empty cells refused."""
    values = frame[col]
    if pd.api.types.is_float_dtype(values):  # a numeric id read as float: 101.0 is 101
        whole = values.notna() & (values % 1 == 0)
        text = values.astype(object).where(~whole, values.where(whole, 0).astype("int64").astype(str))
    else:
        text = values.astype(object)
    text = text.where(text.isna(), text.astype(str).str.strip())
    empty = text.isna() | (text == "")
    refuse(
        problems,
        frame,
        empty,
        show,
        f"column {col!r} is empty",
        f"Every row needs its {col}; fill the cells or drop the rows.",
    )
    return text.astype(object)


def numbers(
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
    refuse(
        problems,
        frame,
        bad,
        [*show, col],
        f"column {col!r} must hold numbers, found text",
        "Remove units and labels from the cells (e.g. '120 h' -> 120).",
    )
    huge = ~np.isfinite(parsed) & parsed.notna() | (parsed.abs() > MAX_ABS_VALUE)
    refuse(
        problems,
        frame,
        huge,
        [*show, col],
        f"column {col!r} has infinite or huge values",
        f"No {col} comes near {MAX_ABS_VALUE:.0e}; correct the cells.",
    )
    if default is None:
        refuse(
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


def months(frame: pd.DataFrame, col: str, where: str, problems: list[str], show: list[str]) -> pd.Series:
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
        refuse(problems, frame, mask, show, f"column {col!r} has {rule}", "Correct the year in these rows.")
    months = stamps.dt.to_period("M").dt.start_time
    if moved := int((months != stamps).sum()):
        logger.info("%s: %d date(s) read as the month they fall in", where, moved)
    return months.astype("datetime64[ns]")


def units(frame: pd.DataFrame, problems: list[str], show: list[str]) -> pd.Series:
    if "unit" not in frame.columns:
        return pd.Series("units", index=frame.index, dtype=object)
    text = frame["unit"].astype("string").str.strip().str.lower().fillna("units").replace("", "units")
    units = text.map(_UNIT_WORDS)
    refuse(
        problems,
        frame,
        units.isna(),
        [*show, "unit"],
        "column 'unit' has unknown units",
        f"Write one of {list(UNITS)} (empty means units).",
    )
    return units.astype(object)


def duplicates(problems: list[str], frame: pd.DataFrame, out: pd.DataFrame, cols: list[str], what: str):
    dup = out.duplicated(cols, keep=False)
    refuse(
        problems,
        frame,
        dup,
        cols,
        f"rows repeat {what}",
        f"Give one row per {what}: add the rows up or delete the extra ones.",
    )


def unknown_keys(problems: list[str], frame: pd.DataFrame, keys: pd.Series, plan_keys: set[str]) -> None:
    unknown = ~keys.isin(plan_keys)
    if not unknown.any():
        return
    choices = sorted(plan_keys)
    hints = []
    for key in keys[unknown].drop_duplicates().head(3):
        close = difflib.get_close_matches(key, choices, n=2, cutoff=0.7)
        if close:
            hints.append(f"{key!r} looks like {' or '.join(map(repr, close))}")
    refuse(
        problems,
        frame,
        unknown,
        ["key"],
        "column 'key' names series that are not in the plan",
        "Write each key as the plan's series id, the path of its level (e.g. "
        "Beverages/Juice/SKU-00001/North/Retail)" + (f"; {'; '.join(hints)}" if hints else "") + ".",
    )


def ancestors(key: str) -> list[str]:
    """Ids of the series above ``key`` in any hierarchy: ``Total`` and every in-order subset
    of its path's parts (the prefixes only, for very long paths)."""
    parts = key.split(PATH_SEP)
    if len(parts) > _MAX_PARTS:
        return [TOTAL, *(PATH_SEP.join(parts[:i]) for i in range(1, len(parts)))]
    subsets = (c for n in range(1, len(parts)) for c in itertools.combinations(parts, n))
    return [TOTAL, *(PATH_SEP.join(c) for c in subsets)] if key != TOTAL else []


def overlaps(problems: list[str], frame: pd.DataFrame, out: pd.DataFrame) -> None:
    routed = out[["key", "resource"]]
    keys = routed["key"].drop_duplicates()
    above = pd.DataFrame({"key": keys, "above": keys.map(ancestors)}).explode("above").dropna()
    pairs = routed.merge(above, on="key").merge(
        routed.rename(columns={"key": "above"}), on=["above", "resource"]
    )
    for row in pairs.head(3).itertuples(index=False):
        both = (out["resource"] == row.resource) & out["key"].isin([row.key, row.above])
        refuse(
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
