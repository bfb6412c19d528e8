"""Panel-wide operations on long frames: a common forecast origin for every series."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["extend_to_common_end"]


def extend_to_common_end(
    df: pd.DataFrame,
    freq: str,
    *,
    id_col: str = "unique_id",
    time_col: str = "ds",
    target_col: str = "y",
) -> tuple[pd.DataFrame, list[str]]:
    """Extend series that stopped early with zero demand up to the panel's last period.

    Every series must be forecast from the same origin; a discontinued item that sold
    nothing in the last months has zero demand there, not missing history. Other columns
    (keys, drivers) carry their last value forward.

    Returns
    -------
    (pandas.DataFrame, list of str)
        The extended frame (a new object, sorted by id and date) and the extended ids.
    """
    end = df[time_col].max()
    last = df.groupby(id_col, sort=True)[time_col].max()
    stopped = last[last < end]
    if stopped.empty:
        return df, []
    grid = pd.date_range(stopped.min(), end, freq=freq)
    pos = grid.get_indexer(stopped.to_numpy())
    n_new = len(grid) - 1 - pos
    ids = np.repeat(stopped.index.to_numpy(), n_new)
    steps = np.arange(n_new.sum()) - np.repeat(np.cumsum(n_new) - n_new, n_new)
    extra = pd.DataFrame({id_col: ids, time_col: grid[np.repeat(pos, n_new) + 1 + steps]})
    extra[target_col] = 0.0
    others = [c for c in df.columns if c not in (id_col, time_col, target_col)]
    if others:
        carry = df.sort_values(time_col).groupby(id_col, sort=False)[others].last()
        extra = extra.join(carry, on=id_col)
    out = pd.concat([df, extra[df.columns]], ignore_index=True)
    out = out.sort_values([id_col, time_col], kind="stable").reset_index(drop=True)
    return out, [str(i) for i in stopped.index]
