"""The logged galaxy model as a Spark UDF (`mlflow.pyfunc.spark_udf`), for `prediction.spark`.

    model, spec = spark_model("models:/gz-decals@champion", work_dir / "model")
    predict = model.udf(spark, result_type, {"n_samples": 5, "on_unreadable": "skip"})
    df.select(predict(F.struct("file_loc", "id_str")))

The driver fetches the model once, into a new folder in `copy_dir`, and hands spark_udf that
copy: in local mode the Python workers read it in place, on a cluster Spark ships it with the
job. Executors so need neither the tracking server nor its credentials, only the driver's Python
environment with gz_experiments installed (env_manager="local": nothing is installed on the fly).

A model logged before `on_unreadable` existed runs the same code (its pyfunc class comes from the
installed package) under an older signature, whose unknown params MLflow would silently drop:
its copy is given the current signature, and `SparkModel.upgraded` says so.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.models import Model

from gz_experiments.errors import UserError
from gz_experiments.model_files import SPEC_FILE
from gz_experiments.model_spec import ModelSpec
from gz_experiments.prediction.parameters import BATCH_DEFAULTS
from gz_experiments.tracking.models import _download, signature_for

MLMODEL = "MLmodel"
QUIET_LOGGERS = ("mlflow.pyfunc", "mlflow.models.flavor_backend_registry")


@dataclass(frozen=True)
class SparkModel:
    """A local copy of a logged galaxy model, turned into Spark UDFs on demand."""

    path: Path  # the copy spark_udf loads
    model_uri: str  # what the user named
    upgraded: bool  # the copy was given the current signature

    def udf(self, spark, result_type, params: dict[str, Any], env: dict[str, str] | None = None):
        """A pandas UDF: struct(file_loc | image, id_str) -> struct `result_type`. `env` is set
        on the Python workers while they load and run the model (e.g. GZ_SERVE_MAX_PIXELS)."""
        # env_manager="local" is the point (the class comes from the installed package), so
        # MLflow's warning that it does not recreate the training environment is noise here.
        loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
        levels = [logger.level for logger in loggers]
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            return mlflow.pyfunc.spark_udf(
                spark,
                str(self.path),
                result_type=result_type,
                env_manager="local",
                params=params,
                extra_env=env,
            )
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def spark_model(model_uri: str, copy_dir: str | Path) -> tuple[SparkModel, ModelSpec]:
    """Fetch `model_uri` (runs:/, models:/ or a local model folder) into `copy_dir`, make sure
    its signature takes the batch params, and read its ModelSpec (no TensorFlow needed)."""
    if not model_uri or not str(model_uri).strip():
        raise UserError("no model given: pass model_uri=models:/<name>@<alias> or runs:/<id>/model")
    local = Path(model_uri)
    if local.suffix == ".keras":
        raise UserError(
            f"{model_uri}: engine=spark runs an MLflow model (runs:/<id>/model, "
            f"models:/<name>@<alias> or a model folder), not a bare .keras file"
        )
    Path(copy_dir).mkdir(parents=True, exist_ok=True)
    copy_dir = Path(tempfile.mkdtemp(prefix="model-", dir=copy_dir))  # never an earlier copy
    if local.is_dir():
        folder = Path(shutil.copytree(local, copy_dir / local.name))
    else:
        folder = _download(model_uri, copy_dir)
    spec_path = folder / "artifacts" / SPEC_FILE
    if not (folder / MLMODEL).is_file() or not spec_path.is_file():
        raise UserError(
            f"model {model_uri!r} has no {SPEC_FILE}: it was not logged by "
            f"gz_experiments.tracking.models.log_galaxy_model"
        )
    spec = ModelSpec.from_dict(json.loads(spec_path.read_text()))
    return SparkModel(folder, model_uri, _give_current_signature(folder, spec)), spec


def _give_current_signature(folder: Path, spec: ModelSpec) -> bool:
    model = Model.load(folder / MLMODEL)
    params = model.signature.params if model.signature is not None else None
    names = {p.name for p in params.params} if params is not None else set()
    if set(BATCH_DEFAULTS) <= names:
        return False
    model.signature = signature_for(spec)
    model.save(folder / MLMODEL)
    return True
