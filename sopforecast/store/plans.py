"""The plan store: versioned demand plans, their overrides and the actuals they are judged by.

One entry point (:class:`PlanStore`) that the CLI, the pipeline's plan step, the API and
the notebooks all use. Every write is one transaction: a plan version, an override batch
or an actuals load appears whole or not at all, also when the process is killed midway.

Versions: each plan (by name, e.g. the pipeline's) has cycles (``2026-11``) and each cycle
numbered versions. A draft takes overrides in place; a published version never changes:
an override or a revert on it makes a new draft (``parent_id``) that carries its overrides.
"""

from __future__ import annotations

import getpass
import json
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from ..errors import SopforecastError, format_examples
from ..planning.lines import series_keys, summing
from ..workdir import Workdir
from . import actuals, monitoring, rows, schema
from .tables import overrides, plan_lines, plan_series, plan_versions

__all__ = ["PlanStore", "PlanVersion", "PlanNotFound", "STORE_ENV", "resolve_store_uri", "user"]

STORE_ENV = "SOPFORECAST_STORE_URI"


class PlanNotFound(SopforecastError):
    """No plan version matches what was asked for."""


def user() -> str:
    """Who is acting: ``$SOPFORECAST_USER``, else the login name."""
    try:
        return os.environ.get("SOPFORECAST_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def resolve_store_uri(workdir: Workdir, uri: str | None = None, configured: str | None = None) -> str:
    """The store's URL: ``--store`` (``uri``), else ``$SOPFORECAST_STORE_URI``, else the
    pipeline's ``plan.store_uri`` (``configured``), else ``<workdir>/sopforecast.db``."""
    chosen = uri or os.environ.get(STORE_ENV) or configured
    if chosen:
        return chosen
    workdir.ensure()
    return f"sqlite:///{workdir.database}"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class PlanVersion:
    """One version of a plan (a row of ``plan_versions``)."""

    id: int
    plan: str
    cycle: str
    number: int
    status: str
    parent_id: int | None
    source_run_id: str | None
    created_at: datetime
    created_by: str
    published_at: datetime | None
    published_by: str | None
    bucket: str
    history_end: date | None
    hierarchy: list[str]
    data_config: dict | None

    @property
    def label(self) -> str:
        return f"{self.plan} {self.cycle} v{self.number} (id {self.id}, {self.status})"

    @classmethod
    def _from(cls, row) -> PlanVersion:
        data = dict(row._mapping)
        data["hierarchy"] = json.loads(data["hierarchy"])
        data["data_config"] = json.loads(data["data_config"]) if data.get("data_config") else None
        data.pop("note", None)
        return cls(**data)


class PlanStore:
    """Plans, overrides and actuals in a SQL database (SQLite file or PostgreSQL URL).

    Opening a new database creates the schema; an outdated one is refused until
    ``sopforecast db upgrade`` (:mod:`.schema`).
    """

    def __init__(self, url: str):
        from ..data.io import redact_url

        self.url = url
        self.where = redact_url(url)
        self.engine = schema.make_engine(url)
        schema.ensure(self.engine, where=self.where)

    @classmethod
    def open(cls, workdir: Workdir, uri: str | None = None, configured: str | None = None) -> PlanStore:
        return cls(resolve_store_uri(workdir, uri, configured))

    # ----------------------------------------------------------------- versions
    def create_version(
        self,
        plan: str,
        lines: pd.DataFrame,
        bottom: pd.DataFrame,
        hierarchy: list[str],
        *,
        cycle: str | None = None,
        source_run_id: str | None = None,
        created_by: str | None = None,
        bucket: str = "month",
        history_end: pd.Timestamp | None = None,
        data_config: dict | None = None,
    ) -> PlanVersion:
        """Store a new draft version of ``plan`` (its next number in ``cycle``), atomically."""
        cycle = cycle or pd.Timestamp(lines["ds"].min()).strftime("%Y-%m")
        keys = series_keys(bottom, hierarchy)
        _, levels = summing(bottom, hierarchy)
        row = {
            "plan": plan,
            "cycle": cycle,
            "status": "draft",
            "source_run_id": source_run_id,
            "created_at": _now(),
            "created_by": created_by or user(),
            "bucket": bucket,
            "history_end": pd.Timestamp(history_end).date() if history_end is not None else None,
            "hierarchy": json.dumps(hierarchy),
            "data_config": json.dumps(data_config) if data_config else None,
        }
        for attempt in range(5):  # another writer may take the same number first: take the next
            try:
                version_id = self._insert_version(row, lines, levels, keys)
                break
            except IntegrityError as exc:
                if "uq_plan_versions_number" not in str(exc) or attempt == 4:
                    raise
        return self.version(int(version_id))

    def _insert_version(self, row: dict, lines: pd.DataFrame, levels: pd.Series, keys: pd.DataFrame) -> int:
        with self.engine.begin() as conn:
            number = conn.execute(
                select(func.coalesce(func.max(plan_versions.c.number), 0)).where(
                    and_(plan_versions.c.plan == row["plan"], plan_versions.c.cycle == row["cycle"])
                )
            ).scalar_one()
            version_id = conn.execute(
                insert(plan_versions).values(**row, number=int(number) + 1)
            ).inserted_primary_key[0]
            conn.execute(insert(plan_series), rows.series_rows(version_id, levels, keys))
            conn.execute(insert(plan_lines), rows.line_rows(version_id, lines))
        return int(version_id)

    def version(self, ref: int | str | None = None, plan: str | None = None) -> PlanVersion:
        """A version by id, by cycle (its latest version) or, with ``ref=None``, the latest."""
        query = select(plan_versions).order_by(plan_versions.c.id.desc()).limit(1)
        if plan:
            query = query.where(plan_versions.c.plan == plan)
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
            query = query.where(plan_versions.c.id == int(ref))
        elif ref:
            query = query.where(plan_versions.c.cycle == str(ref))
        with self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            known = self.versions(plan)
            hint = (
                f"versions here: {format_examples([f'{r.cycle} (id {r.id})' for r in known.itertuples()])}"
                if len(known)
                else "no plan has been made yet; run a pipeline with plan: {enabled: true} (the demo does)"
            )
            what = f"plan version {ref!r}" if ref else "any plan version"
            raise PlanNotFound(f"no {what}{f' of plan {plan!r}' if plan else ''} in {self.where}; {hint}.")
        return PlanVersion._from(row)

    def versions(self, plan: str | None = None) -> pd.DataFrame:
        """Every version, newest first, with its total plan and number of active overrides."""
        totals = (
            select(plan_lines.c.version_id, func.sum(plan_lines.c.final).label("total_final"))
            .join(
                plan_series,
                and_(
                    plan_series.c.version_id == plan_lines.c.version_id,
                    plan_series.c.unique_id == plan_lines.c.unique_id,
                ),
            )
            .join(plan_versions, plan_versions.c.id == plan_lines.c.version_id)
            # the top of a hierarchy is its Total; a flat plan's total is all its series
            .where(or_(plan_series.c.position == 0, plan_versions.c.hierarchy == "[]"))
            .group_by(plan_lines.c.version_id)
            .subquery()
        )
        active = (
            select(overrides.c.version_id, func.count().label("overrides"))
            .where(overrides.c.reverted_at.is_(None))
            .group_by(overrides.c.version_id)
            .subquery()
        )
        query = (
            select(
                plan_versions.c.id,
                plan_versions.c.plan,
                plan_versions.c.cycle,
                plan_versions.c.number,
                plan_versions.c.status,
                plan_versions.c.created_at,
                plan_versions.c.created_by,
                plan_versions.c.published_at,
                plan_versions.c.source_run_id,
                totals.c.total_final,
                func.coalesce(active.c.overrides, 0).label("overrides"),
            )
            .outerjoin(totals, totals.c.version_id == plan_versions.c.id)
            .outerjoin(active, active.c.version_id == plan_versions.c.id)
            .order_by(plan_versions.c.id.desc())
        )
        if plan:
            query = query.where(plan_versions.c.plan == plan)
        with self.engine.connect() as conn:
            return pd.DataFrame(
                conn.execute(query).mappings().all(), columns=list(query.selected_columns.keys())
            )

    def lines(self, version: PlanVersion | int) -> pd.DataFrame:
        """The plan lines of a version (:mod:`sopforecast.planning.lines`), series in order."""
        vid = version.id if isinstance(version, PlanVersion) else int(version)
        query = (
            select(plan_lines, plan_series.c.level, plan_series.c.position)
            .join(
                plan_series,
                and_(
                    plan_series.c.version_id == plan_lines.c.version_id,
                    plan_series.c.unique_id == plan_lines.c.unique_id,
                ),
            )
            .where(plan_lines.c.version_id == vid)
            .order_by(plan_series.c.position, plan_lines.c.ds)
        )
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query).mappings().all())
        if frame.empty:
            raise PlanNotFound(f"plan version id {vid} has no lines in {self.where}.")
        bounds = pd.DataFrame([json.loads(v) if v else {} for v in frame["intervals"]], index=frame.index)
        bounds = bounds[sorted(bounds.columns, key=rows.bound_order)].add_prefix("statistical-")
        frame["ds"] = pd.to_datetime(frame["ds"])
        frame["author"] = frame["author"].astype(object).where(frame["author"].notna(), None)
        front = frame[["unique_id", "level", "ds", "statistical"]]
        rest = frame[["naive", "consensus", "final", "author", "price", "unit_cost"]].astype(
            {c: float for c in ("naive", "consensus", "final", "price", "unit_cost")}
        )
        return pd.concat([front, bounds, rest], axis=1)

    def bottom(self, version: PlanVersion | int) -> pd.DataFrame:
        """The bottom series of a version with their key columns (``unique_id`` + keys)."""
        keys = self.keys(version)
        full = keys.notna().all(axis=1) if len(keys.columns) else pd.Series(True, index=keys.index)
        return keys[full].reset_index()

    def keys(self, version: PlanVersion | int) -> pd.DataFrame:
        """Key columns of every series of a version (index ``unique_id``; empty below its level)."""
        vid = version.id if isinstance(version, PlanVersion) else int(version)
        query = select(plan_series.c.unique_id, plan_series.c["keys"]).where(plan_series.c.version_id == vid)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(plan_series.c.position)).all()
        frame = pd.DataFrame([json.loads(r.keys) for r in rows], index=[r.unique_id for r in rows])
        frame.index.name = "unique_id"
        version = version if isinstance(version, PlanVersion) else self.version(vid)
        order = [c for chain in version.hierarchy for c in chain.split("/") if c]
        return frame.reindex(columns=order)

    def structure(self, version: PlanVersion) -> tuple[pd.DataFrame, pd.Series]:
        """The summing matrix and levels of a version (:func:`~sopforecast.planning.lines.summing`)."""
        return summing(self.bottom(version), version.hierarchy)

    def publish(
        self, ref: int | str | None = None, plan: str | None = None, by: str | None = None
    ) -> PlanVersion:
        """Freeze the latest version of a cycle (or the version ``ref``): it never changes again."""
        version = self.version(ref, plan)
        if version.status == "published":
            raise SopforecastError(
                f"{version.label} is published already; published versions never change. "
                "Apply overrides to make a new draft, then publish that."
            )
        with self.engine.begin() as conn:
            done = conn.execute(
                update(plan_versions)
                .where(and_(plan_versions.c.id == version.id, plan_versions.c.status == "draft"))
                .values(status="published", published_at=_now(), published_by=by or user())
            ).rowcount
        if not done:
            raise SopforecastError(f"{version.label} was published by someone else meanwhile.")
        return self.version(version.id)

    def delete_draft(self, version: PlanVersion) -> None:
        """Remove a draft (a run that failed after drafting); published versions stay."""
        if version.status != "draft":
            raise SopforecastError(f"{version.label} is published; published versions are kept.")
        with self.engine.begin() as conn:
            for table in (overrides, plan_lines, plan_series):
                conn.execute(delete(table).where(table.c.version_id == version.id))
            conn.execute(delete(plan_versions).where(plan_versions.c.id == version.id))

    # ------------------------------------------------------------------ actuals
    def load_actuals(self, plan: str, frame: pd.DataFrame, *, source: str | None = None) -> dict[str, int]:
        """Keep ``frame`` (bottom ``unique_id, ds, y``, and any driver columns) as actuals of
        ``plan``; a restated month becomes a new revision (:func:`.actuals.load`)."""
        return actuals.load(self.engine, plan, frame, source)

    def actuals(self, plan: str, *, drivers: bool = False) -> pd.DataFrame:
        """The latest revision of every stored month of ``plan``: ``unique_id, ds, y, revision``
        (with ``drivers``, the driver columns loaded with them)."""
        return actuals.latest(self.engine, plan, drivers=drivers)

    def history(self, version: PlanVersion) -> pd.DataFrame:
        """The stored actuals of ``version``'s plan in its planning buckets, bottom series
        only: ``unique_id, ds, y``."""
        from ..planning.buckets import to_buckets

        actual = self.actuals(version.plan)[["unique_id", "ds", "y"]]
        if actual.empty:
            return actual
        freq = (version.data_config or {}).get("freq", "MS")
        return to_buckets(actual, ["y"], freq, version.bucket)

    def actual_revisions(self, plan: str) -> pd.DataFrame:
        """Every stored actual of ``plan``, restated months with all their revisions."""
        return actuals.revisions(self.engine, plan)

    # --------------------------------------------------------------- monitoring
    def record_monitor(self, result, *, versions: int) -> int:
        """Keep a monitoring run (:class:`~sopforecast.monitoring.monitor.MonitorResult`):
        its accuracy per level, cycle, series and segment, and its exceptions."""
        return monitoring.record(
            self.engine,
            plan=result.plan,
            cycle=result.cycle,
            created_by=user(),
            versions=versions,
            actuals_to=pd.Timestamp(result.cycle),
            report=str(result.report) if result.report else None,
            kpis=result.kpis,
            levels=result.levels,
            trend=result.trend,
            series=result.series,
            segments=result.segments,
            exceptions=result.exceptions,
        )

    def link_monitor(self, monitor_run_id: int, mlflow_run_id: str) -> None:
        """Name the MLflow run a monitoring run was logged to."""
        monitoring.link(self.engine, monitor_run_id, mlflow_run_id)

    def monitor_runs(self, plan: str | None = None) -> pd.DataFrame:
        """Monitoring runs, newest first."""
        return monitoring.runs(self.engine, plan)

    def monitor_kpis(self, run_id: int) -> pd.DataFrame:
        """The KPI tiles of a monitoring run's report."""
        return monitoring.kpis(self.engine, run_id)

    def monitor_exceptions(self, run_id: int) -> pd.DataFrame:
        """The exceptions a monitoring run found, most money at stake first."""
        return monitoring.exceptions(self.engine, run_id)

    def monitor_metrics(self, run_id: int, scope: str | None = None) -> pd.DataFrame:
        """A monitoring run's metrics (scope: level, series or segment)."""
        return monitoring.metrics(self.engine, run_id, scope)

    # ---------------------------------------------------------------- overrides
    def overrides(self, version: PlanVersion | None = None, plan: str | None = None) -> pd.DataFrame:
        """Overrides (newest first) of a version, or of every version of ``plan``."""
        query = select(overrides, plan_versions.c.plan, plan_versions.c.cycle).join(
            plan_versions, plan_versions.c.id == overrides.c.version_id
        )
        if version is not None:
            query = query.where(overrides.c.version_id == version.id)
        if plan:
            query = query.where(plan_versions.c.plan == plan)
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(query.order_by(overrides.c.id.desc())).mappings().all())
        if frame.empty:
            return pd.DataFrame(columns=[c.name for c in overrides.c] + ["plan", "cycle"])
        frame["ds"] = pd.to_datetime(frame["ds"])
        return frame

    def apply(
        self,
        checked: pd.DataFrame,
        *,
        version: PlanVersion,
        basis: str = "statistical",
        history: pd.DataFrame | None = None,
        source: str | None = None,
    ):
        """Apply validated overrides (:func:`~sopforecast.planning.overrides.validate_overrides`)
        to ``version``; a published version gets a new draft that carries them.

        Returns ``(version, consensus)``: the version written and the
        :class:`~sopforecast.planning.consensus.Consensus` (conflicts, what each did).
        """
        new = checked.assign(basis=basis)
        if source is not None or "source" not in new:
            new["source"] = source
        return self._replay(version, self._active(version), new, history)

    def revert(self, override_id: int, *, by: str | None = None, history: pd.DataFrame | None = None):
        """Undo an override: the plan is replayed from the statistical forecast without it.

        Returns ``(version, consensus)`` as :meth:`apply`.
        """
        with self.engine.connect() as conn:
            row = conn.execute(select(overrides).where(overrides.c.id == int(override_id))).first()
        if row is None:
            raise PlanNotFound(
                f"no override with id {override_id} in {self.where}; see 'sopforecast override list'."
            )
        if row.reverted_at is not None:
            raise SopforecastError(
                f"override {override_id} was reverted already ({row.reverted_at:%Y-%m-%d %H:%M})."
            )
        version = self.version(int(row.version_id))
        active = self._active(version)
        return self._replay(version, active, None, history, reverted=(int(override_id), by or user()))

    def _active(self, version: PlanVersion) -> pd.DataFrame:
        frame = self.overrides(version)
        frame = frame[frame["reverted_at"].isna()] if len(frame) else frame
        return frame.sort_values("id").reset_index(drop=True)

    def _replay(self, version, active, new, history, reverted=None):
        """Write ``active`` (+ ``new``) overrides and the plan they make, in one transaction.

        The plan is replayed from the statistical forecast, so it depends only on the
        overrides in force, in the order they were made.
        """
        from ..planning.consensus import apply_overrides

        lines = self.lines(version)
        S, _ = self.structure(version)
        keep = (active["id"] != reverted[0]).to_numpy() if reverted else np.ones(len(active), dtype=bool)
        bases = pd.concat(
            [active.get("basis", pd.Series(dtype=object)), new.get("basis") if new is not None else None]
        )
        if history is None and (bases == "history").any():  # read before the write lock is taken
            history = self.history(version)
        with self.engine.begin() as conn:
            target = version
            # read under the write lock: a draft published meanwhile must not change any more
            status = conn.execute(
                select(plan_versions.c.status).where(plan_versions.c.id == version.id).with_for_update()
            ).scalar_one()
            if status == "published":  # published never changes: a new draft carries it
                target = self._copy(conn, version, reverted[1] if reverted else user())
                ids = rows.insert_overrides(conn, target.id, active, copied=True)
                gone = [int(i) for i in ids[~keep]]
                active = active.assign(id=ids)
            else:
                gone = [reverted[0]] if reverted else []
            if gone:
                conn.execute(
                    update(overrides)
                    .where(overrides.c.id.in_(gone))
                    .values(reverted_at=_now(), reverted_by=reverted[1])
                )
            active = active[keep]
            if new is not None and len(new):
                new = new.assign(id=rows.insert_overrides(conn, target.id, new, copied=False))
                active = pd.concat([active, new], ignore_index=True) if len(active) else new
            active = active.reset_index(drop=True)
            result = apply_overrides(lines, active, S, history=history)
            conn.execute(delete(plan_lines).where(plan_lines.c.version_id == target.id))
            conn.execute(insert(plan_lines), rows.line_rows(target.id, result.lines))
        return self.version(target.id), result

    def _copy(self, conn, version: PlanVersion, by: str) -> PlanVersion:
        number = conn.execute(
            select(func.max(plan_versions.c.number)).where(
                and_(plan_versions.c.plan == version.plan, plan_versions.c.cycle == version.cycle)
            )
        ).scalar_one()
        row = conn.execute(select(plan_versions).where(plan_versions.c.id == version.id)).first()._asdict()
        row.update(
            id=None,
            number=int(number) + 1,
            status="draft",
            parent_id=version.id,
            created_at=_now(),
            created_by=by,
            published_at=None,
            published_by=None,
        )
        row.pop("id")
        new_id = conn.execute(insert(plan_versions).values(**row)).inserted_primary_key[0]
        series = (
            conn.execute(select(plan_series).where(plan_series.c.version_id == version.id)).mappings().all()
        )
        conn.execute(insert(plan_series), [{**dict(s), "version_id": new_id} for s in series])
        return PlanVersion(
            **{**version.__dict__, "id": int(new_id), "number": int(number) + 1, "status": "draft"}
        )
