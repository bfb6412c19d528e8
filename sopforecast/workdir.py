"""The work directory: where demo data, the MLflow store, the plan database and reports live.

Resolved from ``--workdir``, else ``$SOPFORECAST_HOME``, else ``./sopforecast-work``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .errors import SopforecastError

__all__ = ["Workdir", "NoStoreError", "resolve_workdir", "ENV_VAR", "DEFAULT_NAME"]

ENV_VAR = "SOPFORECAST_HOME"
DEFAULT_NAME = "sopforecast-work"

_CREATE_HINT = (
    "run 'sopforecast demo' or 'sopforecast run PIPELINE.yaml' to create one, or choose a "
    f"work directory that holds one (the workdir setting, else ${ENV_VAR})"
)


class NoStoreError(SopforecastError):
    """A command that only reads was pointed at a work directory without a store."""


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

    @property
    def mlflow_db(self) -> Path:
        """The SQLite database of the local MLflow store (tracking and registry)."""
        return self.mlflow / "mlflow.db"

    def has_store(self) -> bool:
        """Whether a run (or the demo) has written a store here: the database or MLflow's."""
        return self.database.is_file() or self.mlflow_db.is_file()

    def require(self, *files: Path) -> None:
        """Refuse, creating nothing, to read a store that is not there.

        For the commands that only read (``runs``, ``compare``, ``plan show``): opening a
        missing SQLite file would create an empty store and show an empty table.

        Parameters
        ----------
        *files : Path
            The store files the command reads (``self.database``, ``self.mlflow_db``);
            default any store at all.

        Raises
        ------
        NoStoreError
            When the work directory holds no store, or not one of ``files``.
        """
        if not self.has_store():
            raise NoStoreError(f"no sopforecast store at {self.root}; {_CREATE_HINT}.", setting="workdir")
        for path in files:
            if not path.is_file():
                name = path.relative_to(self.root) if path.is_relative_to(self.root) else path
                raise NoStoreError(
                    f"no {name} in the sopforecast store at {self.root} "
                    f"(nothing has written it yet); {_CREATE_HINT}.",
                    setting="workdir",
                )

    def ensure(self, *folders: Path) -> None:
        """Create the given folders (and the root)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for folder in folders:
            folder.mkdir(parents=True, exist_ok=True)


def resolve_workdir(workdir: str | Path | None = None) -> Workdir:
    """Pick the work directory: the argument, else ``$SOPFORECAST_HOME``, else ./sopforecast-work."""
    chosen = workdir or os.environ.get(ENV_VAR) or DEFAULT_NAME
    return Workdir(Path(chosen).expanduser().resolve())
