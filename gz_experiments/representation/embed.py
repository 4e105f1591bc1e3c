"""Encoder features (representations) of any number of galaxies, streamed to parquet.

    report = embed_to_file(model, spec, "images/", "embeddings.parquet", batch_size=128)
    report = embed_to_file(model, spec, "catalog.csv", "emb.parquet", batch_size=128,
                           pca_components=16, work_dir="tmp")        # + report.reducer

A galaxy's features are the encoder's pooled output for the central crop (augment and encoder in
inference mode): exactly what MC-dropout prediction feeds its head (`prediction.sampling`), read
from the same inputs (`prediction.inputs`: folders, catalogs, shard splits). Columns: `id_str`,
then `feature_0 ... feature_{d-1}`, or `pca_0 ... pca_{k-1}` with PCA.

Memory stays flat in the number of galaxies: each batch is appended to the output as it comes.
With PCA, a first pass writes the raw features to a scratch file while an `IncrementalPCA` is
fitted chunk by chunk; a second pass reads them back in row groups, transforms and writes. The
fitted reducer is saved with joblib beside the scratch file, for the run to log and for queries.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from gz_experiments.catalog import ID_COL
from gz_experiments.errors import UserError
from gz_experiments.model_spec import ModelSpec
from gz_experiments.prediction.inputs import FileInputs, ShardInputs
from gz_experiments.prediction.tables import SKIPPED_COLUMNS
from gz_experiments.prediction.writer import TableWriter

FEATURE_PREFIX, PCA_PREFIX = "feature_", "pca_"
RAW_FILE, REDUCER_FILE = "features_raw.parquet", "pca.joblib"
MIN_PCA_CHUNK = 512  # rows per IncrementalPCA.partial_fit call (at least n_components)


@dataclass
class EmbedReport:
    """What a streamed embedding produced: rows written, skipped galaxies (id, source, reason)."""

    output: Path
    columns: list[str] = field(default_factory=list)
    n_embedded: int = 0
    n_features: int = 0  # the encoder's width (before PCA)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    reducer: Path | None = None  # the fitted PCA (joblib), when asked for
    explained_variance: float | None = None  # share of the feature variance the PCA keeps

    @property
    def n_inputs(self) -> int:
        return self.n_embedded + len(self.skipped)

    def skipped_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.skipped, columns=SKIPPED_COLUMNS)


def feature_function(model):
    """images (B, S, S, C) in [0, 1] -> pooled encoder features (B, d), compiled once per model."""
    from gz_experiments.prediction.sampling import compiled

    return compiled(model, 1, "head")["features"]


def iter_features(
    model, inputs: FileInputs | ShardInputs, batch_size: int, report: EmbedReport
) -> Iterator[tuple[list[str], np.ndarray]]:
    """(ids, features) per batch; unreadable galaxies go to `report.skipped` as they are met."""
    features = feature_function(model)
    for batch in inputs.batches(batch_size):
        report.skipped.extend(batch.skipped)
        if not batch.ids:
            continue
        values = np.asarray(features(batch.images), dtype=np.float32)
        report.n_embedded += len(batch.ids)
        report.n_features = values.shape[1]
        yield batch.ids, values


def frame(ids: list[str], values: np.ndarray, prefix: str) -> pd.DataFrame:
    table = pd.DataFrame(values, columns=[f"{prefix}{i}" for i in range(values.shape[1])])
    table.insert(0, ID_COL, ids)
    return table


def embed_to_file(
    model,
    spec: ModelSpec,
    inputs: FileInputs | ShardInputs,
    output: str | Path,
    *,
    batch_size: int,
    pca_components: int = 0,
    work_dir: str | Path | None = None,
) -> EmbedReport:
    """Stream `inputs`' features to the parquet file `output` (PCA needs a `work_dir`)."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    report = EmbedReport(output)
    chunks = iter_features(model, inputs, batch_size, report)
    if not pca_components:
        _write(chunks, output, FEATURE_PREFIX, report)
        return report
    raw = Path(work_dir) / RAW_FILE
    pca = _write_and_fit(chunks, raw, pca_components, report)
    report.reducer = Path(work_dir) / REDUCER_FILE
    import joblib

    joblib.dump(pca, report.reducer)
    report.explained_variance = float(pca.explained_variance_ratio_.sum())
    _transform(raw, output, pca, report)
    raw.unlink()
    return report


def _write(chunks, output: Path, prefix: str, report: EmbedReport) -> None:
    chunks = iter(chunks)
    first = next(chunks, None)  # the first batch tells the width
    if first is None:
        raise UserError("no galaxy could be read: nothing to embed (see the skipped list)")
    report.columns = [ID_COL, *(f"{prefix}{i}" for i in range(first[1].shape[1]))]
    with TableWriter(output, "parquet", report.columns) as write:
        for ids, values in itertools.chain([first], chunks):
            write(frame(ids, values, prefix))


def _write_and_fit(chunks, raw: Path, n_components: int, report: EmbedReport):
    from sklearn.decomposition import IncrementalPCA

    pca = IncrementalPCA(n_components=n_components)
    pending: list[np.ndarray] = []

    def fitted(final: bool) -> None:
        rows = sum(len(p) for p in pending)
        if rows >= max(n_components, MIN_PCA_CHUNK) or (final and rows >= n_components):
            pca.partial_fit(np.concatenate(pending))
            pending.clear()

    def tee():
        for ids, values in chunks:
            if n_components > values.shape[1]:
                raise UserError(
                    f"pca_components={n_components} but the encoder has {values.shape[1]} "
                    f"features: use pca_components <= {values.shape[1]}"
                )
            pending.append(values)
            fitted(final=False)
            yield ids, values

    _write(tee(), raw, FEATURE_PREFIX, report)
    fitted(final=True)
    if not hasattr(pca, "components_"):
        raise UserError(
            f"pca_components={n_components} needs at least {n_components} galaxies; "
            f"{report.n_embedded} were embedded: lower pca_components or use 0"
        )
    # A last chunk smaller than n_components cannot be fitted on its own: those few galaxies
    # are transformed but do not shape the components.
    return pca


def _transform(raw: Path, output: Path, pca, report: EmbedReport) -> None:
    import pyarrow.parquet as pq

    def chunks():
        for batch in pq.ParquetFile(raw).iter_batches(batch_size=4096):
            table = batch.to_pandas()
            values = table.drop(columns=[ID_COL]).to_numpy(np.float32)
            yield table[ID_COL].tolist(), pca.transform(values).astype(np.float32)

    _write(chunks(), output, PCA_PREFIX, report)


def read_features(path: str | Path) -> tuple[list[str], np.ndarray]:
    """(ids, features (N, d) float32) of an embeddings table: for neighbours and anomalies,
    which need all of them at once (N x d x 4 bytes)."""
    table = pd.read_parquet(path)
    return table[ID_COL].astype(str).tolist(), table.drop(columns=[ID_COL]).to_numpy(np.float32)
