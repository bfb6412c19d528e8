"""Hierarchies of series: nesting of key columns, levels, and consistency checks.

A hierarchy is given as one chain per dimension, top to bottom, e.g.
``["category/family/sku", "region/channel"]``. Several chains make a grouped structure:
every combination of a prefix of each chain is a level (``category``, ``category x region``,
...), and the bottom level uses every key. Aggregation and reconciliation build on these
levels (:mod:`sopforecast.forecasting.reconcile`).
"""

from __future__ import annotations

from itertools import product

import pandas as pd

from ..errors import DataError, format_examples

__all__ = [
    "PATH_SEP",
    "TOTAL",
    "parse_chains",
    "hierarchy_levels",
    "level_name",
    "check_nesting",
    "series_per_level",
]

PATH_SEP = "/"
TOTAL = "Total"


def parse_chains(hierarchy: list[str]) -> list[list[str]]:
    """Split ``["category/family/sku", "region/channel"]`` into lists of column names."""
    chains = [[c.strip() for c in chain.split(PATH_SEP) if c.strip()] for chain in hierarchy]
    return [c for c in chains if c]


def hierarchy_levels(hierarchy: list[str]) -> list[list[str]]:
    """Every level of a (possibly grouped) hierarchy, from the total to the bottom.

    Parameters
    ----------
    hierarchy : list of str
        One chain per dimension, top to bottom, levels joined with ``/``.

    Returns
    -------
    list of list of str
        The key columns of each level; ``[]`` is the grand total, the last level holds
        every key. Ordered by depth, then by the order of the chains.
    """
    chains = parse_chains(hierarchy)
    prefixes = [[chain[:i] for i in range(len(chain) + 1)] for chain in chains]
    combos = sorted(product(*prefixes), key=lambda c: (sum(map(len, c)), [-len(p) for p in c]))
    return [sum(combo, []) for combo in combos]


def level_name(level: list[str]) -> str:
    """Readable level name: ``Total``, ``category``, ``category/family``, ``sku/region``."""
    return PATH_SEP.join(level) if level else TOTAL


def check_nesting(frame: pd.DataFrame, hierarchy: list[str], *, where: str = "data") -> None:
    """Raise :class:`DataError` when a few children sit under two parents (a SKU in two families).

    Nodes are named by their path, so a label may repeat under different parents on
    purpose: every region has a ``Retail`` channel, every ATC1 group appears under both
    concession types. That crossing shows as most of a level's values sitting under
    several parents. A master-data error is the exception: a few values (at most half of
    the level) under two parents while the rest have one. Those are reported.

    Parameters
    ----------
    frame : pandas.DataFrame
        Data with the key columns of ``hierarchy``.
    hierarchy : list of str
        Chains of key columns, top to bottom.
    where : str, default "data"
        Source name for the message.
    """
    for chain in parse_chains(hierarchy):
        for parent, child in zip(chain, chain[1:], strict=False):
            pairs = frame[[parent, child]].drop_duplicates()
            counts = pairs.groupby(child, sort=True)[parent].nunique()
            bad = counts[counts > 1]
            if len(bad) == 0 or len(bad) > 0.5 * len(counts):
                continue
            examples = [
                f"{child}={c!r} under {parent} {sorted(pairs.loc[pairs[child] == c, parent].astype(str))}"
                for c in bad.index[:3]
            ]
            raise DataError(
                f"{where}: the hierarchy {PATH_SEP.join(chain)} is inconsistent: {len(bad)} "
                f"{child} value(s) sit under more than one {parent}: "
                f"{format_examples(examples, 3)}. Correct the master data so each {child} "
                f"has one {parent}, or make the {child} codes unique (prefix them with "
                f"the {parent})."
            )


def series_per_level(frame: pd.DataFrame, hierarchy: list[str]) -> pd.DataFrame:
    """Count the series at every level of the hierarchy.

    Returns
    -------
    pandas.DataFrame
        Columns ``level`` (e.g. ``category/family``) and ``series``.
    """
    rows = []
    for level in hierarchy_levels(hierarchy):
        n = 1 if not level else len(frame[level].drop_duplicates())
        rows.append({"level": level_name(level), "series": n})
    return pd.DataFrame(rows)
