"""Planning buckets: forecasts and history in any frequency rolled up to months, or to the
periods of a 4-4-5 fiscal calendar.

A weekly value is spread over its seven days and each day counted in its month, so a week
across a month end is split between the two months. Only buckets the data covers in full
are kept: a plan month half made of forecast would be judged against a whole month of sales.
Interval bounds add up the same way, which is conservative (as if errors moved together).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConfigError

__all__ = ["BUCKETS", "to_buckets", "fiscal_445"]

BUCKETS = ("month", "445")
_MONTHLY = ("MS", "ME", "M")


def fiscal_445(start: pd.Timestamp, periods: int) -> pd.DatetimeIndex:
    """Start dates of ``periods`` fiscal periods of 4, 4 and 5 weeks, from ``start``."""
    weeks = np.tile([4, 4, 5], periods // 3 + 1)[:periods]
    offsets = np.concatenate([[0], np.cumsum(weeks)[:-1]]) * 7
    return pd.DatetimeIndex(pd.Timestamp(start) + pd.to_timedelta(offsets, unit="D"))


def to_buckets(frame: pd.DataFrame, columns: list[str], freq: str, bucket: str = "month") -> pd.DataFrame:
    """Sum ``columns`` of ``frame`` (``unique_id, ds`` + columns, data frequency ``freq``)
    into planning buckets; ``ds`` of a bucket is its first day.

    Monthly data is only moved to month starts. With ``bucket="445"`` the fiscal calendar
    starts on the first day of the data; it needs weekly or daily data.
    """
    if bucket not in BUCKETS:
        raise ConfigError(
            f"plan.bucket is {bucket!r}; choose one of {', '.join(BUCKETS)}", setting="plan.bucket"
        )
    monthly = freq in _MONTHLY or freq.startswith(("MS", "ME"))
    if monthly and bucket == "month":
        return frame.assign(ds=frame["ds"].dt.to_period("M").dt.to_timestamp())
    if monthly or freq.startswith(("Q", "Y", "A")):
        raise ConfigError(
            f"plan buckets of {'a 4-4-5 calendar' if bucket == '445' else 'months'} need data at least as "
            f"fine; the data's frequency is {freq!r}. Use weekly or daily data, or plan.bucket: month.",
            setting="plan.bucket",
        )
    days = _days(frame, freq)
    if bucket == "month":
        days["bucket"] = days["day"].dt.to_period("M").dt.to_timestamp()
        covered = days.groupby("bucket")["day"].nunique()
        full = covered == pd.DatetimeIndex(covered.index).days_in_month
    else:
        first = days["day"].min()
        edges = fiscal_445(first, int((days["day"].max() - first).days // 28) + 2)
        days["bucket"] = edges[np.searchsorted(edges.to_numpy(), days["day"].to_numpy(), side="right") - 1]
        length = pd.Series((edges[1:] - edges[:-1]).days, index=edges[:-1])
        covered = days.groupby("bucket")["day"].nunique()
        full = covered == length.reindex(covered.index)
    keep = full[full].index
    out = days[days["bucket"].isin(keep)].groupby(["unique_id", "bucket"], sort=False)[columns].sum()
    return out.reset_index().rename(columns={"bucket": "ds"})


def _days(frame: pd.DataFrame, freq: str) -> pd.DataFrame:
    """Each row spread evenly over the days of its period."""
    offset = pd.tseries.frequencies.to_offset(freq)
    start = frame["ds"]
    length = ((start + offset) - start).dt.days.clip(lower=1).to_numpy()
    repeat = frame.iloc[np.repeat(np.arange(len(frame)), length)].reset_index(drop=True)
    within = np.concatenate([np.arange(n) for n in length]) if len(length) else np.array([], dtype=int)
    repeat["day"] = repeat["ds"] + pd.to_timedelta(within, unit="D")
    share = np.repeat(length, length).astype(float)
    for col in frame.columns.difference(["unique_id", "ds"]):
        if pd.api.types.is_numeric_dtype(repeat[col]):
            repeat[col] = repeat[col] / share
    return repeat
