"""Similar galaxies: the nearest neighbours of a galaxy in a model's representation.

    index = NeighbourIndex(ids, features)              # features: (N, d) from an embed table
    found = index.of_id("J000411.19+020924.0", k=8)    # the galaxy itself is left out
    found = index.of_vector(query_features, "my.png", k=8)

Euclidean distance in the (optionally PCA-reduced) feature space, exact search with
scikit-learn's `NearestNeighbors` (a tree in low dimensions, chunked brute force otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from gz_experiments.errors import UserError

SIMILAR_COLUMNS = ["query", "rank", "id_str", "distance"]


@dataclass(frozen=True)
class Neighbours:
    """The k galaxies nearest to one query, nearest first."""

    query: str  # the query's id_str, or the image path it was given as
    ids: list[str]
    distances: np.ndarray

    def frame(self) -> pd.DataFrame:
        n = len(self.ids)
        return pd.DataFrame(
            {"query": [self.query] * n, "rank": np.arange(1, n + 1), "id_str": self.ids,
             "distance": self.distances},
        )  # fmt: skip


class NeighbourIndex:
    """Exact nearest-neighbour search over one embeddings table."""

    def __init__(self, ids: list[str], features: np.ndarray):
        from sklearn.neighbors import NearestNeighbors

        if len(ids) < 2:
            raise UserError(f"{len(ids)} galaxy embedded: similar galaxies need at least 2")
        self.ids, self.features = list(ids), np.asarray(features, dtype=np.float32)
        self.row = {id_str: i for i, id_str in enumerate(self.ids)}
        self.search = NearestNeighbors().fit(self.features)

    def of_id(self, id_str: str, k: int) -> Neighbours:
        if id_str not in self.row:
            raise UserError(f"similar_to {id_str!r}: no embedded galaxy has this id_str")
        own = self.row[id_str]
        distances, rows = self._query(self.features[own], k + 1)
        keep = rows != own  # itself (or, with duplicates, one of its twins) is not a neighbour
        return self._found(id_str, distances[keep][:k], rows[keep][:k])

    def of_vector(self, vector: np.ndarray, query: str, k: int) -> Neighbours:
        distances, rows = self._query(vector, k)
        return self._found(query, distances, rows)

    def _query(self, vector: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k = min(k, len(self.ids))
        distances, rows = self.search.kneighbors(np.asarray(vector, np.float32)[None], k)
        return distances[0], rows[0]

    def _found(self, query: str, distances: np.ndarray, rows: np.ndarray) -> Neighbours:
        return Neighbours(query, [self.ids[r] for r in rows], distances.astype(np.float64))
