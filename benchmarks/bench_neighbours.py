"""Does faiss-cpu pay off for `embed`'s anomaly scores? Exact k-th-neighbour distances of every
galaxy, `representation.anomaly.knn_scores` with scikit-learn against faiss's exact index.

Exact command (from the repo root, venv active; ~8 min at the defaults on 2 cores):

    python -m benchmarks.bench_neighbours                       # 100,000 galaxies, 16 and 128 dims
    python -m benchmarks.bench_neighbours --n 20000 --dims 16   # ~10 s

faiss-cpu is optional (`pip install -e '.[faiss]'`; `knn_scores` uses it when installed);
without it only scikit-learn is timed, with a note. Features are a seeded mixture of 50 Gaussian
clusters (embeddings cluster by morphology; an exact search's cost does not depend on the values
beyond that). Both answers are compared, so the speed is for the same result. Nothing is logged.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from gz_experiments.representation.anomaly import faiss_installed, knn_scores


def features(n: int, dims: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (50, dims))
    return (centres[rng.integers(0, 50, n)] + rng.normal(0, 1, (n, dims))).astype(np.float32)


def timed(func, *args) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    out = func(*args)
    return out, time.perf_counter() - start


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="galaxies")
    parser.add_argument("--dims", default="16,128", help="feature dimensions, comma-separated")
    parser.add_argument("--k", type=int, default=10, help="the neighbour whose distance counts")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    have_faiss = faiss_installed()
    print(f"exact k-th neighbour distance of every galaxy, k = {args.k}, {args.n:,} galaxies")
    print("| dims | scikit-learn s | faiss-cpu s | faiss speed-up | max |difference| |")
    print("|---|---|---|---|---|")
    for dims in [int(d) for d in args.dims.split(",")]:
        values = features(args.n, dims, args.seed)
        ours, ours_s = timed(knn_scores, values, args.k, "sklearn")
        if not have_faiss:
            print(f"| {dims} | {ours_s:.1f} | - | - | - |")
            continue
        theirs, theirs_s = timed(knn_scores, values, args.k, "faiss")
        # float32 sums in another order: agreement to a relative 1e-3 is the same answer.
        diff = float(np.max(np.abs(ours - theirs) / np.maximum(ours, 1e-6)))
        print(f"| {dims} | {ours_s:.1f} | {theirs_s:.1f} | {ours_s / theirs_s:.2f}x | {diff:.1e} |")
    if not have_faiss:
        print("faiss-cpu is not installed (pip install faiss-cpu): scikit-learn only")


if __name__ == "__main__":
    main()
