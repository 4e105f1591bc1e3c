"""Which Python the Spark executors run, and a check that it can run the model, before any work.

PySpark's driver tells the executors to start `PYSPARK_PYTHON` (default `python3`, whatever that
is on each node) and reads nothing else: `spark.pyspark.python` takes effect only through
spark-submit, which turns it into that variable. Left unset on a cluster, the executors start a
Python without pandas or this package and the job dies deep in a task. So:

- Started without spark-submit and without `PYSPARK_PYTHON`: the executors run this
  interpreter (`sys.executable`) — right for a cluster whose nodes share the install path (a
  standalone cluster on one machine, an image or a mount with the same venv), said on stderr.
- On any non-local master, a one-row job first asks the executors' Python whether it finds
  what the model's UDF imports; if it cannot start or lacks a package, one line says what to set.
"""

from __future__ import annotations

import os
import sys

from gz_experiments.errors import UserError

PYTHON_VAR = "PYSPARK_PYTHON"
# What the UDF imports on an executor (mlflow's pyfunc loads the package's model class).
EXECUTOR_MODULES = ("pandas", "pyarrow", "mlflow", "tensorflow", "gz_experiments")
HOW = (
    f"set {PYTHON_VAR} (spark-submit: --conf spark.pyspark.python=...) to a Python with "
    f"gz-experiments[spark] installed at that path on every worker node"
)


def choose_executor_python(master: str) -> None:
    """Before the session starts (the driver reads the variable once): this interpreter for the
    executors unless the user or spark-submit chose one."""
    if PYTHON_VAR in os.environ:
        return
    os.environ[PYTHON_VAR] = sys.executable
    if not master.startswith("local"):
        print(
            f"note: the Spark executors run {sys.executable} (this Python; {PYTHON_VAR} unset): "
            f"every worker node needs it at that path",
            file=sys.stderr,
        )


def check_executors(spark) -> None:
    """On a cluster: an executor's Python starts and finds EXECUTOR_MODULES, else UserError."""
    context = spark.sparkContext
    if context.master.startswith("local"):
        return  # the driver's own interpreter (choose_executor_python), checked by being here
    python = context.pythonExec
    modules = EXECUTOR_MODULES

    # Defined here so that cloudpickle ships it by value: the executor must not need this
    # package to run the check that says it is missing.
    def probe(_):
        import importlib.util
        import sys

        return sys.executable, [m for m in modules if importlib.util.find_spec(m) is None]

    try:
        executable, missing = context.parallelize([0], 1).map(probe).collect()[0]
    except Exception as exc:  # Py4JJavaError: the Python did not start, or died
        raise UserError(
            f"the Spark executors on {context.master} could not run {python}: {HOW} "
            f"({_first_cause(str(exc))})"
        ) from None
    if missing:
        raise UserError(
            f"the Spark executors' Python ({executable}) has no {', '.join(missing)}: {HOW}"
        )


def _first_cause(text: str) -> str:
    """The innermost Java or Python error line of a failed job, without the stack."""
    lines = [line.strip() for line in text.splitlines()]
    causes = [line for line in lines if "Error:" in line or "Exception:" in line]
    return (causes[-1] if causes else lines[0])[:300]
