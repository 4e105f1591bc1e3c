"""Representations (gz_experiments/representation) and the embed entry point, on real DECaLS
images: features streamed to parquet (folder, catalog, shard split), PCA, similar galaxies by
id and by image, anomaly scores, and the counts that reconcile."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pandas as pd
import pytest

from gz_experiments.config import EmbedConfig, ShardConfig
from gz_experiments.errors import UserError
from gz_experiments.prediction.inputs import resolve_inputs
from gz_experiments.representation.anomaly import anomaly_scores, anomaly_table, knn_scores
from gz_experiments.representation.embed import embed_to_file, read_features
from gz_experiments.representation.run import run_embed, split_queries
from gz_experiments.shards.writer import run_shard

from .tiny_models import linked_folder, real_images, save_tiny_model, tiny_spec

N_IMAGES = 30
SPEC = tiny_spec(img_size=32, channels=3)


@pytest.fixture(scope="module")
def real_folder(tmp_path_factory):
    """A small folder of real DECaLS PNGs (links to ../shared/data, never copies)."""
    return linked_folder(tmp_path_factory.mktemp("galaxies"), real_images(N_IMAGES))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A local model: the .keras file with model_spec.json beside it (load_galaxy_model)."""
    folder = tmp_path_factory.mktemp("model")
    save_tiny_model(folder / "model.keras", SPEC)
    (folder / "model_spec.json").write_text(json.dumps(SPEC.to_dict()))
    return folder / "model.keras"


def encoder_features(model, images: np.ndarray) -> np.ndarray:
    augment, encoder = model.get_layer("augment"), model.get_layer("encoder")
    return encoder(augment(images, training=False), training=False).numpy()


def test_embed_similar_and_anomaly_on_a_folder_of_real_images(
    real_folder, model_file, tracking, tmp_path
):
    import mlflow
    from mlflow.tracking import MlflowClient

    from entry_points.embed import run

    ids = sorted(p.stem for p in real_folder.iterdir())
    query_image = str(real_folder / f"{ids[5]}.png")
    config = EmbedConfig.resolve(
        "debug", model_uri=str(model_file), input=str(real_folder), output=str(tmp_path / "e.parquet"),
        pca_components=4, similar_to=(ids[0], query_image), n_neighbours=5, anomaly="knn",
        anomaly_k=3, n_shown=6,
    )  # fmt: skip
    result = run(config)

    table = pd.read_parquet(tmp_path / "e.parquet")
    assert list(table.columns) == ["id_str", "pca_0", "pca_1", "pca_2", "pca_3"]
    assert table["id_str"].tolist() == ids and result.report.n_inputs == N_IMAGES

    run_id = mlflow.last_active_run().info.run_id
    client = MlflowClient()
    metrics = client.get_run(run_id).data.metrics
    assert (metrics["n_embedded"], metrics["n_skipped"], metrics["n_features"]) == (
        N_IMAGES,
        0,
        128,
    )
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"embeddings.parquet", "pca.joblib", "similar.csv", "anomaly.parquet"} <= artifacts
    pictures = {a.path for d in ("similar", "anomaly") for a in client.list_artifacts(run_id, d)}
    assert pictures == {f"similar/{ids[0]}.png", f"similar/image_{ids[5]}.png",
                        "anomaly/most_unusual.png"}  # fmt: skip

    # The logged reducer maps the encoder's features onto the table's columns.
    from gz_experiments.tracking.models import load_galaxy_model

    model, spec = load_galaxy_model(str(model_file))
    images = next(resolve_inputs(str(real_folder), spec).batches(N_IMAGES)).images
    pca = joblib.load(client.download_artifacts(run_id, "pca.joblib", str(tmp_path)))
    expected = pca.transform(encoder_features(model, images))
    np.testing.assert_allclose(table.filter(like="pca_").to_numpy(), expected, atol=1e-4)

    similar = pd.read_csv(client.download_artifacts(run_id, "similar.csv", str(tmp_path)))
    by_id = similar[similar["query"] == ids[0]]
    assert len(by_id) == 5 and ids[0] not in set(by_id["id_str"])
    distances = np.linalg.norm(expected - expected[0], axis=1)
    np.testing.assert_allclose(by_id["distance"], np.sort(distances)[1:6], rtol=1e-4, atol=1e-6)
    by_image = similar[similar["query"] == query_image]
    assert by_image["id_str"].iloc[0] == ids[5] and by_image["distance"].iloc[0] < 1e-4

    anomalies = pd.read_parquet(client.download_artifacts(run_id, "anomaly.parquet", str(tmp_path)))
    assert sorted(anomalies["id_str"]) == ids and anomalies["anomaly_rank"].tolist() == list(
        range(1, N_IMAGES + 1)
    )
    pairwise = np.linalg.norm(expected[:, None] - expected[None], axis=-1)
    third = np.sort(pairwise, axis=1)[:, 3]  # column 0 is the galaxy itself
    scores = dict(zip(anomalies["id_str"], anomalies["anomaly_score"], strict=True))
    np.testing.assert_allclose([scores[i] for i in ids], third, rtol=1e-4, atol=1e-6)
    assert result.most_unusual[0] == anomalies["id_str"].iloc[0]


def test_a_catalog_with_an_unreadable_image_reconciles(real_folder, model_file, tmp_path):
    from gz_experiments.tracking.models import load_galaxy_model

    model, spec = load_galaxy_model(str(model_file))
    broken = tmp_path / "broken.png"
    broken.write_text("not a png")
    files = sorted(real_folder.iterdir())[:9] + [broken]
    catalog = tmp_path / "catalog.csv"
    pd.DataFrame({"id_str": [f"g{i}" for i in range(10)], "file_loc": files}).to_csv(catalog)
    inputs = resolve_inputs(str(catalog), spec)
    report = embed_to_file(model, spec, inputs, tmp_path / "out.parquet", batch_size=4)
    ids, features = read_features(tmp_path / "out.parquet")
    assert ids == [f"g{i}" for i in range(9)] and [s[0] for s in report.skipped] == ["g9"]
    assert report.n_embedded + len(report.skipped) == 10 and features.shape == (9, 128)
    images = next(resolve_inputs(str(catalog), spec).batches(10)).images
    np.testing.assert_allclose(features, encoder_features(model, images), atol=1e-5)


def test_a_shard_split_is_embedded_and_its_galaxies_found(real_folder, model_file, tmp_path):
    from gz_experiments.tracking.models import load_galaxy_model

    model, spec = load_galaxy_model(str(model_file))
    files = sorted(real_folder.iterdir())
    catalog = tmp_path / "catalog.csv"
    pd.DataFrame({"id_str": [p.stem for p in files], "file_loc": files}).to_csv(catalog)
    run_shard(ShardConfig.resolve(
        "debug", unlabelled_catalog=str(catalog), shard_dir=str(tmp_path / "s"), img_size=32,
        greyscale=False, n_workers=1,
    ), progress=False).check()  # fmt: skip
    config = EmbedConfig.resolve(
        "debug", model_uri="unused", input=str(tmp_path / "s"), similar_to=(files[2].stem,),
        n_neighbours=3, anomaly="isolation_forest", n_shown=4,
    )  # fmt: skip
    result = run_embed(config, model, spec, tmp_path)
    assert result.report.n_embedded == N_IMAGES  # the "predict" split: every galaxy, in order
    assert len(result.similar[0].ids) == 3 and files[2].stem not in result.similar[0].ids
    assert set(result.figures) == {f"similar/{files[2].stem}.png", "anomaly/most_unusual.png"}


def test_queries_that_name_nothing_fail_before_any_work():
    with pytest.raises(UserError, match="neither an id_str of the 2 input galaxies nor an image"):
        split_queries(("J1", "nope"), {"J1", "J2"})
    assert split_queries(("J2",), {"J1", "J2"}) == (["J2"], [])


def test_anomaly_scores_rank_an_outlier_first():
    rng = np.random.default_rng(0)
    features = np.vstack([rng.normal(0, 1, (50, 4)), [[12.0, 12.0, 12.0, 12.0]]])
    for method in ("knn", "isolation_forest"):
        table = anomaly_table([f"g{i}" for i in range(51)], anomaly_scores(features, method, k=5))
        assert table["id_str"].iloc[0] == "g50", method
    again = anomaly_scores(features, "isolation_forest", seed=3)
    np.testing.assert_array_equal(again, anomaly_scores(features, "isolation_forest", seed=3))
    with pytest.raises(UserError, match="at least 2"):
        anomaly_scores(features[:1], "knn")


def test_faiss_and_scikit_learn_give_the_same_knn_scores():
    """The faster engine (faiss, the dev extra installs it) answers exactly as scikit-learn, twins
    included (a duplicate galaxy is at distance 0 from its twin, not from itself)."""
    pytest.importorskip("faiss", reason="faiss-cpu is the optional [faiss] extra")
    rng = np.random.default_rng(1)
    features = rng.normal(0, 1, (300, 8)).astype(np.float32)
    features[7] = features[3]  # twins
    for k in (1, 5, 299, 1000):  # 1000 is capped at N - 1
        fast, exact = knn_scores(features, k, "faiss"), knn_scores(features, k, "sklearn")
        np.testing.assert_allclose(fast, exact, rtol=1e-4, atol=1e-5)
    assert knn_scores(features, 1, "faiss")[3] == pytest.approx(0, abs=1e-6)
