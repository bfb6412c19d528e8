"""Tables for people and for scripts: one ``--format`` and ``--output`` for every listing command.

``table`` prints a rich table (on a pipe or in a file its lines are as long as they need:
keys are never cut, see :mod:`.console`); ``csv`` writes the rows with spreadsheet-safe text
cells (:func:`sopforecast.exports.neutralise`); ``json`` writes a list of records with ISO
dates. Without ``--output`` the rows go to standard output, so ``sopforecast monitor
exceptions --format csv | grep Soap`` finds a key in full.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .console import UNBOUNDED_WIDTH, console
from .exports import neutralise

__all__ = ["FORMATS", "Format", "FormatOption", "OutputOption", "emit"]

FORMATS = ("table", "csv", "json")
Format = Literal["table", "csv", "json"]

FormatOption = Annotated[
    Format,
    typer.Option(
        "--format", "-f", help="table (for people), csv or json (for scripts).", case_sensitive=False
    ),
]
OutputOption = Annotated[
    Path | None,
    typer.Option("--output", "-o", help="Write to this file instead of standard output.", dir_okay=False),
]


def emit(
    frame: pd.DataFrame,
    fmt: str = "table",
    output: Path | None = None,
    *,
    title: str | None = None,
) -> None:
    """Write ``frame`` as a table, CSV or JSON, to ``output`` or standard output.

    Parameters
    ----------
    frame : pandas.DataFrame
        The rows, in the order to show; columns as named (the index is not written).
    fmt : {"table", "csv", "json"}, default "table"
        ``table``: a rich table titled ``title``; ``csv``: text cells neutralised against
        formula injection; ``json``: a list of records, dates as ISO 8601, missing values
        as ``null``.
    output : pathlib.Path, optional
        The file to write (a table is then written as plain text); default standard output.
    title : str, optional
        The table's title (``table`` only: CSV and JSON hold the rows alone).

    Raises
    ------
    ValueError
        ``fmt`` is not one of :data:`FORMATS`.
    """
    fmt = str(fmt).lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if fmt == "table":
        table = _table(frame, title)
        if output is None:
            console.print(table)
        else:
            with open(output, "w", encoding="utf-8", newline="\n") as handle:
                Console(file=handle, width=UNBOUNDED_WIDTH, no_color=True, highlight=False).print(table)
        return
    text = _csv(frame) if fmt == "csv" else _json(frame)
    if output is None:
        # plain text, no markup or wrapping: what a script reads is what was written
        console.file.write(text)
        console.file.flush()
    else:
        Path(output).write_text(text, encoding="utf-8", newline="")


def _table(frame: pd.DataFrame, title: str | None) -> Table:
    table = Table(title=title)
    numeric = {c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])}
    for col in frame.columns:
        table.add_column(escape(str(col)), justify="right" if col in numeric else "left")
    for row in frame.itertuples(index=False):
        table.add_row(*(escape(_cell(v)) for v in row))
    return table


def _cell(value) -> str:
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d") if value == value.normalize() else value.isoformat()
    if isinstance(value, float | np.floating):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def _dates(frame: pd.DataFrame) -> pd.DataFrame:
    """Date columns as ISO text: months and days as dates (``2025-12-01``), instants with
    their time (``2026-01-05T08:30:00``); missing stays missing."""
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            stamps = out[col]
            known = stamps.dropna()
            whole = len(known) and (known == known.dt.normalize()).all()
            text = stamps.dt.strftime("%Y-%m-%d") if whole else stamps.map(lambda t: t.isoformat())
            out[col] = text.where(stamps.notna(), None)
    return out


def _csv(frame: pd.DataFrame) -> str:
    buffer = io.StringIO()
    neutralise(_dates(frame)).to_csv(buffer, index=False, lineterminator="\n")
    return buffer.getvalue()


def _json(frame: pd.DataFrame) -> str:
    records = json.loads(_dates(frame).to_json(orient="records"))
    return json.dumps(records, ensure_ascii=False, indent=1) + "\n"
