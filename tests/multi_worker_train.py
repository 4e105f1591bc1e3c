"""One worker of a multi-worker training job, for tests/test_multi_worker.py: what the train entry
point's main does, with a known work folder, so that the test can compare the workers' weights.

    TF_CONFIG=... python tests/multi_worker_train.py <work_dir> --preset debug --shard-dir ...
"""

import sys

from gz_experiments.training.distributed import start_multi_worker

start_multi_worker()  # before anything else, as in entry_points/train.py

from entry_points.train import run  # noqa: E402
from gz_experiments.cli import parse_config  # noqa: E402
from gz_experiments.config import TrainConfig  # noqa: E402
from gz_experiments.processes import die_with_parent  # noqa: E402

die_with_parent()
result = run(parse_config(TrainConfig, sys.argv[2:], None), work_dir=sys.argv[1])
print("epochs", result.fit.epochs_run, flush=True)
