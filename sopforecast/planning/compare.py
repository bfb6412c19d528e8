"""Two plan versions side by side: what changed, per level and per line."""

from __future__ import annotations

import pandas as pd

__all__ = ["diff_versions"]


def diff_versions(
    first: pd.DataFrame, second: pd.DataFrame, column: str = "final"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Compare the ``column`` of two versions' plan lines over the months both plan.

    Returns
    -------
    (levels, changes)
        ``levels``: per level the totals of both, the change and the change in percent.
        ``changes``: every line in both, ``unique_id, level, ds, first, second, change,
        author`` (the second version's), the largest absolute change first.
    """
    both = first[["unique_id", "level", "ds", column]].merge(
        second[["unique_id", "ds", column, "author"]], on=["unique_id", "ds"], suffixes=("_a", "_b")
    )
    both = both.rename(columns={f"{column}_a": "first", f"{column}_b": "second"})
    both["change"] = both["second"] - both["first"]
    levels = both.groupby("level", sort=False)[["first", "second", "change"]].sum().reset_index()
    levels["change_pct"] = (levels["change"] / levels["first"].where(levels["first"] != 0)).fillna(0.0)
    order = both["change"].abs().sort_values(ascending=False, kind="stable").index
    changes = both.loc[order, ["unique_id", "level", "ds", "first", "second", "change", "author"]]
    return levels, changes[changes["change"] != 0].reset_index(drop=True)
