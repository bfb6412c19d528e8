"""Plan lines: the frame every planning module reads and writes.

A demand plan version is a long frame, one row per series of the hierarchy (every level)
and month:

========================  ==================================================================
``unique_id``             series path as in the forecast (``Beverages/Juice``, ``Total``)
``level``                 its level name (``Total``, ``category``, ``category/family``, ...)
``ds``                    the month (first day of the bucket)
``statistical``           the reconciled statistical forecast
``statistical-lo-80`` ..  its interval bounds, one pair per interval level
``naive``                 the last month of history known when the plan was made
``consensus``             the value overrides gave the line; empty where none touched it
``final``                 the plan: ``consensus`` where set, else ``statistical``
``author``                author of the last override that changed the line, else empty
``price``, ``unit_cost``  per unit, on bottom lines only (empty when unknown)
========================  ==================================================================

The hierarchy's key columns are not part of the lines; :func:`summing` rebuilds which
bottom series make up each aggregate from the bottom series' key values (a
:class:`~sopforecast.data.hierarchy.Hierarchy` with its sparse summing matrix), so any level
of a grouped hierarchy (``category/family`` x ``region``) adds up.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..data.hierarchy import FLAT, Hierarchy

__all__ = [
    "LINE_COLUMNS",
    "FLAT",
    "interval_columns",
    "summing",
    "series_keys",
    "rollup",
    "is_coherent",
]

LINE_COLUMNS = ["unique_id", "level", "ds", "statistical", "naive", "consensus", "final", "author"]
VALUE_COLUMNS = ["statistical", "naive", "consensus", "final"]


def interval_columns(lines: pd.DataFrame) -> list[str]:
    """The ``statistical-lo-L`` / ``statistical-hi-L`` columns of ``lines``, in order."""
    return [c for c in lines.columns if c.startswith("statistical-")]


def summing(bottom: pd.DataFrame, hierarchy: list[str]) -> tuple[Hierarchy, pd.Series]:
    """Which bottom series make up every series of the hierarchy.

    Parameters
    ----------
    bottom : pandas.DataFrame
        One row per bottom series: ``unique_id`` and every key column of ``hierarchy``.
    hierarchy : list of str
        Key chains, e.g. ``["category/family/sku", "region/channel"]``.

    Returns
    -------
    (S, levels)
        ``S``: the :class:`~sopforecast.data.hierarchy.Hierarchy`, whose sparse ``S.S`` has
        rows ``S.index`` (every series id, the Total first, the bottom last) and columns
        ``S.columns`` (the bottom ids). ``levels``: level name of every series id.
    """
    structure = Hierarchy.from_bottom(bottom, hierarchy)
    return structure, structure.level_of()


def series_keys(bottom: pd.DataFrame, hierarchy: list[str]) -> pd.DataFrame:
    """Key columns of every series (index ``unique_id``); keys below a series' level are empty."""
    if not hierarchy:
        return pd.DataFrame(
            index=pd.Index(bottom.drop_duplicates("unique_id")["unique_id"].astype(str), name="unique_id")
        )
    return Hierarchy.from_bottom(bottom, hierarchy).key_values()


def rollup(values: pd.DataFrame, S: Hierarchy | pd.DataFrame, column: str) -> pd.Series:
    """Every series' ``column`` as the sum of its bottom series (``values``: bottom ids only,
    columns ``unique_id, ds, column``); returns a series indexed by ``(unique_id, ds)``.

    ``S`` is the :class:`~sopforecast.data.hierarchy.Hierarchy` of :func:`summing` (summed
    with its sparse matrix) or a 0/1 frame (ids x bottom ids).
    """
    wide = values.pivot(index="unique_id", columns="ds", values=column).reindex(S.columns).fillna(0.0)
    matrix = S.S if isinstance(S, Hierarchy) else sp.csr_matrix(S.to_numpy())
    total = pd.DataFrame(matrix @ wide.to_numpy(), index=S.index, columns=wide.columns)
    total.columns.name = "ds"
    return total.stack().rename(column)


def is_coherent(
    lines: pd.DataFrame, S: Hierarchy | pd.DataFrame, column: str = "final", rtol: float = 1e-9
) -> bool:
    """Whether every aggregate's ``column`` equals the sum of its bottom series."""
    bottom = lines[lines["unique_id"].isin(S.columns)]
    expected = rollup(bottom, S, column)
    actual = lines.set_index(["unique_id", "ds"])[column].reindex(expected.index)
    scale = max(float(np.abs(expected).max()), 1.0)
    return bool(np.allclose(actual.to_numpy(), expected.to_numpy(), rtol=0, atol=rtol * scale))
