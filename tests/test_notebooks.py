"""Every notebook runs top to bottom on small data, so none rots."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
NEEDS_PBS = {"03_demand_plan"}  # read the real PBS export: skipped (pbs_path) when it is absent


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch, request):
    if path.stem in NEEDS_PBS:
        pbs_csv = request.getfixturevalue("pbs_path")  # conftest: skips without the data
        # the kernel runs in notebooks/, so tell load_pbs where the export is
        monkeypatch.setenv("SOPFORECAST_SHARED_DATA", str(pbs_csv.parent.parent))
    monkeypatch.setenv("SOPFORECAST_NOTEBOOK_SERIES", "16")
    monkeypatch.setenv("SOPFORECAST_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("SOPFORECAST_HOME", str(tmp_path / "work"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    book = nbformat.read(path, as_version=4)
    NotebookClient(
        book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    errors = [
        o
        for cell in book.cells
        if cell.cell_type == "code"
        for o in cell.get("outputs", [])
        if o.output_type == "error"
    ]
    assert not errors
