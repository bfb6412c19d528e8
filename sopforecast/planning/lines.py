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
bottom series make up each aggregate from the bottom series' key values, so any level of
a grouped hierarchy (``category/family`` x ``region``) adds up.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.hierarchy import PATH_SEP, TOTAL, hierarchy_levels, level_name

__all__ = [
    "LINE_COLUMNS",
    "FLAT",
    "interval_columns",
    "summing",
    "series_keys",
    "rollup",
    "is_coherent",
]

FLAT = "series"  # the level name of data without a hierarchy
LINE_COLUMNS = ["unique_id", "level", "ds", "statistical", "naive", "consensus", "final", "author"]
VALUE_COLUMNS = ["statistical", "naive", "consensus", "final"]


def interval_columns(lines: pd.DataFrame) -> list[str]:
    """The ``statistical-lo-L`` / ``statistical-hi-L`` columns of ``lines``, in order."""
    return [c for c in lines.columns if c.startswith("statistical-")]


def summing(bottom: pd.DataFrame, hierarchy: list[str]) -> tuple[pd.DataFrame, pd.Series]:
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
        ``S``: 0/1 frame, index every series id (the Total first, the bottom last),
        columns the bottom ids. ``levels``: level name of every series id.
    """
    bottom = bottom.drop_duplicates("unique_id").reset_index(drop=True)
    ids = bottom["unique_id"].astype(str).to_numpy()
    if not hierarchy:  # flat data: every series stands alone
        S = pd.DataFrame(np.eye(len(ids)), index=pd.Index(ids, dtype=object, name="unique_id"), columns=ids)
        return S, pd.Series(FLAT, index=S.index, name="level")
    blocks, names = [], []
    for level in hierarchy_levels(hierarchy):
        if level:
            parent = bottom[level].astype(str).agg(PATH_SEP.join, axis=1).to_numpy()
        else:
            parent = np.full(len(bottom), TOTAL, dtype=object)
        if len(level) == len([c for chain in hierarchy for c in chain.split(PATH_SEP) if c]):
            parent = ids  # the bottom level keeps the ids it was given
        codes, uniques = pd.factorize(parent, sort=True)
        block = np.zeros((len(uniques), len(ids)))
        block[codes, np.arange(len(ids))] = 1.0
        blocks.append(pd.DataFrame(block, index=pd.Index(uniques, dtype=object), columns=ids))
        names.extend([level_name(level)] * len(uniques))
    S = pd.concat(blocks)
    S.index.name = "unique_id"
    return S, pd.Series(names, index=S.index, name="level")


def series_keys(bottom: pd.DataFrame, hierarchy: list[str]) -> pd.DataFrame:
    """Key columns of every series (index ``unique_id``); keys below a series' level are empty."""
    keys = [c for chain in hierarchy for c in chain.split(PATH_SEP) if c]
    bottom = bottom.drop_duplicates("unique_id")
    if not hierarchy:
        return pd.DataFrame(index=pd.Index(bottom["unique_id"].astype(str), name="unique_id"))
    rows = []
    for level in hierarchy_levels(hierarchy):
        part = bottom.drop_duplicates(level) if level else bottom.head(1)
        part = part[level].copy() if level else pd.DataFrame(index=part.index)
        part["unique_id"] = part.astype(str).agg(PATH_SEP.join, axis=1) if level else TOTAL
        if len(level) == len(keys):
            part["unique_id"] = bottom.loc[part.index, "unique_id"].astype(str)
        rows.append(part)
    out = pd.concat(rows, ignore_index=True).reindex(columns=["unique_id", *keys])
    return out.drop_duplicates("unique_id").set_index("unique_id")


def rollup(values: pd.DataFrame, S: pd.DataFrame, column: str) -> pd.Series:
    """Every series' ``column`` as the sum of its bottom series (``values``: bottom ids only,
    columns ``unique_id, ds, column``); returns a series indexed by ``(unique_id, ds)``."""
    wide = values.pivot(index="unique_id", columns="ds", values=column).reindex(S.columns).fillna(0.0)
    total = pd.DataFrame(S.to_numpy() @ wide.to_numpy(), index=S.index, columns=wide.columns)
    total.columns.name = "ds"
    return total.stack().rename(column)


def is_coherent(lines: pd.DataFrame, S: pd.DataFrame, column: str = "final", rtol: float = 1e-9) -> bool:
    """Whether every aggregate's ``column`` equals the sum of its bottom series."""
    bottom = lines[lines["unique_id"].isin(S.columns)]
    expected = rollup(bottom, S, column)
    actual = lines.set_index(["unique_id", "ds"])[column].reindex(expected.index)
    scale = max(float(np.abs(expected).max()), 1.0)
    return bool(np.allclose(actual.to_numpy(), expected.to_numpy(), rtol=0, atol=rtol * scale))
