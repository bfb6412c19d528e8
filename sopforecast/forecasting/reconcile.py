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

from ..data.hierarchy import PATH_SEP, TOTAL, Hierarchy, key_columns
from ..errors import ConfigError, DataError
from .sparse_wls import error_variance, structural_weights, wls_reconcile

__all__ = [
    "aggregate_hierarchy",
    "bottom_path_mismatch",
    "reconcile",
    "SPARSE_ABOVE",
    "dense_memory",
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
) -> tuple[pd.DataFrame, Hierarchy, dict[str, np.ndarray]]:
    """Build every aggregate series of a (possibly grouped) hierarchy.

    Parameters
    ----------
    df : pandas.DataFrame
        Bottom series in long format with the key columns, ``ds`` and ``y``.
    hierarchy : list of str
        Key chains, e.g. ``["category/family/sku", "region/channel"]``.

    Returns
    -------
    (Y_df, structure, tags)
        All series (``unique_id, ds, y``: an aggregate on every date one of its bottom series
        has), the :class:`~sopforecast.data.hierarchy.Hierarchy` (bottom ids sorted, so the
        bottom block of its sparse ``S`` is the identity) and the ids of each level, keyed by
        level name (``Total``, ``category``, ``category/family``, ...).
    """
    keys = key_columns(hierarchy)
    structure = Hierarchy.from_bottom(df[["unique_id", *keys]].sort_values("unique_id"), hierarchy)
    bottom = df[["unique_id", "ds", "y"]]
    column = pd.Index(structure.bottom_ids).get_indexer(bottom["unique_id"].astype(str))
    dates, row = np.unique(bottom["ds"].to_numpy(), return_inverse=True)
    n = len(structure.bottom_ids)
    values = np.zeros((n, len(dates)))
    present = np.zeros((n, len(dates)))
    np.add.at(values, (column, row), bottom["y"].to_numpy(dtype=float))
    np.add.at(present, (column, row), 1.0)
    upper = slice(0, len(structure) - n)  # every level above the bottom, whose rows come first
    sums, seen = structure.S[upper] @ values, structure.S[upper] @ present
    ids, pos = np.nonzero(seen > 0)
    aggregates = pd.DataFrame({"unique_id": structure.ids[upper][ids], "ds": dates[pos], "y": sums[ids, pos]})
    Y = pd.concat([aggregates, bottom.sort_values(["unique_id", "ds"])], ignore_index=True)
    tags = {name: structure.ids_of(name) for name in structure.level_names}
    return Y.reset_index(drop=True), structure, tags


def bottom_path_mismatch(bottom: pd.DataFrame, hierarchy: list[str]) -> np.ndarray:
    """Bottom series ids that are not the key path of their row (``Beverages/Juice/North``)."""
    keys = key_columns(hierarchy)
    first = bottom.drop_duplicates("unique_id")
    path = first[keys[0]].astype(str)
    for col in keys[1:]:
        path = path + PATH_SEP + first[col].astype(str)
    ids = first["unique_id"].astype(str)
    return ids[ids.to_numpy() != path.to_numpy()].to_numpy()


def level_of(tags: dict[str, np.ndarray]) -> pd.Series:
    """Level name of every series id (index unique_id)."""
    return pd.Series({uid: name for name, ids in tags.items() for uid in ids}, name="level")


SPARSE_ABOVE = 4000
"""Series count above which reconciliation runs on the sparse summing matrix: the diagonal
MinTrace methods by :func:`~.sparse_wls.wls_reconcile` (every horizon in one preconditioned
conjugate-gradient solve: 1.4 s and +0.08 GB at 16,250 series), the others by
hierarchicalforecast's sparse classes; ``mint_shrink`` becomes ``wls_var``: its dense error
covariance and the matrices built from it take up to ``DENSE_BYTES_PER_SERIES2`` bytes per
squared series (measured: 0.26 GB more at 1,975 series, 0.58 GB at 3,560; so about 1.1 GB
at 4,000 and 22 GB at 18,000 series, the demo hierarchy over 10k bottom series)."""
DENSE_BYTES_PER_SERIES2 = 70


def dense_memory(n_series: int) -> float:
    """Bytes the dense MinTrace of ``n_series`` series needs (measured on the demo hierarchy)."""
    return DENSE_BYTES_PER_SERIES2 * float(n_series) ** 2


def _reconciler(method: str, tags: dict, middle_level: str | None, nonnegative: bool, sparse: bool):
    from hierarchicalforecast import methods as hf

    strict = is_strict(tags)
    if method in ("top_down", "middle_out") and not strict:
        raise ConfigError(
            f"{method} needs a strictly nested hierarchy (one chain); a grouped hierarchy "
            "has several. Use bottom_up or a MinTrace method (ols, wls_struct, mint_shrink)."
        )
    if method == "bottom_up":
        return hf.BottomUpSparse() if sparse else hf.BottomUp()
    if method == "top_down":
        return (hf.TopDownSparse if sparse else hf.TopDown)(method="forecast_proportions")
    if method == "middle_out":
        middle = middle_level or list(tags)[len(tags) // 2]
        if middle not in tags:
            raise ConfigError(f"middle level {middle!r} is not a level; levels: {', '.join(tags)}.")
        cls = hf.MiddleOutSparse if sparse else hf.MiddleOut
        return cls(middle_level=middle, top_down_method="forecast_proportions")
    if method in ("ols", "wls_struct", "wls_var", "mint_shrink"):
        if sparse:
            return hf.MinTraceSparse(
                method="wls_var" if method == "mint_shrink" else method, nonnegative=nonnegative
            )
        return hf.MinTrace(method=method, nonnegative=nonnegative)
    raise ConfigError(f"unknown reconciliation {method!r}; valid: none, {', '.join(METHODS)}.")


def is_strict(tags: dict) -> bool:
    names = list(tags)
    return all(b.startswith(a + PATH_SEP) or a == TOTAL for a, b in zip(names, names[1:], strict=False))


def reconcile(
    base: pd.DataFrame,
    structure: Hierarchy,
    tags: dict[str, np.ndarray],
    *,
    methods: list[str],
    residuals: pd.DataFrame | None = None,
    history: pd.DataFrame | None = None,
    middle_level: str | None = None,
    nonnegative: bool = False,
    sparse_above: int = SPARSE_ABOVE,
    say_switch: bool = True,
) -> pd.DataFrame:
    """Reconcile base forecasts with one or more methods.

    Parameters
    ----------
    base : pandas.DataFrame
        ``unique_id, ds, forecast`` for every series of ``structure``.
    structure, tags : the hierarchy and level ids from :func:`aggregate_hierarchy`.
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
    sparse_above : int, default :data:`SPARSE_ABOVE`
        Above this many series the sparse methods run (``mint_shrink`` as ``wls_var``), logged.
    say_switch : bool, default True
        Log the switch to the sparse methods (a backtest says it once, not every window).

    Returns
    -------
    pandas.DataFrame
        ``unique_id, ds`` and one ``forecast/<method>`` column per method.
    """
    from hierarchicalforecast.core import HierarchicalReconciliation
    from hierarchicalforecast.utils import SMatrix

    n = len(structure)
    sparse = n > sparse_above
    if sparse and say_switch:
        _log_sparse(methods, n, sparse_above)
    reconcilers = [_reconciler(m, tags, middle_level, nonnegative, sparse) for m in methods]
    Y_df = None
    if any(m in _NEEDS_RESIDUALS for m in methods):
        if residuals is None:
            raise ConfigError("wls_var and mint_shrink need backtest residuals; run a backtest.")
        Y_df = _balanced_residuals(residuals, pd.Series(structure.ids), history)
        if sparse:
            Y_df = _floor_errors(Y_df)
    if sparse and not nonnegative and all(m in _WLS for m in methods):
        return _sparse_wls(base, structure, methods, Y_df)
    if sparse and not nonnegative and any(m in _WLS for m in methods):  # e.g. bottom_up beside
        others = [m for m in methods if m not in _WLS]
        out = reconcile(
            base, structure, tags, methods=others, middle_level=middle_level, sparse_above=sparse_above
        )
        wls = _sparse_wls(base, structure, [m for m in methods if m in _WLS], Y_df)
        out = out.merge(wls.drop(columns="forecast"), on=["unique_id", "ds"], how="left")
        return out[["unique_id", "ds", "forecast", *(f"forecast/{m}" for m in methods)]]
    S_df = SMatrix(structure.S, structure.ids, structure.bottom_ids)
    hrec = HierarchicalReconciliation(reconcilers=reconcilers)
    try:
        out = hrec.reconcile(Y_hat_df=base[["unique_id", "ds", "forecast"]], S_df=S_df, tags=tags, Y_df=Y_df)
    except Exception as exc:  # hierarchicalforecast raises plain Exceptions
        again = dict(
            residuals=residuals, history=history, middle_level=middle_level, sparse_above=sparse_above
        )
        if not nonnegative:
            if "ill-conditioned" in str(exc) and any(m in _NEEDS_RESIDUALS for m in methods):
                return _structural_instead(base, structure, tags, methods, middle_level, exc)
            raise
        # non-negative MinTrace refuses ill-conditioned covariances (PBS does this): the
        # unconstrained solution, made non-negative by the caller (nonnegative_coherent)
        logger.warning("Non-negative reconciliation failed (%s); reconciling without the constraint", exc)
        return reconcile(base, structure, tags, methods=methods, **again)
    # one column per reconciler, in their order, after the base forecast's
    produced = [c for c in out.columns if c.startswith("forecast/")]
    return out.rename(columns={c: f"forecast/{m}" for c, m in zip(produced, methods, strict=True)})


_WLS = ("ols", "wls_struct", "wls_var", "mint_shrink")


def _sparse_wls(base: pd.DataFrame, structure: Hierarchy, methods: list[str], Y_df) -> pd.DataFrame:
    """The diagonal MinTrace methods solved by :func:`~.sparse_wls.wls_reconcile` (every
    horizon at once; ``mint_shrink`` as ``wls_var``), in hierarchicalforecast's output shape."""
    dates = np.sort(base["ds"].unique())
    wide = base.pivot(index="unique_id", columns="ds", values="forecast").reindex(
        index=structure.ids, columns=dates
    )
    if wide.isna().to_numpy().any():
        missing = wide.index[wide.isna().any(axis=1)]
        raise DataError(
            f"reconciliation needs a base forecast of every series on every date; "
            f"{len(missing)} series lack one, such as {missing[0]!r}."
        )
    values = wide.to_numpy(float)
    out = pd.DataFrame(
        {
            "unique_id": np.repeat(structure.ids, len(dates)),
            "ds": np.tile(dates, len(structure)),
            "forecast": values.reshape(-1),
        }
    )
    for method in methods:
        if method == "ols":
            variance = np.ones(len(structure))
        elif method == "wls_struct":
            variance = structural_weights(structure.S)
        else:
            variance = error_variance(Y_df, structure.ids)
        out[f"forecast/{method}"] = wls_reconcile(structure.S, values, variance).reshape(-1)
    return out


def _log_sparse(methods: list[str], n: int, limit: int) -> None:
    if "mint_shrink" in methods:
        logger.warning(
            "%s series: mint_shrink's dense error covariance would need about %.1f GB; reconciled "
            "with wls_var (sparse, the error variances of the backtest) instead. Above "
            "forecast.reconcile_sparse_above = %s series the sparse methods run.",
            f"{n:,}",
            dense_memory(n) / 1e9,
            f"{limit:,}",
        )
    else:
        logger.info("%s series: reconciled with the sparse methods (above %s)", f"{n:,}", f"{limit:,}")


def _structural_instead(base, structure, tags, methods, middle_level, exc) -> pd.DataFrame:
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
    out = reconcile(base, structure, tags, methods=swapped, middle_level=middle_level)
    for m in methods:
        if m in _NEEDS_RESIDUALS:
            out[f"forecast/{m}"] = out["forecast/wls_struct"]
    keep = ["unique_id", "ds", *(f"forecast/{m}" for m in methods)]
    return out[keep]


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


def _floor_errors(frame: pd.DataFrame) -> pd.DataFrame:
    """Series whose backtest errors do not vary (no demand and a zero forecast, or an error
    that is the same every month) get a minute alternating error on top, so their error
    variance is a millionth of the median of the others (at least 1e-4): the sparse
    ``wls_var`` weighs series by the inverse of their error variance, which hierarchicalforecast
    requires to be at least 1e-8. Such a series then keeps its forecast nearly as it is."""
    error = frame["y"] - frame["forecast"]
    variance = error.groupby(frame["unique_id"], sort=False).transform("var").fillna(0.0)
    flat = (variance < _MIN_VARIANCE).to_numpy()
    if not flat.any():
        return frame
    spread = variance[~flat]
    floor = max(float(np.median(spread)) * 1e-6 if len(spread) else 0.0, _MIN_VARIANCE)
    sign = np.where(frame.groupby("unique_id", sort=False).cumcount().to_numpy() % 2 == 0, 1.0, -1.0)
    out = frame.copy()
    out.loc[flat, "forecast"] = out.loc[flat, "forecast"].to_numpy() + np.sqrt(floor) * sign[flat]
    return out


_MIN_VARIANCE = 1e-4


def nonnegative_coherent(
    frame: pd.DataFrame, structure: Hierarchy, columns: list[str], zero: list[str] | None = None
) -> pd.DataFrame:
    """Make reconciled forecasts non-negative and coherent: the bottom series are clipped
    at zero (``zero``: series set to zero, e.g. discontinued items) and every aggregate is
    rebuilt as the sum of its bottom series.

    Parameters
    ----------
    frame : pandas.DataFrame
        ``unique_id, ds`` (and ``cutoff`` for a backtest) and the forecast ``columns``, for
        the series of ``structure``. A bottom series missing from a date counts as zero.
    """
    keys = [c for c in ("cutoff", "ds") if c in frame.columns]
    when = pd.MultiIndex.from_frame(frame[keys]) if len(keys) > 1 else pd.Index(frame[keys[0]])
    when_code, moments = pd.factorize(when)
    row = pd.Index(structure.ids).get_indexer(frame["unique_id"].astype(str))
    col = pd.Index(structure.bottom_ids).get_indexer(frame["unique_id"].astype(str))
    is_bottom = col >= 0
    out = frame.copy()
    for name in columns:
        base = np.zeros((len(structure.bottom_ids), len(moments)))
        values = frame[name].to_numpy(dtype=float)[is_bottom]
        base[col[is_bottom], when_code[is_bottom]] = np.nan_to_num(values, nan=0.0).clip(min=0.0)
        if zero:
            gone = pd.Index(structure.bottom_ids).get_indexer(list(zero))
            base[gone[gone >= 0]] = 0.0
        summed = structure.S @ base
        out[name] = summed[row, when_code]
    return out


def coherence_gap(frame: pd.DataFrame, structure: Hierarchy, column: str) -> float:
    """Largest relative gap between each aggregate and the sum of its bottom series."""
    wide = frame.pivot(index="ds", columns="unique_id", values=column)
    bottom = wide.reindex(columns=structure.bottom_ids).to_numpy()
    summed = (structure.S @ bottom.T).T
    actual = wide.reindex(columns=structure.ids).to_numpy()
    scale = np.maximum(np.abs(actual), 1e-9)
    return float(np.nanmax(np.abs(summed - actual) / scale))
