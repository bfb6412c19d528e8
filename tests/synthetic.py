"""Synthetic demand shared by the tests: no real data, reproducible by seed."""

from __future__ import annotations

import numpy as np
import pandas as pd


def smooth_and_sporadic(n_smooth: int = 3, periods: int = 48, seed: int = 0) -> pd.DataFrame:
    """``n_smooth`` seasonal smooth series and one sporadic series, monthly from 2020-01."""
    rng = np.random.default_rng(seed)
    ds = pd.date_range("2020-01-01", periods=periods, freq="MS")
    season = 1 + 0.3 * np.sin(np.arange(periods) * 2 * np.pi / 12)
    parts = [
        pd.DataFrame(
            {
                "unique_id": f"smooth{i}",
                "ds": ds,
                "y": np.round(100 * (i + 1) * season + rng.normal(0, 5, periods)),
            }
        )
        for i in range(n_smooth)
    ]
    sporadic = rng.poisson(0.25, periods) * rng.integers(1, 8, periods)
    parts.append(pd.DataFrame({"unique_id": "sporadic", "ds": ds, "y": sporadic.astype(float)}))
    return pd.concat(parts, ignore_index=True)


def plan_lines(
    S: pd.DataFrame, levels: pd.Series, values: np.ndarray, months: pd.DatetimeIndex
) -> pd.DataFrame:
    """Plan lines of every series of ``S`` (rows of ``values``, one column per month): the
    statistical forecast as the final plan, no override yet."""
    lines = pd.DataFrame(
        {
            "unique_id": np.repeat(S.index.to_numpy(), len(months)),
            "level": np.repeat(levels.to_numpy(), len(months)),
            "ds": np.tile(months, len(S)),
            "statistical": values.ravel(),
        }
    )
    return lines.assign(naive=1.0, consensus=np.nan, final=lines["statistical"], author=None)
