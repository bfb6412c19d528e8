"""Hierarchies: aggregate bottom series to every level, reconcile forecasts so totals add up.

Thin wrappers over hierarchicalforecast. Aggregates are named by their key path joined with
``/`` (``Beverages/Juice``), the grand total ``Total``. MinTrace variants that need error
covariances (``wls_var``, ``mint_shrink``) take them from the backtest residuals, which are
out-of-sample and so closer to the forecast errors being balanced.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ..data.hierarchy import PATH_SEP, TOTAL, hierarchy_levels, level_name
from ..errors import ConfigError

__all__ = [
    "aggregate_hierarchy",
    "reconcile",
    "level_of",
    "coherence_gap",
    "is_strict",
    "nonnegative_coherent",
    "METHODS",
]

logger = logging.getLogger(__name__)

METHODS = ("bottom_up", "top_down", "middle_out", "ols", "wls_struct", "wls_var", "mint_shrink")
_NEEDS_RESIDUALS = ("wls_var", "mint_shrink")


def aggregate_hierarchy(
    df: pd.DataFrame, hierarchy: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
    """Build every aggregate series of a (possibly grouped) hierarchy.

    Parameters
    ----------
    df : pandas.DataFrame
        Bottom series in long format with the key columns, ``ds`` and ``y``.
    hierarchy : list of str
        Key chains, e.g. ``["category/family/sku", "region/channel"]``.

    Returns
    -------
    (Y_df, S_df, tags)
        All series (``unique_id, ds, y``), the summing matrix and the ids of each level,
        keyed by level name (``Total``, ``category``, ``category/family``, ...).
    """
    from hierarchicalforecast.utils import aggregate

    levels = hierarchy_levels(hierarchy)
    spec = [[TOTAL, *lvl] for lvl in levels]
    frame = df[[*levels[-1], "ds", "y"]].assign(**{TOTAL: TOTAL})
    Y, S, tags = aggregate(frame, spec)
    rename = _strip_total
    Y["unique_id"] = Y["unique_id"].map(rename)
    S["unique_id"] = S["unique_id"].map(rename)
    S.columns = [c if c == "unique_id" else rename(c) for c in S.columns]
    named = {}
    for lvl, key in zip(levels, tags, strict=True):
        named[level_name(lvl)] = np.array([rename(i) for i in tags[key]], dtype=object)
    return Y, S, named


def _strip_total(uid: str) -> str:
    prefix = TOTAL + PATH_SEP
    return uid[len(prefix) :] if uid.startswith(prefix) else uid


def level_of(tags: dict[str, np.ndarray]) -> pd.Series:
    """Level name of every series id (index unique_id)."""
    return pd.Series({uid: name for name, ids in tags.items() for uid in ids}, name="level")


def _reconciler(method: str, tags: dict, middle_level: str | None, nonnegative: bool):
    from hierarchicalforecast.methods import BottomUp, MiddleOut, MinTrace, TopDown

    strict = is_strict(tags)
    if method in ("top_down", "middle_out") and not strict:
        raise ConfigError(
            f"{method} needs a strictly nested hierarchy (one chain); a grouped hierarchy "
            "has several. Use bottom_up or a MinTrace method (ols, wls_struct, mint_shrink)."
        )
    if method == "bottom_up":
        return BottomUp()
    if method == "top_down":
        return TopDown(method="forecast_proportions")
    if method == "middle_out":
        middle = middle_level or list(tags)[len(tags) // 2]
        if middle not in tags:
            raise ConfigError(f"middle level {middle!r} is not a level; levels: {', '.join(tags)}.")
        return MiddleOut(middle_level=middle, top_down_method="forecast_proportions")
    if method in ("ols", "wls_struct", "wls_var", "mint_shrink"):
        return MinTrace(method=method, nonnegative=nonnegative)
    raise ConfigError(f"unknown reconciliation {method!r}; valid: none, {', '.join(METHODS)}.")


def is_strict(tags: dict) -> bool:
    names = list(tags)
    return all(b.startswith(a + PATH_SEP) or a == TOTAL for a, b in zip(names, names[1:], strict=False))


def reconcile(
    base: pd.DataFrame,
    S: pd.DataFrame,
    tags: dict[str, np.ndarray],
    *,
    methods: list[str],
    residuals: pd.DataFrame | None = None,
    history: pd.DataFrame | None = None,
    middle_level: str | None = None,
    nonnegative: bool = False,
) -> pd.DataFrame:
    """Reconcile base forecasts with one or more methods.

    Parameters
    ----------
    base : pandas.DataFrame
        ``unique_id, ds, forecast`` for every series of ``S``.
    S, tags : summing matrix and level ids from :func:`aggregate_hierarchy`.
    methods : list of str
        Methods from :data:`METHODS`.
    residuals : pandas.DataFrame, optional
        ``unique_id, ds, y, forecast`` from the backtest, needed by wls_var and mint_shrink.
    history : pandas.DataFrame, optional
        All series' history (``unique_id, ds, y``), for series missing from ``residuals``.
    middle_level : str, optional
        Level name for middle_out.
    nonnegative : bool, default False
        Non-negative MinTrace.

    Returns
    -------
    pandas.DataFrame
        ``unique_id, ds`` and one ``forecast/<method>`` column per method.
    """
    from hierarchicalforecast.core import HierarchicalReconciliation

    reconcilers = [_reconciler(m, tags, middle_level, nonnegative) for m in methods]
    Y_df = None
    if any(m in _NEEDS_RESIDUALS for m in methods):
        if residuals is None:
            raise ConfigError("wls_var and mint_shrink need backtest residuals; run a backtest.")
        Y_df = _balanced_residuals(residuals, S["unique_id"], history)
    hrec = HierarchicalReconciliation(reconcilers=reconcilers)
    try:
        out = hrec.reconcile(Y_hat_df=base[["unique_id", "ds", "forecast"]], S_df=S, tags=tags, Y_df=Y_df)
    except Exception as exc:  # hierarchicalforecast raises plain Exceptions
        if not nonnegative:
            if "ill-conditioned" in str(exc) and any(m in _NEEDS_RESIDUALS for m in methods):
                return _structural_instead(base, S, tags, methods, middle_level, exc)
            raise
        # non-negative MinTrace refuses ill-conditioned covariances (PBS does this): the
        # unconstrained solution, made non-negative by the caller (nonnegative_coherent)
        logger.warning("Non-negative reconciliation failed (%s); reconciling without the constraint", exc)
        return reconcile(
            base, S, tags, methods=methods, residuals=residuals, history=history, middle_level=middle_level
        )
    renamed = {}
    for col in out.columns:
        if col.startswith("forecast/"):
            for m in methods:
                if _method_label(m) in col:
                    renamed[col] = f"forecast/{m}"
    return out.rename(columns=renamed)


def _structural_instead(base, S, tags, methods, middle_level, exc) -> pd.DataFrame:
    """The residual-based MinTrace methods as wls_struct: their error covariance cannot be
    inverted (too few backtest errors for the number of series, e.g. one short window), and
    the structural weights need none. Each such method's column keeps its name."""
    swapped = list(dict.fromkeys("wls_struct" if m in _NEEDS_RESIDUALS else m for m in methods))
    logger.warning(
        "Reconciliation with %s failed (%s); reconciled with wls_struct instead (structural weights, "
        "no backtest errors needed). More backtest windows give a well-conditioned covariance.",
        ", ".join(m for m in methods if m in _NEEDS_RESIDUALS),
        exc,
    )
    out = reconcile(base, S, tags, methods=swapped, middle_level=middle_level)
    for m in methods:
        if m in _NEEDS_RESIDUALS:
            out[f"forecast/{m}"] = out["forecast/wls_struct"]
    keep = ["unique_id", "ds", *(f"forecast/{m}" for m in methods)]
    return out[keep]


def _method_label(method: str) -> str:
    return {"bottom_up": "BottomUp", "top_down": "TopDown", "middle_out": "MiddleOut"}.get(
        method, f"MinTrace_method-{method}"
    )


def _balanced_residuals(res: pd.DataFrame, ids: pd.Series, history: pd.DataFrame) -> pd.DataFrame:
    """Residual frame on one shared date grid. Series that could not be backtested (too
    short) get their naive (last value) errors from ``history`` so variances stay positive."""
    res = res[["unique_id", "ds", "y", "forecast"]].drop_duplicates(["unique_id", "ds"], keep="last")
    dates = sorted(res["ds"].unique())
    if not dates:  # no backtest residuals at all (one window held out): naive errors of the history
        dates = sorted(history["ds"].unique())[-24:]
    grid = pd.MultiIndex.from_product([ids, dates], names=["unique_id", "ds"])
    full = res.set_index(["unique_id", "ds"]).reindex(grid)
    missing = full["y"].isna()
    if missing.any():
        hist = history.set_index(["unique_id", "ds"])["y"]
        lagged = history.assign(y=history.groupby("unique_id")["y"].shift(1)).set_index(["unique_id", "ds"])[
            "y"
        ]
        idx = full.index[missing]
        full.loc[missing, "y"] = hist.reindex(idx).fillna(0.0).to_numpy()
        full.loc[missing, "forecast"] = lagged.reindex(idx).fillna(0.0).to_numpy()
        logger.info(
            "%d series without backtest residuals use naive errors instead",
            idx.get_level_values(0).nunique(),
        )
    return full.reset_index()


def nonnegative_coherent(
    frame: pd.DataFrame, S: pd.DataFrame, columns: list[str], zero: list[str] | None = None
) -> pd.DataFrame:
    """Make reconciled forecasts non-negative and coherent: the bottom series are clipped
    at zero (``zero``: series set to zero, e.g. discontinued items) and every aggregate is
    rebuilt as the sum of its bottom series.

    Parameters
    ----------
    frame : pandas.DataFrame
        ``unique_id, ds`` (and ``cutoff`` for a backtest) and the forecast ``columns``, for
        the series of ``S``. A bottom series missing from a date counts as zero.
    """
    keys = [c for c in ("cutoff", "ds") if c in frame.columns]
    bottom = [c for c in S.columns if c != "unique_id"]
    summing = S.set_index("unique_id")[bottom]
    index = pd.MultiIndex.from_frame(frame[[*keys, "unique_id"]])
    out = frame.copy()
    for col in columns:
        wide = pd.Series(frame[col].to_numpy(dtype=float), index=index).unstack("unique_id")
        base = wide.reindex(columns=bottom).fillna(0.0).clip(lower=0.0)
        if zero:
            base[[z for z in zero if z in base.columns]] = 0.0
        summed = pd.DataFrame(base.to_numpy() @ summing.to_numpy().T, index=wide.index, columns=summing.index)
        out[col] = summed.stack().reindex(index).to_numpy()
    return out


def coherence_gap(frame: pd.DataFrame, S: pd.DataFrame, column: str) -> float:
    """Largest relative gap between each aggregate and the sum of its bottom series."""
    bottom = [c for c in S.columns if c != "unique_id"]
    wide = frame.pivot(index="ds", columns="unique_id", values=column)
    summed = wide[bottom].to_numpy() @ S.set_index("unique_id").loc[wide.columns, bottom].to_numpy().T
    actual = wide.to_numpy()
    scale = np.maximum(np.abs(actual), 1e-9)
    return float(np.nanmax(np.abs(summed - actual) / scale))
