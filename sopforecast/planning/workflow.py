"""The planner's actions on the plan store, one function each, for the CLI, the API and
the notebooks alike: apply an override file or an edited workbook, load actuals, export a
version, and the forecast-value-added and financial views.

The pure rules live beside this module (overrides, consensus, layouts, fva, finance); every
change goes through the planning service (:mod:`.service`), which reads, computes and
writes one unit of work in the store (:class:`~sopforecast.store.plans.PlanStore`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ..errors import SopforecastError, format_examples
from ..store.plans import PlanNotFound, PlanStore, PlanVersion
from . import service
from .consensus import APPLIED_COLUMNS, CONFLICT_COLUMNS, Consensus
from .fva import fva_by_author, fva_table
from .layouts import write_plan
from .lines import rollup
from .overrides import read_overrides, validate_overrides
from .staleness import changed_cells, is_stale, stale_error
from .workbook import read_workbook

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
    by: str | None = None,
    branch: str = "",
    reopen: str | None = None,
) -> tuple[PlanVersion, Consensus]:
    """Check overrides (``key, month, value or change_pct, author, reason``) against
    ``version`` and apply them to its cycle (:func:`.service.apply`); nothing is applied
    when any row is wrong."""
    lines = plans.lines(version)
    checked = validate_overrides(raw, lines, source=source)
    if checked.empty:  # nothing to change: no new version, no write
        none = Consensus(lines, pd.DataFrame(columns=CONFLICT_COLUMNS), pd.DataFrame(columns=APPLIED_COLUMNS))
        return version, none
    history = service.history(plans, version) if basis == "history" else None
    return service.apply(
        plans,
        checked,
        version=version,
        basis=basis,
        history=history,
        source=source,
        by=by,
        branch=branch,
        reopen=reopen,
    )


def who(author: str | None, *, action: str) -> str:
    """The planner acting: ``author``, else the configured user (``$SOPFORECAST_USER``);
    never a login name guessed behind their back.

    Raises
    ------
    SopforecastError
        When neither is given (setting ``author``).
    """
    import os

    chosen = (author or os.environ.get("SOPFORECAST_USER") or "").strip()
    if not chosen:
        raise SopforecastError(
            f"say who {action}: give author (your name as the audit should show it), "
            "or set SOPFORECAST_USER once for your shell.",
            setting="author",
        )
    return chosen


def apply_override_file(
    plans: PlanStore,
    path: str | Path,
    *,
    plan: str | None = None,
    version: int | str | None = None,
    author: str | None = None,
    reason: str | None = None,
    basis: str = "statistical",
    branch: str = "",
    reopen: str | None = None,
    rebase: bool = False,
) -> tuple[PlanVersion, Consensus]:
    """Apply an override file (CSV or Excel, one row per override) or a planner workbook
    (``plan export --layout planner``, only its changed cells) to the plan.

    The target is ``version`` (name, id or cycle), else for a workbook the version it was
    exported from, else the current version of the plan's latest cycle; the change lands on
    that cycle's draft (:func:`.service.apply`). A workbook needs ``author`` and ``reason``
    and is refused when the version changed since its export, unless ``rebase``. Nothing is
    applied when any override is wrong.
    """
    path = Path(path)
    if _is_workbook(path):
        if not (reason or "").strip():
            raise SopforecastError(
                f"{path.name}: say why these changes are made (reason); it is kept in the audit.",
                setting="reason",
            )
        by = who(author, action="edited the workbook")
        raw, meta, exported_cells = read_workbook(path, author=by, reason=reason)
        name = meta.get("plan") or plan_name(plans, plan)
        exported = _exported_version(plans, meta, name)
        # the change lands on the cycle's current version (a published one's draft continues it)
        current = plans.current(exported.plan, exported.cycle, exported.branch) or exported
        target = plans.version(version, name) if version else current
        if not rebase:
            refuse_stale(plans, path, meta, exported_cells, current)
        if raw.empty:
            logger.info("%s: no consensus cell differs from the export; nothing to apply", path.name)
    else:
        raw = read_overrides(path)
        target = plans.version(version, plan_name(plans, plan))
        by = None
    return apply_overrides_frame(
        plans, raw, version=target, basis=basis, source=path.name, by=by, branch=branch, reopen=reopen
    )


def _exported_version(plans: PlanStore, meta: dict, name: str) -> PlanVersion:
    """The version a workbook was exported from (by its id; older workbooks: its cycle)."""
    if meta.get("version_id") not in (None, ""):
        try:
            return plans.version(int(meta["version_id"]), name)
        except PlanNotFound:
            pass
    return plans.version(meta.get("cycle"), name)


def refuse_stale(
    plans: PlanStore, path: Path, meta: dict, exported: pd.DataFrame, current: PlanVersion
) -> None:
    """Refuse a workbook whose plan moved since its export (an override applied or reverted
    by someone else): applying it would bring back what changed meanwhile.

    A version written since without any exported cell moving (an override and its revert,
    a publish) is not stale. A workbook from before checksums cannot be checked: stale.

    Raises
    ------
    DataError
        Naming the cells that changed, with setting ``rebase``.
    """
    lines = plans.lines(current)
    if not is_stale(meta, lines, revision=current.revision):
        return
    cells = changed_cells(exported, lines)
    if cells.empty and meta.get("checksum"):
        return
    raise stale_error(path.name, meta, cells, revision=current.revision)


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
    from ..data.hierarchy import check_nesting, key_columns
    from ..data.io import read_source
    from ..data.schema import validate

    name = plan_name(plans, plan)
    version = plans.version(None, name)
    settings = dict(version.data_config or {})
    settings.pop("path", None)
    hierarchy = settings.pop("hierarchy", None) or []
    keys = key_columns(hierarchy)
    ids = [*settings.get("keys", []), *keys, settings.get("id_col", "unique_id")]
    raw = read_source(path, sheet=sheet, text_columns=ids)  # ids as written: 00101, NA
    # a file of a few series cannot show which labels are shared on purpose (every region
    # has a Retail channel): the nesting is checked on the plan's series and the file's
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
    _refuse_beyond_horizon(plans, version, frame, path)
    counts = plans.load_actuals(
        name, frame[["unique_id", "ds", "y", *config.drivers]], source=Path(path).name
    )
    return {**counts, "series": int(frame["unique_id"].nunique()), "new_items": len(new_items)}


def _refuse_beyond_horizon(plans: PlanStore, version: PlanVersion, frame: pd.DataFrame, path) -> None:
    """Actuals dated after the end of the latest plan's horizon are a typo (a year 2098) or
    the wrong file: refused, naming the rows."""
    _, last = plans.months(version)
    # the end of the last planned bucket: a month, or a 4-4-5 period of at most five weeks
    end = last + (pd.DateOffset(months=1) if version.bucket == "month" else pd.Timedelta(weeks=5))
    late = frame[pd.to_datetime(frame["ds"]) >= end]
    if late.empty:
        return
    shown = format_examples([f"{u} {d:%Y-%m-%d}" for u, d in zip(late["unique_id"], late["ds"], strict=True)])
    raise SopforecastError(
        f"{path}: {len(late)} row(s) are dated after the end of the plan horizon "
        f"({version.name} plans up to {last:%Y-%m}): {shown}. Check the dates (a typo in the year?) "
        "or the file; actuals cannot be later than the plan.",
        setting="path",
    )


def export_version(
    plans: PlanStore,
    output: str | Path,
    *,
    version: PlanVersion,
    layout: str = "long",
    decimals: int | None = None,
    levels: list[str] | None = None,
) -> Path:
    """Write a plan version as CSV, Excel or Parquet (by the file's extension); ``wide``
    (for an ERP) rounded to ``decimals``; only ``levels`` when given."""
    snap = plans.snapshot(version)  # lines and row counter read together: the workbook's meta
    version, lines = snap.version, snap.lines
    keys = plans.keys(version)
    history = None
    if layout == "planner":
        history = actuals_by_level(plans, version)
    meta = {
        "plan": version.plan,
        "cycle": version.cycle,
        "version_id": version.id,
        "number": version.number,
        "name": version.name,
        "status": version.status,
        "revision": version.revision,
        "exported_at": pd.Timestamp.now(tz="UTC").tz_localize(None).isoformat(timespec="seconds"),
    }
    return write_plan(
        lines, output, layout=layout, keys=keys, history=history, meta=meta, decimals=decimals, levels=levels
    )


def actuals_by_level(plans: PlanStore, version: PlanVersion) -> pd.DataFrame | None:
    """The stored actuals of every series at every level of ``version``, in its buckets."""
    bottom = service.history(plans, version)
    if bottom.empty:
        return None
    S, _ = service.structure(plans, version)
    total = rollup(bottom, S, "y")
    # a month of an aggregate counts only when every series under it has its actual
    present = rollup(bottom.assign(y=1.0), S, "y")
    complete = present.to_numpy() >= S.sizes().reindex(present.index.get_level_values(0)).to_numpy() - 0.5
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
