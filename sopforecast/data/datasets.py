"""Seeded synthetic S&OP demand: the embedded demo data of every command.

A product hierarchy (category -> family -> SKU) sold across regions and channels, monthly,
with trend, yearly seasonality by category, promotions with uplift and a price discount,
price increases, intermittent slow movers, new launches with short history, discontinued
items, a few outliers and structural breaks. Vectorised over a (series x period) array so
100k series take seconds. The same arguments always give the same frame.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..errors import ConfigError

__all__ = ["generate_budget", "generate_demand", "generate_plan", "DEMO_DESCRIPTION", "DemoPlan"]

DEMO_DESCRIPTION = (
    "Synthetic monthly sales of consumer goods: categories, families and SKUs sold in four "
    "regions through three channels, with seasonality, promotions, price, slow movers, new "
    "launches, discontinued items, outliers and structural breaks."
)

logger = logging.getLogger(__name__)

_CATALOG = {
    # category: (families, peak month of the yearly cycle, seasonal amplitude)
    "Beverages": (["Juice", "Water", "Soda", "Coffee"], 7, 0.35),
    "Snacks": (["Chips", "Biscuits", "Nuts"], 12, 0.20),
    "Dairy": (["Milk", "Yogurt", "Cheese"], 5, 0.10),
    "Household": (["Detergent", "Paper", "Cleaners"], 3, 0.08),
    "Personal Care": (["Shampoo", "Soap", "Sunscreen"], 6, 0.30),
}
_REGIONS = ("North", "South", "East", "West")
_CHANNELS = ("Retail", "Online", "Wholesale")
_CHANNEL_SCALE = np.array([1.0, 0.45, 2.2])
_REGION_SCALE = np.array([1.1, 0.9, 1.0, 0.8])

# shares of series with a special behaviour (the rest are regular sellers)
_SHARE_SLOW, _SHARE_NEW, _SHARE_DISC, _SHARE_BREAK, _SHARE_OUTLIER = 0.15, 0.08, 0.05, 0.04, 0.01
_SHARE_ERRATIC = 0.08


def generate_demand(
    n_series: int = 500,
    periods: int = 60,
    start: str = "2021-01-01",
    freq: str = "MS",
    seed: int = 0,
) -> pd.DataFrame:
    """Generate demand history for ``n_series`` (SKU, region, channel) series.

    Parameters
    ----------
    n_series : int, default 500
        Number of bottom series.
    periods : int, default 60
        Months of history (5 years).
    start : str, default "2021-01-01"
        First month.
    freq : str, default "MS"
        Only monthly data (``MS``) is generated.
    seed : int, default 0
        Seed of the local random generator.

    Returns
    -------
    pandas.DataFrame
        ``category, family, sku, region, channel, ds, y, price, promo``: one row per series
        and month in which the item was listed (no rows before a launch or after a
        discontinuation), sorted by keys and date.
    """
    if freq != "MS":
        raise ConfigError(f"the demo generator makes monthly data only (freq 'MS'), got {freq!r}.")
    if n_series < 1 or periods < 2:
        raise ConfigError(f"need n_series >= 1 and periods >= 2, got n_series={n_series}, periods={periods}.")
    rng = np.random.default_rng(seed)
    keys = _keys(n_series, rng)
    ds = pd.date_range(start, periods=periods, freq="MS")
    y, price, promo, active = _simulate(keys, ds, rng)
    rows, cols = np.nonzero(active)
    frame = pd.DataFrame(
        {
            "category": keys["category"][rows],
            "family": keys["family"][rows],
            "sku": keys["sku"][rows],
            "region": keys["region"][rows],
            "channel": keys["channel"][rows],
            "ds": ds[cols],
            "y": y[rows, cols],
            "price": price[rows, cols].round(2),
            "promo": promo[rows, cols].astype("int8"),
        }
    )
    frame = frame.sort_values(["category", "family", "sku", "region", "channel", "ds"], kind="stable")
    return frame.reset_index(drop=True)


class DemoPlan:
    """Demo history with the promotion calendar / price plan of the months after it, and
    what those months then sold (for checking a forecast)."""

    def __init__(self, history: pd.DataFrame, future: pd.DataFrame, actuals: pd.DataFrame) -> None:
        self.history, self.future, self.actuals = history, future, actuals


def generate_plan(
    n_series: int = 500,
    periods: int = 60,
    horizon: int = 18,
    seed: int = 0,
    shift: tuple[str, float, int] | None = None,
) -> DemoPlan:
    """The demo data split at ``periods``: history, then the drivers planned for the next
    ``horizon`` months (``category, family, sku, region, channel, ds, price, promo``: the
    sales team's promotion calendar) and the demand that followed. All
    ``periods + horizon`` months are simulated at once, so the history is not
    ``generate_demand(periods=periods)``'s.

    ``shift=(family, change_pct, months)`` plants a lasting demand shift: from ``months``
    before the end of the history on, every series of that family sells ``change_pct``
    percent more (a new listing, a lost competitor), for monitors to catch.
    """
    full = generate_demand(n_series=n_series, periods=periods + horizon, seed=seed)
    cut = pd.Timestamp("2021-01-01") + pd.DateOffset(months=periods)
    if shift is not None:
        family, change_pct, months = shift
        if family not in set(full["family"]):  # a small demo may not list it: the biggest instead
            volume = full[full["ds"] < cut].groupby("family")["y"].sum()
            logger.info(
                "Demo: no %s family among %d series; the shift is planted in %s",
                family,
                n_series,
                volume.idxmax(),
            )
            family = volume.idxmax()
        hit = (full["family"] == family) & (full["ds"] >= cut - pd.DateOffset(months=months))
        full.loc[hit, "y"] = np.round(full.loc[hit, "y"] * (1 + change_pct / 100))
    history = full[full["ds"] < cut].reset_index(drop=True)
    later = full[full["ds"] >= cut]
    keys = ["category", "family", "sku", "region", "channel"]
    future = later[[*keys, "ds", "price", "promo"]].reset_index(drop=True)
    actuals = later[[*keys, "ds", "y"]].reset_index(drop=True)
    return DemoPlan(history, future, actuals)


def _keys(n_series: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Pick SKUs and the region/channel combinations each is sold in."""
    combos = len(_REGIONS) * len(_CHANNELS)
    n_skus = max(1, int(np.ceil(n_series / (combos * 0.5))))
    families = [(cat, fam) for cat, (fams, _, _) in _CATALOG.items() for fam in fams]
    fam_of_sku = rng.integers(0, len(families), n_skus)
    # every SKU gets one outlet first, the rest are drawn without replacement
    first = np.arange(n_skus) * combos + rng.integers(0, combos, n_skus)
    pool = np.setdiff1d(np.arange(n_skus * combos), first)
    extra = rng.choice(pool, size=max(0, n_series - n_skus), replace=False)
    chosen = np.sort(np.concatenate([first, extra])[:n_series])
    sku_idx, combo = chosen // combos, chosen % combos
    fam = fam_of_sku[sku_idx]
    return {
        "category": np.array([families[f][0] for f in range(len(families))], dtype=object)[fam],
        "family": np.array([families[f][1] for f in range(len(families))], dtype=object)[fam],
        "sku": np.char.add("SKU-", np.char.zfill((sku_idx + 1).astype(str), 5)).astype(object),
        "region": np.array(_REGIONS, dtype=object)[combo // len(_CHANNELS)],
        "channel": np.array(_CHANNELS, dtype=object)[combo % len(_CHANNELS)],
        "sku_idx": sku_idx,
        "region_idx": combo // len(_CHANNELS),
        "channel_idx": combo % len(_CHANNELS),
    }


def _simulate(keys, ds, rng):
    n, t = len(keys["sku"]), len(ds)
    months = ds.month.to_numpy()
    steps = np.arange(t)
    cats = list(_CATALOG)
    cat_idx = np.array([cats.index(c) for c in keys["category"]])
    peak = np.array([_CATALOG[c][1] for c in cats])[cat_idx]
    amp = np.array([_CATALOG[c][2] for c in cats])[cat_idx] * rng.uniform(0.7, 1.3, n)
    season = 1 + amp[:, None] * np.cos(2 * np.pi * (months[None, :] - peak[:, None]) / 12)

    n_skus = int(keys["sku_idx"].max()) + 1
    sku_level = rng.lognormal(np.log(60), 0.9, n_skus)
    level = (
        sku_level[keys["sku_idx"]] * _REGION_SCALE[keys["region_idx"]] * _CHANNEL_SCALE[keys["channel_idx"]]
    )
    trend = rng.normal(0.002, 0.008, n)  # monthly growth rate
    mean = level[:, None] * season * np.exp(trend[:, None] * steps[None, :])

    base_price = rng.uniform(1.5, 25.0, n_skus)[keys["sku_idx"]]
    yearly_increase = rng.uniform(0.0, 0.05, n)
    price = base_price[:, None] * (1 + yearly_increase[:, None]) ** (steps[None, :] // 12)
    promo = rng.random((n, t)) < 0.08
    discount = rng.uniform(0.10, 0.30, (n, t))
    price = np.where(promo, price * (1 - discount), price)
    uplift = np.where(promo, 1 + rng.uniform(0.3, 0.8, (n, t)), 1.0)
    dip = np.zeros((n, t), dtype=bool)
    dip[:, 1:] = promo[:, :-1] & ~promo[:, 1:]
    mean = mean * uplift * np.where(dip, 0.9, 1.0)

    kind = rng.random(n)
    slow = kind < _SHARE_SLOW
    mean[slow] = rng.uniform(0.2, 1.5, slow.sum())[:, None] * season[slow]
    breaks = (kind >= _SHARE_SLOW) & (kind < _SHARE_SLOW + _SHARE_BREAK)
    at = rng.integers(t // 2, t, n)
    shift = np.where(rng.random(n) < 0.5, rng.uniform(0.4, 0.7, n), rng.uniform(1.5, 2.2, n))
    mean = np.where(breaks[:, None] & (steps[None, :] >= at[:, None]), mean * shift[:, None], mean)

    # negative binomial counts: variance grows with the mean, as sales do; erratic sellers
    # (project business, key accounts) get a much lower dispersion
    erratic = (kind >= _SHARE_SLOW + _SHARE_BREAK) & (kind < _SHARE_SLOW + _SHARE_BREAK + _SHARE_ERRATIC)
    dispersion = np.where(erratic, 1.0, rng.uniform(10, 40, n))[:, None]
    lam = rng.gamma(dispersion, mean / dispersion)
    y = rng.poisson(lam).astype(float)
    # half the slow movers are lumpy: rare orders of very different sizes
    lumpy = slow & (rng.random(n) < 0.5)
    orders = rng.random((lumpy.sum(), t)) < rng.uniform(0.1, 0.4, lumpy.sum())[:, None]
    sizes = rng.lognormal(np.log(6), 1.0, (lumpy.sum(), t))
    y[lumpy] = np.where(orders, np.ceil(sizes), 0.0)

    outliers = rng.random(n) < max(_SHARE_OUTLIER, 2 / n)
    spike_at = rng.integers(0, t, n)
    y[outliers, spike_at[outliers]] *= rng.uniform(4, 8, outliers.sum())
    y = np.round(y)

    active = np.ones((n, t), dtype=bool)
    new = kind >= 1 - _SHARE_NEW
    launch = t - rng.integers(3, min(18, t - 1) + 1, n)
    active &= ~(new[:, None] & (steps[None, :] < launch[:, None]))
    disc = (kind >= 1 - _SHARE_NEW - _SHARE_DISC) & ~new
    stop = t - rng.integers(3, min(18, t - 1) + 1, n)
    active &= ~(disc[:, None] & (steps[None, :] > stop[:, None]))
    return y, price, promo, active


def generate_budget(
    history: pd.DataFrame, *, start: str | pd.Timestamp, months: int = 12, growth: float = 0.05
) -> pd.DataFrame:
    """An annual operating plan for demo history: revenue per month for the Total and each
    category, the same month a year before grown by ``growth`` (the target a finance team
    would set). Columns ``key, month, revenue`` (:func:`~sopforecast.planning.finance.read_budget`).
    """
    ds = pd.date_range(pd.Timestamp(start), periods=months, freq="MS")
    sold = history.assign(
        revenue=history["y"] * history["price"], month=history["ds"] + pd.DateOffset(years=1)
    )
    sold = sold[sold["month"].isin(ds)]
    by_category = sold.groupby(["category", "month"])["revenue"].sum().reset_index()
    by_category = by_category.rename(columns={"category": "key"})
    total = sold.groupby("month")["revenue"].sum().reset_index().assign(key="Total")
    out = pd.concat([total, by_category], ignore_index=True)[["key", "month", "revenue"]]
    out["revenue"] = (out["revenue"] * (1 + growth)).round(0)
    out["month"] = out["month"].dt.strftime("%Y-%m")
    return out
