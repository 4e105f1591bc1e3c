"""Where a study lives: an Optuna storage from a URL or a path (part of the Optuna side).

    ""                       -> sqlite:///optuna.db in the working dir (one machine)
    runs/a.db, sqlite:///... -> SQLite
    postgresql://user@host/db (any SQLAlchemy URL) -> shared by workers on several machines
                             (psycopg 3, the driver SQLAlchemy 2.1 picks: the [postgres] extra)
    study.log, journal:path  -> Optuna's journal file (a shared disk, no database server)

The storage is logged with its password masked.
"""

from __future__ import annotations

import random
import re
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
import sqlalchemy.exc

from gz_experiments.errors import UserError

DEFAULT_STORAGE = "sqlite:///optuna.db"  # relative: the working dir of `mlflow run .`


def resolve_storage(storage: str) -> str:
    """'' -> sqlite:///optuna.db; x.db / x.sqlite -> SQLite; x.log or journal:x -> journal file."""
    text = storage.strip()
    if not text:
        return DEFAULT_STORAGE
    if text.startswith("journal:") or "://" in text:
        return text
    suffix = Path(text).suffix
    if suffix == ".log":
        return f"journal:{text}"
    if suffix in (".db", ".sqlite", ".sqlite3"):
        return f"sqlite:///{text}"
    raise UserError(
        f"storage {text!r} is neither a URL nor a .db/.log path: use sqlite:///optuna.db, "
        f"postgresql://user@host/db, or journal:study.log"
    )


def mask_url(url: str) -> str:
    """The storage as it may be logged: any password in the URL replaced by ***."""
    return re.sub(r"^([a-z0-9+.-]+://[^/@:]*:)[^/]*@", r"\1***@", url, flags=re.IGNORECASE)


def open_storage(
    url: str, heartbeat_interval: int, on_stale: Callable
) -> optuna.storages.BaseStorage:
    """Journal file or SQLAlchemy storage; RDB storages fail trials whose worker died.

    A worker records a heartbeat every `heartbeat_interval` seconds while a trial runs; a RUNNING
    trial without one for 3 intervals is marked FAILED (and `on_stale` closes its MLflow run)
    when any worker starts its next trial, so a killed worker never leaves a trial hanging.
    """
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = optuna.storages.journal.JournalFileBackend(str(path))
        return optuna.storages.journal.JournalStorage(backend)
    shown = mask_url(url)
    engine_kwargs = {}
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine_kwargs = {"connect_args": {"timeout": 60}}  # workers on one file wait for the lock
    try:
        return _rdb_storage(url, engine_kwargs, heartbeat_interval, on_stale)
    except ModuleNotFoundError as exc:
        raise UserError(
            f"storage {shown} needs the {exc.name} driver: pip install -e '.[postgres]'"
        ) from exc
    except Exception as exc:  # SQLAlchemy: bad URL, server down, wrong credentials
        reason = str(exc).strip().splitlines()[0]
        raise UserError(f"cannot open the Optuna storage {shown}: {reason}") from exc


def _rdb_storage(url, engine_kwargs, heartbeat_interval, on_stale, attempts: int = 5):
    for attempt in range(attempts):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=3 * heartbeat_interval,
                    heartbeat_stale_trial_callback=on_stale,
                )
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            # Workers started together on an empty database race to create Optuna's tables;
            # the loser sees "duplicate key" / "already exists" and finds the tables next time.
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 + random.random())
