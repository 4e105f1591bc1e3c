"""The code fingerprint that decides whether a finished step run can be reused."""

from __future__ import annotations

import pytest

from gz_experiments.config import SimulateConfig
from gz_experiments.tracking.code_version import TAG, code_version, package_root
from gz_experiments.tracking.runs import step_run


@pytest.fixture
def project(tmp_path):
    (tmp_path / "gz_experiments" / "trees").mkdir(parents=True)
    (tmp_path / "entry_points").mkdir()
    (tmp_path / "gz_experiments" / "train.py").write_text("EPOCHS = 3\n")
    (tmp_path / "gz_experiments" / "trees" / "gzd5.yaml").write_text("questions: []\n")
    (tmp_path / "entry_points" / "train.py").write_text("main()\n")
    (tmp_path / "MLproject").write_text("name: gz\n")
    (tmp_path / "README.md").write_text("docs\n")
    return tmp_path


def fingerprint(root):
    code_version.cache_clear()  # the real one is computed once per process
    return code_version(root)


def test_same_sources_same_version_and_docs_do_not_count(project):
    before = fingerprint(project)
    (project / "README.md").write_text("better docs\n")
    (project / "gz_experiments" / "__pycache__").mkdir()
    (project / "gz_experiments" / "__pycache__" / "train.cpython-311.pyc").write_bytes(b"\0")
    assert fingerprint(project) == before and len(before) == 16


@pytest.mark.parametrize(
    "change",
    [
        lambda p: (p / "gz_experiments" / "train.py").write_text("EPOCHS = 4\n"),
        lambda p: (p / "gz_experiments" / "trees" / "gzd5.yaml").write_text("questions: [a]\n"),
        lambda p: (p / "entry_points" / "tune.py").write_text("main()\n"),
        lambda p: (p / "MLproject").write_text("name: gz2\n"),
        lambda p: (p / "gz_experiments" / "train.py").rename(p / "gz_experiments" / "fit.py"),
    ],
    ids=["edited module", "edited tree", "new entry point", "MLproject", "renamed module"],
)
def test_any_source_change_is_a_new_version(project, change):
    before = fingerprint(project)
    change(project)
    assert fingerprint(project) != before


def test_every_step_run_records_the_version_of_the_code_it_ran(tracking):
    import mlflow

    with step_run(SimulateConfig.resolve("debug")) as run:
        run_id = run.info.run_id
    code_version.cache_clear()
    tags = mlflow.MlflowClient().get_run(run_id).data.tags
    assert tags[TAG] == code_version() == code_version(package_root())
