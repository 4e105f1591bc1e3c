"""Configs of the steps that use a trained model: evaluate, predict, register; and `Sampling`,
the one set of MC-dropout settings that predict, evaluate and the served model share."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, fields
from typing import Any, ClassVar

from gz_experiments.config.base import Settings, StepConfig, setting
from gz_experiments.images.raster import DEFAULT_MAX_PIXELS

MC_MODES = ("head", "full")
MAX_SAMPLES = 100  # MC passes: beyond ~30 the fractions no longer change; 100 is generous
MAX_BATCH = 4096
OUTPUT_FORMATS = ("", "parquet", "csv")
ENGINES = ("local", "spark")


@dataclass(frozen=True)
class SamplingFields:
    """MC-dropout sampling: how many passes, which randomness, batch size and seed."""

    n_samples: int = setting(5, "MC-dropout passes per galaxy", ge=1, le=MAX_SAMPLES)
    mc_mode: str = setting(
        "head", "head: encoder once, dropout head n times; full: n whole passes", choices=MC_MODES
    )
    batch_size: int = setting(128, "galaxies per forward pass", ge=1, le=MAX_BATCH)
    seed: int = setting(0, "seed of the dropout masks: same seed, same samples", ge=0)

    @property
    def sampling(self) -> Sampling:
        return Sampling(**{f.name: getattr(self, f.name) for f in fields(SamplingFields)})


@dataclass(frozen=True)
class ModelInputFields:
    """What the steps that apply a model to images read (predict, acquire, embed): the model,
    the images, and the one pixel limit shard / predict / serve share."""

    model_uri: str = setting("", "runs:/<id>/model, models:/<name>@<alias>, or a local folder")
    input: str = setting("", "image folder, .csv/.parquet catalog with file_loc, or shard folder")
    split: str = setting("", "shard folder split; empty = predict if present, else test")
    max_image_pixels: int = setting(
        DEFAULT_MAX_PIXELS, "refuse larger images (decompression bombs)", ge=1
    )


@dataclass(frozen=True)
class Sampling(SamplingFields, Settings):
    """The sampling settings on their own (request parameters of the served model)."""

    STEP: ClassVar[str] = "sampling"


@dataclass(frozen=True)
class PredictConfig(ModelInputFields, SamplingFields, StepConfig):
    """MC-dropout predictions for a folder of images, a catalog or a shard folder."""

    STEP: ClassVar[str] = "predict"
    output: str = setting("", "table to write; empty = only the run's predictions artifact")
    output_format: str = setting(
        "", "parquet or csv; empty = by the output's suffix", choices=OUTPUT_FORMATS
    )
    engine: str = setting(
        "local", "local: this process; spark: a Spark job writing a parquet folder", choices=ENGINES
    )
    spark_master: str = setting("local[2]", "engine=spark: local[N], spark://host:port, yarn, ...")
    spark_conf: dict[str, str] = setting(
        help="engine=spark: Spark settings, e.g. spark.executor.memory=8g", default_factory=dict
    )
    # ~1 ms per galaxy at n_samples=5 on one core (a few % of an EfficientNetB0 pass on CPU).
    acquisition_columns: bool = setting(
        True, "add {question}_bald, {question}_predictive_entropy and acquisition_bald"
    )
    n_volunteers: int = setting(
        10, "acquisition scores are about the votes of the next N volunteers", ge=1, le=1000
    )

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "debug": {"batch_size": 16},
        "cpu": {"batch_size": 64},
        "paper": {},
    }

    def problems(self) -> Iterator[str]:
        if self.engine != "spark":
            return
        # "full" draws its test-time augmentation per call, so a galaxy's samples would depend
        # on the Arrow batch it lands in; "head" draws from (seed, id_str) alone.
        if self.mc_mode == "full":
            yield "engine=spark samples with mc_mode=head only (full depends on the batching)"
        if self.output_format == "csv" or self.output.lower().endswith(".csv"):
            yield "engine=spark writes a folder of parquet files: give output=<folder>"
        if not self.spark_master.strip():
            yield "engine=spark needs spark_master (local[2], spark://host:7077, yarn, ...)"


@dataclass(frozen=True)
class EvaluateConfig(SamplingFields, StepConfig):
    """The paper's protocol on a labelled shard split (see gz_experiments/evaluation)."""

    STEP: ClassVar[str] = "evaluate"
    model_uri: str = setting("", "runs:/<id>/model, models:/<name>@<alias>, or a local folder")
    shard_dir: str = setting("", "shard folder with manifest.json")
    split: str = setting("test", "labelled split to evaluate", choices=("train", "val", "test"))
    truth: str = setting("", "simulator truth table; empty = truth.parquet beside the catalog")

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "debug": {"batch_size": 16, "n_samples": 2},
        "cpu": {"batch_size": 64},
        "paper": {},
    }


@dataclass(frozen=True)
class RegisterConfig(StepConfig):
    """Register the best training run's model; move the alias only to a better one."""

    STEP: ClassVar[str] = "register"
    experiment: str = setting("", "experiment to search; empty = the current one")
    name: str = setting("gz-decals", "registered model name")
    run_id: str = setting("", "register this run's model instead of the best one")
    alias: str = setting("champion", "alias moved to the new version if it is better")
    force: bool = setting(False, "move the alias even if the new model is not better")
