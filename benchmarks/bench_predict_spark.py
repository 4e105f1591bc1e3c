"""The Spark row of bench_predict: the predict path on Spark local[2] vs one process, same inputs.

    python -m benchmarks.bench_predict_spark                      # ~5 min on 2 cores
    python -m benchmarks.bench_predict_spark --copies 1 --size 32 --architecture small_cnn  # smoke

Inputs: the 470 real 128 px PNGs of ../shared/data/gzd5_real_128 as a catalog, repeated
`copies` times (ids made unique), so the rate is measured on more galaxies than Spark's start-up.
Model: an untrained EfficientNetB0 (greyscale, `size` px), logged as an MLflow model folder once.
Each engine runs in its own fresh process, twice on the same inputs: "cold" counts everything a
user waits for (imports, TensorFlow, model load; Spark: its JVM and Python workers), "warm" the
second pass (model loaded, functions traced; Spark: workers and session reused). Both write the
same parquet table (head mode, n_samples=5, batch 64, acquisition columns). Peak memory is the
sampled RSS of the whole process tree (driver, JVM, Python workers). Only ratios mean much on a
shared VM.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "gzd5_real_128"
ENGINES = ("local", "spark")


def make_inputs(work: Path, copies: int) -> Path:
    import pandas as pd

    catalog = pd.read_csv(DATA / "catalog.csv", dtype={"id_str": str})[["id_str", "file_loc"]]
    catalog["file_loc"] = [str(DATA / f) for f in catalog["file_loc"]]
    copies_of = [catalog.assign(id_str=catalog["id_str"] + f"#{i}") for i in range(copies)]
    path = work / f"catalog-x{copies}.csv"
    pd.concat(copies_of, ignore_index=True).to_csv(path, index=False)
    return path


def make_model(work: Path, architecture: str, size: int) -> Path:
    """An untrained model logged by log_galaxy_model to a throw-away store, as a local folder."""
    import mlflow

    from gz_experiments.model_spec import ModelSpec
    from gz_experiments.models import build_model
    from gz_experiments.schema import get_schema
    from gz_experiments.tracking.models import log_galaxy_model

    mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
    spec = ModelSpec(architecture, size, 1, 0.75, size, 0.2, get_schema("gzd5"))
    build_model(spec, seed=0).save(work / "model.keras")
    with mlflow.start_run():
        log_galaxy_model(work / "model.keras", spec)
        uri = f"runs:/{mlflow.active_run().info.run_id}/model"
    return Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(work / "model")))


def child(engine: str, model: str, catalog: str, out: str) -> None:
    """One engine, two passes; prints a JSON line of timings (run in its own process)."""
    from gz_experiments.config import Sampling

    sampling = Sampling(n_samples=5, batch_size=64, seed=0)
    seconds = []
    if engine == "spark":
        from gz_experiments.prediction.spark import predict_spark, start_session
        from gz_experiments.tracking.spark import spark_model

        spark_copy, spec = spark_model(model, Path(out) / "copy")
        spark = start_session("local[2]")
        for i in range(2):
            report = predict_spark(spark, spark_copy, spec, catalog, f"{out}/spark{i}", sampling)
            seconds.append(time.time())
        spark.stop()
    else:
        from gz_experiments.prediction.stream import predict_to_file
        from gz_experiments.tracking.models import load_galaxy_model

        keras_model, spec = load_galaxy_model(model)
        for i in range(2):
            report = predict_to_file(keras_model, spec, catalog, f"{out}/local{i}.parquet",
                                     sampling, progress=False, n_volunteers=10)  # fmt: skip
            seconds.append(time.time())
    print(json.dumps({"galaxies": report.n_inputs, "ends": seconds}))


def tree_rss(pid: int) -> int:
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):  # a worker that just exited
            total += process.memory_info().rss
    return total


def measure(engine: str, model: Path, catalog: Path, work: Path) -> dict:
    """Run one engine in a fresh process; its timings and the peak RSS of its process tree."""
    command = [sys.executable, "-m", "benchmarks.bench_predict_spark", "--child", engine,
               "--model", str(model), "--catalog", str(catalog), "--out", str(work)]  # fmt: skip
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": "-1"}
    start = time.time()
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            peak[0] = max(peak[0], tree_rss(process.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = process.communicate()
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{engine} child failed ({process.returncode}); run it alone to see why")
    result = json.loads(out.strip().splitlines()[-1])
    first, second = result["ends"][0] - start, result["ends"][1] - result["ends"][0]
    n = result["galaxies"]
    return {"galaxies": n, "cold": n / first, "warm": n / second, "peak_mb": peak[0] / 2**20}


def run(copies: list[int], architecture: str, size: int) -> None:
    with tempfile.TemporaryDirectory(prefix="gz-bench-spark-") as tmp:
        work = Path(tmp)
        model = make_model(work, architecture, size)
        print(f"\npredict, one process vs Spark local[2] ({architecture} {size} px, head, n=5, "
              f"batch 64; real PNGs):")  # fmt: skip
        print(f"{'engine':<15} | {'galaxies':>8} | {'cold gal/s':>10} | {'warm gal/s':>10} | "
              f"{'warm vs local':>13} | {'peak RSS (tree)':>15}")  # fmt: skip
        print("-" * 86)
        for n in copies:
            catalog = make_inputs(work, n)
            rows = {engine: measure(engine, model, catalog, work) for engine in ENGINES}
            for engine, row in rows.items():
                name = "one process" if engine == "local" else "Spark local[2]"
                ratio = row["warm"] / rows["local"]["warm"]
                print(
                    f"{name:<15} | {row['galaxies']:>8} | {row['cold']:>10.1f} | "
                    f"{row['warm']:>10.1f} | {ratio:>12.2f}x | {row['peak_mb']:>12.0f} MB"
                )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--copies",
        type=int,
        nargs="+",
        default=[1, 8],
        help="the 470 real galaxies repeated this many times (one row each)",
    )
    parser.add_argument("--architecture", default="efficientnetb0")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--catalog", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()  # fmt: skip
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    if args.child:
        child(args.child, args.model, args.catalog, args.out)
    else:
        run(args.copies, args.architecture, args.size)


if __name__ == "__main__":
    main()
