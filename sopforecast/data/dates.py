"""Reading dates: a column of date values as naive timestamps, or a clear error.

:func:`parse_dates` reads dates the way the data contract
(:func:`sopforecast.data.schema.validate`) and the CLI's future calendars both need them:
each the wall-clock date and time its cell wrote. ISO dates are read with or without a
time; day and month written as numbers (``13/02/2021``) are read in the one order the
values allow; a time-zone offset is dropped, not converted. What cannot be read raises a
:class:`~sopforecast.errors.DataError` that names the column, a few cells and the fix.

Checking the dates against the frequency's calendar is validation, in
:mod:`sopforecast.data.schema`; the notes here (:func:`inferred_format_note`,
:func:`time_of_day_note`) let its report and messages explain what reading did, and
:func:`implausible_dates` finds the dates no demand history holds (a year typed 1819).
"""

from __future__ import annotations

import logging
import re
import warnings
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..errors import DataError, format_rows

if TYPE_CHECKING:
    from .schema import ValidationReport

__all__ = [
    "parse_dates",
    "implausible_dates",
    "inferred_format_note",
    "time_of_day_note",
    "EARLIEST_DATE",
    "MAX_GAP_YEARS",
]

logger = logging.getLogger(__name__)

#: Dates before this are refused: no demand history starts before 1900; such a date is a
#: typo (1819 for 2019) or a spreadsheet's zero date, and would pad every series with zeros.
EARLIEST_DATE = pd.Timestamp("1900-01-01")
#: Dates separated from the rest of a file by a gap of more than this many years are refused.
MAX_GAP_YEARS = 5

# a time zone after a time of day, as ERP and cloud exports write it: Z, UTC, +01:00, -0500
_TZ_SUFFIX = re.compile(
    r"^(?P<local>.*\d:\d{2}(?::\d{2}(?:[.,]\d+)?)?)\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$", re.I
)
# day and month as numbers, year last: 01/02/2021, 1.2.21, 13-02-2021 00:00
_NUMERIC_DATE = re.compile(r"^(\d{1,2})([/.-])(\d{1,2})\2(\d{4}|\d{2})((?:[ T].*)?)$")


def parse_dates(
    values: pd.Series,
    date_format: str | None = None,
    *,
    column: str | None = None,
    where: str = "data",
    report: ValidationReport | None = None,
) -> pd.Series:
    """Read a date column as the data contract does: naive datetimes, each the wall-clock
    date and time its cell wrote.

    A time-zone offset (``2021-01-01T00:00:00+01:00``, ``...Z``) is dropped, not converted:
    the date an export wrote is the period it means, and converting to UTC would move a
    month's first day into the previous month. Dates with day and month as numbers
    (``13/02/2021``) are read in the one order all their values allow, which ``report``
    records; when both orders fit (``01/02/2021``: no day above 12), the data cannot tell
    and the error asks for ``date_format``.

    Parameters
    ----------
    values : pandas.Series
        The dates as read from the source (text or datetimes); not modified.
    date_format : str, optional
        strftime format of the text (``%d/%m/%Y``); an offset directive (``%z``) in it is
        ignored, as the offset is dropped. Default: ISO dates, else told from the values.
    column : str, optional
        The column's name in the source, for messages; default ``values.name``.
    where : str, default "data"
        The source, for messages.
    report : ValidationReport, optional
        Records a format told from the values.

    Returns
    -------
    pandas.Series
        ``datetime64[ns]``, same index.

    Raises
    ------
    DataError
        For values that are not dates, empty cells, or an ambiguous day/month order.
    """
    col = str(values.name) if column is None else column
    values = values.rename(col)
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = values.dt.tz_localize(None) if values.dt.tz is not None else values
    else:
        # each distinct cell once: a panel repeats its few hundred dates in every series
        codes, cells = pd.factorize(values.astype("string").str.strip().replace("", pd.NA))
        cells = pd.Series(cells, dtype="string").str.replace(_TZ_SUFFIX, r"\g<local>", regex=True)
        fmt = date_format
        if fmt is not None:
            fmt = re.sub(r"\s*%[zZ]", "", fmt)  # offsets are dropped from the text above
        elif (numeric := _numeric_order(cells, col, where)) is not None:
            fmt, inferred = numeric
            if inferred:
                logger.info("Read the dates in %r as %s, the only order their values allow", col, fmt)
                if report is not None:
                    report.date_format = fmt
        elif cells.str.match(r"\d{4}-\d{1,2}-\d{1,2}").all():
            fmt = "ISO8601"  # with or without a time, T or space: one ISO column
        try:
            with warnings.catch_warnings():  # mixed offsets: handled below
                warnings.filterwarnings("ignore", "In a future version of pandas", FutureWarning)
                stamps = pd.to_datetime(cells, format=fmt, errors="coerce")
        except (ValueError, TypeError) as exc:  # offsets pandas will not mix (pandas 3)
            raise DataError(
                f"{where}: column {col!r} has dates that cannot be read together "
                f"({str(exc).splitlines()[0]}), such as {cells.iloc[0]!r}. Write dates as "
                "YYYY-MM-DD, or times with a numeric offset (2024-01-01T00:00:00+01:00).",
                setting="date_format",
            ) from exc
        if stamps.dtype == object:  # offsets pandas keeps apart: drop each, keep the wall clock
            stamps = pd.to_datetime(
                stamps.map(lambda t: t if pd.isna(t) else pd.Timestamp(t).tz_localize(None))
            )
        elif stamps.dt.tz is not None:
            stamps = stamps.dt.tz_localize(None)
        # code -1 (an empty cell) picks the appended last entry
        bad = pd.Series(np.append(stamps.isna().to_numpy(), False)[codes], index=values.index)
        if bad.any():
            shown = f" with format {date_format!r}" if date_format else ""
            raise DataError(
                f"{where}: column {col!r} has values that are not dates{shown}:\n"
                f"{format_rows(values.to_frame(), bad, [col])}\n"
                "Write dates as YYYY-MM-DD (e.g. 2024-01-01), or set date_format to their "
                "format (e.g. %d.%m.%Y).",
                setting="date_format",
            )
        parsed = pd.Series(np.append(stamps.to_numpy(), np.datetime64("NaT"))[codes], index=values.index)
    if parsed.isna().any():
        raise DataError(
            f"{where}: column {col!r} is empty in {int(parsed.isna().sum())} row(s):\n"
            f"{format_rows(values.to_frame(), parsed.isna(), [col])}\nEvery row needs its period's date."
        )
    return parsed.astype("datetime64[ns]")


def _numeric_order(text: pd.Series, col: str, where: str) -> tuple[str, bool] | None:
    """The format of dates written ``dd/mm/yyyy`` or ``mm/dd/yyyy``, told from their values.

    Returns ``(format, inferred)``: the only order every value fits (``%d/%m/%Y`` once a
    day is above 12), or either when both read the same (``01/01/2021``, not inferred).
    None when the values are not such dates, or some fit neither order (reported as not
    dates). Raises when both orders fit with different dates (``01/02/2021``: 1 February or
    2 January), or when some values have the day first and others the month.
    """
    if text.empty or not _NUMERIC_DATE.match(text.iloc[0]):
        return None
    parts = text.str.extract(_NUMERIC_DATE)
    if parts[0].isna().any():
        return None
    first, second = parts[0].astype(int), parts[2].astype(int)
    if ((first == 0) | (second == 0) | (first > 31) | (second > 31) | ((first > 12) & (second > 12))).any():
        return None
    sep, year, time = parts[1].iloc[0], "%Y" if len(parts[3].iloc[0]) == 4 else "%y", parts[4].iloc[0]
    clock = ""
    if time:  # as the first value writes it; a value written otherwise is reported
        clock = re.sub(r"\d{1,2}:\d{2}:\d{2}[.,]\d+", "%H:%M:%S.%f", time[1:].strip())
        clock = re.sub(r"\d{1,2}:\d{2}:\d{2}", "%H:%M:%S", clock)
        clock = time[0] + re.sub(r"\d{1,2}:\d{2}", "%H:%M", clock)
    day_first, month_first = f"%d{sep}%m{sep}{year}{clock}", f"%m{sep}%d{sep}{year}{clock}"
    late_day, late_month = first > 12, second > 12
    if late_day.any() and late_month.any():
        raise DataError(
            f"{where}: column {col!r} mixes dates with the day first (such as "
            f"{text[late_day].iloc[0]!r}) and with the month first (such as "
            f"{text[late_month].iloc[0]!r}). Write every date in one order in the export "
            f"(best YYYY-MM-DD), then set date_format to {day_first!r} or {month_first!r}.",
            setting="date_format",
        )
    if late_day.any() or late_month.any():
        return (day_first if late_day.any() else month_first), True
    differ = first != second
    if not differ.any():
        return day_first, False
    example = text[differ].iloc[0]
    raise DataError(
        f"{where}: column {col!r} has dates such as {example!r} that read day first "
        f"({_long_date(example, day_first)}) as well as month first "
        f"({_long_date(example, month_first)}); no value has a day above 12 to tell which. "
        f"Set date_format to {day_first!r} if the day comes first, or to {month_first!r} if "
        "the month does.",
        setting="date_format",
    )


def _long_date(text: str, fmt: str) -> str:
    stamp = pd.to_datetime(text, format=fmt, errors="coerce")
    return "not a date" if pd.isna(stamp) else f"{stamp.day} {stamp:%B %Y}"


def inferred_format_note(date_format: str) -> str:
    """The report's note on a day/month order that :func:`parse_dates` told from the values.

    Parameters
    ----------
    date_format : str
        The format the values allowed (``%d/%m/%Y``), as recorded in the report.

    Returns
    -------
    str
        One line for a planner, asking to make the format explicit.
    """
    return (
        f"dates read as {date_format}, the only order their values allow; "
        "set date_format to that to make it explicit"
    )


def time_of_day_note(dates: pd.Series) -> str | None:
    """Why dates off a daily (or coarser) calendar may carry a time of day.

    :func:`parse_dates` keeps each cell's wall-clock time and drops its offset, so a date
    an export converted to UTC reads as the evening before its period.

    Parameters
    ----------
    dates : pandas.Series
        The parsed dates that are off the calendar.

    Returns
    -------
    str or None
        A sentence for the error message, or None when no date carries a time of day.
    """
    if not (dates != dates.dt.normalize()).any():
        return None
    return (
        "The dates carry a time of day: an export that turns local midnight into UTC "
        "writes the evening before (2020-12-31T23:00:00Z for 1 January 2021); export "
        "local dates, or times with their offset (+01:00), which reading drops."
    )


def implausible_dates(dates: pd.Series) -> tuple[pd.Series, str] | None:
    """Find the dates a demand history cannot hold, and say by which rule.

    Two rules, the first that finds something wins:

    1. a date before :data:`EARLIEST_DATE` (1900-01-01);
    2. a gap of more than :data:`MAX_GAP_YEARS` (5) years between two consecutive distinct
       dates splits the dates into parts: the part with the most rows is the file's span,
       the dates of every other part are refused (a year typo 1819 or 2098 in a 2024-2026
       file). Dates within 5 years of the rest pass (2019 before a 2024 start).

    Parameters
    ----------
    dates : pandas.Series
        Parsed dates (``datetime64``), no missing values; not modified.

    Returns
    -------
    (pandas.Series, str) or None
        A bool mask of the refused rows on ``dates``' index and a sentence stating the rule
        and the file's span; None when every date is plausible.
    """
    early = dates < EARLIEST_DATE
    if early.any():
        return early, f"dates before {EARLIEST_DATE:%Y-%m-%d}, which no demand history holds"
    distinct = np.sort(dates.unique())
    if len(distinct) < 2:
        return None
    limits = pd.DatetimeIndex(distinct[:-1]) + pd.DateOffset(years=MAX_GAP_YEARS)
    breaks = np.flatnonzero(distinct[1:] > limits.to_numpy())
    if not len(breaks):
        return None
    # each distinct date's part: how many breaks lie before it
    part_of = np.searchsorted(breaks, np.arange(len(distinct)), side="left")
    part = pd.Series(part_of[np.searchsorted(distinct, dates.to_numpy())], index=dates.index)
    counts = part.value_counts().sort_index()
    main = counts[::-1].idxmax()  # on a tie, the latest part
    span = dates[part == main]
    return part != main, (
        f"dates more than {MAX_GAP_YEARS} years apart from the rest of the file, which runs "
        f"{span.min():%Y-%m-%d} to {span.max():%Y-%m-%d} (rule: a gap of more than "
        f"{MAX_GAP_YEARS} years between consecutive dates splits the file; the part with "
        "the most rows is its span, dates in the other parts are refused)"
    )
