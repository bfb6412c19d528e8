"""The work directory: where demo data, the MLflow store, the plan database and reports live.

Resolved from ``--workdir``, else ``$SOPFORECAST_HOME``, else ``./sopforecast-work``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Workdir", "resolve_workdir", "ENV_VAR", "DEFAULT_NAME"]

ENV_VAR = "SOPFORECAST_HOME"
DEFAULT_NAME = "sopforecast-work"


@dataclass(frozen=True)
class Workdir:
    """Paths inside a work directory; folders are created on first use, not on lookup."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def forecasts(self) -> Path:
        return self.root / "forecasts"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def mlflow(self) -> Path:
        return self.root / "mlflow"

    @property
    def database(self) -> Path:
        return self.root / "sopforecast.db"

    def ensure(self, *folders: Path) -> None:
        """Create the given folders (and the root)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)


def resolve_workdir(workdir: str | Path | None = None) -> Workdir:
    """Pick the work directory: the argument, else ``$SOPFORECAST_HOME``, else ./sopforecast-work."""
    chosen = workdir or os.environ.get(ENV_VAR) or DEFAULT_NAME
    return Workdir(Path(chosen).expanduser().resolve())
