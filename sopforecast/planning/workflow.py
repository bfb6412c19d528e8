"""The planner's actions on the plan store, one function each, for the CLI, the API and
the notebooks alike: apply an override file or an edited workbook, load actuals, export a
version, and the forecast-value-added and financial views.

The pure rules live beside this module (overrides, consensus, layouts, fva, finance); the
store (:class:`~sopforecast.store.plans.PlanStore`) does the writing, in transactions.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ..errors import SopforecastError, format_examples
from ..store.plans import PlanNotFound, PlanStore, PlanVersion, user
from .consensus import APPLIED_COLUMNS, CONFLICT_COLUMNS, Consensus
from .fva import fva_by_author, fva_table
from .layouts import read_planner_workbook, write_plan
from .lines import rollup
from .overrides import read_overrides, validate_overrides

__all__ = [
    "plan_name",
    "apply_override_file",
    "apply_overrides_frame",
    "load_actuals_file",
    "export_version",
    "fva_report",
    "published_lines",
    "actuals_by_level",
]

logger = logging.getLogger(__name__)


def plan_name(plans: PlanStore, given: str | None = None) -> str:
    """The plan a command acts on: ``given``, else the only plan in the store."""
    names = sorted(set(plans.versions()["plan"]))
    if given:
        if given not in names:
            known = f"plans here: {format_examples(names)}" if names else "the store holds no plan yet"
            raise PlanNotFound(f"no plan {given!r} in {plans.where}; {known}.", setting="plan")
        return given
    if not names:
        raise PlanNotFound(
            f"no plan in {plans.where} yet; run a pipeline with plan: {{enabled: true}} "
            "(sopforecast demo makes one).",
            setting="plan",
        )
    if len(names) > 1:
        raise SopforecastError(f"the store holds several plans {names}; name one with plan.", setting="plan")
    return names[0]


def apply_overrides_frame(
    plans: PlanStore,
    raw: pd.DataFrame,
    *,
    version: PlanVersion,
    basis: str = "statistical",
    source: str = "api",
) -> tuple[PlanVersion, Consensus]:
    """Check overrides (``key, month, value or change_pct, author, reason``) against
    ``version`` and apply them; nothing is applied when any row is wrong."""
    lines = plans.lines(version)
    checked = validate_overrides(raw, lines, source=source)
    if checked.empty:  # nothing to change: no new version, no write
        none = Consensus(lines, pd.DataFrame(columns=CONFLICT_COLUMNS), pd.DataFrame(columns=APPLIED_COLUMNS))
        return version, none
    history = plans.history(version) if basis == "history" else None
    return plans.apply(checked, version=version, basis=basis, history=history, source=source)


def apply_override_file(
    plans: PlanStore,
    path: str | Path,
    *,
    plan: str | None = None,
    version: int | str | None = None,
    author: str | None = None,
    reason: str | None = None,
    basis: str = "statistical",
) -> tuple[PlanVersion, Consensus]:
    """Apply an override file (CSV or Excel, one row per override) or a planner workbook
    (``plan export --layout planner``, only its changed cells) to the plan.

    The target is ``version`` (id or cycle), else for a workbook the latest version of the
    cycle it was exported from, else the plan's latest version. A published target gets a
    new draft. Nothing is applied when any override is wrong.
    """
    path = Path(path)
    if _is_workbook(path):
        raw, meta = read_planner_workbook(
            path, author=author or user(), reason=reason or f"edited in {path.name}"
        )
        name = meta.get("plan") or plan_name(plans, plan)
        target = plans.version(version or meta.get("cycle"), name)
        if raw.empty:
            logger.info("%s: no consensus cell differs from the export; nothing to apply", path.name)
    else:
        raw = read_overrides(path)
        target = plans.version(version, plan_name(plans, plan))
    return apply_overrides_frame(plans, raw, version=target, basis=basis, source=path.name)


def _is_workbook(path: Path) -> bool:
    if path.suffix.lower() not in (".xlsx", ".xlsm"):
        return False
    from openpyxl import load_workbook

    try:
        book = load_workbook(path, read_only=True)
    except Exception:  # unreadable: read_overrides says why, with the file's name
        return False
    try:
        return "_export" in book.sheetnames
    finally:
        book.close()


def load_actuals_file(
    plans: PlanStore, path: str | Path, *, plan: str | None = None, sheet: str | int | None = None
) -> dict[str, int]:
    """Read an actuals file the way the plan's pipeline read its history (same columns,
    same validation) and keep it; a restated month becomes a revision."""
    from ..config import DataConfig
    from ..data.hierarchy import check_nesting
    from ..data.io import read_source
    from ..data.schema import validate

    name = plan_name(plans, plan)
    version = plans.version(None, name)
    settings = dict(version.data_config or {})
    settings.pop("path", None)
    hierarchy = settings.pop("hierarchy", None) or []
    # a file of a few series cannot show which labels are shared on purpose (every region
    # has a Retail channel): the nesting is checked on the plan's series and the file's
    raw = read_source(path, sheet=sheet)
    # drivers (price, promo) are kept when the file has them, for the drift monitor
    settings["drivers"] = [d for d in settings.get("drivers", []) if d in raw.columns]
    config = DataConfig(**settings, sheet=sheet)
    frame = validate(raw, config, source=str(path)).frame
    bottom = plans.bottom(version)
    if hierarchy:
        check_nesting(pd.concat([bottom, frame[bottom.columns]]), hierarchy, where=str(path))
    known = set(bottom["unique_id"])
    new_items = sorted(set(frame["unique_id"]) - known)
    if new_items:
        logger.info(
            "%s: %d series not in plan %s (new items): %s",
            path,
            len(new_items),
            version.label,
            format_examples(new_items),
        )
    counts = plans.load_actuals(
        name, frame[["unique_id", "ds", "y", *config.drivers]], source=Path(path).name
    )
    return {**counts, "series": int(frame["unique_id"].nunique()), "new_items": len(new_items)}


def export_version(
    plans: PlanStore, output: str | Path, *, version: PlanVersion, layout: str = "long"
) -> Path:
    """Write a plan version as CSV, Excel or Parquet (by the file's extension)."""
    lines = plans.lines(version)
    keys = plans.keys(version)
    history = None
    if layout == "planner":
        history = actuals_by_level(plans, version)
    meta = {
        "plan": version.plan,
        "cycle": version.cycle,
        "version_id": version.id,
        "number": version.number,
        "status": version.status,
    }
    return write_plan(lines, output, layout=layout, keys=keys, history=history, meta=meta)


def actuals_by_level(plans: PlanStore, version: PlanVersion) -> pd.DataFrame | None:
    """The stored actuals of every series at every level of ``version``, in its buckets."""
    bottom = plans.history(version)
    if bottom.empty:
        return None
    S, _ = plans.structure(version)
    total = rollup(bottom, S, "y")
    # a month of an aggregate counts only when every series under it has its actual
    present = rollup(bottom.assign(y=1.0), S, "y")
    complete = present.to_numpy() >= S.sum(axis=1).reindex(present.index.get_level_values(0)).to_numpy() - 0.5
    return total[complete].reset_index()


def published_lines(plans: PlanStore, plan: str) -> pd.DataFrame:
    """The lines of every published version of ``plan``, stacked with ``version_id``, ``cycle``."""
    versions = plans.versions(plan)
    versions = versions[versions["status"] == "published"]
    parts = [
        plans.lines(int(v.id)).assign(version_id=int(v.id), cycle=v.cycle) for v in versions.itertuples()
    ]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def fva_report(plans: PlanStore, plan: str, lags=(1, 3, 6)) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Forecast value added of the published versions of ``plan`` against the stored
    actuals, per level and lag, and per author."""
    stacked = published_lines(plans, plan)
    if stacked.empty:
        raise PlanNotFound(
            f"plan {plan!r} has no published version yet; publish one (sopforecast plan publish CYCLE)."
        )
    actual = actuals_by_level(plans, plans.version(None, plan))
    if actual is None:
        actual = pd.DataFrame(
            {"unique_id": pd.Series(dtype=object), "ds": pd.Series(dtype="datetime64[ns]"), "y": []}
        )
    return fva_table(stacked, actual, lags), fva_by_author(stacked, actual, lags)
