"""The data contract: check demand history once, where it enters, and say what is wrong.

:func:`validate` turns a raw source frame into the long format every other module uses
(``unique_id``, ``ds``, ``y``, then hierarchy keys and drivers) or raises a
:class:`~sopforecast.errors.DataError` that names the source, the column, a few offending
rows and the fix. What it repairs by policy (gaps, clipped negatives, empty cells) it
records in a :class:`ValidationReport`; nothing is dropped silently. Infinite values and
values beyond :data:`MAX_ABS_VALUE` are refused under every policy: no policy can repair them,
and so are dates a history cannot hold (:func:`~sopforecast.data.dates.implausible_dates`:
before 1900, or more than 5 years from the rest of the file). Rows left entirely empty are
no rows; key columns come out as text (``00101``, ``NA``), whatever type the source gave.

Reading the date column (day/month order, times, time-zone offsets) is the job of
:mod:`sopforecast.data.dates`; this module checks the dates it returns against the
frequency's calendar. :func:`parse_dates` is re-exported here for callers of its old home.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..config import DataConfig
from ..errors import DataError, format_examples, format_rows
from .dates import implausible_dates, inferred_format_note, parse_dates, time_of_day_note
from .hierarchy import PATH_SEP, check_nesting
from .io import NA_TEXT, blank_rows

__all__ = ["validate", "parse_dates", "ValidatedData", "ValidationReport", "MAX_ABS_VALUE"]

_THOUSANDS = re.compile(r"^\s*-?\d{1,3}(,\d{3})+(\.\d+)?\s*$")

#: Largest demand or driver value accepted, in absolute terms (a trillion). No quantity of
#: one series in one period and no driver comes near it; larger values are export errors (a
#: 13-digit barcode pasted into the quantity column is ~4e12). Kept far below where float64
#: arithmetic breaks (squares overflow near 1e154, sums lose whole units past 9e15), so
#: model fits and interval variances never turn into inf.
MAX_ABS_VALUE = 1e12


@dataclass
class ValidationReport:
    """What validation found and what it repaired, for logs, MLflow and the CLI."""

    source: str
    freq: str
    n_rows_in: int
    n_rows: int = 0
    n_series: int = 0
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    gaps_filled: dict[str, int] = field(default_factory=dict)
    negatives_clipped: int = 0
    missing_filled: int = 0
    duplicates_summed: int = 0
    dates_aligned: int = 0
    date_format: str | None = None
    short_series: list[str] = field(default_factory=list)
    zero_series: list[str] = field(default_factory=list)
    started_late: list[str] = field(default_factory=list)
    ended_early: list[str] = field(default_factory=list)

    def notes(self) -> list[str]:
        """One line per finding a planner should know about."""
        lines = []
        if self.gaps_filled:
            lines.append(
                f"filled {sum(self.gaps_filled.values())} missing periods with zero demand in "
                f"{len(self.gaps_filled)} series, e.g. {format_examples(self.gaps_filled, 3)}"
            )
        for count, text in (
            (self.negatives_clipped, "negative demand values clipped to zero"),
            (self.missing_filled, "empty demand cells read as zero"),
            (self.duplicates_summed, "duplicate rows added into their series and period"),
            (self.dates_aligned, "dates moved to the start of their period"),
        ):
            if count:
                lines.append(f"{count} {text}")
        if self.date_format:
            lines.append(inferred_format_note(self.date_format))
        for ids, text in (
            (self.short_series, "series shorter than the models need (short-history fallback)"),
            (self.zero_series, "series with zero demand throughout"),
            (self.started_late, "series starting after the first period (new items)"),
            (self.ended_early, "series ending before the last period (discontinued?)"),
        ):
            if ids:
                lines.append(f"{len(ids)} {text}: {format_examples(ids, 3)}")
        return lines

    def to_dict(self) -> dict:
        """A JSON-friendly summary (counts and a few examples), for logs and artifacts."""
        return {
            "source": self.source,
            "freq": self.freq,
            "rows_in": self.n_rows_in,
            "rows": self.n_rows,
            "series": self.n_series,
            "start": None if self.start is None else str(self.start.date()),
            "end": None if self.end is None else str(self.end.date()),
            "gaps_filled_series": len(self.gaps_filled),
            "gaps_filled_periods": int(sum(self.gaps_filled.values())),
            "negatives_clipped": self.negatives_clipped,
            "missing_filled": self.missing_filled,
            "duplicates_summed": self.duplicates_summed,
            "dates_aligned": self.dates_aligned,
            "date_format_inferred": self.date_format,
            "short_series": len(self.short_series),
            "zero_series": len(self.zero_series),
            "started_late": len(self.started_late),
            "ended_early": len(self.ended_early),
            "notes": self.notes(),
        }


@dataclass
class ValidatedData:
    """Demand history in the contract's long format, with its validation report."""

    frame: pd.DataFrame
    report: ValidationReport
    keys: list[str]
    drivers: list[str]
    freq: str


def validate(raw: pd.DataFrame, config: DataConfig, *, source: str | None = None) -> ValidatedData:
    """Check a source frame against the data contract and return it in long format.

    Parameters
    ----------
    raw : pandas.DataFrame
        The source as read by :func:`sopforecast.data.io.read_source`; not modified.
    config : DataConfig
        Column mapping, frequency and the policies for negatives, empty cells, duplicates
        and short series.
    source : str, optional
        Name of the source for messages; default ``raw.attrs["source"]`` or ``"data"``.

    Returns
    -------
    ValidatedData
        ``frame`` has columns ``unique_id, ds, y``, then the key and driver columns, sorted
        by ``unique_id`` and ``ds``, one row per series and period, gaps filled with zero.

    Raises
    ------
    DataError
        For each breach of the contract, with the column, offending rows and the fix.
    """
    where = source or raw.attrs.get("source", "data")
    report = ValidationReport(source=where, freq=config.freq, n_rows_in=len(raw))
    _check_columns(raw, config, where)
    keys = config.series_columns
    frame = raw[[*keys, config.time_col, config.target_col, *config.drivers]]
    # rows left entirely empty (a spreadsheet's formatted rows below the data) are no rows;
    # the others keep their index, so messages still name the source's rows
    frame = frame[~blank_rows(raw).to_numpy()].copy()
    if frame.empty:
        raise DataError(f"{where}: no rows. Export the demand history again.")

    frame["ds"] = parse_dates(frame[config.time_col], config.date_format, where=where, report=report)
    frame["y"] = _parse_numbers(frame[config.target_col], config.target_col, where)
    for col in config.drivers:
        frame[col] = _parse_driver(frame[col], col, where)
    # the parsed ds/y replace the source's columns, so messages can show them by source name
    frame = frame.drop(columns=[c for c in (config.time_col, config.target_col) if c not in ("ds", "y")])
    _check_dates(frame, config, where)
    _check_keys(frame, keys, where)
    frame[keys] = _as_ids(frame[keys])
    if config.hierarchy:
        check_nesting(frame, config.hierarchy, where=where)
    _check_values(frame, config, where)
    frame = _apply_missing(frame, config, where, report)
    frame = _apply_negative(frame, config, where, report)
    frame["unique_id"] = _series_ids(frame, config)
    frame = _check_freq(frame, config, where, report)
    frame = _apply_duplicates(frame, config, where, report)

    out_cols = ["unique_id", "ds", "y", *config.keys, *config.drivers]
    frame = frame[out_cols].sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    frame = _fill_gaps(frame, config, report)
    _check_lengths(frame, config, where, report)

    report.n_rows = len(frame)
    report.n_series = frame["unique_id"].nunique()
    report.start, report.end = frame["ds"].min(), frame["ds"].max()
    return ValidatedData(frame, report, list(config.keys), list(config.drivers), config.freq)


def _source_view(frame: pd.DataFrame, config: DataConfig) -> pd.DataFrame:
    """The frame with the source's own column names, so messages match the user's file."""
    names = {"ds": config.time_col, "y": config.target_col}
    return frame.drop(columns=[c for c in names.values() if c in frame.columns and c not in names]).rename(
        columns=names
    )


def _row_cols(config: DataConfig) -> list[str]:
    """Columns that locate a row in a message: the series keys and the date."""
    return [*config.series_columns, config.time_col]


def _check_columns(raw: pd.DataFrame, config: DataConfig, where: str) -> None:
    import difflib

    present = [str(c) for c in raw.columns]
    repeated = sorted({c for c in present if present.count(c) > 1})
    if repeated:  # a query's SELECT a.y, b.y; files are refused already by the reader
        raise DataError(
            f"{where}: column name(s) {format_examples(repeated)} appear more than once; the "
            "data cannot say which to use. Rename or drop the extra column(s) so each name "
            "is used once."
        )
    # each column by the setting that names it (the CLI adds its option to the first)
    key_setting = ("hierarchy" if config.hierarchy else "keys") if config.keys else "id_col"
    needed = {
        config.time_col: "time_col",
        config.target_col: "target_col",
        **{k: key_setting for k in config.series_columns},
        **{d: "drivers" for d in config.drivers},
    }
    missing = [c for c in needed if c not in present]
    if not missing:
        return
    hints = []
    for col in missing:
        close = difflib.get_close_matches(col, present, n=1, cutoff=0.6)
        if close:
            hints.append(f"column {close[0]!r} looks like {col!r}")
    settings = list(dict.fromkeys(needed[c] for c in missing))
    raise DataError(
        f"{where}: missing column(s) {missing}. Columns found: {format_examples(present, 12)}. "
        + (f"{'; '.join(hints)}. " if hints else "")
        + f"Rename the column(s) in the file or map them with the setting(s) {', '.join(settings)}.",
        setting=settings[0],
    )


def _parse_numbers(values: pd.Series, col: str, where: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(float)
    text = values.astype("string").str.strip()
    # ERP exports write thousands with commas ("8,222"); accept that, nothing looser
    text = text.where(~text.fillna("").str.match(_THOUSANDS), text.str.replace(",", "", regex=False))
    # an empty cell, or a marker such as NA or NULL, is no value (a number column has no names)
    text = text.where(~text.isin(NA_TEXT), pd.NA)
    parsed = pd.to_numeric(text, errors="coerce")
    bad = parsed.isna() & text.notna()
    if bad.any():
        raise DataError(
            f"{where}: column {col!r} must hold numbers, found text:\n"
            f"{format_rows(values.to_frame(), bad, [col])}\n"
            "Remove units and labels from the cells (e.g. '12 pcs' -> 12); leave a cell empty "
            "for no value."
        )
    return parsed.astype(float)


def _parse_driver(values: pd.Series, col: str, where: str) -> pd.Series:
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return values.astype(float)
    return _parse_numbers(values, col, where)


def _check_keys(frame: pd.DataFrame, keys: list[str], where: str) -> None:
    for col in keys:
        empty = frame[col].isna() | (frame[col].astype("string").str.strip() == "")
        if empty.any():
            raise DataError(
                f"{where}: key column {col!r} is empty in {int(empty.sum())} row(s):\n"
                f"{format_rows(frame, empty, keys)}\nEvery row must name its series; fill the key or "
                "drop the rows in the export."
            )
        if len(keys) > 1:
            sep = frame[col].astype("string").str.contains(PATH_SEP, regex=False)
            if sep.any():
                raise DataError(
                    f"{where}: key column {col!r} has values containing {PATH_SEP!r}, which "
                    f"joins hierarchy levels:\n{format_rows(frame, sep, [col])}\n"
                    f"Replace {PATH_SEP!r} in these names (e.g. with '-')."
                )


def _as_ids(keys: pd.DataFrame) -> pd.DataFrame:
    """Key columns as text: ids are names, whatever type the source gave them (``101``)."""
    return keys.apply(lambda col: col if pd.api.types.is_object_dtype(col) else col.astype(str)).astype(
        object
    )


def _check_dates(frame: pd.DataFrame, config: DataConfig, where: str) -> None:
    """Refuse dates before 1900 or far from the rest of the file (a year typo such as 1819),
    which would pad every series with decades of zero demand."""
    found = implausible_dates(frame["ds"])
    if found is None:
        return
    mask, rule = found
    raise DataError(
        f"{where}: column {config.time_col!r} has {int(mask.sum())} row(s) with {rule}:\n"
        f"{format_rows(_source_view(frame, config), mask, _row_cols(config))}\n"
        "Correct the year in these rows of the export (a typo such as 1819 for 2019), or drop "
        "the rows if they do not belong to this history."
    )


def _check_values(frame: pd.DataFrame, config: DataConfig, where: str) -> None:
    """Refuse inf/-inf and values beyond MAX_ABS_VALUE in demand and drivers.

    Unlike an empty cell, an infinite value is not read as zero demand or carried forward
    under ``missing: zero``: it is a broken formula in the export, not an absent value.
    """
    for col in ["y", *config.drivers]:
        values = frame[col].to_numpy(dtype=float)
        name = config.target_col if col == "y" else col
        what = "demand quantities" if col == "y" else "driver values (a driver must be finite)"
        shown = [*_row_cols(config), name]
        infinite = np.isinf(values)
        if infinite.any():
            refill = (
                ", or leave them empty and set missing: zero to carry the series' last known value forward"
            )
            refill = "" if col == "y" else refill
            raise DataError(
                f"{where}: column {name!r} has {int(infinite.sum())} infinite value(s):\n"
                f"{format_rows(_source_view(frame, config), infinite, shown)}\n"
                f"inf and -inf are not {what}; they usually come from a division by zero in a "
                f"formula of the export. Correct the cells in the export{refill}.",
                setting=None if col == "y" else "missing",
            )
        huge = np.abs(values) > MAX_ABS_VALUE
        if huge.any():
            raise DataError(
                f"{where}: column {name!r} has {int(huge.sum())} outlier(s) beyond "
                f"±{MAX_ABS_VALUE:.0e}, too large for {what} and for the models' arithmetic:\n"
                f"{format_rows(_source_view(frame, config), huge, shown)}\n"
                "Correct the cells in the export (an id or barcode pasted into the column?); "
                "if the values are real, express them in larger units (e.g. thousands)."
            )


def _apply_missing(frame, config: DataConfig, where: str, report: ValidationReport):
    cols = ["y", *config.drivers]
    empty = frame[cols].isna()
    if not empty.any().any():
        return frame
    if config.missing == "error":
        col = empty.any().idxmax()
        name = config.target_col if col == "y" else col
        mask = empty[col]
        raise DataError(
            f"{where}: column {name!r} is empty in {int(mask.sum())} row(s):\n"
            f"{format_rows(_source_view(frame, config), mask, [*_row_cols(config), name])}\n"
            "Fill the cells, or set missing: zero to read empty demand as "
            "zero and carry drivers forward.",
            setting="missing",
        )
    frame = frame.copy()
    report.missing_filled = int(empty["y"].sum())
    frame["y"] = frame["y"].fillna(0.0)
    if config.drivers:
        order = frame.sort_values(config.time_col).index
        grouped = frame.loc[order].groupby(config.series_columns, sort=False)[config.drivers]
        frame.loc[order, config.drivers] = grouped.ffill().values
        grouped = frame.loc[order].groupby(config.series_columns, sort=False)[config.drivers]
        frame.loc[order, config.drivers] = grouped.bfill().values
        _check_empty_drivers(frame, config, where)
    return frame


def _check_empty_drivers(frame: pd.DataFrame, config: DataConfig, where: str) -> None:
    """Refuse a driver still empty after carrying values: no period of its series has one."""
    for driver in config.drivers:
        empty = frame[driver].isna()
        if not empty.any():
            continue
        ids = frame.loc[empty, config.series_columns].astype(str).agg(PATH_SEP.join, axis=1)
        raise DataError(
            f"{where}: driver {driver!r} is empty for every period of series "
            f"{format_examples(ids.unique())}; there is no value to carry forward. "
            "Fill it in the export, or drop it from drivers.",
            setting="drivers",
        )


def _apply_negative(frame, config: DataConfig, where: str, report: ValidationReport):
    negative = frame["y"] < 0
    if not negative.any():
        return frame
    if config.negative == "error":
        raise DataError(
            f"{where}: column {config.target_col!r} has {int(negative.sum())} negative value(s) "
            f"(returns or corrections?):\n"
            f"{format_rows(_source_view(frame, config), negative, [*_row_cols(config), config.target_col])}\n"
            "Net them out in the export, or set negative: clip to treat them "
            "as zero demand.",
            setting="negative",
        )
    report.negatives_clipped = int(negative.sum())
    frame = frame.copy()
    frame["y"] = frame["y"].clip(lower=0.0)
    return frame


def _series_ids(frame: pd.DataFrame, config: DataConfig) -> pd.Series:
    if not config.keys:
        return frame[config.id_col].astype(str)
    parts = [frame[k].astype(str) for k in config.keys]
    ids = parts[0]
    for part in parts[1:]:
        ids = ids + PATH_SEP + part
    return ids


def _check_freq(frame, config: DataConfig, where: str, report: ValidationReport):
    offset = pd.tseries.frequencies.to_offset(config.freq)
    on_grid = _on_grid(frame["ds"], offset)
    if not on_grid.all() and config.align_dates:
        aligned = _align(frame["ds"], config.freq)
        report.dates_aligned = int((aligned != frame["ds"]).sum())
        frame = frame.assign(ds=aligned)
        on_grid = _on_grid(frame["ds"], offset)
    if not on_grid.all():
        guess = _guess_freq(frame)
        looks = f" The dates look like frequency {guess!r}." if guess else ""
        if offset.name not in ("h", "min", "s") and (note := time_of_day_note(frame.loc[~on_grid, "ds"])):
            looks += f" {note}"
        raise DataError(
            f"{where}: column {config.time_col!r} has {int((~on_grid).sum())} date(s) off the "
            f"{config.freq!r} calendar (freq {config.freq} wants {_describe(config.freq)}):\n"
            f"{format_rows(_source_view(frame, config), ~on_grid, _row_cols(config))}\n"
            f"{looks} Set freq to the frequency of the data"
            + (f" ({guess})" if guess else "")
            + ", or set align_dates: true to move each date to the start of its period.",
            setting="freq",
        )
    guess = _guess_freq(frame)
    if guess is not None and _coarser(guess, config.freq, frame["ds"]):
        raise DataError(
            f"{where}: the dates in {config.time_col!r} are {guess!r} periods, but frequency "
            f"{config.freq!r} was asked; every gap would be filled with zeros. Set freq to {guess}.",
            setting="freq",
        )
    return frame


def _on_grid(ds: pd.Series, offset) -> pd.Series:
    intraday = offset.name in ("h", "min", "s")
    uniq = pd.Series(ds.unique())
    ok = uniq.map(lambda t: offset.is_on_offset(t) and (intraday or t == t.normalize()))
    return ds.map(dict(zip(uniq, ok, strict=True))).astype(bool)


def _align(ds: pd.Series, freq: str) -> pd.Series:
    offset = pd.tseries.frequencies.to_offset(freq)
    # roll back to the period's anchor: month start for MS, Monday for W-MON, ...
    return ds.dt.normalize().map(offset.rollback).astype("datetime64[ns]")


def _guess_freq(frame: pd.DataFrame) -> str | None:
    """Infer the data's frequency from its longest series (None when unclear)."""
    sizes = frame.groupby("unique_id", sort=False).size()
    longest = sizes.idxmax()
    dates = frame.loc[frame["unique_id"] == longest, "ds"].drop_duplicates().sort_values()
    if len(dates) < 3:
        return None
    try:
        return pd.infer_freq(dates.iloc[:60])
    except (TypeError, ValueError):
        return None


def _coarser(guess: str, asked: str, ds: pd.Series) -> bool:
    """Whether the data's steps span several of the asked periods (monthly data, freq D)."""
    grid = pd.date_range(ds.min(), periods=3, freq=asked)
    step_asked = (grid[1] - grid[0]) / pd.Timedelta(days=1)
    grid_guess = pd.date_range(ds.min(), periods=3, freq=guess)
    step_guess = (grid_guess[1] - grid_guess[0]) / pd.Timedelta(days=1)
    return step_guess > 1.5 * step_asked


def _describe(freq: str) -> str:
    return {
        "MS": "the 1st of each month",
        "ME": "the last day of each month",
        "QS": "the 1st day of each quarter",
        "YS": "1 January",
        "D": "whole days",
    }.get(freq.split("-")[0], f"dates on the {freq} calendar")


def _apply_duplicates(frame, config: DataConfig, where: str, report: ValidationReport):
    dup = frame.duplicated(["unique_id", "ds"], keep=False)
    if not dup.any():
        return frame
    if config.duplicates == "error":
        raise DataError(
            f"{where}: {int(dup.sum())} rows share a series and period with another row:\n"
            f"{format_rows(_source_view(frame, config), dup, [*_row_cols(config), config.target_col])}\n"
            "Each series needs one row per period. Aggregate the export per key and period, "
            "or set duplicates: sum to add such rows up.",
            setting="duplicates",
        )
    report.duplicates_summed = int(dup.sum())
    agg = {"y": "sum", **{k: "first" for k in config.keys}, **{d: "mean" for d in config.drivers}}
    return frame.groupby(["unique_id", "ds"], as_index=False, sort=False).agg(agg)


def _fill_gaps(frame: pd.DataFrame, config: DataConfig, report: ValidationReport) -> pd.DataFrame:
    grid = pd.date_range(frame["ds"].min(), frame["ds"].max(), freq=config.freq)
    pos = grid.get_indexer(frame["ds"])
    codes, uniques = pd.factorize(frame["unique_id"], sort=False)
    first = np.full(len(uniques), np.iinfo(np.int64).max)
    last = np.full(len(uniques), -1)
    np.minimum.at(first, codes, pos)
    np.maximum.at(last, codes, pos)
    expected = last - first + 1
    counts = np.bincount(codes, minlength=len(uniques))
    missing = expected - counts
    if not missing.any():
        return frame
    report.gaps_filled = {str(uniques[i]): int(missing[i]) for i in np.flatnonzero(missing)}
    series = np.repeat(np.arange(len(uniques)), expected)
    offsets = np.arange(expected.sum()) - np.repeat(np.cumsum(expected) - expected, expected)
    full = pd.DataFrame({"unique_id": uniques[series], "ds": grid[first[series] + offsets]})
    out = full.merge(frame, on=["unique_id", "ds"], how="left", sort=False)
    out["y"] = out["y"].fillna(0.0)
    # keys are constant within a series; drivers carry the last known value into a gap
    fill_cols = [*config.keys, *config.drivers]
    if fill_cols:
        out[fill_cols] = out.groupby("unique_id", sort=False)[fill_cols].ffill()
    return out


def _check_lengths(frame: pd.DataFrame, config: DataConfig, where: str, report) -> None:
    by_series = frame.groupby("unique_id", sort=True)
    sizes = by_series.size()
    short = sizes[sizes < config.min_length]
    if len(short) and config.short_series == "error":
        raise DataError(
            f"{where}: {len(short)} series have fewer than {config.min_length} periods of history, "
            f"which the models need: {format_examples([f'{i} ({n})' for i, n in short.items()])}. "
            "Set short_series: report to forecast them with the "
            "short-history fallback, or lower min_length.",
            setting="short_series",
        )
    report.short_series = [str(i) for i in short.index]
    totals = by_series["y"].sum()
    report.zero_series = [str(i) for i in totals.index[totals.eq(0)]]
    starts, ends = by_series["ds"].min(), by_series["ds"].max()
    report.started_late = [str(i) for i in starts.index[starts > starts.min()]]
    report.ended_early = [str(i) for i in ends.index[ends < ends.max()]]
