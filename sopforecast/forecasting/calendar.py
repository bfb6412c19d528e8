"""Working days: forecast demand per working day, deliver it per month.

Demand that happens on business days (pharmacy dispensing, B2B orders, shipments) moves
with the number of working days in a month: February 2008 had one more than February
2007. With ``forecast.working_days`` the forecaster models each month's demand divided by
its working days (Monday to Friday), scaled to an average month, and multiplies every
forecast value back by the target month's working days. The factor is the same for every
series in a month, so coherence across the hierarchy is kept.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["working_days", "month_factor", "to_rate", "from_rate"]

# Monday to Friday in an average month: 261 weekdays a year over 12
AVERAGE_MONTH = 261 / 12


def working_days(ds) -> np.ndarray:
    """Monday-to-Friday days in the month starting at each date of ``ds``."""
    starts = pd.DatetimeIndex(ds).to_period("M").to_timestamp()
    ends = starts + pd.offsets.MonthBegin(1)
    return np.busday_count(starts.values.astype("datetime64[D]"), ends.values.astype("datetime64[D]")).astype(
        float
    )


def month_factor(ds) -> np.ndarray:
    """Each month's working days relative to an average month."""
    return working_days(ds) / AVERAGE_MONTH


def to_rate(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``columns`` per average-month working days (divided by the month's factor)."""
    factor = month_factor(frame["ds"])
    return frame.assign(**{c: frame[c].to_numpy(dtype=float) / factor for c in columns})


def from_rate(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Back from :func:`to_rate`: ``columns`` times the month's factor."""
    factor = month_factor(frame["ds"])
    return frame.assign(**{c: frame[c].to_numpy(dtype=float) * factor for c in columns})
