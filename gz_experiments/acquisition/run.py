"""The `acquire` step as a function: which unlabelled galaxies volunteers should classify next.

    result = run_acquire(config, model, spec, work_dir)    # no MLflow; tracking/acquire.py logs

Every galaxy of the input (a folder of images, a catalog, a shard split) gets MC-dropout samples
(`prediction.sampling`, as predict draws them) and a score: the sum over the chosen questions of
`{question}_p_asked` times its BALD (`bald`) or predictive entropy (`entropy`), or a uniform draw
from (seed, id_str) alone (`random`, the baseline; the model still runs, so the table shows the
BALD of what chance picked). The k highest scores are written best first (ties: input order):

    rank, id_str, score, {question}_bald, {question}_predictive_entropy, {question}_p_asked

for the chosen questions, plus a PNG grid of the top `grid_size` images as the model saw them.
Unreadable images are skipped and listed (ranked + skipped = inputs). Memory holds about 2k
table rows and the grid's images, whatever the number of galaxies.
"""

from __future__ import annotations

import heapq
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gz_experiments import atomic
from gz_experiments.acquisition.plots import top_grid
from gz_experiments.config import AcquireConfig
from gz_experiments.errors import UserError
from gz_experiments.model_spec import ModelSpec
from gz_experiments.prediction.inputs import FileAccess, check_model_and_input, resolve_inputs
from gz_experiments.prediction.run import SKIPPED_FILE
from gz_experiments.prediction.sampling import Sampler, galaxy_seed
from gz_experiments.prediction.stream import PredictionReport
from gz_experiments.prediction.writer import output_format_for
from gz_experiments.progress import show_progress
from gz_experiments.schema import Schema
from gz_experiments.votes.dirichlet_multinomial import expected_fractions
from gz_experiments.votes.information import acquisition_column_names, acquisition_columns

TABLE = "acquisition"  # acquisition.parquet / acquisition.csv
GRID_FILE = "top_galaxies.png"
RANDOM_STREAM = 1  # a galaxy's stream 0 (its root seed) draws its dropout masks
PRUNE_ROWS = 10_000  # rows buffered beyond 2k before the table is cut back to the top k


@dataclass
class AcquireResult:
    """The chosen galaxies (table, grid) and how the ranking went."""

    config: AcquireConfig
    spec: ModelSpec
    questions: tuple[str, ...]
    report: PredictionReport  # n_predicted = galaxies ranked; skipped = unreadable images
    table: Path
    grid: Path | None  # None when grid_size = 0 or nothing was ranked
    skipped_table: Path
    n_selected: int
    mean_score: float  # over every ranked galaxy
    selected_scores: np.ndarray  # best first
    seconds: float

    def summary(self) -> str:
        where = f" -> {self.config.output}" if self.config.output else ""
        scores = self.selected_scores
        span = f" (scores {scores[0]:.4g} to {scores[-1]:.4g})" if len(scores) else ""
        return (
            f"ranked {self.report.n_predicted} galaxies by {self.config.acquisition} over "
            f"{len(self.questions)} question(s), chose {self.n_selected}{span}; skipped "
            f"{len(self.report.skipped)} (listed in {SKIPPED_FILE}){where}"
        )


def check_inputs(config: AcquireConfig) -> None:
    """Fail on a missing model or input before opening a run or loading TensorFlow."""
    check_model_and_input(config.model_uri, config.input, "rank")


def chosen_questions(config: AcquireConfig, schema: Schema) -> tuple[str, ...]:
    """The questions to score (all by default), checked against the model's tree."""
    questions = config.questions or None
    try:
        acquisition_column_names(schema, questions)
    except ValueError as exc:
        raise UserError(f"questions={','.join(config.questions)}: {exc}") from None
    return tuple(questions or (q.name for q in schema.questions))


def random_scores(ids: list[str], seed: int) -> np.ndarray:
    """Uniform [0, 1) per galaxy from (seed, id_str) alone: the same in any batch or order."""
    out = np.empty(len(ids))
    for i, id_str in enumerate(ids):
        root = galaxy_seed(seed, id_str)
        stream = np.random.SeedSequence(root.entropy, spawn_key=(RANDOM_STREAM,))
        out[i] = np.random.default_rng(stream).random()
    return out


def score_batch(ids, concentrations, schema: Schema, questions, config: AcquireConfig):
    """The batch's rows: id_str, score and the per-question columns of the output table."""
    expected = expected_fractions(concentrations, schema).mean(axis=1)
    p_asked = schema.p_asked(expected)
    info = acquisition_columns(concentrations, schema, config.n_volunteers, questions)
    weights = np.stack([p_asked[:, schema.question(q).index] for q in questions], axis=1)
    if config.acquisition == "random":
        score = random_scores(ids, config.seed)
    else:
        suffix = "bald" if config.acquisition == "bald" else "predictive_entropy"
        per_question = np.stack([info[f"{q}_{suffix}"] for q in questions], axis=1)
        score = (weights.astype(np.float64) * per_question).sum(axis=1)
    columns = {"id_str": list(ids), "score": score}
    columns |= {name: info[name] for name in acquisition_column_names(schema, questions)[:-1]}
    columns |= {f"{q}_p_asked": weights[:, i].astype(np.float32) for i, q in enumerate(questions)}
    return pd.DataFrame(columns)


class TopK:
    """The k best rows seen so far (score descending, then input order), and the images of the
    best `grid_size` of them."""

    def __init__(self, k: int, grid_size: int):
        self.k, self.grid_size = k, grid_size
        self.parts: list[pd.DataFrame] = []
        self.buffered = self.seen = 0
        self.score_sum = 0.0
        self.grid: list[tuple[float, int, str, np.ndarray]] = []  # min-heap on (score, -order)

    def add(self, rows: pd.DataFrame, images: np.ndarray) -> None:
        rows = rows.assign(order=np.arange(self.seen, self.seen + len(rows)))
        for score, order, id_str, image in zip(
            rows["score"], rows["order"], rows["id_str"], images, strict=True
        ):
            entry = (float(score), -int(order), id_str, image)
            if len(self.grid) < self.grid_size:
                heapq.heappush(self.grid, entry)
            elif self.grid_size and entry[:2] > self.grid[0][:2]:
                heapq.heapreplace(self.grid, entry)
        self.seen += len(rows)
        self.score_sum += float(rows["score"].sum())
        self.parts.append(rows)
        self.buffered += len(rows)
        if self.buffered > 2 * self.k + PRUNE_ROWS:
            self.parts, self.buffered = [self.best()], self.k

    def best(self) -> pd.DataFrame:
        if not self.parts:
            return pd.DataFrame()
        table = pd.concat(self.parts, ignore_index=True)
        table = table.sort_values(["score", "order"], ascending=[False, True], kind="stable")
        return table.head(self.k).reset_index(drop=True)

    def grid_entries(self) -> list[tuple[float, int, str, np.ndarray]]:
        return sorted(self.grid, key=lambda e: (-e[0], -e[1]))


def run_acquire(
    config: AcquireConfig, model, spec: ModelSpec, work_dir: str | Path, *, progress: bool = True
) -> AcquireResult:
    """Rank `config.input`; write the top k to `config.output` (or `<work_dir>/acquisition.*`),
    the grid and `skipped.csv` to `work_dir`."""
    from tqdm import tqdm

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    questions = chosen_questions(config, spec.schema)
    start = time.perf_counter()
    inputs = resolve_inputs(
        config.input, spec, config.split, FileAccess(max_pixels=config.max_image_pixels)
    )
    sampler = Sampler(model, config.sampling)
    report = PredictionReport(output=None)
    top = TopK(config.k, config.grid_size)
    with tqdm(total=inputs.total, unit="galaxy", disable=not show_progress(progress),
              file=sys.stderr) as bar:  # fmt: skip
        for batch in inputs.batches(config.batch_size):
            report.skipped.extend(batch.skipped)
            bar.update(len(batch.ids) + len(batch.skipped))
            if not batch.ids:
                continue
            concentrations = sampler(batch.images, batch.ids)
            top.add(score_batch(batch.ids, concentrations, spec.schema, questions, config),
                    batch.images)  # fmt: skip
            report.n_predicted += len(batch.ids)
    best = top.best()
    table = write_table(best, config, questions, work_dir)
    grid = write_grid(top.grid_entries(), config, work_dir)
    skipped = work_dir / SKIPPED_FILE
    atomic.write_table(report.skipped_frame(), skipped)
    return AcquireResult(
        config, spec, questions, report, table, grid, skipped, n_selected=len(best),
        mean_score=top.score_sum / max(report.n_predicted, 1),
        selected_scores=best["score"].to_numpy(dtype=np.float64) if len(best) else np.empty(0),
        seconds=time.perf_counter() - start,
    )  # fmt: skip


def output_columns(questions: tuple[str, ...]) -> list[str]:
    columns = ["rank", "id_str", "score"]
    columns += [f"{q}_bald" for q in questions] + [f"{q}_predictive_entropy" for q in questions]
    return columns + [f"{q}_p_asked" for q in questions]


def write_table(best: pd.DataFrame, config: AcquireConfig, questions, work_dir: Path) -> Path:
    fmt = output_format_for(config.output)
    path = Path(config.output) if config.output else work_dir / f"{TABLE}.{fmt}"
    path.parent.mkdir(parents=True, exist_ok=True)
    columns = output_columns(questions)
    if best.empty:
        types = {"id_str": str, "rank": np.int64}
        best = pd.DataFrame({c: pd.Series(dtype=types.get(c, np.float64)) for c in columns})
    else:
        best = best.assign(rank=np.arange(1, len(best) + 1))[columns]
    atomic.write_table(best, path, fmt)
    return path


def write_grid(entries, config: AcquireConfig, work_dir: Path) -> Path | None:
    if not entries:
        return None
    _, _, ids, images = zip(*entries, strict=True)
    scores = [e[0] for e in entries]
    title = f"top {len(entries)} by {config.acquisition}"
    path = work_dir / GRID_FILE
    top_grid(images, ids, scores, title).savefig(path, dpi=100)
    return path
