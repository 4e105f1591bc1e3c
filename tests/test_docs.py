"""The documentation site: it builds strictly, its generated parts come from the configs, and the
tutorial notebooks run top to bottom and are committed without outputs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from gz_experiments import docs_pages
from gz_experiments.config import STEP_CONFIGS
from gz_experiments.mlproject import render

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NOTEBOOKS = sorted((DOCS / "tutorials").glob("*.ipynb"))
SHARED_DATA = ROOT.parent / "shared" / "data"


def test_every_step_has_a_page_with_generated_parameters():
    for step in STEP_CONFIGS:
        page = (DOCS / "steps" / f"{step}.md").read_text(encoding="utf-8")
        assert f"<!-- gz:parameters {step} -->" in page, step
        assert f"<!-- gz:docstring {step} -->" in page, step


def test_parameter_tables_list_exactly_the_mlproject_parameters():
    mlproject = render()
    for step in STEP_CONFIGS:
        block = mlproject.split(f"\n  {step}:\n", 1)[1].split("    command:", 1)[0]
        in_mlproject = re.findall(r"^      (\w+): \{", block, flags=re.M)
        in_docs = re.findall(r"^\| `(\w+)` \| `--", docs_pages.parameters_table(step), flags=re.M)
        assert in_docs == in_mlproject, step


def test_parameter_table_shows_each_presets_value_and_the_range():
    row = next(
        line
        for line in docs_pages.parameters_table("simulate").splitlines()
        if line.startswith("| `n_galaxies`")
    )
    # debug 64, cpu 5000, real falls back to cpu, paper 20000 (SimulateConfig.PRESETS)
    assert "| `64` | `5000` | `5000` | `20000` |" in row
    assert ">= " in row  # describe() adds the allowed range


def test_markers_expand_and_unknown_steps_fail():
    page = docs_pages.expand("<!-- gz:docstring train -->\n\n<!-- gz:parameters train -->")
    assert "Train a Galaxy Zoo model" in page
    assert "| `epochs` |" in page
    with pytest.raises(KeyError, match="unknown step 'nope'"):
        docs_pages.expand("<!-- gz:parameters nope -->")


@pytest.mark.slow
def test_site_builds_strictly(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    train_page = (tmp_path / "steps" / "train.html").read_text(encoding="utf-8")
    assert "crop_fraction" in train_page and "gz:parameters" not in train_page
    assert (tmp_path / "tutorials" / "03_predict_and_acquire.html").is_file()
    assert (tmp_path / "reference" / "config.html").is_file()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    book = nbformat.read(path, as_version=4)
    code = [cell for cell in book.cells if cell.cell_type == "code"]
    assert code, path
    assert all(not cell.outputs and cell.execution_count is None for cell in code), (
        f"{path.name} has outputs: jupyter nbconvert --clear-output --inplace {path}"
    )


def test_there_are_three_tutorials():
    assert [p.stem for p in NOTEBOOKS] == [
        "01_release_to_model",
        "02_finetune_and_embed",
        "03_predict_and_acquire",
    ]


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"the tutorials need {SHARED_DATA}")
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    # The kernel inherits this environment: its scratch folder under tmp_path, this checkout first.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    before = _untracked_files()
    book = nbformat.read(path, as_version=4)
    _execute(book, path.parent)  # raises on the first cell that fails
    outputs = [o for cell in book.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not any("SKIPPED" in o.get("text", "") for o in outputs)
    shown = [kind for o in outputs for kind in o.get("data", {})]
    assert "text/html" in shown  # its tables (and, in 02 and 03, its pictures: see below)
    if "01_" not in path.name:
        assert "image/png" in shown
    assert _untracked_files() == before  # nothing left in the checkout
    assert not list(tmp_path.glob("gz-tutorial-*"))  # its last cell removed its scratch folder


@pytest.mark.slow
def test_notebook_says_it_skips_without_the_real_images(tmp_path, monkeypatch):
    # Run from a folder with no shared/data above it: one clear message, no error, nothing run.
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    book = nbformat.read(NOTEBOOKS[0], as_version=4)
    _execute(book, tmp_path)
    outputs = [o for cell in book.cells if cell.cell_type == "code" for o in cell.outputs]
    assert [o.output_type for o in outputs] == ["stream"]
    assert outputs[0].text.startswith("SKIPPED: this tutorial needs the real galaxy images")


def _execute(book, folder: Path) -> None:
    from nbclient import NotebookClient

    client = NotebookClient(
        book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
    )
    client.execute()


def _untracked_files() -> set[str]:
    done = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(done.stdout.splitlines())
