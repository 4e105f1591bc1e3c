"""What a Spark prediction reads, as rows for the model's UDF: a catalog or a folder of images.

- A catalog (.csv/.parquet/.pq with `id_str` and `file_loc`; relative paths are read from the
  catalog's folder; the same checks as `catalog.load_catalog`: non-empty unique ids, non-empty
  paths). The executors open each `file_loc` themselves, so it must be a path every executor
  sees: the local disk in local mode, a shared mount (same path on every node) on a cluster.
- A folder of images (recursive), as a local path or any URI Spark reads (hdfs://, s3a://,
  gs://, ...): Spark reads the bytes (binaryFile) and hands them to the model as `image`, so the
  executors need no shared file system. An image's id is its path in the folder without the
  suffix, as locally; Spark ignores names starting with "." or "_".
- A shard folder is refused: its TFRecords are for the local engine; predict on its catalog.

Rows carry `_order` (input order: catalog row or image path) and `_source` (what skipped.csv
names: the path), besides the UDF's own columns.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

from gz_experiments.catalog import FILE_COL, ID_COL
from gz_experiments.errors import UserError
from gz_experiments.images.formats import IMAGE_SUFFIXES
from gz_experiments.prediction.inputs import CATALOG_SUFFIXES, IMAGE_COL
from gz_experiments.shards.manifest import MANIFEST_NAME
from gz_experiments.shards.remote import is_remote

ORDER, SOURCE = "_order", "_source"
PARTITION_ROWS = 2048  # catalog rows per Spark task (and at least one task per core)
SHOWN = 5
# Case-insensitive, longest first: "a.fits.gz" loses ".fits.gz", not ".gz".
SUFFIX = "(?i)(" + "|".join(map(re.escape, sorted(IMAGE_SUFFIXES, key=len, reverse=True))) + ")$"


# pyspark 4.3 warns at every pandas conversion that pandas 3 is new to it; the UDF only passes
# strings, bytes and float columns, which the Spark tests check against the local predict.
PANDAS_WARNING = "PySpark does not yet fully support pandas"


def pyspark():
    warnings.filterwarnings("ignore", PANDAS_WARNING, FutureWarning)
    try:
        import pyspark
        import pyspark.sql  # noqa: F401
    except ImportError:
        raise UserError(
            "engine=spark needs pyspark: pip install 'gz-experiments[spark]' (and a Java 17+ "
            "runtime, e.g. apt-get install openjdk-17-jre-headless)"
        ) from None
    return pyspark


def local_uri(path: str | Path) -> str:
    """file://<absolute path> (symbolic links kept, as the local predict names files): Spark on
    a cluster would look for a bare path on HDFS."""
    return "file://" + os.path.abspath(os.path.expanduser(path))


def check_spark_inputs(config) -> None:
    """Refuse what engine=spark cannot do, before a session or the model is started."""
    from gz_experiments.votes.information import DEFAULT_N_VOLUNTEERS

    source = config.input
    if is_remote(source):
        if source.lower().endswith(CATALOG_SUFFIXES):
            raise UserError(
                f"{source}: engine=spark reads catalogs from a local or shared path (the "
                f"executors open its file_loc paths); a folder of images may be any URI"
            )
    elif not Path(source).exists():
        raise UserError(f"{source}: no such file or folder to predict on")
    elif (Path(source) / MANIFEST_NAME).is_file():
        raise UserError(
            f"{source}: a shard folder; engine=spark predicts on images: give the catalog the "
            f"shards were written from (or its image folder), or use engine=local"
        )
    elif Path(source).is_file() and Path(source).suffix.lower() not in CATALOG_SUFFIXES:
        raise UserError(
            f"{source}: engine=spark predicts on a .csv/.parquet catalog with {FILE_COL} or a "
            f"folder of images; for a single image use engine=local"
        )
    _check_output(config.output)
    if config.acquisition_columns and config.n_volunteers != DEFAULT_N_VOLUNTEERS:
        raise UserError(
            f"engine=spark computes the acquisition columns for the served model's "
            f"{DEFAULT_N_VOLUNTEERS} volunteers: drop n_volunteers={config.n_volunteers}, set "
            f"acquisition_columns=false, or use engine=local"
        )


def _check_output(output: str) -> None:
    if not output:
        return
    if is_remote(output):
        raise UserError(
            f"{output}: engine=spark writes to a folder the driver sees (a shared mount on a "
            f"cluster); copy it to an object store afterwards"
        )
    path = Path(output)
    if path.is_file():
        raise UserError(f"{output}: is a file; engine=spark writes a folder of parquet files")
    if path.is_dir() and any(path.iterdir()) and not (path / "_SUCCESS").exists():
        raise UserError(
            f"{output}: not empty and not an earlier prediction (no _SUCCESS); engine=spark "
            f"replaces its output folder, so give a new or empty one"
        )


def input_rows(spark, source: str):
    """(rows, the UDF's input columns, how many inputs) for a catalog or a folder."""
    if is_remote(source) or Path(source).is_dir():
        return _folder_rows(spark, source)
    return _catalog_rows(spark, Path(source))


def _catalog_rows(spark, path: Path):
    F = pyspark().sql.functions
    reader = spark.read.option("header", True).option("escape", '"').csv  # "" as pandas reads it
    df = (reader if path.suffix.lower() == ".csv" else spark.read.parquet)(local_uri(path))
    missing = [c for c in (ID_COL, FILE_COL) if c not in df.columns]
    if missing:
        raise UserError(f"{path}: missing required column(s) {missing}; found {df.columns[:12]}")
    df = df.select(*(F.col(c).cast("string").alias(c) for c in (ID_COL, FILE_COL)))
    # Read order (file splits in order): the key that keeps the output in catalog order.
    df = df.withColumn(ORDER, F.monotonically_increasing_id())
    # One pass for every check; the details of a problem are looked up only when there is one.
    blank_ids, blank_paths, distinct, n = df.agg(
        F.count(F.when(_blank(ID_COL), 1)),
        F.count(F.when(_blank(FILE_COL), 1)),
        F.countDistinct(ID_COL),
        F.count("*"),
    ).first()
    if n == 0:
        raise UserError(f"{path}: the catalog has no rows")
    if blank_ids:
        where = _rows(df, _blank(ID_COL))
        raise UserError(f"{path}: column '{ID_COL}' is empty in {where}; every galaxy needs an id")
    if distinct < n:
        duplicates = df.groupBy(ID_COL).count().where("count > 1")
        shown = sorted(r[ID_COL] for r in duplicates.limit(SHOWN).collect())
        where = _rows(df, F.col(ID_COL).isin(shown))
        raise UserError(
            f"{path}: column '{ID_COL}' has duplicate ids {shown} in {where}; ids must be unique"
        )
    if blank_paths:
        raise UserError(f"{path}: column '{FILE_COL}' is empty in {_rows(df, _blank(FILE_COL))}")
    base = F.lit(str(path.resolve().parent) + "/")
    relative = ~F.col(FILE_COL).startswith("/")
    file_loc = F.when(relative, F.concat(base, F.col(FILE_COL))).otherwise(F.col(FILE_COL))
    rows = df.select(ORDER, ID_COL, file_loc.alias(FILE_COL), file_loc.alias(SOURCE))
    parts = max(spark.sparkContext.defaultParallelism, -(-n // PARTITION_ROWS))
    return rows.repartitionByRange(parts, ORDER).sortWithinPartitions(ORDER), [FILE_COL, ID_COL], n


def _blank(column: str):
    F = pyspark().sql.functions
    return F.col(column).isNull() | (F.trim(F.col(column)) == "")


def _rows(df, condition) -> str:
    """'3 row(s): 2, 7, 9' (1-based data rows, as catalog.load_catalog says): the error path."""
    F, Window = pyspark().sql.functions, pyspark().sql.Window
    numbered = df.withColumn("_row", F.row_number().over(Window.orderBy(ORDER)))
    bad = numbered.where(condition)
    count = bad.count()
    first = [str(r["_row"]) for r in bad.orderBy("_row").limit(SHOWN).collect()]
    more = f" and {count - SHOWN} more" if count > SHOWN else ""
    return f"{count} row(s): {', '.join(first)}{more}"


def _folder_rows(spark, folder: str):
    F = pyspark().sql.functions
    uri = folder if is_remote(folder) else local_uri(folder)
    try:
        files = spark.read.format("binaryFile").option("recursiveFileLookup", "true").load(uri)
    except Exception as exc:  # AnalysisException: no such folder, no access, unknown scheme
        raise UserError(f"{folder}: {str(exc).strip().splitlines()[0]}") from None
    root = _qualified(spark, uri) + "/"
    relative = F.expr(f"substring(path, {len(root) + 1})")  # the path inside the folder
    ids = F.regexp_replace(relative, SUFFIX, "")
    not_image = ~relative.rlike(SUFFIX)
    # One pass over the listing (Spark reads no image for it) for every check.
    outside, not_images, distinct, n = files.agg(
        F.count(F.when(~F.col("path").startswith(root), 1)),
        F.count(F.when(not_image, 1)),
        F.countDistinct(ids),
        F.count("*"),
    ).first()
    if outside:  # ids would be wrong: a bug in how the folder was qualified, not the user's
        raise RuntimeError(f"Spark listed {outside} file(s) outside {root}")
    if not_images:
        shown = [r[0] for r in files.where(not_image).select(relative).limit(10).collect()]
        raise UserError(
            f"{folder}: {not_images} file(s) are not {'/'.join(IMAGE_SUFFIXES)} images, e.g. "
            f"{', '.join(shown)}; move them out or convert them"
        )
    if distinct < n:
        clashes = files.groupBy(ids.alias(ID_COL)).count().where("count > 1").limit(SHOWN)
        raise UserError(
            f"{folder}: images share an id ({', '.join(r[ID_COL] for r in clashes.collect())})"
            f": an image's id is its path without the suffix, so rename or move one of each"
        )
    if n == 0:
        raise UserError(f"no galaxies to predict on in {folder}")
    rows = files.select(
        F.col("path").alias(ORDER),
        ids.alias(ID_COL),
        F.col("content").alias(IMAGE_COL),
        F.regexp_replace("path", "^file:", "").alias(SOURCE),
    )
    return rows.sortWithinPartitions(ORDER), [IMAGE_COL, ID_COL], n


def _qualified(spark, uri: str) -> str:
    """The folder as Spark writes its files' paths (file:/a/b, s3a://bucket/b), without '/'."""
    hadoop = spark._jvm.org.apache.hadoop.fs.Path(uri)
    filesystem = hadoop.getFileSystem(spark._jsc.hadoopConfiguration())
    return filesystem.makeQualified(hadoop).toString().rstrip("/")
