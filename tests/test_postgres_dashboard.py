"""Plain `postgresql://` URLs as a cluster user types them, on a real PostgreSQL server (started
here): Optuna and MLflow open them with the shipped driver (psycopg 3, SQLAlchemy 2.1's choice),
and the README's optuna-dashboard command serves the study over HTTP."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from .postgres import create_database, free_port, running_postgres

README = Path(__file__).resolve().parents[1] / "README.md"
DASHBOARD = "optuna-dashboard postgresql://"


@pytest.fixture(scope="module")
def postgres_url():
    with running_postgres() as url:
        yield url


def test_optuna_and_mlflow_open_a_plain_postgresql_url(postgres_url, tmp_path):
    assert postgres_url.startswith("postgresql://")  # no +driver: SQLAlchemy picks psycopg 3
    study = optuna.create_study(study_name="plain", storage=postgres_url)
    study.optimize(lambda trial: trial.suggest_float("x", -1, 1) ** 2, n_trials=3)
    assert len(optuna.load_study(study_name="plain", storage=postgres_url).trials) == 3

    client = MlflowClient(tracking_uri=create_database(postgres_url, "mlflow_plain"))
    experiment = client.create_experiment("e", artifact_location=str(tmp_path / "art"))
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "loss", 0.5)
    assert client.get_run(run.info.run_id).data.metrics == {"loss": 0.5}


def readme_dashboard_command(url: str, port: int) -> list[str]:
    """The README's `optuna-dashboard postgresql://...` line, with this server's URL and port."""
    lines = [line for line in README.read_text().splitlines() if line.startswith(DASHBOARD)]
    assert len(lines) == 1, f"README.md should show one `{DASHBOARD}...` command"
    command = shlex.split(lines[0], comments=True)
    command[1] = url
    command[command.index("--port") + 1] = str(port)
    return [str(Path(sys.executable).parent / command[0]), *command[1:]]


@pytest.mark.e2e
def test_the_readme_dashboard_command_serves_a_postgresql_study(postgres_url, tmp_path):
    pytest.importorskip("optuna_dashboard", reason="pip install optuna-dashboard (in [dev])")
    url = create_database(postgres_url, "optuna_dashboard")
    optuna.create_study(study_name="shown", storage=url).optimize(
        lambda trial: trial.suggest_int("n", 0, 9), n_trials=2
    )
    port = free_port()
    log = tmp_path / "dashboard.log"
    with log.open("wb") as out:
        server = subprocess.Popen(readme_dashboard_command(url, port), stdout=out, stderr=out)
        try:
            studies = wait_for_json(f"http://127.0.0.1:{port}/api/studies", server, log)
        finally:
            server.terminate()
            server.wait(timeout=30)
    summaries = studies["study_summaries"]
    assert [(s["study_name"], s["directions"]) for s in summaries] == [("shown", ["minimize"])]


def wait_for_json(url: str, server: subprocess.Popen, log: Path, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"optuna-dashboard exited ({server.returncode}): {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as page:
                return json.load(page)
        except OSError:
            time.sleep(0.5)  # not listening yet
    pytest.fail(f"optuna-dashboard did not answer {url} within {timeout:.0f} s")
