"""Consensus overrides: read them from a planner's sheet and check them against a plan.

An override sets the plan of one series (any level of the hierarchy) in one month, either
to a ``value`` in units or by a ``change_pct`` of its current value, and records who
decided it (``author``) and why (``reason``). Planners keep them in a CSV or Excel sheet::

    key,month,value,change_pct,author,reason
    Beverages/Juice,2027-03,1200,,ana,promotion in March
    Total,2027-04,,-5,ben,price increase

:func:`read_overrides` reads such a file as it is; :func:`validate_overrides` checks every
row against the plan lines and reports all problems in one error, so a planner fixes the
sheet in one go. :func:`sopforecast.planning.consensus.apply_overrides` applies the clean
rows.
"""

from __future__ import annotations

import difflib
import re
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.io import read_source
from ..data.schema import MAX_ABS_VALUE
from ..errors import DataError, format_problems

__all__ = ["OverrideError", "OVERRIDE_COLUMNS", "read_overrides", "validate_overrides"]

OVERRIDE_COLUMNS = ["key", "ds", "value", "change_pct", "author", "reason"]

_REQUIRED = ["key", "month", "author", "reason"]
_FIELDS = ["key", "month", "value", "change_pct", "author", "reason"]
_HEADER = "key,month,value,change_pct,author,reason"
_ALIASES = {"ds": "month", "change_%": "change_pct", "change": "change_pct"}
# ISO months as planners type them: 2027-03, 2027-03-01, 2027/03, with a midnight time at most
_MONTH = re.compile(r"(\d{4})[-/](\d{1,2})(?:[-/](\d{1,2}))?(?:[ T]00:00(?::00(?:\.0+)?)?)?")
_MAX_LISTED = 30


class OverrideError(DataError):
    """Overrides that cannot be applied to the plan (bad file, unknown key, bad value, ...)."""


def read_overrides(path: str | Path) -> pd.DataFrame:
    """Read consensus overrides from a CSV or Excel file, unchecked.

    Parameters
    ----------
    path : str or Path
        A ``.csv`` or ``.xlsx`` file with the header ``key, month, value and/or change_pct,
        author, reason`` (any case, surrounding spaces ignored).

    Returns
    -------
    pandas.DataFrame
        The file's rows, every cell as the text written there (ids such as ``00101`` or
        ``NA`` stay as they are; see :func:`sopforecast.data.io.read_source` with ``as_text``), with
        lower-case column names (``value`` or ``change_pct`` added
        empty when the file has only the other), ``row`` (1 = first data row of the file)
        and ``source`` (the file name). Rows left entirely blank are dropped.

    Raises
    ------
    OverrideError
        When a required column is missing (the message shows the expected header).
    sopforecast.errors.DataError
        When the file is missing, empty or unreadable.
    """
    path = Path(path)
    frame = _normalise(read_source(path, as_text=True), str(path))
    frame.insert(0, "row", np.arange(1, len(frame) + 1))
    frame["source"] = path.name
    # spreadsheets often carry formatted but empty rows below the data: they are no overrides
    blank = frame[_FIELDS].map(_is_blank).all(axis=1)
    return frame[~blank].reset_index(drop=True)


def validate_overrides(raw: pd.DataFrame, lines: pd.DataFrame, *, source: str = "overrides") -> pd.DataFrame:
    """Check overrides against the plan lines; all problems are reported in one error.

    Parameters
    ----------
    raw : pandas.DataFrame
        Overrides as :func:`read_overrides` returns them, or as built in Python: columns
        ``key``, ``month`` (or ``ds``), ``value`` and/or ``change_pct``, ``author``,
        ``reason``; ``row`` and ``source`` are optional.
    lines : pandas.DataFrame
        The plan lines (:mod:`sopforecast.planning.lines`): ``unique_id`` and ``ds`` name
        the series and months an override may address.
    source : str, default "overrides"
        Name of the overrides in messages, when ``raw`` has no ``source`` column.

    Returns
    -------
    pandas.DataFrame
        Columns ``key, ds, value, change_pct, author, reason, row, source``: ``ds`` the
        month start, ``value`` / ``change_pct`` floats (the one not given is NaN). Rows
        repeating another row of the same source exactly are kept once.

    Raises
    ------
    OverrideError
        Listing every problem, one line per problem (``row 3: key='Beverages/Jiuce' is not
        a series of the plan; did you mean 'Beverages/Juice'?``), then what to do.
    """
    frame = _normalise(raw, source)
    rows = frame["row"].astype(int).to_numpy() if "row" in frame else np.arange(1, len(frame) + 1)
    sources = frame["source"].astype(str).to_numpy() if "source" in frame else np.full(len(frame), source)
    keys = pd.Index(pd.unique(lines["unique_id"].astype(str)))
    months = pd.DatetimeIndex(pd.unique(pd.to_datetime(lines["ds"]))).to_period("M").to_timestamp()
    months = months.unique().sort_values()
    span = f"{months[0]:%Y-%m} to {months[-1]:%Y-%m}" if len(months) else "no months"

    problems: list[tuple[str, int, str]] = []
    clean = []
    current = None  # the plan's final by (key, month), read once when a change_pct needs it
    for rec, row, src in zip(frame[_FIELDS].to_dict("records"), rows, sources, strict=True):
        found = []
        key = _text(rec["key"])
        if key is None:
            found.append("key is empty")
        elif key not in keys:
            found.append(f"key={key!r} is not a series of the plan{_suggest(key, keys)}")
        month = _month(rec["month"])
        if month is None:
            found.append(f"month={_cell(rec['month'])} is not a month; write it as YYYY-MM")
        elif month not in months:
            found.append(f"month={month:%Y-%m} is outside the plan (its months run {span})")
        value, pct = _number(rec["value"], "value", found), _number(rec["change_pct"], "change_pct", found)
        if value is not None and value < 0:
            found.append(f"value={_cell(rec['value'])} is below zero; a plan cannot be negative")
        if value is not None and value > MAX_ABS_VALUE:
            found.append(f"value={_cell(rec['value'])} is above the limit of {MAX_ABS_VALUE:,.0f} units")
        if pct is not None and not np.isnan(pct) and key in keys and month in months:
            if current is None:
                current = _finals(lines)
            target = current.get((key, month), 0.0) * (1 + pct / 100)
            if target > MAX_ABS_VALUE:
                found.append(
                    f"change_pct={_cell(rec['change_pct'])} would take the plan to {target:.3g}, "
                    f"above the limit of {MAX_ABS_VALUE:,.0f} units"
                )
        if pct is not None and pct < -100:
            found.append(
                f"change_pct={_cell(rec['change_pct'])} would take the plan below zero; "
                "-100 (down to nothing) is the least"
            )
        if value is not None and pct is not None:
            if not np.isnan(value) and not np.isnan(pct):
                found.append(
                    f"value={_cell(rec['value'])} and change_pct={_cell(rec['change_pct'])} are both "
                    "given; fill in one of them"
                )
            elif np.isnan(value) and np.isnan(pct):
                found.append("value and change_pct are both empty; fill in one of them")
        for name in ("author", "reason"):
            if _text(rec[name]) is None:
                found.append(f"{name} is empty; say {'who decided' if name == 'author' else 'why'}")
        problems.extend((src, row, text) for text in found)
        if not found:
            clean.append(
                {
                    "key": key,
                    "ds": month,
                    "value": value,
                    "change_pct": pct,
                    "author": _text(rec["author"]),
                    "reason": _text(rec["reason"]),
                    "row": int(row),
                    "source": src,
                }
            )
    out = pd.DataFrame(clean, columns=[*OVERRIDE_COLUMNS, "row", "source"])
    problems.extend(_ambiguous(out))
    if problems:
        raise OverrideError(_message(problems, sources, source, span))
    out = out.drop_duplicates(["source", "key", "ds", "value", "change_pct"]).reset_index(drop=True)
    out["ds"] = pd.to_datetime(out["ds"])
    return out.astype({"value": float, "change_pct": float, "row": int})


def _normalise(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """Lower-case, stripped column names; ``value`` / ``change_pct`` present (maybe empty)."""
    out = frame.copy()
    names = [re.sub(r"[\s\-]+", "_", str(c).strip().lower()) for c in frame.columns]
    out.columns = [_ALIASES.get(n, n) for n in names]
    twice = sorted({c for c in out.columns if list(out.columns).count(c) > 1} & {*_FIELDS, "row", "source"})
    missing = [c for c in _REQUIRED if c not in out.columns]
    if "value" not in out.columns and "change_pct" not in out.columns:
        missing.append("value or change_pct")
    if missing or twice:
        what = f"missing column(s) {', '.join(missing)}" if missing else f"column(s) {', '.join(twice)} twice"
        raise OverrideError(
            f"{where}: {what}. Expected the header {_HEADER} (in any case; value or change_pct "
            "may be left out, not both; month may be named ds). Fix the header row and load it again."
        )
    for name in ("value", "change_pct"):
        if name not in out.columns:
            out[name] = np.nan
    return out


def _ambiguous(clean: pd.DataFrame) -> list[tuple[str, int, str]]:
    """Rows of one source overriding the same key and month with a different value."""
    out = []
    for (src, key, ds), group in clean.groupby(["source", "key", "ds"], sort=False):
        first = group.iloc[0]
        for rec in group.iloc[1:].itertuples():
            if not (_same(rec.value, first["value"]) and _same(rec.change_pct, first["change_pct"])):
                text = (
                    f"key={key!r}, month={ds:%Y-%m} is also overridden by row {first['row']} "
                    "with a different value; keep one of the two"
                )
                out.append((src, rec.row, text))
    return out


def _message(problems: list[tuple[str, int, str]], sources, source: str, span: str) -> str:
    problems = sorted(problems, key=lambda p: (p[0], p[1]))
    names = list(dict.fromkeys(str(s) for s in sources)) or [source]
    several = len(names) > 1
    listed = format_problems(
        [f"{f'{src} ' if several else ''}row {row}: {text}" for src, row, text in problems], _MAX_LISTED
    )
    return (
        f"{', '.join(names)}: {len(problems)} problem(s) in the overrides; none was applied:\n"
        + listed
        + f"\nCorrect these rows and load the overrides again: each row needs a key from the plan's "
        f"series, a month (YYYY-MM) from {span}, either value (units, 0 to {MAX_ABS_VALUE:,.0f}) or "
        "change_pct (percent, -100 or more) but not both, an author and a reason."
    )


def _finals(lines: pd.DataFrame) -> dict:
    """The plan's ``final`` by ``(key, month start)``; empty when the lines carry none."""
    if "final" not in lines:
        return {}
    ds = pd.to_datetime(lines["ds"]).dt.to_period("M").dt.to_timestamp()
    values = pd.Series(lines["final"].to_numpy(float), index=[lines["unique_id"].astype(str), ds])
    return values.groupby(level=[0, 1]).max().fillna(0.0).to_dict()


def _suggest(key: str, keys: pd.Index) -> str:
    """``; did you mean 'X'?`` for the nearest plan key, case differences first."""
    same_case = [k for k in keys if k.lower() == key.lower()]
    near = same_case or difflib.get_close_matches(key, list(keys), n=1, cutoff=0.6)
    return f"; did you mean {near[0]!r}?" if near else ""


def _month(cell) -> pd.Timestamp | None:
    """First day of the month ``cell`` names (text, Excel date), or None if it names none."""
    if _is_blank(cell):
        return None
    if isinstance(cell, datetime | date | np.datetime64):
        stamp = pd.Timestamp(cell)
    elif isinstance(cell, str) and (match := _MONTH.fullmatch(cell.strip())):
        year, month, day = (int(g) if g else 1 for g in match.groups())
        try:
            stamp = pd.Timestamp(year, month, day)
        except ValueError:  # 2027-13, 2027-02-30
            return None
    else:
        return None
    if stamp.tzinfo is not None:
        stamp = stamp.tz_localize(None)
    return pd.Timestamp(stamp.year, stamp.month, 1)


def _number(cell, name: str, found: list[str]) -> float | None:
    """``cell`` as a float (NaN when empty); None, with a problem noted, when it is no number."""
    if _is_blank(cell):
        return np.nan
    if isinstance(cell, int | float | np.integer | np.floating) and not isinstance(cell, bool | np.bool_):
        number = float(cell)
    else:
        text = str(cell).strip()
        # planners write percentages with the sign: -5%
        text = text.removesuffix("%").strip() if name == "change_pct" else text
        try:
            number = float(text)
        except ValueError:
            found.append(f"{name}={_cell(cell)} is not a number")
            return None
    if not np.isfinite(number):
        found.append(f"{name}={_cell(cell)} is not a finite number")
        return None
    return number


def _text(cell) -> str | None:
    """A key or name as text (Excel reads code 1001 as 1001.0), None when empty."""
    if _is_blank(cell):
        return None
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell).strip() or None


def _is_blank(cell) -> bool:
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        return True
    return bool(pd.isna(cell)) if np.ndim(cell) == 0 else False


def _same(a: float, b: float) -> bool:
    return (np.isnan(a) and np.isnan(b)) or a == b


def _cell(value) -> str:
    """A cell as a message shows it: text quoted, whole numbers without ``.0``, dates as dates."""
    if isinstance(value, datetime | date | np.datetime64):
        return f"{pd.Timestamp(value):%Y-%m-%d}"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value.strip() if isinstance(value, str) else value)
