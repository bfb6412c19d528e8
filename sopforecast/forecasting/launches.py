"""New products from like items, and items delisted.

A launch names a new item, the established item it will sell like, its launch month and,
optionally, a scale (``new_item, like_item, launch_month, scale``; for a hierarchy the new
item may instead be named by its key columns, as in the promotion calendar). The new item's
forecast is the like item's: seasonality and growth from the like item's own forecast in the
same calendar months, the level times the scale, and, when the like item itself was launched
inside the history, its launch curve at the new item's age (the like item's first 12 months
relative to its next 12). Without a scale the level comes from the new item's own first months
(``first_months``, up to 12): their demand over what the like item's profile says for those
months, the profile being the like item's own forecast for the same calendar months a year
or more on (its past months where the forecast does not reach). A like item forecast to
sell nothing lends no profile: a new item with a forecast of its own keeps it. The intervals
are the like item's, scaled the same way: the like item's errors at the new item's level.

Every aggregate above a new item moves by the new item's change (added, or its short-history
forecast replaced), so the forecast stays coherent.

The other end of an item's life: a delisting (``item, last_month``, or the key columns for
the item) ends its forecast after its last month, its bounds with it, and the aggregates
above it lose what it was forecast to sell. Pure: frames in, frames out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.hierarchy import Hierarchy
from ..errors import DataError, format_examples
from .drivers import series_ids

__all__ = [
    "read_launches",
    "launch_forecast",
    "launch_curve",
    "read_delistings",
    "delist_forecast",
    "LAUNCH_COLUMNS",
    "CURVE_MONTHS",
]

LAUNCH_COLUMNS = ("new_item", "like_item", "launch_month", "scale")
CURVE_MONTHS = 12


def read_launches(
    frame: pd.DataFrame, *, keys: list[str] | None = None, where: str = "launches"
) -> pd.DataFrame:
    """The launches checked: ``new_item, like_item, launch_month, scale`` (scale NaN: from the
    first months). ``new_item`` may be given by the hierarchy's ``keys`` instead; they are kept."""
    data = frame.copy()
    if "new_item" not in data.columns and keys and all(k in data.columns for k in keys):
        data["new_item"] = series_ids(data, keys, where)
    missing = [c for c in ("new_item", "like_item", "launch_month") if c not in data.columns]
    if missing:
        raise DataError(
            f"{where}: column(s) {missing} missing (columns: {list(frame.columns)}); a launch file "
            f"needs new_item (or the key columns {keys or []}), like_item, launch_month and "
            "optionally scale."
        )
    for col in ("new_item", "like_item"):
        data[col] = data[col].astype(str).str.strip()
        empty = data[col].isin(["", "nan", "None"])
        if empty.any():
            raise DataError(f"{where}: {col} is empty in row(s) {format_examples(data.index[empty])}.")
    month = pd.to_datetime(data["launch_month"].astype(str), errors="coerce")
    if month.isna().any():
        bad = data.loc[month.isna(), "launch_month"]
        raise DataError(f"{where}: launch_month {format_examples(bad)} is not a month (write 2026-03).")
    data["launch_month"] = month.dt.to_period("M").dt.to_timestamp()
    if "scale" not in data.columns:
        data["scale"] = np.nan
    scale = pd.to_numeric(data["scale"], errors="coerce")
    bad = (scale.isna() & data["scale"].notna() & (data["scale"].astype(str).str.strip() != "")) | (
        scale <= 0
    )
    if bad.any():
        raise DataError(
            f"{where}: scale {format_examples(data.loc[bad, 'scale'])} is not a positive number "
            "(1 sells like the like item; leave it empty to take the level from the first months)."
        )
    data["scale"] = scale
    same = data["new_item"] == data["like_item"]
    if same.any():
        raise DataError(f"{where}: {format_examples(data.loc[same, 'new_item'])} is its own like item.")
    twice = data["new_item"].duplicated()
    if twice.any():
        raise DataError(f"{where}: {format_examples(data.loc[twice, 'new_item'])} launched twice.")
    return data.reset_index(drop=True)


def launch_curve(history: pd.DataFrame, item: str, start: pd.Timestamp) -> np.ndarray:
    """The like item's launch curve: its demand in each of its first :data:`CURVE_MONTHS`
    months over its mean demand in the 12 after, clipped to [0.05, 1]; ones when it was not
    launched inside ``history`` (it sold from the first month) or is too young to tell."""
    own = history[history["unique_id"] == item].sort_values("ds")
    selling = own[own["y"] > 0]
    if selling.empty or selling["ds"].iloc[0] <= start:
        return np.ones(CURVE_MONTHS)
    since = own[own["ds"] >= selling["ds"].iloc[0]]["y"].to_numpy(dtype=float)
    if len(since) < 2 * CURVE_MONTHS:
        return np.ones(CURVE_MONTHS)
    mature = since[CURVE_MONTHS : 2 * CURVE_MONTHS].mean()
    if mature <= 0:
        return np.ones(CURVE_MONTHS)
    return np.clip(since[:CURVE_MONTHS] / mature, 0.05, 1.0)


def _age(ds: pd.Series | np.ndarray, launch: pd.Timestamp) -> np.ndarray:
    ds = pd.DatetimeIndex(ds)
    return (ds.year - launch.year) * 12 + (ds.month - launch.month)


def _curve_at(curve: np.ndarray, age: np.ndarray) -> np.ndarray:
    return np.where(age < 0, 0.0, curve[np.clip(age, 0, CURVE_MONTHS - 1)] if len(curve) else 1.0)


def _like_profile(like: pd.DataFrame, history: pd.DataFrame, item: str, months: pd.Series) -> np.ndarray:
    """What the like item stands for in ``months`` (the new item's first months): its own
    forecast for the same calendar months a year or more on, so that the new item is set
    against the like item's level and season the way its forecast carries them, not against
    the noise, promotions or breaks of its past months. Where the forecast does not reach
    those months, the like item's demand in them (its mean month of the last year when it
    sold nothing then)."""
    if len(months) == 0:
        return np.zeros(0)
    fc = like.set_index("ds")["forecast"]
    first, last = fc.index.min(), fc.index.max()
    ahead = pd.DatetimeIndex(months)
    behind = (first.year - ahead.min().year) * 12 + first.month - ahead.min().month  # months
    years = max(0, int(np.ceil(behind / 12)))
    ahead = ahead + pd.DateOffset(years=years)
    if ahead.min() >= first and ahead.max() <= last:
        profile = fc.reindex(ahead).to_numpy(dtype=float)
        if np.nansum(profile) > 0:
            return profile
    past = history[history["unique_id"] == item].set_index("ds")["y"]
    profile = past.reindex(pd.DatetimeIndex(months)).to_numpy(dtype=float)
    if not np.nansum(profile) > 0:  # an intermittent like item sold nothing then
        profile = np.full(len(months), past.sort_index().tail(12).mean())
    return profile


def launch_forecast(
    forecast: pd.DataFrame,
    launches: pd.DataFrame,
    history: pd.DataFrame,
    *,
    hierarchy: Hierarchy | None = None,
    hierarchy_spec: list[str] | None = None,
    first_months: int = 3,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The forecast with every launch's new item forecast from its like item.

    Parameters
    ----------
    forecast : pandas.DataFrame
        The delivered forecast: ``unique_id, ds, forecast`` and interval bounds (``level``
        and ``model`` kept where present).
    launches : pandas.DataFrame
        :func:`read_launches` output (with the key columns for new items of a hierarchy).
    history : pandas.DataFrame
        ``unique_id, ds, y`` of the bottom series.
    hierarchy : Hierarchy, optional
        The forecast's hierarchy: aggregates above each new item move with it.
    hierarchy_spec : list of str, optional
        The key chains (``forecast.hierarchy``), to place new items not yet in ``hierarchy``.
    first_months : int, default 3
        Months of the new item's own demand that set its level when no scale is given.

    Returns
    -------
    (pandas.DataFrame, pandas.DataFrame)
        The forecast, and one row per launch: ``new_item, like_item, launch_month, scale``
        (the one used), ``how`` (``scale`` or ``first N months``) and the key columns given.
    """
    bounds = [c for c in forecast.columns if c.startswith("forecast-")]
    values = ["forecast", *bounds]
    known = set(forecast["unique_id"].astype(str))
    unknown_like = sorted(set(launches["like_item"]) - known)
    if unknown_like:
        raise DataError(
            f"launches: like item(s) {format_examples(unknown_like)} are not forecast; name series "
            "of the forecast (their unique_id)."
        )
    start, end = history["ds"].min(), history["ds"].max()
    # a new item's key columns (hierarchies) travel with it: the plan places it by them
    keys = [
        k for k in (hierarchy.keys if hierarchy is not None and not hierarchy.flat else []) if k in launches
    ]
    rows, report = [], []
    for launch in launches.itertuples(index=False):
        like = forecast[forecast["unique_id"] == launch.like_item].sort_values("ds")
        if not like["forecast"].sum() > 0 and launch.new_item in known:
            # a like item forecast to sell nothing (gone quiet, discontinued) lends no profile:
            # the new item keeps the forecast of its own months
            how = f"own forecast ({launch.like_item} forecasts none)"
            report.append(_reported(launch, np.nan, how, keys))
            continue
        curve = launch_curve(history, launch.like_item, start)
        # the new item's first months inside the history; a month it has no row for sold
        # nothing (an item without sales since its launch may not be a series of its own)
        months = pd.date_range(launch.launch_month, periods=max(int(first_months), 1), freq="MS")
        months = months[months <= end]
        sold = history[history["unique_id"] == launch.new_item].set_index("ds")["y"]
        own = pd.DataFrame({"ds": months, "y": sold.reindex(months).fillna(0.0).to_numpy(dtype=float)})
        scale, how = launch.scale, "scale"
        if not np.isfinite(scale):
            at_age = _curve_at(curve, _age(own["ds"], launch.launch_month))
            profile = _like_profile(like, history, launch.like_item, own["ds"]) * at_age
            if own.empty or not np.nansum(profile) > 0:
                raise DataError(
                    f"launches: {launch.new_item} has no scale, and no months since "
                    f"{launch.launch_month:%Y-%m} in which it and its like item {launch.like_item} "
                    f"could be compared (it launches after the history, or the like item sold "
                    f"nothing in the last year); give it a scale (1 sells like {launch.like_item})."
                )
            scale, how = float(own["y"].sum() / np.nansum(profile)), f"first {len(own)} months"
        factor = scale * _curve_at(curve, _age(like["ds"], launch.launch_month))
        new = like[["ds", *values]].copy()
        new[values] = new[values].to_numpy(dtype=float) * factor[:, None]
        rows.append(new.assign(unique_id=launch.new_item))
        report.append(_reported(launch, scale, how, keys))
    if not rows:
        columns = ["new_item", "like_item", "launch_month", "scale", "how"]
        return forecast, pd.DataFrame(report, columns=columns if not report else None)
    new = pd.concat(rows, ignore_index=True)
    out = _moved(forecast, new, launches, values, hierarchy, hierarchy_spec)
    return out, pd.DataFrame(report)


def read_delistings(
    frame: pd.DataFrame, *, keys: list[str] | None = None, where: str = "delistings"
) -> pd.DataFrame:
    """Delistings checked: ``item, last_month`` (the last month the item sells; ``item`` may
    be given by the hierarchy's ``keys`` instead)."""
    data = frame.copy()
    if "item" not in data.columns and keys and all(k in data.columns for k in keys):
        data["item"] = series_ids(data, keys, where)
    missing = [c for c in ("item", "last_month") if c not in data.columns]
    if missing:
        raise DataError(
            f"{where}: column(s) {missing} missing (columns: {list(frame.columns)}); a delisting "
            f"needs item (or the key columns {keys or []}) and last_month, the last month it sells."
        )
    data["item"] = data["item"].astype(str).str.strip()
    empty = data["item"].isin(["", "nan", "None"])
    if empty.any():
        raise DataError(f"{where}: item is empty in row(s) {format_examples(data.index[empty])}.")
    month = pd.to_datetime(data["last_month"].astype(str), errors="coerce")
    if month.isna().any():
        bad = data.loc[month.isna(), "last_month"]
        raise DataError(f"{where}: last_month {format_examples(bad)} is not a month (write 2026-03).")
    data["last_month"] = month.dt.to_period("M").dt.to_timestamp()
    twice = data["item"].duplicated()
    if twice.any():
        raise DataError(f"{where}: {format_examples(data.loc[twice, 'item'])} delisted twice.")
    return data[["item", "last_month"]].reset_index(drop=True)


def delist_forecast(
    forecast: pd.DataFrame, delistings: pd.DataFrame, *, hierarchy: Hierarchy | None = None
) -> pd.DataFrame:
    """The forecast with every delisted item's rows after its ``last_month`` at zero, bounds
    included, and every aggregate above it lowered by what it lost. Items that are not bottom
    series of the forecast are an error (a typo would otherwise keep a dead item planned)."""
    bounds = [c for c in forecast.columns if c.startswith("forecast-")]
    bottom = set(hierarchy.bottom_ids) if hierarchy is not None else set(forecast["unique_id"].astype(str))
    unknown = sorted(set(delistings["item"]) - bottom)
    if unknown:
        raise DataError(
            f"delistings: item(s) {format_examples(unknown)} are not bottom series of the forecast; "
            "name them by their unique_id or key columns."
        )
    last = forecast["unique_id"].map(delistings.set_index("item")["last_month"])
    gone = forecast[forecast["ds"] > last]
    if gone.empty:
        return forecast
    new = gone[["unique_id", "ds"]].assign(forecast=0.0)
    items = delistings.rename(columns={"item": "new_item"})
    out = _moved(forecast, new, items, ["forecast"], hierarchy, None, relabel=False)
    # an aggregate's interval moves with its point (its width keeps the item's share of the
    # uncertainty: on the safe side); the delisted months' own intervals are zero
    ordered = forecast.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)
    shift = out["forecast"].to_numpy() - ordered["forecast"].to_numpy()
    for col in bounds:
        out[col] = np.maximum(ordered[col].to_numpy() + shift, 0.0)
    dead = out.set_index(["unique_id", "ds"]).index.isin(gone.set_index(["unique_id", "ds"]).index)
    out.loc[dead, bounds] = 0.0
    return out


def _reported(launch, scale: float, how: str, keys: list[str]) -> dict:
    return {
        "new_item": launch.new_item,
        "like_item": launch.like_item,
        "launch_month": launch.launch_month,
        "scale": scale,
        "how": how,
        **{k: getattr(launch, k) for k in keys},
    }


def _moved(forecast, new, launches, values, hierarchy, spec, relabel: bool = True) -> pd.DataFrame:
    """``forecast`` with the new items' rows set to ``new`` and every aggregate above them
    moved by the change."""
    old = forecast.set_index(["unique_id", "ds"])[values]
    change = new.set_index(["unique_id", "ds"])[values].sub(
        old.reindex(new.set_index(["unique_id", "ds"]).index).fillna(0.0)
    )
    pairs, level_of = _placed(launches, hierarchy, spec)
    out = forecast.set_index(["unique_id", "ds"])
    extra = [c for c in out.columns if c not in values]
    delta = change.reset_index().merge(pairs, left_on="unique_id", right_on="bottom", suffixes=("_new", ""))
    delta = delta.groupby(["unique_id", "ds"])[values].sum()
    merged = out[values].add(delta, fill_value=0.0)
    out = merged.join(out[extra], how="left")
    if relabel and "model" in out.columns:
        launched = set(new["unique_id"])
        out.loc[out.index.get_level_values(0).isin(launched), "model"] = "like item"
    if "level" in out.columns and level_of is not None:
        lv = pd.Series(out.index.get_level_values(0)).map(level_of)
        out["level"] = out["level"].fillna(pd.Series(lv.to_numpy(), index=out.index))
    return (
        out.reset_index()[forecast.columns]
        .sort_values(["unique_id", "ds"], kind="stable")
        .reset_index(drop=True)
    )


def _placed(launches, hierarchy: Hierarchy | None, spec) -> tuple[pd.DataFrame, pd.Series | None]:
    """(``unique_id``, ``bottom``) pairs, every series a new item adds into (itself included),
    and the level of every series, the new items' and their new aggregates' included. New
    items not in the history are placed by their key columns, once."""
    items = launches["new_item"].tolist()
    if hierarchy is None or hierarchy.flat:
        return pd.DataFrame({"unique_id": items, "bottom": items}), None
    members = hierarchy.members()
    pairs = members[members["bottom"].isin(items)]
    level = hierarchy.level_of()
    outside = sorted(set(items) - set(hierarchy.bottom_ids))
    if outside:
        keys = hierarchy.keys
        rows = launches[launches["new_item"].isin(outside)]
        if not all(k in rows.columns for k in keys):
            raise DataError(
                f"launches: {format_examples(outside)} are not in the history; give their key "
                f"columns {keys} so every level above them gets their forecast."
            )
        placed = Hierarchy.from_bottom(rows.rename(columns={"new_item": "unique_id"}), spec)
        pairs = pd.concat([pairs, placed.members()], ignore_index=True)
        level = pd.concat([level, placed.level_of()])
    return pairs.drop_duplicates(), level[~level.index.duplicated()]
