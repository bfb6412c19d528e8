"""Hierarchies of series: nesting of key columns, levels, and consistency checks.

A hierarchy is given as one chain per dimension, top to bottom, e.g.
``["category/family/sku", "region/channel"]``. Several chains make a grouped structure:
every combination of a prefix of each chain is a level (``category``, ``category x region``,
...), and the bottom level uses every key. Aggregation and reconciliation build on these
levels (:mod:`sopforecast.forecasting.reconcile`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import DataError, format_examples

__all__ = [
    "PATH_SEP",
    "TOTAL",
    "FLAT",
    "Hierarchy",
    "parse_chains",
    "key_columns",
    "split_path",
    "hierarchy_levels",
    "level_name",
    "check_nesting",
    "series_per_level",
]

PATH_SEP = "/"
TOTAL = "Total"
FLAT = "series"  # the level name of data without a hierarchy


def parse_chains(hierarchy: list[str]) -> list[list[str]]:
    """Split ``["category/family/sku", "region/channel"]`` into lists of column names."""
    chains = [[c.strip() for c in chain.split(PATH_SEP) if c.strip()] for chain in hierarchy]
    return [c for c in chains if c]


def key_columns(hierarchy: list[str]) -> list[str]:
    """Every key column of ``hierarchy``, chain by chain, top to bottom.

    ``["category/family/sku", "region"]`` gives ``["category", "family", "sku", "region"]``.
    """
    return [c for chain in parse_chains(hierarchy) for c in chain]


def split_path(path: str) -> list[str]:
    """The parts of a key path: ``"category/family"`` gives ``["category", "family"]``."""
    return [p.strip() for p in str(path).split(PATH_SEP) if p.strip()]


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


@dataclass(frozen=True, eq=False)
class Hierarchy:
    """The structure of one set of bottom series: levels, ids and the summing matrix.

    Build it once with :meth:`from_bottom` and pass it around; nobody else parses key paths
    or builds S. Ids of aggregates are their key paths (``Beverages/North``), the grand
    total is ``Total`` and the bottom level keeps the ids it was given.

    Attributes
    ----------
    chains : list of list of str
        Key columns of each chain, top to bottom (``[]`` for flat data).
    keys : list of str
        Every key column, chain by chain.
    levels : list of list of str
        Key columns of each level, the total (``[]``) first, the bottom last.
    level_names : list of str
        ``Total``, ``category``, ... (flat data: one level, ``series``).
    ids : numpy.ndarray
        Every series id, level by level (the total first, the bottom last), sorted within a level.
    level : numpy.ndarray
        The level name of each id, aligned with ``ids``.
    bottom_ids : numpy.ndarray
        The bottom ids in the order they were given: the columns of ``S``.
    S : scipy.sparse.csr_matrix
        Summing matrix, one row per id and one column per bottom id; ``S[i, j] = 1`` when
        bottom ``j`` adds into series ``i``.
    """

    chains: list[list[str]]
    keys: list[str]
    levels: list[list[str]]
    level_names: list[str]
    ids: np.ndarray
    level: np.ndarray
    bottom_ids: np.ndarray
    S: sp.csr_matrix
    bottom_keys: pd.DataFrame = field(repr=False)
    _first: list[np.ndarray] = field(repr=False)

    @classmethod
    def from_bottom(
        cls, bottom: pd.DataFrame, hierarchy: list[str], *, id_col: str = "unique_id"
    ) -> Hierarchy:
        """Build the hierarchy of ``bottom``: one row per bottom series (repeats are dropped).

        Parameters
        ----------
        bottom : pandas.DataFrame
            ``id_col`` and every key column of ``hierarchy``; a long frame works too.
        hierarchy : list of str
            Key chains, e.g. ``["category/family/sku", "region/channel"]``; empty for flat data.
        id_col : str, default "unique_id"
            Column of the bottom ids.
        """
        chains = parse_chains(hierarchy)
        keys = [c for chain in chains for c in chain]
        missing = [c for c in [id_col, *keys] if c not in bottom.columns]
        if missing:
            raise DataError(
                f"the bottom series lack the column(s) {missing} of the hierarchy {hierarchy}; "
                f"found {list(bottom.columns)}. Pass one row per bottom series with its key columns."
            )
        bottom = bottom.drop_duplicates(id_col)
        ids = bottom[id_col].astype(str).to_numpy(dtype=object)
        n = len(ids)
        levels = hierarchy_levels(hierarchy) if chains else [[]]
        names = [level_name(lv) for lv in levels] if chains else [FLAT]
        row_ids, row_level, rows, firsts, offset = [], [], [], [], 0
        for lv, name in zip(levels, names, strict=True):
            if len(lv) == len(keys):  # the bottom level (flat data too) keeps the given ids
                path = ids
            elif not lv:
                path = np.full(n, TOTAL, dtype=object)
            else:
                path = _paths(bottom, lv)
            codes, uniques = pd.factorize(path, sort=True)
            first = np.full(len(uniques), n, dtype=np.int64)
            np.minimum.at(first, codes, np.arange(n))
            row_ids.append(np.asarray(uniques, dtype=object))
            row_level.append(np.full(len(uniques), name, dtype=object))
            rows.append(codes + offset)
            firsts.append(first)
            offset += len(uniques)
        S = sp.csr_matrix(
            (np.ones(n * len(levels)), (np.concatenate(rows), np.tile(np.arange(n), len(levels)))),
            shape=(offset, n),
        )
        return cls(
            chains=chains,
            keys=keys,
            levels=levels,
            level_names=names,
            ids=np.concatenate(row_ids),
            level=np.concatenate(row_level),
            bottom_ids=ids,
            S=S,
            bottom_keys=bottom[keys].reset_index(drop=True),
            _first=firsts,
        )

    @property
    def flat(self) -> bool:
        """Whether the series have no hierarchy (S is the identity)."""
        return not self.chains

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def index(self) -> pd.Index:
        """Every series id as an index named ``unique_id`` (the rows of ``S``)."""
        return pd.Index(self.ids, dtype=object, name="unique_id")

    @property
    def columns(self) -> pd.Index:
        """The bottom ids as an index (the columns of ``S``)."""
        return pd.Index(self.bottom_ids, dtype=object)

    def to_numpy(self) -> np.ndarray:
        """``S`` as a dense array: ids x bottom ids, memory for small hierarchies only."""
        return self.S.toarray()

    def sizes(self) -> pd.Series:
        """How many bottom series add into each id (index ``unique_id``)."""
        return pd.Series(np.diff(self.S.indptr), index=self.index, name="bottom")

    def level_of(self) -> pd.Series:
        """The level name of every series id (index ``unique_id``)."""
        return pd.Series(self.level, index=self.index, name="level")

    def ids_of(self, level: str) -> np.ndarray:
        """The ids of one level, by name (``Total``, ``category/family``, ...)."""
        if level not in self.level_names:
            raise DataError(f"no level {level!r} in this hierarchy; the levels are {self.level_names}")
        return self.ids[self.level == level]

    def members(self) -> pd.DataFrame:
        """Every (``unique_id``, ``bottom``) pair: the bottom series that add into each id."""
        coo = self.S.tocoo()
        return pd.DataFrame({"unique_id": self.ids[coo.row], "bottom": self.bottom_ids[coo.col]})

    def bottom_of(self, unique_id: str) -> np.ndarray:
        """The bottom ids under one series id (itself for a bottom series)."""
        pos = np.flatnonzero(self.ids == str(unique_id))
        if len(pos) == 0:
            raise DataError(f"no series {unique_id!r} in this hierarchy; its levels are {self.level_names}")
        return self.bottom_ids[self.S[int(pos[0])].indices]

    def key_values(self) -> pd.DataFrame:
        """Key columns of every series (index ``unique_id``); keys below a series' level are empty."""
        parts = []
        for lv, first, ids in zip(self.levels, self._first, self._level_ids(), strict=True):
            part = self.bottom_keys.iloc[first][lv].reset_index(drop=True)
            part.index = pd.Index(ids, dtype=object)
            parts.append(part)
        out = pd.concat(parts).reindex(columns=self.keys)
        out.index.name = "unique_id"
        return out[~out.index.duplicated()]

    def to_folder(self, folder: str | Path) -> Path:
        """Write the hierarchy as plain files (no pickle) into ``folder``: ``S`` in CSR arrays
        (``S.npz``), the ids and levels (``series.parquet``), the bottom ids and their key
        columns (``bottom.parquet``), where each level's ids first appear (``first.npz``) and
        the chains and level names (``hierarchy.json``). :meth:`from_folder` reads it back."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        sp.save_npz(folder / "S.npz", self.S.tocsr())
        firsts = [np.asarray(f, dtype=np.int64) for f in self._first]
        np.savez(folder / "first.npz", values=np.concatenate(firsts), sizes=[len(f) for f in firsts])
        pd.DataFrame({"unique_id": self.ids.astype(str), "level": self.level.astype(str)}).to_parquet(
            folder / "series.parquet", index=False
        )
        bottom = self.bottom_keys.reset_index(drop=True).copy()
        bottom.insert(0, "unique_id", self.bottom_ids.astype(str))
        bottom.to_parquet(folder / "bottom.parquet", index=False)
        meta = {
            "chains": self.chains,
            "keys": self.keys,
            "levels": self.levels,
            "level_names": self.level_names,
        }
        (folder / "hierarchy.json").write_text(json.dumps(meta, indent=1))
        return folder

    @classmethod
    def from_folder(cls, folder: str | Path) -> Hierarchy:
        """The hierarchy :meth:`to_folder` wrote into ``folder``."""
        folder = Path(folder)
        meta = json.loads((folder / "hierarchy.json").read_text())
        series = pd.read_parquet(folder / "series.parquet")
        bottom = pd.read_parquet(folder / "bottom.parquet")
        first = np.load(folder / "first.npz")
        bounds = np.cumsum([0, *first["sizes"]])
        S = sp.csr_matrix(sp.load_npz(folder / "S.npz"))
        return cls(
            chains=meta["chains"],
            keys=meta["keys"],
            levels=meta["levels"],
            level_names=meta["level_names"],
            ids=series["unique_id"].to_numpy(dtype=object),
            level=series["level"].to_numpy(dtype=object),
            bottom_ids=bottom["unique_id"].to_numpy(dtype=object),
            S=S,
            bottom_keys=bottom[meta["keys"]].reset_index(drop=True),
            _first=[first["values"][a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)],
        )

    def _level_ids(self) -> list[np.ndarray]:
        bounds = np.cumsum([0, *(len(f) for f in self._first)])
        return [self.ids[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _paths(bottom: pd.DataFrame, level: list[str]) -> np.ndarray:
    """The key path of every row at ``level`` (``Beverages/North``), column by column."""
    path = bottom[level[0]].astype(str)
    for col in level[1:]:
        path = path + PATH_SEP + bottom[col].astype(str)
    return path.to_numpy(dtype=object)
