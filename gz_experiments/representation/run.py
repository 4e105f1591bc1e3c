"""The embed step as a function: features to parquet, then similar galaxies and anomaly scores.

    check_inputs(config)                                  # before any model is loaded
    result = run_embed(config, model, spec, work_dir)      # no MLflow

Every `similar_to` query is checked against the input's ids (or as an image file) before a
single image is embedded. Embedding streams (flat memory); neighbours and anomaly scores need the
whole feature matrix (N x d float32), read back from the written table. Images for the grids are
read again only for the few galaxies shown.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from gz_experiments.atomic import write_table
from gz_experiments.catalog import ID_COL
from gz_experiments.config.representation import EmbedConfig
from gz_experiments.errors import UserError
from gz_experiments.model_spec import ModelSpec
from gz_experiments.prediction.inputs import (
    FileAccess,
    FileInputs,
    ShardInputs,
    check_model_and_input,
    resolve_inputs,
)
from gz_experiments.representation.anomaly import anomaly_scores, anomaly_table
from gz_experiments.representation.embed import (
    EmbedReport,
    embed_to_file,
    iter_features,
    read_features,
)
from gz_experiments.representation.neighbours import (
    SIMILAR_COLUMNS,
    NeighbourIndex,
    Neighbours,
)
from gz_experiments.representation.plots import anomaly_grid, neighbour_grid

EMBEDDINGS_FILE, SKIPPED_FILE = "embeddings.parquet", "skipped.csv"
SIMILAR_FILE, ANOMALY_FILE = "similar.csv", "anomaly.parquet"


@dataclass
class EmbedResult:
    config: EmbedConfig
    spec: ModelSpec
    report: EmbedReport
    table: Path  # the embeddings (config.output, or one in the work folder)
    skipped_table: Path
    seconds: float  # embedding only
    similar: list[Neighbours] = field(default_factory=list)
    similar_table: Path | None = None
    anomaly_table: Path | None = None
    most_unusual: list[str] = field(default_factory=list)  # id_strs, the highest score first
    figures: dict[str, Figure] = field(default_factory=dict)  # artifact name -> figure

    @property
    def galaxies_per_second(self) -> float:
        return self.report.n_inputs / max(self.seconds, 1e-9)

    def summary(self) -> str:
        r = self.report
        width = len(r.columns) - 1
        kind = "PCA components" if r.reducer else "features"
        parts = [f"embedded {r.n_embedded} galaxies ({width} {kind}), skipped {len(r.skipped)}"]
        if self.config.output:
            parts.append(f"-> {self.config.output}")
        for found in self.similar:
            parts.append(f"; nearest to {found.query}: {', '.join(found.ids[:3])}")
        if self.most_unusual:
            parts.append(f"; most unusual: {', '.join(self.most_unusual[:3])}")
        return " ".join(parts)


def check_inputs(config: EmbedConfig) -> None:
    """Fail on a missing model or input before opening a run or loading TensorFlow."""
    check_model_and_input(config.model_uri, config.input, "embed")
    if config.output and Path(config.output).suffix.lower() not in (".parquet", ".pq"):
        raise UserError(f"output {config.output!r}: embeddings are written as .parquet")


def known_ids(inputs: FileInputs | ShardInputs) -> set[str]:
    if isinstance(inputs, ShardInputs):
        path = inputs.manifest.catalog_path(inputs.split)
        return set(pd.read_parquet(path, columns=[ID_COL])[ID_COL].astype(str))
    return {item.id_str for item in inputs.items}


def split_queries(queries: tuple[str, ...], ids: set[str]) -> tuple[list[str], list[str]]:
    """(id_str queries, image-file queries); anything else is a UserError, before any work."""
    by_id, by_image = [], []
    for query in queries:
        if query in ids:
            by_id.append(query)
        elif Path(query).is_file():
            by_image.append(query)
        else:
            raise UserError(
                f"similar_to {query!r} is neither an id_str of the {len(ids)} input galaxies nor "
                f"an image file"
            )
    return by_id, by_image


def run_embed(config: EmbedConfig, model, spec: ModelSpec, work_dir: str | Path) -> EmbedResult:
    """Embed `config.input` to `config.output` (or `<work_dir>/embeddings.parquet`), then the
    neighbours of `similar_to` and the anomaly scores, with their grids."""
    work_dir = Path(work_dir)
    access = FileAccess(max_pixels=config.max_image_pixels)
    inputs = resolve_inputs(config.input, spec, config.split, access)
    by_id, by_image = split_queries(config.similar_to, known_ids(inputs))
    output = Path(config.output) if config.output else work_dir / EMBEDDINGS_FILE
    start = time.perf_counter()
    report = embed_to_file(
        model, spec, inputs, output, batch_size=config.batch_size,
        pca_components=config.pca_components, work_dir=work_dir,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    skipped = work_dir / SKIPPED_FILE
    write_table(report.skipped_frame(), skipped)
    result = EmbedResult(config, spec, report, output, skipped, seconds)
    if by_id or by_image or config.anomaly != "none":
        ids, features = read_features(output)
        _similar(result, model, inputs, ids, features, by_id, by_image, access)
        _anomalies(result, inputs, ids, features)
    return result


def _similar(result, model, inputs, ids, features, by_id, by_image, access) -> None:
    if not (by_id or by_image):
        return
    config = result.config
    missing = [q for q in by_id if q not in set(ids)]
    if missing:
        raise UserError(f"similar_to {missing}: their images could not be read (see skipped.csv)")
    index = NeighbourIndex(ids, features)
    found = [index.of_id(q, config.n_neighbours) for q in by_id]
    query_images = {}
    for path in by_image:
        vector, query_images[path] = _embed_image(model, result, path, access)
        found.append(index.of_vector(vector, path, config.n_neighbours))
    shown = {i for f in found for i in f.ids} | set(by_id)
    images = fetch_images(inputs, shown, result.config.batch_size)
    for f in found:
        query_image = images.get(f.query, query_images.get(f.query))
        figure = neighbour_grid(f.query, query_image, f.ids, f.distances, images)
        name = artifact_name(f.query, image=f.query in query_images)
        while f"similar/{name}.png" in result.figures:  # the same galaxy asked twice
            name += "_"
        result.figures[f"similar/{name}.png"] = figure
    result.similar = found
    table = pd.concat([f.frame() for f in found], ignore_index=True)[SIMILAR_COLUMNS]
    result.similar_table = result.skipped_table.parent / SIMILAR_FILE
    write_table(table, result.similar_table)


def _embed_image(model, result: EmbedResult, path: str, access: FileAccess):
    """(features in the table's space, the image) of a query given as an image file."""
    inputs = resolve_inputs(path, result.spec, access=access)
    scratch = EmbedReport(Path(path))
    chunks = list(iter_features(model, inputs, 1, scratch))
    if not chunks:
        raise UserError(f"similar_to {path}: {scratch.skipped[0][2]}")
    vector = chunks[0][1][0]
    if result.report.reducer is not None:
        import joblib

        vector = joblib.load(result.report.reducer).transform(vector[None])[0]
    image = next(iter(inputs.batches(1))).images[0]
    return vector.astype(np.float32), image


def _anomalies(result: EmbedResult, inputs, ids: list[str], features: np.ndarray) -> None:
    config = result.config
    if config.anomaly == "none":
        return
    scores = anomaly_scores(features, config.anomaly, k=config.anomaly_k, seed=config.seed)
    table = anomaly_table(ids, scores)
    result.anomaly_table = result.skipped_table.parent / ANOMALY_FILE
    write_table(table, result.anomaly_table)
    result.most_unusual = table[ID_COL].head(max(config.n_shown, 3)).tolist()
    if config.n_shown:
        top = table.head(config.n_shown)
        images = fetch_images(inputs, set(top[ID_COL]), config.batch_size)
        figure = anomaly_grid(list(top[ID_COL]), top["anomaly_score"], images, config.anomaly)
        result.figures["anomaly/most_unusual.png"] = figure


def fetch_images(inputs: FileInputs | ShardInputs, wanted: set[str], batch_size: int) -> dict:
    """id_str -> image for the wanted galaxies (a folder or catalog decodes only those)."""
    if isinstance(inputs, FileInputs):
        items = [item for item in inputs.items if item.id_str in wanted]
        inputs = FileInputs(items, inputs.spec, inputs.access)
    found = {}
    for batch in inputs.batches(batch_size):
        for id_str, image in zip(batch.ids, batch.images if batch.ids else [], strict=True):
            if id_str in wanted:
                found[id_str] = image
        if len(found) == len(wanted):
            break
    return found


def artifact_name(query: str, image: bool = False) -> str:
    """A file name for a query: its id_str, or `image_` + its image file's name sans suffix."""
    if image:
        query = "image_" + Path(query).stem
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", query)
