"""The plan store: a repository of versioned demand plans, their overrides and the
actuals they are judged by.

One entry point (:class:`PlanStore`) that the planning service, the CLI, the pipeline's
plan step, the API and the notebooks all use. It moves rows in and out and computes
nothing: summing, bucketing and replaying overrides are the planning layer's
(:mod:`sopforecast.planning.service`), which reads a :class:`Snapshot`, computes with pure
functions and hands the result back to one write transaction here.

Every write is one transaction guarded by the version's row counter (``revision``): a
write computed from a stale read changes nothing and raises :class:`StaleVersion`, so the
service reads again and retries. Reads never take the write lock (SQLite in WAL mode, a
reader engine of its own).

Versions: each plan (by name, e.g. the pipeline's) has cycles (``2026-11``) and each cycle
numbered versions, named the way a planner reads them (``2026-11 v2``). A cycle has at
most one open draft per branch (the main line's branch is ``""``); a published version
never changes: a change to it continues the cycle's draft, or opens one that carries its
overrides.
"""

from __future__ import annotations

import getpass
import os
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import and_, delete, func, insert, literal, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from ..errors import SopforecastError, format_examples
from ..workdir import Workdir
from . import actuals, bulk, engine, monitoring, reads, rows, schema, supply
from .tables import actuals as actuals_table
from .tables import overrides, plan_lines, plan_series, plan_versions
from .versions import PlanNotFound, PlanVersion, Snapshot, StaleVersion, parse_version_name

__all__ = [
    "PlanStore",
    "PlanVersion",
    "Snapshot",
    "PlanNotFound",
    "StaleVersion",
    "STORE_ENV",
    "resolve_store_uri",
    "user",
    "parse_version_name",
]

STORE_ENV = "SOPFORECAST_STORE_URI"


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


def _lost_race(exc: IntegrityError) -> bool:
    """Whether an integrity error is another writer's number or draft taken first (retry),
    not bad rows (a bug or bad data: raised as it is)."""
    text_ = str(exc.orig)
    return any(
        name in text_
        for name in (
            "uq_plan_versions_number",
            "uq_plan_versions_open_draft",
            "plan_versions.plan, plan_versions.cycle",  # SQLite names the columns, not the index
        )
    )


def _claim(conn, version: PlanVersion, **values) -> None:
    """Bump a draft's row counter (and set ``values``) if it is still at the revision read.

    Raises
    ------
    StaleVersion
        Another write, a publish or a supersede came first.
    """
    done = conn.execute(
        update(plan_versions)
        .where(
            and_(
                plan_versions.c.id == version.id,
                plan_versions.c.revision == version.revision,
                plan_versions.c.status == "draft",
            )
        )
        .values(revision=plan_versions.c.revision + 1, **values)
    ).rowcount
    if not done:
        raise StaleVersion(f"{version.label} changed meanwhile")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class PlanStore:
    """Plans, overrides and actuals in a SQL database (SQLite file or PostgreSQL URL).

    Parameters
    ----------
    url : str
        SQLAlchemy URL of the store.
    create : bool, default True
        Create the schema in a new database. Planner commands open with ``create=False``:
        a store that is not there is a :class:`~.engine.StoreError` and nothing is created.
    timeout : float, optional
        Seconds a write waits for a busy store (default ``$SOPFORECAST_STORE_TIMEOUT``, else 30).

    Opening a new database creates the schema; an outdated one is refused until
    ``sopforecast db upgrade`` (:mod:`.schema`).
    """

    def __init__(self, url: str, *, create: bool = True, timeout: float | None = None):
        from ..data.io import redact_url

        self.url = url
        self.where = redact_url(url)
        engine.check_url(url, self.where, create=create)
        self.engine, self.reader = engine.make_engines(url, timeout=timeout)
        schema.ensure(self.engine, where=self.where, create=create, reader=self.reader)

    @classmethod
    def open(
        cls,
        workdir: Workdir,
        uri: str | None = None,
        configured: str | None = None,
        *,
        create: bool = True,
        timeout: float | None = None,
    ) -> PlanStore:
        return cls(resolve_store_uri(workdir, uri, configured), create=create, timeout=timeout)

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
        if self.reader is not self.engine:
            self.reader.dispose()

    def _writing(self):
        return engine.writing(self.engine, self.where)

    # ----------------------------------------------------------------- versions
    def insert_version(
        self,
        row: dict,
        lines: pd.DataFrame,
        levels: pd.Series,
        keys: pd.DataFrame,
        *,
        carried: pd.DataFrame | None = None,
        supersede: PlanVersion | None = None,
    ) -> tuple[PlanVersion, dict[int, int]]:
        """Store a new draft (its next number in its cycle) with its series and lines, in one
        transaction; ``carried`` overrides are copied onto it (their ids mapped to the new
        ones in the returned dict) and ``supersede`` (the cycle's open draft it replaces,
        at the revision read) is kept as ``superseded``.

        Raises
        ------
        StaleVersion
            Another writer took the number, opened a draft of the cycle, or changed
            ``supersede`` since it was read: read again and retry.
        """
        try:
            with self._writing() as conn:
                if supersede is not None:
                    _claim(conn, supersede, status="superseded")
                number = conn.execute(
                    select(func.coalesce(func.max(plan_versions.c.number), 0)).where(
                        and_(plan_versions.c.plan == row["plan"], plan_versions.c.cycle == row["cycle"])
                    )
                ).scalar_one()
                version_id = conn.execute(
                    insert(plan_versions).values(**row, number=int(number) + 1, revision=1)
                ).inserted_primary_key[0]
                bulk.insert_columns(conn, plan_series, rows.series_columns(version_id, levels, keys))
                ids = self._copy_overrides(conn, version_id, carried)
                bulk.insert_columns(conn, plan_lines, rows.line_columns(version_id, lines))
        except IntegrityError as exc:
            if not _lost_race(exc):
                raise
            raise StaleVersion(f"another writer changed cycle {row['cycle']} meanwhile") from exc
        return self.version(int(version_id)), ids

    def _copy_overrides(self, conn, version_id: int, carried: pd.DataFrame | None) -> dict[int, int]:
        if carried is None or carried.empty:
            return {}
        new_ids = rows.insert_overrides(conn, version_id, carried, copied=True)
        return dict(zip(carried["id"].astype(int).tolist(), new_ids.tolist(), strict=True))

    def version(self, ref: int | str | None = None, plan: str | None = None) -> PlanVersion:
        """A version by id, by name (``2026-01 v2``; a bare ``v2`` is of the latest cycle), by
        cycle (its current version) or, with ``ref=None``, the current version of the latest
        cycle.

        A cycle's current version is its open draft (main line), else its latest published
        version.
        """
        base = select(plan_versions)
        if plan:
            base = base.where(plan_versions.c.plan == plan)
        named = parse_version_name(ref) if isinstance(ref, str) and not ref.strip().isdigit() else None
        with self.reader.connect() as conn:

            def latest() -> str | None:  # only when no cycle is named: a lookup by id needs none
                return conn.execute(
                    select(func.max(plan_versions.c.cycle)).where(
                        plan_versions.c.plan == plan if plan else True
                    )
                ).scalar_one()

            if isinstance(ref, int) or (isinstance(ref, str) and ref.strip().isdigit()):
                row = conn.execute(base.where(plan_versions.c.id == int(ref))).first()
            elif named is not None:
                query = base.where(
                    and_(plan_versions.c.cycle == (named[0] or latest()), plan_versions.c.number == named[1])
                )
                row = conn.execute(query).first()
            else:
                cycle = str(ref) if ref else latest()
                row = reads.current_row(conn, base, cycle) if cycle is not None else None
        if row is None:
            known = self.versions(plan)
            names = [f"{r.cycle} v{r.number} (id {r.id})" for r in known.itertuples()]
            hint = (
                f"versions here: {format_examples(names)}"
                if len(known)
                else "no plan has been made yet; run a pipeline with plan: {enabled: true} (the demo does)"
            )
            what = f"plan version {ref!r}" if ref else "any plan version"
            raise PlanNotFound(f"no {what}{f' of plan {plan!r}' if plan else ''} in {self.where}; {hint}.")
        return PlanVersion.from_row(row)

    def current(self, plan: str, cycle: str, branch: str = "") -> PlanVersion | None:
        """The current version of ``plan``'s ``cycle`` (its open draft on ``branch``, else its
        latest published version); ``None`` for a cycle without versions."""
        base = select(plan_versions).where(plan_versions.c.plan == plan)
        with self.reader.connect() as conn:
            row = reads.current_row(conn, base, cycle, branch)
        if row is not None and branch and not (row.branch == branch and row.status == "draft"):
            # no open draft on the branch: the branch starts from the main line's current version
            with self.reader.connect() as conn:
                row = reads.current_row(conn, base, cycle, "")
        return PlanVersion.from_row(row) if row is not None else None

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
                plan_versions.c.branch,
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
        with self.reader.connect() as conn:
            found = conn.execute(query).mappings().all()
        frame = pd.DataFrame(found, columns=list(query.selected_columns.keys()))
        frame["name"] = [
            f"{c} v{n}" + (f" [{b}]" if b else "")
            for c, n, b in zip(frame["cycle"], frame["number"], frame["branch"], strict=True)
        ]
        return frame

    def lines(self, version: PlanVersion | int) -> pd.DataFrame:
        """The plan lines of a version (:mod:`sopforecast.planning.lines`), series in order."""
        vid = version.id if isinstance(version, PlanVersion) else int(version)
        with self.reader.connect() as conn:
            return reads.lines(conn, vid, self.where)

    def top_totals(self, version: PlanVersion | int) -> pd.DataFrame:
        """``ds, statistical, final``: the month totals of the version's top level, summed in
        the database (a run's summary, without reading every line)."""
        vid = version.id if isinstance(version, PlanVersion) else int(version)
        with self.reader.connect() as conn:
            return reads.top_totals(conn, vid)

    def published_lines(self, plan: str, through: pd.Timestamp | None = None) -> pd.DataFrame:
        """The lines of every published version of ``plan`` up to month ``through`` (all
        months when ``None``), stacked newest version first with ``version_id`` and ``cycle``
        (empty when there are none); the filter runs in the database."""
        with self.reader.connect() as conn:
            return reads.published(conn, plan, through)

    def has_published(self, plan: str) -> bool:
        """Whether ``plan`` has a published version."""
        with self.reader.connect() as conn:
            found = conn.execute(
                select(plan_versions.c.id)
                .where(and_(plan_versions.c.plan == plan, plan_versions.c.status == "published"))
                .limit(1)
            ).first()
        return found is not None

    def bottom(self, version: PlanVersion | int) -> pd.DataFrame:
        """The bottom series of a version with their key columns (``unique_id`` + keys)."""
        version = version if isinstance(version, PlanVersion) else self.version(int(version))
        with self.reader.connect() as conn:
            return reads.bottom(conn, version)

    def keys(self, version: PlanVersion | int) -> pd.DataFrame:
        """Key columns of every series of a version (index ``unique_id``; empty below its level)."""
        version = version if isinstance(version, PlanVersion) else self.version(int(version))
        with self.reader.connect() as conn:
            return reads.keys(conn, version)

    def snapshot(self, version: PlanVersion | int) -> Snapshot:
        """Read a version, its lines, bottom series and active overrides in one transaction
        (the row counter first, so a later write can tell whether anything moved)."""
        vid = version.id if isinstance(version, PlanVersion) else int(version)
        with self.reader.connect() as conn:
            row = conn.execute(select(plan_versions).where(plan_versions.c.id == vid)).first()
            if row is None:
                raise PlanNotFound(f"no plan version with id {vid} in {self.where}.")
            current = PlanVersion.from_row(row)
            lines = reads.lines(conn, vid, self.where)
            bottom = reads.bottom(conn, current)
            active = reads.overrides_of(conn, current, None)
        active = active[active["reverted_at"].isna()] if len(active) else active
        return Snapshot(current, lines, bottom, active.sort_values("id").reset_index(drop=True))

    def months(self, version: PlanVersion) -> tuple[pd.Timestamp, pd.Timestamp]:
        """The first and the last month (bucket start) a version plans."""
        with self.reader.connect() as conn:
            first, last = conn.execute(
                select(func.min(plan_lines.c.ds), func.max(plan_lines.c.ds)).where(
                    plan_lines.c.version_id == version.id
                )
            ).one()
        return pd.Timestamp(first), pd.Timestamp(last)

    def actuals_from(self, plan: str, first: pd.Timestamp) -> pd.Timestamp | None:
        """The latest stored actual of ``plan`` dated on or after ``first`` (``None``: none)."""
        with self.reader.connect() as conn:
            last = conn.execute(
                select(func.max(actuals_table.c.ds)).where(
                    and_(actuals_table.c.plan == plan, actuals_table.c.ds >= pd.Timestamp(first).date())
                )
            ).scalar_one()
        return pd.Timestamp(last) if last is not None else None

    def publish(
        self, ref: PlanVersion | int | str | None = None, plan: str | None = None, by: str | None = None
    ) -> PlanVersion:
        """Freeze a draft (``ref``: a version, its id or name, or a cycle: its current draft):
        it never changes again."""
        version = ref if isinstance(ref, PlanVersion) else self.version(ref, plan)
        if version.status != "draft":
            raise SopforecastError(
                f"{version.label} is {version.status} already; published versions never change. "
                "Apply overrides to continue the cycle's draft, then publish that."
            )
        with self._writing() as conn:
            done = conn.execute(
                update(plan_versions)
                .where(and_(plan_versions.c.id == version.id, plan_versions.c.status == "draft"))
                .values(
                    status="published",
                    published_at=_now(),
                    published_by=by or user(),
                    revision=plan_versions.c.revision + 1,
                )
            ).rowcount
        if not done:
            raise SopforecastError(f"{version.label} was published or replaced by someone else meanwhile.")
        return self.version(version.id)

    def delete_draft(self, version: PlanVersion) -> None:
        """Remove a draft (a run that failed after drafting) with its backtest, scenarios and
        balance reviews; published versions stay. The draft it superseded, if any, is the
        cycle's open draft again."""
        if version.status != "draft":
            raise SopforecastError(f"{version.label} is published; published versions are kept.")
        with self._writing() as conn:
            supply.drop_version(conn, version.id)  # its backtest, scenarios and balance reviews
            for table in (overrides, plan_lines, plan_series):
                conn.execute(delete(table).where(table.c.version_id == version.id))
            conn.execute(delete(plan_versions).where(plan_versions.c.id == version.id))
            if version.parent_id is not None:
                conn.execute(
                    update(plan_versions)
                    .where(plan_versions.c.id == version.parent_id)
                    .where(plan_versions.c.status == "superseded")
                    .values(status="draft", revision=plan_versions.c.revision + 1)
                )

    # ------------------------------------------------------------------ actuals
    def load_actuals(self, plan: str, frame: pd.DataFrame, *, source: str | None = None) -> dict[str, int]:
        """Keep ``frame`` (bottom ``unique_id, ds, y``, and any driver columns) as actuals of
        ``plan``; a restated month becomes a new revision (:func:`.actuals.load`)."""
        with self._writing() as conn:
            if conn.dialect.name == "postgresql":  # one load of a plan's actuals at a time
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:plan))"), {"plan": plan})
            return actuals.load(conn, plan, frame, source)

    def actuals(self, plan: str, *, drivers: bool = False) -> pd.DataFrame:
        """The latest revision of every stored month of ``plan``: ``unique_id, ds, y, revision``
        (with ``drivers``, the driver columns loaded with them)."""
        with self.reader.connect() as conn:
            return actuals.latest(conn, plan, drivers=drivers)

    def actual_revisions(self, plan: str) -> pd.DataFrame:
        """Every stored actual of ``plan``, restated months with all their revisions."""
        return actuals.revisions(self.reader, plan)

    # ------------------------------------------------------------------- supply
    def save_backtest(self, version: PlanVersion, frame: pd.DataFrame) -> int:
        """Keep the delivered forecast's backtest with ``version`` (``unique_id, cutoff, ds,
        y, forecast``): safety stock is computed from its errors."""
        with self._writing() as conn:
            return supply.save_backtest(conn, version.id, frame)

    def backtest(self, version: PlanVersion) -> pd.DataFrame:
        """The backtest the version's forecast was delivered with; a version made from another
        (an override's draft) has its parent's."""
        with self.reader.connect() as conn:
            vid: int | None = version.id
            while vid is not None:
                found = supply.backtest(conn, vid)
                if len(found):
                    return found
                vid = conn.execute(
                    select(plan_versions.c.parent_id).where(plan_versions.c.id == vid)
                ).scalar_one_or_none()
        return found

    def add_scenario(
        self,
        version: PlanVersion,
        name: str,
        *,
        kind: str,
        params: dict,
        description: str,
        lines: pd.DataFrame | None,
        seconds: float,
        by: str | None = None,
    ) -> int:
        """Store scenario ``name`` of ``version``'s plan with the bottom lines it changes.

        Raises
        ------
        SopforecastError
            A scenario of that name exists for the plan (nothing is written).
        """
        try:
            with self._writing() as conn:
                return supply.add_scenario(
                    conn,
                    plan=version.plan,
                    name=name,
                    version_id=version.id,
                    kind=kind,
                    params=params,
                    description=description,
                    created_by=by or user(),
                    seconds=seconds,
                    lines=lines,
                )
        except IntegrityError as exc:
            if self.scenarios(version.plan, name).empty:
                raise
            raise SopforecastError(
                f"plan {version.plan!r} already has a scenario named {name!r}; delete it first "
                "(scenario delete) or choose another name."
            ) from exc

    def scenarios(self, plan: str | None = None, name: str | None = None) -> pd.DataFrame:
        """Scenarios (``id, plan, name, version_id, kind, params, description, created_at,
        created_by, seconds``), oldest first."""
        with self.reader.connect() as conn:
            return supply.scenario_rows(conn, plan, name)

    def scenario(self, plan: str, name: str) -> dict:
        """One scenario's row; a clear error naming the plan's scenarios when it is not there."""
        found = self.scenarios(plan, name)
        if found.empty:
            names = self.scenarios(plan)["name"].tolist()
            listed = format_examples(names) if names else "none yet (scenario create)"
            raise PlanNotFound(f"plan {plan!r} has no scenario named {name!r}; its scenarios: {listed}.")
        return found.iloc[0].to_dict()

    def scenario_lines(self, scenario_id: int) -> pd.DataFrame:
        """The bottom lines a scenario changes or adds."""
        with self.reader.connect() as conn:
            return supply.changed_lines(conn, scenario_id)

    def delete_scenario(self, plan: str, name: str) -> None:
        """Remove a scenario, its lines and its balance reviews."""
        row = self.scenario(plan, name)
        with self._writing() as conn:
            supply.drop_scenario(conn, int(row["id"]))

    def record_balance(self, version: PlanVersion, result, **details) -> int:
        """Keep a balance review (:class:`~sopforecast.supply.balance.Balance`) of ``version``
        (or of a scenario: ``scenario_id``): figures, resources, month totals, decisions."""
        planned = result.plan.resources.rename(columns={"load": "planned_load"})[
            ["resource", "ds", "planned_load"]
        ]
        resources = result.utilisation.merge(planned, on=["resource", "ds"], how="left")
        with self._writing() as conn:
            return supply.record_balance(
                conn,
                plan=version.plan,
                version_id=version.id,
                scenario_id=details.get("scenario_id"),
                created_by=details.get("by") or user(),
                source=details.get("source"),
                solver=str(result.plan.summary.get("solver")),
                rule=result.rule,
                figures=result.figures,
                resources=resources,
                months=result.monthly(),
                decisions=result.decisions,
                mlflow_run_id=details.get("mlflow_run_id"),
            )

    def balances(
        self, plan: str | None = None, version: PlanVersion | None = None, run_id: int | None = None
    ) -> pd.DataFrame:
        """Balance reviews, newest first, with their ``figures`` (a dict each)."""
        with self.reader.connect() as conn:
            return supply.balance_rows(conn, plan, version.id if version else None, run_id)

    def balance_table(self, run_id: int, which: str) -> pd.DataFrame:
        """A balance review's ``resources``, ``months`` or ``decisions``."""
        with self.reader.connect() as conn:
            return supply.balance_table(conn, run_id, which)

    # --------------------------------------------------------------- monitoring
    def record_monitor(self, result, *, versions: int) -> int:
        """Keep a monitoring run (:class:`~sopforecast.monitoring.monitor.MonitorResult`):
        its accuracy per level, cycle, series and segment, and its exceptions."""
        with self._writing() as conn:
            return monitoring.record(
                conn,
                plan=result.plan,
                cycle=result.cycle,
                created_by=user(),
                versions=versions,
                actuals_to=pd.Timestamp(result.cycle),
                report=str(result.report) if result.report else None,
                kpis=result.kpis,
                currency=getattr(result, "currency", None),
                levels=result.levels,
                trend=result.trend,
                series=result.series,
                segments=result.segments,
                exceptions=result.exceptions,
            )

    def link_monitor(self, monitor_run_id: int, mlflow_run_id: str) -> None:
        """Name the MLflow run a monitoring run was logged to."""
        with self._writing() as conn:
            monitoring.link(conn, monitor_run_id, mlflow_run_id)

    def monitor_runs(self, plan: str | None = None) -> pd.DataFrame:
        """Monitoring runs, newest first."""
        return monitoring.runs(self.reader, plan)

    def monitor_kpis(self, run_id: int) -> pd.DataFrame:
        """The KPI tiles of a monitoring run's report."""
        return monitoring.kpis(self.reader, run_id)

    def monitor_exceptions(self, run_id: int) -> pd.DataFrame:
        """The exceptions a monitoring run found, most money at stake first."""
        return monitoring.exceptions(self.reader, run_id)

    def monitor_metrics(self, run_id: int, scope: str | None = None) -> pd.DataFrame:
        """A monitoring run's metrics (scope: level, series or segment)."""
        return monitoring.metrics(self.reader, run_id, scope)

    # ---------------------------------------------------------------- overrides
    def overrides(self, version: PlanVersion | None = None, plan: str | None = None) -> pd.DataFrame:
        """Overrides (newest first) of a version, or of every version of ``plan``."""
        with self.reader.connect() as conn:
            return reads.overrides_of(conn, version, plan)

    def override(self, override_id: int) -> dict:
        """One override's row, with the version it belongs to (``version``)."""
        with self.reader.connect() as conn:
            row = conn.execute(select(overrides).where(overrides.c.id == int(override_id))).first()
        if row is None:
            raise PlanNotFound(
                f"no override with id {override_id} in {self.where}; see 'sopforecast override list'."
            )
        return dict(row._mapping)

    def write_overrides(
        self,
        snap: Snapshot,
        lines: pd.DataFrame,
        *,
        new: pd.DataFrame | None = None,
        revert: tuple[int, str, str | None] | None = None,
        by: str,
        reopen: tuple[str, str] | None = None,
        branch: str = "",
        fork: bool = False,
    ) -> tuple[PlanVersion, dict[int, int]]:
        """Write the plan ``lines`` computed from ``snap`` with ``new`` overrides added and
        the override ``revert = (id, by, reason)`` reverted, in one transaction.

        A draft is changed in place when its row counter is still the one read; a published
        version (or any version, with ``fork``: a named ``branch`` opened from it) gets a new
        draft (``parent_id``) that carries its active overrides. ``new``
        rows carry provisional ids above the version's; the returned dict maps every
        provisional or carried id to the stored one. ``reopen = (by, reason)`` records why a
        closed cycle was changed.

        Raises
        ------
        StaleVersion
            The version moved since ``snap`` was read (another write, a publish, a draft
            opened meanwhile): nothing was written; read again and retry.
        """
        version = snap.version
        reopened = {}
        if reopen is not None:
            reopened = {"reopened_at": _now(), "reopened_by": reopen[0], "reopen_reason": reopen[1]}
        try:
            with self._writing() as conn:
                if version.status == "draft" and not fork:
                    _claim(conn, version, **reopened)
                    target, ids = version.id, {int(i): int(i) for i in snap.active["id"]}
                else:
                    seen = conn.execute(  # locked: its lines are copied below as read
                        select(plan_versions.c.revision)
                        .where(plan_versions.c.id == version.id)
                        .with_for_update()
                    ).scalar_one()
                    if seen != version.revision:
                        raise StaleVersion(f"{version.label} changed meanwhile")
                    target = self._new_draft(conn, version, by, branch, reopened)
                    ids = self._copy_overrides(conn, target, snap.active)
                if revert is not None:
                    conn.execute(
                        update(overrides)
                        .where(overrides.c.id == ids[int(revert[0])])
                        .values(reverted_at=_now(), reverted_by=revert[1], revert_reason=revert[2])
                    )
                if new is not None and len(new):
                    stored = rows.insert_overrides(conn, target, new, copied=False)
                    ids.update(zip(new["id"].astype(int).tolist(), stored.tolist(), strict=True))
                _write_lines(conn, target, version.id, snap.lines, lines)
        except IntegrityError as exc:
            if not _lost_race(exc):
                raise
            raise StaleVersion(f"another writer opened a draft of {version.cycle} meanwhile") from exc
        return self.version(target), ids

    def _new_draft(self, conn, version: PlanVersion, by: str, branch: str, reopened: dict) -> int:
        """A new draft of ``version``'s cycle that starts as a copy of it (row and series)."""
        number = conn.execute(
            select(func.max(plan_versions.c.number)).where(
                and_(plan_versions.c.plan == version.plan, plan_versions.c.cycle == version.cycle)
            )
        ).scalar_one()
        row = conn.execute(select(plan_versions).where(plan_versions.c.id == version.id)).first()._asdict()
        row.pop("id")
        row.update(
            number=int(number) + 1,
            status="draft",
            parent_id=version.id,
            created_at=_now(),
            created_by=by,
            published_at=None,
            published_by=None,
            revision=1,
            branch=branch,
        )
        row.update({"reopened_at": None, "reopened_by": None, "reopen_reason": None, **reopened})
        new_id = int(conn.execute(insert(plan_versions).values(**row)).inserted_primary_key[0])
        _copy_rows(conn, plan_series, version.id, new_id)
        return new_id


def _copy_rows(conn, table, source: int, target: int) -> None:
    """Copy a version's rows of ``table`` to version ``target`` inside the database."""
    others = [c for c in table.c if c.name != "version_id"]
    conn.execute(
        insert(table).from_select(
            ["version_id", *(c.name for c in others)],
            select(literal(int(target)), *others).where(table.c.version_id == int(source)),
        )
    )


def _write_lines(conn, target: int, source: int, read: pd.DataFrame, lines: pd.DataFrame) -> None:
    """Make version ``target``'s lines ``lines``: those of ``source`` as ``read`` (the lines
    the write was computed from; the row counter proved them current) with only the lines
    that differ rewritten. A new draft starts as a copy of ``source`` made in the database."""
    changed = rows.changed_lines(read, lines)
    if changed is None:  # not line for line the lines read: write them all
        conn.execute(delete(plan_lines).where(plan_lines.c.version_id == target))
        bulk.insert_columns(conn, plan_lines, rows.line_columns(target, lines))
        return
    if target != source:
        _copy_rows(conn, plan_lines, source, target)
    if len(changed):
        keys = {"unique_id": changed["unique_id"].astype(str).tolist(), "ds": bulk.dates(changed["ds"])}
        bulk.delete_keys(conn, plan_lines, {"version_id": int(target)}, keys)
        bulk.insert_columns(conn, plan_lines, rows.line_columns(target, changed))
