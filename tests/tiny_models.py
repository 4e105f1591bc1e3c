"""Tiny untrained galaxy models and fake training runs, shared by the predict/registry tests."""

from __future__ import annotations

from pathlib import Path

from gz_experiments.model_spec import ModelSpec
from gz_experiments.models import build_model
from gz_experiments.schema import get_schema

REAL_IMAGES = "gzd5_real_128"


def real_images(n: int | None = None) -> list[Path]:
    """The first n real DECaLS PNGs of ../shared/data (the test is skipped when it is absent)."""
    from .conftest import shared_data

    return sorted((shared_data(REAL_IMAGES) / "images").glob("*.png"))[:n]


def linked_folder(folder: Path, images: list[Path]) -> Path:
    """`folder` holding links to `images` (real data is referred to, never copied)."""
    folder.mkdir(parents=True, exist_ok=True)
    for image in images:
        (folder / image.name).symlink_to(image)
    return folder


def tiny_spec(img_size: int = 32, channels: int = 1, dropout: float = 0.5) -> ModelSpec:
    return ModelSpec(
        architecture="small_cnn",
        img_size=img_size,
        channels=channels,
        crop_fraction=0.75,
        image_size=16,
        dropout=dropout,
        schema=get_schema("gzd5"),
    )


def save_tiny_model(path: Path, spec: ModelSpec, seed: int = 0) -> Path:
    build_model(spec, seed=seed).save(path)
    return path


def log_training_run(keras_path: Path, spec: ModelSpec, val_loss: float, *,
                     manifest_hash: str = "abc123", fail: bool = False) -> str:  # fmt: skip
    """A run that looks like the train step's: gz.* tags, best_val_loss, a logged model."""
    import mlflow

    from gz_experiments.tracking.models import log_galaxy_model

    with mlflow.start_run() as run:
        mlflow.set_tags(
            {"gz.step": "train", "gz.schema": "gzd5", "gz.data_manifest_sha256": manifest_hash}
        )
        mlflow.log_metric("best_val_loss", val_loss)
        log_galaxy_model(keras_path, spec, extra_metadata={"best_val_loss": val_loss})
        if fail:
            mlflow.end_run("FAILED")
    return run.info.run_id


def register_tiny_champion(folder: Path, name: str) -> str:
    """A tiny model logged as a training run, registered as `name` with the champion alias."""
    import mlflow
    from mlflow.tracking import MlflowClient

    run_id = log_training_run(save_tiny_model(folder / "m.keras", tiny_spec()), tiny_spec(), 1.0)
    version = mlflow.register_model(f"runs:/{run_id}/model", name)
    MlflowClient().set_registered_model_alias(name, "champion", version.version)
    return f"models:/{name}@champion"
