"""Galaxy models as MLflow pyfunc models: log, load, and predict from a DataFrame.

A logged model is an `mlflow.pyfunc` model whose artifacts are the `.keras` file and the
`ModelSpec` as JSON (schema, stored image size, channels, crop, final size, dropout), so it carries
everything needed to turn raw images into vote fractions. Loading it needs only the installed
`gz_experiments` package (the PythonModel class and the Keras layers live there):

    info = log_galaxy_model("work/best.keras", spec, extra_metadata={"best_val_loss": 0.9})
    keras_model, spec = load_galaxy_model("models:/gz-decals@champion")
    mlflow.pyfunc.load_model("models:/gz-decals@champion").predict(
        pd.DataFrame({"file_loc": ["galaxy.png"]}), params={"n_samples": 5})
"""

from __future__ import annotations

import base64
import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from gz_experiments.errors import UserError
from gz_experiments.model_files import KERAS_FILE, SPEC_FILE, load_files
from gz_experiments.prediction.parameters import BATCH_DEFAULTS, SKIPPED_REASON
from gz_experiments.prediction.parameters import REQUEST_DEFAULTS as DEFAULT_PARAMS
from gz_experiments.prediction.tables import output_columns

if TYPE_CHECKING:
    import keras

    from gz_experiments.model_spec import ModelSpec

INPUT_COLUMNS = ("file_loc", "image", "id_str")
PYFUNC_CODE = "serving/pyfunc_entry.py"  # inside the gz_experiments package
# Pinned to what the model was logged with; `--env-manager local` ignores them, other env managers
# install them (the gz_experiments package itself must be installed there too: pip install .).
REQUIREMENTS = ("tensorflow", "keras", "mlflow", "pandas", "numpy", "scipy", "pillow", "pyarrow",
                "pyyaml", "astropy")  # fmt: skip


def signature_for(spec: ModelSpec) -> ModelSignature:
    inputs = Schema([ColSpec("string", name, required=False) for name in INPUT_COLUMNS])
    names = output_columns(spec.schema, n_samples=0, acquisition=True)  # serving.model
    outputs = Schema(
        [ColSpec("string" if n == "id_str" else "double", n, required=n != "id_str") for n in names]
        + [ColSpec("string", SKIPPED_REASON, required=False)]  # on_unreadable="skip" only
    )
    params = ParamSchema(
        [
            ParamSpec("n_samples", "long", DEFAULT_PARAMS["n_samples"]),
            ParamSpec("mc_mode", "string", DEFAULT_PARAMS["mc_mode"]),
            ParamSpec("batch_size", "long", DEFAULT_PARAMS["batch_size"]),
            ParamSpec("seed", "long", DEFAULT_PARAMS["seed"]),
            # batch jobs (serving.limits): Spark's UDF skips unreadable images, keeps samples
            ParamSpec("on_unreadable", "string", BATCH_DEFAULTS["on_unreadable"]),
            ParamSpec("concentrations", "boolean", BATCH_DEFAULTS["concentrations"]),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def input_example(spec: ModelSpec) -> pd.DataFrame:
    """One blank PNG as base64: stored as serving_input_example.json (the exact request body
    `mlflow models serve` takes), and MLflow checks at log time that the model answers it."""
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.zeros((spec.img_size, spec.img_size, 3), np.uint8)).save(buffer, "PNG")
    return pd.DataFrame({"image": [base64.b64encode(buffer.getvalue()).decode()], "id_str": ["0"]})


def pip_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pinned = []
    for package in REQUIREMENTS:
        try:
            pinned.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pinned.append(package)
    return pinned


def log_galaxy_model(
    keras_model_path: str | Path,
    spec: ModelSpec,
    *,
    name: str = "model",
    extra_metadata: dict[str, Any] | None = None,
):
    """Log the `.keras` file + spec as a pyfunc model on the active run; returns MLflow's ModelInfo.

    `extra_metadata` (e.g. best_val_loss, data manifest hash) goes into the MLmodel `metadata`
    beside the spec, readable with `mlflow.models.get_model_info(uri).metadata`.
    """
    keras_model_path = Path(keras_model_path)
    if not keras_model_path.is_file():
        raise UserError(f"{keras_model_path}: no such .keras file to log")
    with tempfile.TemporaryDirectory(prefix="gz-model-") as tmp:
        keras_copy = Path(tmp) / KERAS_FILE
        keras_copy.write_bytes(keras_model_path.read_bytes())
        spec_path = Path(tmp) / SPEC_FILE
        spec_path.write_text(json.dumps(spec.to_dict(), indent=2, sort_keys=True))
        metadata = {"gz_model_spec": spec.to_dict(), **(extra_metadata or {})}
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(Path(__file__).parents[1] / PYFUNC_CODE),
            artifacts={"keras_model": str(keras_copy), "model_spec": str(spec_path)},
            signature=signature_for(spec),
            input_example=input_example(spec),
            pip_requirements=pip_requirements(),
            metadata=metadata,
        )


def load_galaxy_model(model_uri: str) -> tuple[keras.Model, ModelSpec]:
    """(keras model, ModelSpec) from `runs:/<id>/model`, `runs:/<id>`, `models:/<name>@<alias>`,
    `models:/<name>/<version>`, a local MLflow model folder, or a `.keras` file with
    `model_spec.json` beside it."""
    if not model_uri or not str(model_uri).strip():
        raise UserError(
            "no model given: pass model_uri=runs:/<run_id>/model, models:/<name>@<alias>, "
            "models:/<name>/<version> or a local model folder"
        )
    local = Path(model_uri)
    if local.suffix == ".keras" and local.is_file():
        return load_files(local, _required(local.with_name(SPEC_FILE), model_uri))
    folder = local if local.is_dir() else _download(model_uri)
    artifacts = folder / "artifacts"
    keras_path = _required(artifacts / KERAS_FILE, model_uri)
    return load_files(keras_path, _required(artifacts / SPEC_FILE, model_uri))


def _download(model_uri: str, dst: Path | None = None) -> Path:
    if model_uri.startswith("runs:/") and model_uri.rstrip("/").count("/") == 1:
        model_uri = model_uri.rstrip("/") + "/model"
    if not model_uri.startswith(("runs:/", "models:/")) and "://" not in model_uri:
        raise UserError(
            f"model {model_uri!r}: no such local folder or file; use runs:/<run_id>/model, "
            f"models:/<name>@<alias>, models:/<name>/<version> or a local model folder"
        )
    try:
        dst_path = None if dst is None else str(dst)
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=dst_path))
    except (MlflowException, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"cannot load model {model_uri!r} from {mlflow.get_tracking_uri()}: {first_line}"
        ) from None


def _required(path: Path, model_uri: str) -> Path:
    if not path.is_file():
        raise UserError(
            f"model {model_uri!r} has no {path.name}: it was not logged by "
            f"gz_experiments.tracking.models.log_galaxy_model"
        )
    return path


def __getattr__(name: str):
    # Models logged by earlier versions stored code that imports GalaxyZooModel from here.
    if name == "GalaxyZooModel":
        from gz_experiments.serving.model import GalaxyZooModel

        return GalaxyZooModel
    raise AttributeError(name)
