"""Reading demand history from files and databases, writing result frames.

Readers return the source as it is (all columns, no renaming); checking the data contract is
the job of :mod:`sopforecast.data.schema`. Every failure to read names the source and says
what to do.

Text files are read as text first, then each column is typed by what its cells hold
(:func:`type_columns`): a column of numbers becomes numeric with ``NA``/``NULL``/empty cells
missing, while any column holding codes (``00101``, ``NA`` among ``EU`` and ``APAC``) stays
text exactly as written, so ids never change on the way in. A UTF-8 or UTF-16 byte-order
mark is honoured, a header naming a column twice is refused, and fully empty rows at the end
(the ``,,`` lines a spreadsheet leaves) are dropped.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DataError, format_examples

__all__ = [
    "read_source",
    "type_columns",
    "blank_rows",
    "write_frame",
    "stage_frame",
    "is_sql_url",
    "redact_url",
    "SUPPORTED_SUFFIXES",
    "NA_TEXT",
]

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".csv", ".txt", ".parquet", ".pq", ".xlsx", ".xlsm", ".xls")

#: Cells that mean "no value" in a numeric column (pandas' default missing-value markers).
#: In a text column they are values: a region called ``NA``, an item code ``NULL``.
NA_TEXT = frozenset(
    ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN"]
    + ["<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
)
# a code, not a quantity: a leading zero before another digit (00101), or more digits than
# a float holds exactly (a 20-digit EAN-like key)
_CODE = r"^[+-]?0\d|^[+-]?\d{16,}"
_BOOLS = {"true": True, "false": False}
# byte-order marks, longest first (UTF-32 LE starts like UTF-16 LE)
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)


def is_sql_url(source: str | Path) -> bool:
    """Tell whether ``source`` is a SQLAlchemy database URL rather than a file path."""
    text = str(source)
    return "://" in text and not text.startswith("file://")


def read_source(
    source: str | Path,
    *,
    table: str | None = None,
    query: str | None = None,
    sheet: str | int | None = None,
    text_columns: Iterable[str] = (),
    as_text: bool = False,
    empty_ok: bool = False,
) -> pd.DataFrame:
    """Read demand history (or any table a person filled in) from a CSV, Parquet or Excel
    file or a SQL database.

    Parameters
    ----------
    source : str or Path
        A file path (``.csv``, ``.parquet``, ``.xlsx``) or a SQLAlchemy URL such as
        ``sqlite:///erp.db`` or ``postgresql://user@host/db``.
    table : str, optional
        Table to read when ``source`` is a database URL.
    query : str, optional
        SQL query to run when ``source`` is a database URL (instead of ``table``).
    sheet : str or int, optional
        Excel sheet name or index; default the first sheet.
    text_columns : iterable of str, default ()
        Columns of a CSV or Excel file to keep as text whatever they hold (the series keys,
        when the caller knows them). The other columns are typed by their cells
        (:func:`type_columns`), which already keeps any column of codes as text.
    as_text : bool, default False
        Every CSV or Excel cell as the text written there (an empty cell is ``""``), for a
        reader that checks each cell itself (overrides, prices, budgets).
    empty_ok : bool, default False
        A header without rows is an empty frame, not an error: a list that may be empty this
        month (launches, delistings).

    Returns
    -------
    pandas.DataFrame
        The source's rows and columns; in CSV and Excel files, ids as written (``00101``,
        ``NA``), numbers as numbers, and the fully empty rows at the end dropped.

    Raises
    ------
    DataError
        When the file is missing, unreadable, of an unknown type or empty, names a column
        twice, or the database cannot be queried.
    """
    if is_sql_url(source):
        frame = _read_sql(str(source), table=table, query=query)
        where = f"{redact_url(str(source))} ({'query' if query else f'table {table!r}'})"
    else:
        path = Path(source).expanduser()
        frame = _read_file(path, sheet=sheet, text_columns=frozenset(text_columns), as_text=as_text)
        where = str(path)
    # a query (SELECT a.y, b.y) or a Parquet file; text files were checked on their header
    _refuse_repeated_names([str(c) for c in frame.columns], where, what="the source's columns name")
    if frame.shape[0] == 0 and not empty_ok:
        raise DataError(
            f"{where}: the source has a header but no rows. "
            "Export the demand history again, or point the data path at the right file.",
            setting="path",
        )
    logger.info("Read %d rows and %d columns from %s", frame.shape[0], frame.shape[1], where)
    frame.attrs["source"] = where
    return frame


def _read_file(
    path: Path, *, sheet: str | int | None, text_columns: frozenset[str], as_text: bool = False
) -> pd.DataFrame:
    if not path.exists():
        hint = ""
        if path.parent.exists():
            near = sorted(p.name for p in path.parent.iterdir() if p.suffix in SUPPORTED_SUFFIXES)
            if near:
                hint = f" Files there: {', '.join(near[:5])}."
        raise DataError(f"{path}: file not found.{hint} Check the data path.", setting="path")
    if path.is_dir():
        raise DataError(
            f"{path}: is a folder, not a file. Point the data path at a CSV, Parquet or Excel file.",
            setting="path",
        )
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DataError(
            f"{path}: unknown file type {suffix!r}. Supported: CSV (.csv), Parquet (.parquet), "
            "Excel (.xlsx), or a database URL such as sqlite:///erp.db (then give table or query).",
            setting="path",
        )
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty (0 bytes). Export the demand history again.")
    try:
        if suffix in (".csv", ".txt"):
            cells = _read_text(path, sniff=suffix == ".txt")
        elif suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        else:
            with pd.ExcelFile(path) as book:
                name = _sheet(path, book.sheet_names, sheet)
                header = book.parse(name, header=None, nrows=1, dtype=object, keep_default_na=False)
                _refuse_repeated_names([_header_cell(v) for v in header.iloc[0]] if len(header) else [], path)
                cells = book.parse(name, dtype=object, keep_default_na=False)
        cells = _drop_trailing_blank(cells)
        if as_text:
            return cells.astype(str)
        return type_columns(cells, text_columns=text_columns)
    except DataError:
        raise
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file has no columns or rows. Export the demand history again.") from exc
    except Exception as exc:  # every reader failure here is a bad file, not our bug
        kind = {".csv": "CSV", ".txt": "text", ".parquet": "Parquet", ".pq": "Parquet"}.get(suffix, "Excel")
        raise DataError(
            f"{path}: cannot be read as {kind}: {_first_line(exc)}. Check that the file is "
            "complete and of the type its name says; save CSV as UTF-8 with one header row."
        ) from exc


def _read_text(path: Path, *, sniff: bool) -> pd.DataFrame:
    """A CSV (or, with ``sniff``, a text file of any separator) as text cells, header checked.

    Every cell is read as written (``keep_default_na=False``): which cells are missing is
    decided per column by :func:`type_columns`, so an id ``NA`` is not lost here.
    """
    options = {"encoding": _encoding(path), "dtype": str, "keep_default_na": False}
    if sniff:
        options.update(sep=None, engine="python")
    header = pd.read_csv(path, header=None, nrows=1, **options)
    _refuse_repeated_names(header.iloc[0].tolist() if len(header) else [], path)
    return pd.read_csv(path, **options)


def _encoding(path: Path) -> str:
    """The file's text encoding by its byte-order mark; UTF-8 when it has none."""
    with path.open("rb") as handle:
        start = handle.read(4)
    return next((name for bom, name in _BOMS if start.startswith(bom)), "utf-8")


def _header_cell(value) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value).strip()


def _refuse_repeated_names(names: list[str], where, *, what: str = "the header names") -> None:
    """Raise when a header names a column twice: reading would rename one (``y`` -> ``y.1``)
    and use the other without a word. Empty header cells are not names."""
    names = [str(n) for n in names]
    seen = pd.Series(names)
    repeated = seen[seen.duplicated(keep=False) & (seen.str.strip() != "")]
    if repeated.empty:
        return
    first = repeated.iloc[0]
    positions = [i + 1 for i, n in enumerate(names) if n == first]
    others = sorted(set(repeated) - {first})
    more = f" (also repeated: {format_examples(others)})" if others else ""
    raise DataError(
        f"{where}: {what} column {first!r} {len(positions)} times (columns "
        f"{', '.join(map(str, positions))}){more}; reading it would use one and rename the "
        "other silently. Rename or delete the extra column(s) in the source so each name is "
        "used once."
    )


def type_columns(cells: pd.DataFrame, *, text_columns: Iterable[str] = ()) -> pd.DataFrame:
    """Give each column of a frame read as text the type its cells show.

    A column whose cells are all numbers (or empty, or a missing marker of :data:`NA_TEXT`
    such as ``NA``) becomes numeric, the markers missing; ``true``/``false`` become bools.
    Any other column is text as written: ids keep their leading zeros (``00101`` and
    ``101`` stay two series), and ``NA``, ``NULL`` or ``None`` among other names are names;
    only its empty cells are missing. A column of numbers with a leading zero (``0101``) or
    more digits than a float holds is a column of codes, hence text.

    Parameters
    ----------
    cells : pandas.DataFrame
        Cells as read, text (or numbers, dates and empty strings from a workbook); not modified.
    text_columns : iterable of str, default ()
        Columns kept as text whatever they hold; names compared ignoring case and
        surrounding spaces (a workbook's ``Key `` is ``key``).

    Returns
    -------
    pandas.DataFrame
        A new frame with the same columns, index and order.
    """
    forced = {_folded(c) for c in text_columns}
    typed = {
        col: _as_text(values) if _folded(col) in forced else _typed(values)
        for col, values in cells.items()
        if values.dtype == object
    }
    out = cells.copy()
    for position, col in enumerate(cells.columns):
        if col in typed:
            out.isetitem(position, typed[col])
    return out


def _folded(name) -> str:
    return str(name).strip().lower()


def _typed(values: pd.Series) -> pd.Series:
    # decided on the distinct cells: a panel repeats its keys and dates in every row
    codes, cells = pd.factorize(values)
    cells = pd.Series(cells, dtype=object)
    is_text = _is_text(cells)
    text = cells[is_text].str.strip()
    marker = text.isin(NA_TEXT)
    written = text[~marker]
    natives = cells[~is_text]
    if natives.map(_is_number).all() and len(written) + len(natives):
        numbers = pd.to_numeric(written, errors="coerce")
        if numbers.notna().all() and not written.str.contains(_CODE).any():
            typed = pd.to_numeric(cells.where(~is_text, text.where(~marker)), errors="coerce")
            return _spread(typed, codes, values.index)
    lowered = written.str.lower()
    if len(written) and natives.empty and lowered.isin(list(_BOOLS)).all():
        flags = lowered.map(_BOOLS).reindex(cells.index)
        if flags.notna().all() and (codes >= 0).all():
            return _spread(flags.astype(bool), codes, values.index)
        return _spread(flags.astype(object), codes, values.index)
    return _as_text(values)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def _spread(typed: pd.Series, codes: np.ndarray, index: pd.Index) -> pd.Series:
    """The typed distinct cells back in row order; code -1 (a missing cell) is missing."""
    if (codes < 0).any():
        array = typed.to_numpy(dtype=float if typed.dtype.kind in "biuf" else object)
        return pd.Series(np.append(array, np.nan)[codes], index=index)
    return pd.Series(typed.to_numpy()[codes], index=index)


def _as_text(values: pd.Series) -> pd.Series:
    """Text as written; only an empty cell is missing (a workbook's dates and numbers kept)."""
    out = values.where(~_empty_text(values), np.nan)
    if not _is_text(out).any():  # only dates or numbers left (a workbook's date column)
        return out.infer_objects()
    return out


def _is_text(values: pd.Series) -> pd.Series:
    if pd.api.types.infer_dtype(values, skipna=False) == "string":
        return pd.Series(True, index=values.index)
    return values.map(lambda v: isinstance(v, str)).astype(bool)


def _empty_text(values: pd.Series) -> pd.Series:
    """Which cells are text of nothing but spaces (``""``), decided once per distinct cell."""
    codes, cells = pd.factorize(values)
    cells = pd.Series(cells, dtype=object)
    is_text = _is_text(cells)
    empty = (is_text & (cells.where(is_text, "x").str.strip() == "")).to_numpy()
    return pd.Series(np.append(empty, False)[codes], index=values.index)


def blank_rows(frame: pd.DataFrame) -> pd.Series:
    """Which rows are entirely empty: every cell missing, ``""`` or only spaces.

    Parameters
    ----------
    frame : pandas.DataFrame
        Any frame.

    Returns
    -------
    pandas.Series
        Bool, on ``frame``'s index.
    """
    masks = [
        values.isna().to_numpy() | (_empty_text(values).to_numpy() if values.dtype == object else False)
        for _, values in frame.items()
    ]
    blank = np.logical_and.reduce(masks) if masks else np.zeros(len(frame), dtype=bool)
    return pd.Series(blank, index=frame.index)


def _drop_trailing_blank(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame without the fully empty rows after its last row with a value."""
    if frame.empty or not blank_rows(frame.tail(1)).iloc[0]:
        return frame
    blank = blank_rows(frame).to_numpy()
    trailing = np.logical_and.accumulate(blank[::-1])[::-1]
    return frame[~trailing] if trailing.any() else frame


def _sheet(path: Path, names: list[str], sheet: str | int | None) -> str | int:
    """The workbook's sheet to read: by name, else by number (0 = first) as ``2`` or ``"2"``."""
    if sheet is None:
        return 0
    if sheet in names:
        return sheet
    if isinstance(sheet, int) or str(sheet).isdigit():
        if int(sheet) < len(names):
            return int(sheet)
    raise DataError(
        f"{path}: no sheet {sheet!r} in the workbook. Its sheets: {format_examples(names, 20)}. "
        "Set sheet to one of these names, or to its number (0 = first).",
        setting="sheet",
    )


def _read_sql(url: str, *, table: str | None, query: str | None) -> pd.DataFrame:
    import sqlalchemy as sa

    if (table is None) == (query is None):
        raise DataError(
            f"{redact_url(url)}: give table or query (exactly one: a table name or 'SELECT ...') "
            "to read demand history from a database.",
            setting="table",
        )
    try:
        engine = sa.create_engine(url)
    except Exception as exc:  # unknown dialect or driver
        raise DataError(
            f"{redact_url(url)}: not a usable database URL: {_first_line(exc)}. "
            "Use e.g. sqlite:///path/to/erp.db or postgresql://user@host/db "
            "(install 'sopforecast[postgres]' for PostgreSQL)."
        ) from exc
    try:
        with engine.connect() as conn:
            if table is not None:
                names = sa.inspect(conn).get_table_names()
                if table not in names:
                    raise DataError(
                        f"{redact_url(url)}: no table {table!r}. Tables there: "
                        f"{', '.join(names[:10]) or '(none)'}."
                    )
                return pd.read_sql_table(table, conn)
            return pd.read_sql_query(sa.text(query), conn)
    except DataError:
        raise
    except sa.exc.SQLAlchemyError as exc:
        raise DataError(f"{redact_url(url)}: the database query failed: {_first_line(exc)}.") from exc
    finally:
        engine.dispose()


def write_frame(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a result frame to CSV or Parquet, chosen by the file suffix.

    The file is written to a temporary name and moved into place, so a failure never
    leaves half a file behind.
    """
    path = Path(path)
    stage_frame(frame, path).replace(path)
    return path


def stage_frame(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` in the format of ``path`` to a hidden file beside it; return that file.

    ``staged.replace(path)`` publishes it. Used to publish several outputs together, last.
    A CSV's text cells that a spreadsheet would run as a formula (a series named ``=1+1``)
    get a leading ``'`` (:func:`sopforecast.exports.neutralise`); Parquet keeps them as is.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise DataError(f"{path}: output must end in .csv or .parquet, got {suffix or 'no suffix'!r}.")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".csv":
            from ..exports import neutralise

            neutralise(frame).to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise DataError(
            f"{path}: cannot write the output ({exc.strerror or exc}). Choose a folder you can write to."
        ) from None
    return tmp


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0].rstrip(".") if text else type(exc).__name__


def redact_url(url: str) -> str:
    """Hide a password in a database URL before it reaches a message or a log."""
    try:
        import sqlalchemy as sa

        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a parseable URL: show it as given
        return url
