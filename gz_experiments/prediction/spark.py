"""Batch prediction on Apache Spark: the logged model as a Spark UDF over a catalog or an image
folder, written as a folder of parquet files with exactly the local predict's columns.

    with spark_session("local[2]") as spark:           # or the session you already have
        report = predict_spark(spark, model, spec, "catalog.csv", "predictions/", sampling)
    result = run_predict_spark(config, model, spec, work_dir)        # the step (no MLflow)

`model` is a `tracking.spark.SparkModel` (anything with `udf(spark, result_type, params, env)`).
What to predict on is read by `prediction.spark_inputs`: a catalog's `file_loc` paths are opened
by the executors, a folder's images are read by Spark itself (object stores too).

Memory is flat in the number of galaxies: each Python worker loads the model once and predicts
one Arrow batch of `batch_size` rows at a time. An unreadable image comes back flagged
(on_unreadable="skip") and goes to the skipped list: predicted + skipped = inputs, checked.
mc_mode=head draws a galaxy's dropout masks from (seed, id_str) alone, so the numbers are the
local predict's whatever the partitioning; "full" is refused (its draws depend on the batch).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from gz_experiments.atomic import write_table
from gz_experiments.config import PredictConfig, Sampling
from gz_experiments.model_spec import ModelSpec
from gz_experiments.prediction.spark_inputs import (
    ID_COL,
    ORDER,
    PANDAS_WARNING,
    SOURCE,
    check_spark_inputs,
    input_rows,
    local_uri,
    pyspark,
)
from gz_experiments.prediction.tables import output_columns
from gz_experiments.serving.limits import REQUEST_DEFAULTS, SKIPPED_REASON

if TYPE_CHECKING:
    from gz_experiments.prediction.run import PredictionReport, PredictResult

__all__ = ["check_spark_inputs", "predict_spark", "run_predict_spark", "spark_session"]

APP_NAME = "gz-predict"


@contextmanager
def spark_session(master: str, conf: dict[str, str] | None = None) -> Iterator:
    """The active session as it is (a notebook's, a test's), else a new one on `master` (under
    spark-submit, its --master wins), stopped at the end."""
    active = pyspark().sql.SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    spark = start_session(master, conf)
    try:
        yield spark
    finally:
        spark.stop()


def start_session(master: str, conf: dict[str, str] | None = None):
    builder = pyspark().sql.SparkSession.builder.appName(APP_NAME)
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # set when spark-submit launched us
        builder = builder.master(master)
        if master.startswith("local"):
            # Before the JVM starts: else Spark binds to the first network interface's address.
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            # The Python workers: this interpreter (its packages), unless the user chose one.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
            conf = {**local_settings(), **(conf or {})}
    for key, value in (conf or {}).items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:
        if "JAVA_GATEWAY_EXITED" in str(exc) or isinstance(exc, FileNotFoundError):
            from gz_experiments.errors import UserError

            raise UserError(
                "Spark could not start Java: install a Java 17+ runtime (Debian/Ubuntu: "
                "apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
            ) from None
        raise
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def local_settings() -> dict[str, str]:
    """A local-mode session on loopback only, one TF thread per Python worker (Spark already
    runs one task per core)."""
    return {
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.executorEnv.TF_NUM_INTRAOP_THREADS": "1",
        "spark.executorEnv.TF_NUM_INTEROP_THREADS": "1",
        "spark.executorEnv.PYTHONWARNINGS": f"ignore:{PANDAS_WARNING}:FutureWarning",
    }


def result_type(columns: list[str]):
    """The UDF's struct: id_str, the table's numbers as float32 (as the local table), the reason."""
    types = pyspark().sql.types
    fields = [types.StructField(ID_COL, types.StringType())]
    fields += [types.StructField(c, types.FloatType()) for c in columns if c != ID_COL]
    fields.append(types.StructField(SKIPPED_REASON, types.StringType()))
    return types.StructType(fields)


def predict_spark(
    spark, model, spec: ModelSpec, source: str | Path, output: str | Path, sampling: Sampling, *,
    acquisition: bool = True, max_pixels: int | None = None,
) -> PredictionReport:  # fmt: skip
    """Predict `source` (catalog or folder) into the parquet folder `output` (replaced)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from gz_experiments.prediction.run import PredictionReport

    rows, given, n_inputs = input_rows(spark, str(source))
    columns = output_columns(spec.schema, sampling.n_samples, acquisition=acquisition)
    params = {name: getattr(sampling, name) for name in REQUEST_DEFAULTS}
    params |= {"on_unreadable": "skip", "concentrations": True}
    env = {"GZ_SERVE_MAX_PIXELS": str(max_pixels)} if max_pixels else None
    predict = model.udf(spark, result_type(columns), params, env)
    scored = rows.select(ORDER, SOURCE, predict(F.struct(*given)).alias("p")).select(
        ORDER, SOURCE, "p.*"
    )
    # Persisted so the skipped rows are read back instead of predicting every galaxy twice.
    scored = scored.persist(StorageLevel.DISK_ONLY)
    predicted = F.col(SKIPPED_REASON) == ""
    with arrow_batch_rows(spark, sampling.batch_size):
        try:
            table = scored.where(predicted).select(*[F.col(f"`{c}`") for c in columns])
            table.write.mode("overwrite").parquet(local_uri(output))
            skipped = scored.where(~predicted).orderBy(ORDER).select(ID_COL, SOURCE, SKIPPED_REASON)
            skipped_rows = [tuple(r) for r in skipped.collect()]
        finally:
            scored.unpersist()
    n_predicted = spark.read.parquet(local_uri(output)).count()
    report = PredictionReport(Path(output), n_predicted, skipped_rows)
    if report.n_inputs != n_inputs:  # a bug, never a user's mistake: say it loudly
        raise RuntimeError(
            f"{n_inputs} inputs but {n_predicted} predicted + {len(skipped_rows)} skipped"
        )
    return report


@contextmanager
def arrow_batch_rows(spark, rows: int) -> Iterator[None]:
    """Rows per call of the model (one forward batch) for this job; the session's value after."""
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = spark.conf.get(key)
    spark.conf.set(key, str(rows))
    try:
        yield
    finally:
        spark.conf.set(key, before)


def run_predict_spark(config: PredictConfig, model, spec: ModelSpec, work_dir) -> PredictResult:
    """The predict step on Spark: `config.output` (or `<work_dir>/predictions`) becomes a parquet
    folder; the skipped galaxies are listed in `<work_dir>/skipped.csv`, as locally."""
    from gz_experiments.prediction.run import SKIPPED_FILE, PredictResult, warn_skipped

    output = Path(config.output) if config.output else Path(work_dir) / "predictions"
    if getattr(model, "upgraded", False):
        print(
            f"note: {config.model_uri} was logged before on_unreadable existed; its local copy "
            f"got the current signature (the code is the installed package's either way)",
            file=sys.stderr,
        )
    start = time.perf_counter()
    with spark_session(config.spark_master, config.spark_conf) as spark:
        report = predict_spark(
            spark, model, spec, config.input, output, config.sampling,
            acquisition=config.acquisition_columns, max_pixels=config.max_image_pixels,
        )  # fmt: skip
    seconds = time.perf_counter() - start
    warn_skipped(report)
    skipped = Path(work_dir) / SKIPPED_FILE
    write_table(report.skipped_frame(), skipped)
    return PredictResult(config, spec, report, output, skipped, seconds)
