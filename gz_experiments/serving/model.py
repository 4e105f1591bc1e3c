"""The served galaxy model: an MLflow pyfunc that turns a table of images into vote fractions.

Input: a DataFrame with `image` (base64 or bytes of a PNG/JPEG) and/or `file_loc` (a path,
read only inside folders the operator allowed, see `serving.limits`), and optional `id_str`.
Output: one row per input row: `id_str`, `{label}_fraction`, `{label}_fraction_std`,
`{question}_p_asked`, then the acquisition columns `{question}_bald`,
`{question}_predictive_entropy` and `acquisition_bald` for the next 10 volunteers (see
prediction.tables; models registered before these columns existed return them too: MLflow does
not enforce a signature's outputs). Bad requests are HTTP 400 with one line saying what
is wrong; nothing in a response carries a stack trace or says whether a server file exists.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import (
    INTERNAL_ERROR,
    INVALID_PARAMETER_VALUE,
    TEMPORARILY_UNAVAILABLE,
)

from gz_experiments.config import ConfigError, Sampling
from gz_experiments.errors import UserError
from gz_experiments.prediction.inputs import FileAccess
from gz_experiments.prediction.parameters import (
    BATCH_DEFAULTS,
    ON_UNREADABLE,
    REQUEST_DEFAULTS,
    SKIPPED_REASON,
)
from gz_experiments.serving.limits import (
    RequestTimedOut,
    ServeLimits,
    check_deadline,
    in_scoring_server,
    remaining,
    request_deadline,
    starting_scoring_server,
)

logger = logging.getLogger(__name__)
# The last model loaded in this process, by its files' contents. A Spark job in local mode
# loads the pyfunc again for every task, from a fresh copy per job: a hash (~50 ms for an
# EfficientNetB0) instead of seconds of Keras deserialisation and retracing each time.
_LOADED: dict[tuple, tuple] = {}


class GalaxyZooModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: DataFrame of images -> vote fractions, spreads, p_asked, acquisition."""

    def load_context(self, context) -> None:
        self.keras_model, self.spec = _load_once(
            context.artifacts["keras_model"], context.artifacts["model_spec"]
        )
        self.limits = ServeLimits.from_env()
        self.turns = threading.BoundedSemaphore(self.limits.concurrency)
        if starting_scoring_server():
            from gz_experiments.serving.guard import install

            install(self.limits.max_body_bytes, (*REQUEST_DEFAULTS, *BATCH_DEFAULTS))

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None):
        try:
            params = dict(params or {})
            batch = batch_options(params)
            sampling = request_sampling(params)
            serving = in_scoring_server()
            if serving:  # in-process callers (batch jobs, Spark) stream any number of rows
                check_request(model_input, self.limits)
            access = self.limits.file_access(serving=serving)
            deadline = request_deadline() if serving else None
            # A request whose client has had its 504 neither waits for a turn nor keeps one.
            if not self.turns.acquire(timeout=remaining(deadline)):
                raise RequestTimedOut("the request timed out waiting for its turn")
            try:
                return predict_frame(
                    self.keras_model, self.spec, model_input, sampling, access, **batch,
                    deadline=deadline,
                )  # fmt: skip
            finally:
                self.turns.release()
        except RequestTimedOut as exc:
            logger.warning("%s", exc)
            raise MlflowException(str(exc), error_code=TEMPORARILY_UNAVAILABLE) from None
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


def _load_once(keras_path: str, spec_path: str) -> tuple:
    from gz_experiments.model_files import load_files

    key = tuple(_digest(path) for path in (keras_path, spec_path))
    if key not in _LOADED:
        _LOADED.clear()
        _LOADED[key] = load_files(keras_path, spec_path)
    return _LOADED[key]


def _digest(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def request_sampling(params: dict[str, Any] | None) -> Sampling:
    """The request's sampling parameters, validated (unknown names and bad values are 400s)."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(REQUEST_DEFAULTS))
    if unknown:
        accepted = [*REQUEST_DEFAULTS, *BATCH_DEFAULTS]
        raise UserError(f"unknown parameter(s) {unknown}; accepted: {accepted}")
    values = {**REQUEST_DEFAULTS, **{k: v for k, v in params.items() if v is not None}}
    try:
        return Sampling(**{k: _plain(v) for k, v in values.items()})
    except ConfigError as exc:
        raise UserError(str(exc).replace("invalid sampling config: ", "")) from None


def _plain(value: Any) -> Any:
    """NumPy scalars from MLflow's param parsing -> Python values (Sampling checks types)."""
    return value.item() if hasattr(value, "item") else value


def batch_options(params: dict[str, Any]) -> dict[str, Any]:
    """Take `on_unreadable` and `concentrations` out of the request's params, validated.
    (Models logged before they existed have no such params: MLflow drops them, defaults apply.)"""
    values = {k: _plain(params.pop(k, None)) for k in BATCH_DEFAULTS}
    values = {k: BATCH_DEFAULTS[k] if v is None else v for k, v in values.items()}
    if values["on_unreadable"] not in ON_UNREADABLE:
        raise UserError(
            f"on_unreadable={values['on_unreadable']!r} is not one of {', '.join(ON_UNREADABLE)}"
        )
    if not isinstance(values["concentrations"], bool):
        raise UserError(f"concentrations={values['concentrations']!r} must be true or false")
    return values


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
    model, spec, frame: pd.DataFrame, sampling: Sampling, access: FileAccess | None = None, *,
    on_unreadable: str = "raise", concentrations: bool = False, deadline: float | None = None,
) -> pd.DataFrame:  # fmt: skip
    """One output row per input row (fractions, spreads, p_asked, acquisition columns; with
    `concentrations` the per-pass concentrations too), so rows never silently go missing: an
    unreadable image is a UserError naming its row, or with on_unreadable="skip" a row of NaN
    whose `skipped_reason` says why ("" for predicted rows). Past `deadline` (time.monotonic)
    the work stops after the current batch (RequestTimedOut)."""
    from gz_experiments.prediction.stream import PredictionReport, iter_predictions
    from gz_experiments.prediction.tables import output_columns
    from gz_experiments.votes.information import DEFAULT_N_VOLUNTEERS

    report = PredictionReport(output=None)
    chunks = []
    for chunk in iter_predictions(
        model, spec, frame, report, sampling, keep_concentrations=concentrations,
        access=access, n_volunteers=DEFAULT_N_VOLUNTEERS,
    ):  # fmt: skip
        chunks.append(chunk)
        check_deadline(deadline)
    if on_unreadable == "skip":
        n_samples = sampling.n_samples if concentrations else 0
        columns = output_columns(spec.schema, n_samples, acquisition=True)
        return _in_input_order(chunks, columns, report, frame)
    if report.skipped:
        details = "; ".join(f"{where}: {reason}" for _, where, reason in report.skipped[:5])
        raise UserError(f"{len(report.skipped)} image(s) could not be read ({details})")
    return pd.concat(chunks, ignore_index=True)


def _in_input_order(chunks: list[pd.DataFrame], columns, report, frame) -> pd.DataFrame:
    """The predicted rows and a NaN row per skipped one, placed by id_str (so ids must be
    unique: a Spark job's are), each with its `skipped_reason`."""
    n = len(frame)
    ids = frame["id_str"].astype(str).tolist() if "id_str" in frame else list(map(str, range(n)))
    if len(set(ids)) < n:
        raise UserError("on_unreadable=skip places rows by id_str: give every row its own id_str")
    if not chunks:  # nothing readable: the typed columns, no rows
        chunks = [pd.DataFrame({c: pd.Series(dtype=object if c == "id_str" else "float32")
                                for c in columns})]  # fmt: skip
    predicted = pd.concat(chunks, ignore_index=True).set_index("id_str")
    out = predicted.reindex(pd.Index(ids, name="id_str")).reset_index()
    reasons = {id_str: reason for id_str, _, reason in report.skipped}
    out[SKIPPED_REASON] = [reasons.get(id_str, "") for id_str in ids]
    return out
