"""The monitor's status rules, beside its numbers: traffic lights, persistent bias, money counted once.

* :func:`status_of`: green, amber or red of a value against its bounds.
* :func:`persistent` and :func:`bias_status`: **one rule for bias and tracking signal**. A
  bias is off target when it lies outside its band; the tracking signal says whether it
  *persists*: beyond ``±4``, or every error on the same side (with ``n`` errors the signal
  reaches ``±n`` at most, so with four errors or fewer it could never pass 4 and a
  one-sided bias of 15% would read "on target"). A tracking signal is off target exactly
  when its bias is off target and persists, and then as far off as the bias: the two
  measures never disagree about the same errors.
* :func:`stake_members` and :func:`count_once`: **money at stake counted once**. An item
  listed under several measures counts once; when listed items overlap (a family and its
  products, a region and a product sold in it, a segment and its series) only the broadest
  counts, since its figure already nets the gaps of everything under it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..data.hierarchy import Hierarchy
from ..errors import ConfigError, DataError

__all__ = [
    "TRACKING_BOUND",
    "BIAS_BAND",
    "STAKE_RULE",
    "status_of",
    "persistent",
    "bias_status",
    "stake_members",
    "count_once",
]

TRACKING_BOUND = 4.0  # the usual tracking-signal limit
BIAS_BAND = 0.05  # a bias target's band when a tracking-signal target has none beside it
STAKE_RULE = (
    "Money is counted once per item: an item listed under several measures counts once, and "
    "when listed items overlap (a family and its products, a region and a product sold there) "
    "only the broadest counts, because its figure already nets the gaps of the items under it."
)


def _is_number(value) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool)


def status_of(
    value: float,
    target_min: float | None = None,
    target_max: float | None = None,
    within: float | None = None,
    tolerance: float = 0.05,
) -> str:
    """Traffic light of a KPI against its target.

    The miss is how far ``value`` lies outside the target: below ``target_min``, above
    ``target_max``, or beyond ``±within`` around zero (for bias); several bounds may be given
    and the largest miss counts. Green: no miss (a value on the bound meets it). Amber: missed
    by less than ``tolerance``. Red: missed by ``tolerance`` or more.

    Parameters
    ----------
    value : float
        The KPI (in the unit of the bounds, fractions for ratios: ``0.78``).
    target_min, target_max : float, optional
        The target is ``value >= target_min`` / ``value <= target_max``.
    within : float, optional
        The target is ``abs(value) <= within`` (non-negative).
    tolerance : float, default 0.05
        How far, in the unit of ``value``, a miss still counts as amber (5 points for
        fractions).

    Returns
    -------
    str
        ``"green"``, ``"amber"`` or ``"red"``.

    Raises
    ------
    ConfigError
        No bound given, a bound not finite, a negative ``within`` or ``tolerance``, or
        ``target_min > target_max``.
    DataError
        ``value`` is missing (NaN or None).

    Examples
    --------
    >>> status_of(0.82, target_min=0.80), status_of(0.78, target_min=0.80), status_of(0.70, target_min=0.80)
    ('green', 'amber', 'red')
    >>> status_of(-0.03, within=0.05)
    'green'
    """
    bounds = {"target_min": target_min, "target_max": target_max, "within": within}
    given = {name: bound for name, bound in bounds.items() if bound is not None}
    if not given:
        raise ConfigError("status_of needs a target: give target_min, target_max or within")
    for name, bound in [*given.items(), ("tolerance", tolerance)]:
        if not _is_number(bound) or not math.isfinite(float(bound)):
            raise ConfigError(f"{name} must be a finite number, got {bound!r}", setting=name)
    if within is not None and within < 0:
        raise ConfigError(f"within must be >= 0 (a band around zero), got {within}", setting="within")
    if tolerance < 0:
        raise ConfigError(f"tolerance must be >= 0, got {tolerance}", setting="tolerance")
    if target_min is not None and target_max is not None and target_min > target_max:
        raise ConfigError(f"target_min {target_min} is above target_max {target_max}", setting="target_min")
    if value is None or not _is_number(value) or math.isnan(float(value)):
        raise DataError(f"a KPI value is needed to compare with its target, got {value!r}")
    value = float(value)
    misses = [0.0]
    if target_min is not None:
        misses.append(target_min - value)
    if target_max is not None:
        misses.append(value - target_max)
    if within is not None:
        misses.append(abs(value) - within)
    miss = max(misses)
    # the bounds are decimal numbers: 0.1 + 0.2 is on a bound of 0.3, not past it
    scale = max([1.0, abs(value), *(abs(float(b)) for b in given.values())])
    eps = 1e-9 * scale
    if miss <= eps:
        return "green"
    if miss < tolerance - eps:
        return "amber"
    return "red"


def persistent(tracking_signal: float, n: float | None = None, bound: float = TRACKING_BOUND) -> bool:
    """Whether errors lean one way: ``|tracking_signal|`` beyond ``bound``, or at ``n``,
    the most ``n`` errors can reach (every error on the same side).

    Parameters
    ----------
    tracking_signal : float
        ``sum(e) / mean|e|`` of the errors (NaN: no error, not persistent).
    n : float, optional
        How many errors were summed; unknown (None or NaN): only the bound counts.
    bound : float, default 4
        The tracking-signal limit.

    Examples
    --------
    >>> persistent(-4.0, n=4), persistent(-4.0, n=8), persistent(4.5), persistent(3.0, n=4)
    (True, False, True, False)
    """
    if tracking_signal is None or not _is_number(tracking_signal) or math.isnan(float(tracking_signal)):
        return False
    size = abs(float(tracking_signal))
    if size > bound * (1 + 1e-9):
        return True
    return n is not None and _is_number(n) and not math.isnan(float(n)) and size >= float(n) - 1e-9


def bias_status(
    bias: float,
    tracking_signal: float,
    n: float | None = None,
    *,
    band: float = BIAS_BAND,
    bound: float = TRACKING_BOUND,
    tolerance: float = 0.05,
) -> str:
    """The tracking signal's traffic light under the one rule it shares with bias.

    Green when the bias is inside its ``band`` (however persistent: a small bias needs no
    action) or when it does not persist (:func:`persistent`); otherwise the bias's own
    colour (:func:`status_of` with ``within=band``).

    Examples
    --------
    >>> bias_status(-0.15, -4.0, n=4)  # every error short by 15%: off target, as the bias is
    'red'
    >>> bias_status(-0.01, -4.0, n=4), bias_status(-0.15, -1.0, n=4)
    ('green', 'green')
    """
    if bias is None or not _is_number(bias) or math.isnan(float(bias)):
        return "green"  # no bias to confirm
    colour = status_of(bias, within=band, tolerance=tolerance)
    return colour if colour != "green" and persistent(tracking_signal, n, bound) else "green"


def stake_members(
    S: Hierarchy | pd.DataFrame | None = None, segments: pd.DataFrame | None = None
) -> dict[str, frozenset]:
    """The bottom series under every key that can carry money at stake.

    Parameters
    ----------
    S : Hierarchy or pandas.DataFrame, optional
        The plan's hierarchy (its sparse summing matrix: keys x bottom series), or a small
        summing frame (keys x bottom series, non-zero where a series sums into a key).
    segments : pandas.DataFrame, optional
        ``unique_id`` and segment columns (``demand_class``, ``abc``, ``xyz``) of the bottom
        series: ``abc=A`` holds the series of class A, ``all`` every series.

    Returns
    -------
    dict of str to frozenset
    """
    members: dict[str, frozenset] = {}
    if S is not None and len(S):
        if isinstance(S, Hierarchy):
            matrix, keys, ids = S.S.tocsr(), S.ids, np.asarray(S.bottom_ids, dtype=object)
        else:  # a small summing frame: keys x bottom series
            matrix, keys, ids = sp.csr_matrix(S.to_numpy() != 0), S.index, np.asarray(S.columns, dtype=object)
        bounds = zip(matrix.indptr[:-1], matrix.indptr[1:], strict=True)
        members.update(
            {str(key): frozenset(ids[matrix.indices[a:b]]) for key, (a, b) in zip(keys, bounds, strict=True)}
        )
        members.setdefault("all", frozenset(ids))
    if segments is not None and len(segments):
        members["all"] = frozenset(segments["unique_id"])
        for col in ("demand_class", "abc", "xyz"):
            if col in segments:
                for value, part in segments.groupby(segments[col].astype(object), observed=True, sort=False):
                    members[f"{col}={value}"] = frozenset(part["unique_id"])
    return members


def count_once(exceptions: pd.DataFrame, members: Mapping[str, frozenset] | None = None) -> pd.DataFrame:
    """Which exception rows carry money into a total, as :data:`STAKE_RULE` says.

    Keys are taken broadest first (most bottom series under them; ties by rank); a key is
    counted, on its best-ranked row, when it shares no series with a key counted before.

    Parameters
    ----------
    exceptions : pandas.DataFrame
        ``rank, key, at_stake`` at least.
    members : mapping of str to frozenset, optional
        :func:`stake_members`; a key not in it holds only itself (it overlaps nothing else).

    Returns
    -------
    pandas.DataFrame
        Indexed like ``exceptions``: ``counted`` (bool) and ``within``, the rank of the
        counted row holding a row's money (NA on counted rows and rows without money).
    """
    members = members or {}
    out = pd.DataFrame(
        {"counted": False, "within": pd.Series(pd.NA, index=exceptions.index, dtype="Int64")},
        index=exceptions.index,
    )
    money = exceptions[pd.to_numeric(exceptions["at_stake"], errors="coerce").notna()]
    if money.empty:
        return out
    money = money.sort_values("rank", kind="stable")
    first = money.drop_duplicates("key")
    under = {k: members.get(str(k), frozenset({("key", str(k))})) for k in first["key"]}
    order = sorted(range(len(first)), key=lambda i: (-len(under[first["key"].iloc[i]]), i))
    counted: list[tuple[frozenset, int]] = []  # members and rank of each counted key
    holder: dict[object, int] = {}
    for i in order:
        key, rank = first["key"].iloc[i], int(first["rank"].iloc[i])
        hit = next((r for m, r in counted if not m.isdisjoint(under[key])), None)
        if hit is None:
            counted.append((under[key], rank))
            out.loc[first.index[i], "counted"] = True
        holder[key] = rank if hit is None else hit
    rest = money.index.difference(out.index[out["counted"]])
    out.loc[rest, "within"] = money.loc[rest, "key"].map(holder).astype("Int64")
    return out
