"""Every notebook runs top to bottom in the smoke setting (PIXYZ_ZOO_SMOKE=1: tiny data and epochs)."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_smoke_setting(path, tmp_path, monkeypatch):
    monkeypatch.setenv("PIXYZ_ZOO_SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = [
        o
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]
    assert not errors


def test_committed_notebooks_carry_outputs_of_a_full_run():
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        code = [c for c in notebook.cells if c.cell_type == "code"]
        assert all(c.get("execution_count") for c in code), f"{path.name} is not executed"
        text = "".join(o.get("text", "") for c in code for o in c.get("outputs", []))
        assert "n=256" not in text, f"{path.name} carries outputs of a smoke run"
        assert "setting: smoke" not in text, f"{path.name} carries outputs of a smoke run"
