"""Config of the embed step: a model's encoder features for many galaxies, similar galaxies and
an anomaly score per galaxy (gz_experiments/representation)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from gz_experiments.config.base import StepConfig, setting
from gz_experiments.config.inference import ModelInputFields

ANOMALY_METHODS = ("knn", "isolation_forest", "none")
MAX_BATCH = 4096


@dataclass(frozen=True)
class EmbedConfig(ModelInputFields, StepConfig):
    """Encoder features (optionally PCA-reduced) of a folder, catalog or shard split, streamed to
    parquet; the nearest neighbours of chosen galaxies; a per-galaxy anomaly score."""

    STEP: ClassVar[str] = "embed"
    output: str = setting("", "parquet file to write; empty = only the run's embeddings artifact")
    batch_size: int = setting(128, "galaxies per forward pass", ge=1, le=MAX_BATCH)
    pca_components: int = setting(
        0, "reduce the features to this many PCA components; 0 = keep them all", ge=0, le=4096
    )
    similar_to: tuple[str, ...] = setting(
        (), "id_str(s) of the input, or image file(s), to find the nearest neighbours of"
    )
    n_neighbours: int = setting(
        8, "neighbours found (and drawn) per similar_to galaxy", ge=1, le=100
    )
    anomaly: str = setting(
        "knn",
        "knn: distance to the anomaly_k-th nearest neighbour; isolation_forest; none",
        choices=ANOMALY_METHODS,
    )
    anomaly_k: int = setting(10, "the neighbour whose distance is the knn anomaly score", ge=1)
    n_shown: int = setting(16, "most anomalous galaxies drawn in the logged grid", ge=0, le=100)
    seed: int = setting(0, "seed of the isolation forest", ge=0)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "debug": {"batch_size": 16},
        "cpu": {"batch_size": 64},
        "paper": {},
    }
