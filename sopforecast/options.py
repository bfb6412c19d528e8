"""Command-line options shared by the command groups."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["WorkdirOption"]

WorkdirOption = Annotated[
    Path | None,
    typer.Option(
        "--workdir",
        help="Work directory for data, MLflow store, database and reports "
        "[default: $SOPFORECAST_HOME or ./sopforecast-work].",
        show_default=False,
    ),
]
