"""Plan versions as values: what a version is, how planners name it, what a unit of work
reads of it, and the errors of looking one up or writing on a stale read."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd

from ..errors import SopforecastError

__all__ = ["PlanVersion", "Snapshot", "PlanNotFound", "StaleVersion", "parse_version_name"]

_NAME = re.compile(r"^\s*(?P<cycle>\S.*?)?\s*v(?P<number>\d+)\s*(\[[^\]]*\])?\s*$")


class PlanNotFound(SopforecastError):
    """No plan version matches what was asked for."""


class StaleVersion(SopforecastError):
    """A write was computed from a version that changed since it was read."""


def parse_version_name(text: str) -> tuple[str | None, int] | None:
    """``("2026-01", 2)`` from a version's name ``2026-01 v2`` (a branch's ``[what-if]`` after
    it is allowed); ``(None, 2)`` from a bare ``v2`` (of the latest cycle); ``None`` for
    anything else."""
    match = _NAME.match(str(text))
    return (match["cycle"] or None, int(match["number"])) if match else None


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
    revision: int = 0
    branch: str = ""
    reopened_at: datetime | None = None
    reopened_by: str | None = None
    reopen_reason: str | None = None

    @property
    def name(self) -> str:
        """How a planner names it: ``2026-01 v2`` (a named branch adds ``[what-if]``)."""
        return f"{self.cycle} v{self.number}" + (f" [{self.branch}]" if self.branch else "")

    @property
    def label(self) -> str:
        return f"{self.plan} {self.name} ({self.status})"

    @classmethod
    def from_row(cls, row) -> PlanVersion:
        """A version from its ``plan_versions`` row (JSON columns decoded)."""
        data = dict(row._mapping)
        data["hierarchy"] = json.loads(data["hierarchy"])
        data["data_config"] = json.loads(data["data_config"]) if data.get("data_config") else None
        data.pop("note", None)
        data["revision"] = int(data.get("revision") or 0)
        data["branch"] = data.get("branch") or ""
        return cls(**data)


@dataclass(frozen=True)
class Snapshot:
    """What a unit of work reads of a version, in one read transaction: the version (with
    its row counter), its lines, its bottom series with their keys, its active overrides."""

    version: PlanVersion
    lines: pd.DataFrame
    bottom: pd.DataFrame
    active: pd.DataFrame
