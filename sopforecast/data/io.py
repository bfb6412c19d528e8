"""Reading demand history from files and databases, writing result frames.

Readers return the source as it is (all columns, no renaming); checking the data contract is
the job of :mod:`sopforecast.data.schema`. Every failure to read names the source and says
what to do.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import pandas as pd

from ..errors import DataError, format_examples

__all__ = ["read_source", "write_frame", "stage_frame", "is_sql_url", "redact_url", "SUPPORTED_SUFFIXES"]

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".csv", ".txt", ".parquet", ".pq", ".xlsx", ".xlsm", ".xls")


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
) -> pd.DataFrame:
    """Read demand history from a CSV, Parquet or Excel file or a SQL database.

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

    Returns
    -------
    pandas.DataFrame
        The source's rows and columns, unchanged.

    Raises
    ------
    DataError
        When the file is missing, unreadable, of an unknown type or empty, or the database
        cannot be queried.
    """
    if is_sql_url(source):
        frame = _read_sql(str(source), table=table, query=query)
        where = f"{redact_url(str(source))} ({'query' if query else f'table {table!r}'})"
    else:
        path = Path(source).expanduser()
        frame = _read_file(path, sheet=sheet)
        where = str(path)
    if frame.shape[0] == 0:
        raise DataError(
            f"{where}: the source has a header but no rows. "
            "Export the demand history again, or point the data path at the right file.",
            setting="path",
        )
    logger.info("Read %d rows and %d columns from %s", frame.shape[0], frame.shape[1], where)
    frame.attrs["source"] = where
    return frame


def _read_file(path: Path, *, sheet: str | int | None) -> pd.DataFrame:
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
            return pd.read_csv(path, sep=None, engine="python") if suffix == ".txt" else pd.read_csv(path)
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        with pd.ExcelFile(path) as book:
            return book.parse(_sheet(path, book.sheet_names, sheet))
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
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise DataError(f"{path}: output must end in .csv or .parquet, got {suffix or 'no suffix'!r}.")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".csv":
            frame.to_csv(tmp, index=False)
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
