"""Supply files read from where planners keep them: CSV, Excel, or a SQL table.

The readers of the three supply tables: each reads its source with
:func:`sopforecast.data.io.read_source` (ids as text: ``00101``, ``NA``) and hands it to its
validator in :mod:`sopforecast.supply.inputs`, which names the file, the column, the rows and
the fix of every problem. The supply package itself reads nothing.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..supply.inputs import TEXT_COLUMNS, validate_capacity, validate_inventory, validate_routing
from .io import read_source

__all__ = ["read_capacity", "read_routing", "read_inventory"]


def read_capacity(path: str | Path, *, table: str | None = None, sheet: str | int | None = None):
    """Read and validate a capacity table (CSV, Excel, or a SQL URL with ``table``).

    Returns
    -------
    pandas.DataFrame
        As :func:`validate_capacity` returns it.
    """
    return _read("capacity", validate_capacity, path, table=table, sheet=sheet)


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
    return _read("routing", validate_routing, path, table=table, sheet=sheet, plan_keys=plan_keys)


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
    return _read("inventory", validate_inventory, path, table=table, sheet=sheet, plan_keys=plan_keys)


def _read(what: str, validate, path, *, table, sheet, **options) -> pd.DataFrame:
    """One supply table read with its keys as text, then validated (naming its source)."""
    raw = read_source(path, table=table, sheet=sheet, text_columns=TEXT_COLUMNS[what])
    return validate(raw, source=raw.attrs.get("source"), **options)
