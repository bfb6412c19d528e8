"""Bulk loads: many rows in one statement, from column arrays.

PostgreSQL (psycopg 3) takes the rows through ``COPY ... FROM STDIN``; SQLite through one
prepared ``INSERT`` run over every row (``executemany``); any other driver through
SQLAlchemy's own ``executemany``. All of them run on the caller's connection, inside its
transaction: a load that fails leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from sqlalchemy import Table, insert, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

__all__ = ["insert_columns", "delete_keys", "floats", "texts", "dates"]


def floats(values) -> list:
    """Numbers as Python floats, NaN and missing as ``None`` (NULL, on every database)."""
    array = np.asarray(values, dtype=float)
    out = array.tolist()
    missing = np.flatnonzero(np.isnan(array))
    for i in missing.tolist():
        out[i] = None
    return out


def texts(values) -> list:
    """Text as Python ``str``, missing as ``None``; the text itself is kept as it is."""
    series = pd.Series(values, dtype=object)
    return series.where(series.notna(), None).tolist()


def dates(values) -> list[dt.date]:
    """Dates (month starts, any datetime-like) as ``datetime.date``; each distinct day is
    made once (a plan repeats a few dozen months over many series)."""
    days = pd.DatetimeIndex(pd.to_datetime(values)).to_numpy().astype("datetime64[D]")
    distinct, inverse = np.unique(days, return_inverse=True)
    return distinct.astype(object)[inverse].tolist()


def insert_columns(conn: Connection, table: Table, columns: dict[str, list]) -> int:
    """Insert the rows given as equally long lists of Python values (``None`` for NULL),
    one list per column of ``table``; the number of rows."""
    names = list(columns)
    lists = [columns[n] for n in names]
    n = len(lists[0]) if lists else 0
    if n == 0:
        return 0
    dialect = conn.dialect.name
    driver = conn.connection.driver_connection
    if dialect == "postgresql" and type(driver).__module__.split(".")[0] == "psycopg":
        _copy(conn, driver, table.name, names, lists)
    elif dialect == "sqlite":
        # SQLAlchemy keeps SQLite dates as ISO text: the same text here, so they read back alike
        lists = [_iso_column(col) if _has_dates(col) else col for col in lists]
        marks = ", ".join("?" * len(names))
        sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})"
        conn.exec_driver_sql(sql, list(zip(*lists, strict=True)))
    else:
        conn.execute(insert(table), [dict(zip(names, row, strict=True)) for row in zip(*lists, strict=True)])
    return n


def _has_dates(column: list) -> bool:
    first = next((v for v in column if v is not None), None)
    return isinstance(first, dt.date)


def _iso_column(column: list) -> list:
    """:func:`_iso` of every value, each distinct value converted once."""
    memo: dict = {}
    return [memo[v] if v in memo else memo.setdefault(v, _iso(v)) for v in column]


def _iso(value):
    """A date or timestamp as the text SQLAlchemy keeps in SQLite for ``Date``/``DateTime``."""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return value.isoformat() if isinstance(value, dt.date) else value


def _copy(conn: Connection, driver, name: str, names: list[str], lists: list[list]) -> None:
    quoted = ", ".join(f'"{c}"' for c in names)
    statement = f'COPY "{name}" ({quoted}) FROM STDIN'
    dbapi = conn.dialect.loaded_dbapi
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in zip(*lists, strict=True):
                copy.write_row(row)
    except dbapi.Error as exc:  # as SQLAlchemy raises it for its own statements (IntegrityError ...)
        raise DBAPIError.instance(statement, None, exc, dbapi.Error, dialect=conn.dialect) from exc


def delete_keys(conn: Connection, table: Table, where: dict, keys: dict[str, list]) -> None:
    """Delete the rows of ``table`` that match ``where`` (column: value) and one of the key
    tuples given as equally long column lists ``keys`` (the primary key's other columns)."""
    names = list(keys)
    lists = [keys[n] for n in names]
    if not lists or not len(lists[0]):
        return
    fixed = " AND ".join(f"{c} = :{c}" for c in where)
    if conn.dialect.name == "postgresql":
        arrays = ", ".join(f"CAST(:k_{n} AS {table.c[n].type.compile(conn.dialect)}[])" for n in names)
        sql = (
            f"DELETE FROM {table.name} WHERE {fixed} AND ({', '.join(names)}) IN "
            f"(SELECT * FROM unnest({arrays}))"
        )
        conn.execute(text(sql), {**where, **{f"k_{n}": lists[i] for i, n in enumerate(names)}})
        return
    match = " AND ".join(f"{n} = :k_{n}" for n in names)
    lists = [_iso_column(col) for col in lists]  # as SQLAlchemy keeps SQLite dates
    params = [
        {**where, **{f"k_{n}": v for n, v in zip(names, row, strict=True)}}
        for row in zip(*lists, strict=True)
    ]
    conn.execute(text(f"DELETE FROM {table.name} WHERE {fixed} AND {match}"), params)
