"""What a served model accepts: the operator's limits, read from the environment at load time.

A served model trusts no request. Behind `mlflow models serve` it reads no file on the server's
disk unless the operator allows folders (images come as base64 in the `image` column); loaded
in-process (`mlflow.pyfunc.load_model`, a Spark UDF) it reads the paths its caller gives, as the
predict step does. Every request is bounded:

| variable | default | meaning |
|---|---|---|
| GZ_SERVE_ALLOWED_DIRS | (none) | folders (os.pathsep-separated) whose images `file_loc` may name |
| GZ_SERVE_MAX_ROWS | 256 | galaxies per request |
| GZ_SERVE_MAX_IMAGE_BYTES | 16 MiB | encoded bytes of one image (an `image` cell, or a `file_loc` file) |
| GZ_SERVE_MAX_REQUEST_BYTES | 64 MiB | encoded image bytes of a whole request |
| GZ_SERVE_MAX_PIXELS | 16,777,216 | pixels of one image, checked from its header before decoding |
| GZ_SERVE_CONCURRENCY | 2 | requests decoded and predicted at once (others wait their turn) |

A request's work is bounded by the scoring server's timeout (MLflow's
MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT, 60 s by default): once the client has had its 504, the
request gives up its turn and stops after the batch it is on, rather than computing on unseen.

Request parameters (n_samples, mc_mode, batch_size, seed) are validated by `config.Sampling`
with the same ranges as the predict step (n_samples 1..100, batch_size 1..4096). Two more are for
batch jobs (a Spark UDF): `on_unreadable` ("raise": an unreadable image fails the request; "skip":
its row comes back with NaN numbers and the reason in `skipped_reason`, "" for predicted rows)
and `concentrations` (also return the per-pass `{label}_concentration_{i}`, as predict writes).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from gz_experiments.errors import UserError
from gz_experiments.images.raster import DEFAULT_MAX_PIXELS
from gz_experiments.prediction.inputs import FileAccess

ENV_PREFIX = "GZ_SERVE_"


# Set by MLflow's scoring server (`mlflow models serve`) once the model is loaded.
SERVING_FLAG = "_MLFLOW_IS_IN_SERVING_ENVIRONMENT"
# Set by `mlflow models serve` for its server process (the model to load): known before loading.
SERVER_MODEL_ENV = "__pyfunc_model_path__"
# The scoring server's request timeout (its 504), and MLflow's default for it.
TIMEOUT_ENV, DEFAULT_TIMEOUT = "MLFLOW_SCORING_SERVER_REQUEST_TIMEOUT", 60.0


def in_scoring_server() -> bool:
    return os.environ.get(SERVING_FLAG, "").lower() == "true"


def starting_scoring_server() -> bool:
    return SERVER_MODEL_ENV in os.environ


class RequestTimedOut(Exception):
    """The server has already answered 504: the request's work stops here."""


def request_deadline() -> float:
    """When the scoring server gives up on a request that starts now (time.monotonic)."""
    try:
        timeout = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
    except ValueError:
        timeout = DEFAULT_TIMEOUT
    return time.monotonic() + timeout


def check_deadline(deadline: float | None) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise RequestTimedOut(f"the request ran past {TIMEOUT_ENV}; its work was stopped")


def remaining(deadline: float | None) -> float | None:
    """Seconds left before `deadline` (None: no deadline), at least 0."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())


@dataclass(frozen=True)
class ServeLimits:
    allowed_dirs: tuple[Path, ...] | None = None  # None: not set by the operator
    max_rows: int = 256
    max_image_bytes: int = 16 * 2**20
    max_request_bytes: int = 64 * 2**20
    max_pixels: int = DEFAULT_MAX_PIXELS
    concurrency: int = 2

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> ServeLimits:
        env = os.environ if env is None else env
        values: dict = {}
        dirs = env.get(f"{ENV_PREFIX}ALLOWED_DIRS", "")
        if dirs.strip():
            values["allowed_dirs"] = tuple(
                Path(d).expanduser().resolve() for d in dirs.split(os.pathsep) if d.strip()
            )
        for name in (
            "max_rows",
            "max_image_bytes",
            "max_request_bytes",
            "max_pixels",
            "concurrency",
        ):
            key = f"{ENV_PREFIX}{name.upper()}"
            if env.get(key, "").strip():
                try:
                    values[name] = int(env[key])
                except ValueError:
                    raise UserError(f"{key}={env[key]!r} must be a whole number") from None
                if values[name] < 1:
                    raise UserError(f"{key}={env[key]!r} must be at least 1")
        return cls(**values)

    @property
    def max_body_bytes(self) -> int:
        """A request body's bytes: its images in base64 (4/3 larger) and 1 MiB for the rest."""
        return self.max_request_bytes * 4 // 3 + 2**20

    def file_access(self, serving: bool) -> FileAccess:
        """Served: only the allowed folders (none by default). In-process: the allowed folders
        if the operator set some, else any path, as batch prediction reads them."""
        roots = self.allowed_dirs
        if roots is None:
            roots = () if serving else None
        max_bytes = self.max_image_bytes if serving else None
        return FileAccess(roots=roots, max_pixels=self.max_pixels, max_bytes=max_bytes)
