"""The served galaxy model: an MLflow pyfunc that turns a table of images into vote fractions.

Input: a DataFrame with `image` (base64 or bytes of a PNG/JPEG) and/or `file_loc` (a path,
read only inside folders the operator allowed, see `serving.limits`), and optional `id_str`.
Output: one row per input row: `id_str`, `{label}_fraction`, `{label}_fraction_std`,
`{question}_p_asked` (see prediction.tables). Bad requests are HTTP 400 with one line saying what
is wrong; nothing in a response carries a stack trace or says whether a server file exists.
"""

from __future__ import annotations

import base64
import logging
import threading
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE

from gz_experiments.config import ConfigError, Sampling
from gz_experiments.errors import UserError
from gz_experiments.prediction.inputs import FileAccess
from gz_experiments.serving.limits import REQUEST_DEFAULTS, ServeLimits, in_scoring_server

logger = logging.getLogger(__name__)


class GalaxyZooModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: DataFrame of images -> DataFrame of vote fractions, spreads and p_asked."""

    def load_context(self, context) -> None:
        from gz_experiments.tracking.models import load_files

        self.keras_model, self.spec = load_files(
            context.artifacts["keras_model"], context.artifacts["model_spec"]
        )
        self.limits = ServeLimits.from_env()
        self.turns = threading.BoundedSemaphore(self.limits.concurrency)

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None):
        try:
            sampling = request_sampling(params)
            serving = in_scoring_server()
            if serving:  # in-process callers (batch jobs, Spark) stream any number of rows
                check_request(model_input, self.limits)
            access = self.limits.file_access(serving=serving)
            with self.turns:
                return predict_frame(self.keras_model, self.spec, model_input, sampling, access)
        except UserError as exc:
            # A client error code: the scoring server answers 400 with this one line.
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from None
        except Exception:
            # A bug: the trace goes to the server's log, never into a response.
            logger.exception("prediction failed")
            raise MlflowException(
                "internal error while predicting; the server log has the details",
                error_code=INTERNAL_ERROR,
            ) from None


def request_sampling(params: dict[str, Any] | None) -> Sampling:
    """The request's sampling parameters, validated (unknown names and bad values are 400s)."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(REQUEST_DEFAULTS))
    if unknown:
        raise UserError(f"unknown parameter(s) {unknown}; accepted: {list(REQUEST_DEFAULTS)}")
    values = {**REQUEST_DEFAULTS, **{k: v for k, v in params.items() if v is not None}}
    try:
        return Sampling(**{k: _plain(v) for k, v in values.items()})
    except ConfigError as exc:
        raise UserError(str(exc).replace("invalid sampling config: ", "")) from None


def _plain(value: Any) -> Any:
    """NumPy scalars from MLflow's param parsing -> Python values (Sampling checks types)."""
    return value.item() if hasattr(value, "item") else value


def check_request(frame: pd.DataFrame, limits: ServeLimits) -> None:
    """Rows and encoded bytes within the operator's limits, before any image is decoded."""
    if not isinstance(frame, pd.DataFrame):
        raise UserError("expected a table of images (dataframe_split / dataframe_records)")
    if len(frame) > limits.max_rows:
        raise UserError(
            f"{len(frame)} rows is more than the {limits.max_rows} a request may hold "
            f"(GZ_SERVE_MAX_ROWS); split the request"
        )
    if "image" not in frame.columns:
        return
    total = 0
    for row, value in enumerate(frame["image"].tolist()):
        size = _encoded_bytes(value)
        if size > limits.max_image_bytes:
            raise UserError(
                f"row {row}: the image is {size:,} bytes, more than {limits.max_image_bytes:,} "
                f"(GZ_SERVE_MAX_IMAGE_BYTES)"
            )
        total += size
    if total > limits.max_request_bytes:
        raise UserError(
            f"the request's images are {total:,} bytes, more than {limits.max_request_bytes:,} "
            f"(GZ_SERVE_MAX_REQUEST_BYTES); split the request"
        )


def _encoded_bytes(value: Any) -> int:
    if isinstance(value, bytes | bytearray):
        return len(value)
    if isinstance(value, str):
        return len(value) * 3 // 4  # base64: 4 characters carry 3 bytes
    return 0


def predict_frame(
    model, spec, frame: pd.DataFrame, sampling: Sampling, access: FileAccess | None = None
) -> pd.DataFrame:
    """One output row per input row (fractions, spreads, p_asked); any unreadable image is a
    UserError naming its row, so rows never silently go missing."""
    from gz_experiments.prediction.run import PredictionReport, iter_predictions

    report = PredictionReport(output=None)
    chunks = list(
        iter_predictions(
            model, spec, frame, report, sampling, keep_concentrations=False, access=access
        )
    )
    if report.skipped:
        details = "; ".join(f"{where}: {reason}" for _, where, reason in report.skipped[:5])
        raise UserError(f"{len(report.skipped)} image(s) could not be read ({details})")
    return pd.concat(chunks, ignore_index=True)


def encode_image_file(path) -> str:
    """Base64 text of an image file: what a client puts in the `image` column."""
    with open(path, "rb") as handle:
        return base64.b64encode(handle.read()).decode()
