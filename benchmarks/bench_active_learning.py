"""Active learning in a closed loop: does BALD need fewer labelled galaxies than random choice?

Exact commands (from the repo root, venv active):

    python -m benchmarks.bench_active_learning                  # the honest run: ~40 min, 2 cores
    python -m benchmarks.bench_active_learning --preset debug   # smoke test: ~30 s
    python -m benchmarks.bench_active_learning --strategies bald,entropy,random --seeds 0
    python -m benchmarks.bench_active_learning --questions bar     # BALD of one question only

The simulator plays the volunteers (gz_experiments/acquisition/loop.py): 5,500 simulated
galaxies at 40 px (cached after the first run), of which 1,000 are a fixed held-out test set and
500 a fixed labelled validation set (early stopping; the same for every strategy and not counted
as acquired labels); the other 4,000 are the unlabelled pool. Per seed and strategy: 200 random
galaxies labelled, a small_cnn (crop 0.8 -> 32 px, dropout 0.2) trained from scratch, then 8
rounds of: score the rest of the pool, label the top 200 (reveal their ~40 simulated votes),
retrain from scratch (`--warm-start true` continues from the last weights instead: faster,
path-dependent). BALD uses 5 MC-dropout samples and the next 10 volunteers per question,
weighted by p_asked, exactly as `acquire` ranks. Seeds 0, 1, 2 (one seed gives every strategy
the same initial set and initial weights).

Measured after every training: the held-out loss (mean over galaxies of the summed per-question
Dirichlet-multinomial NLL, dropout off), each question's share of it, and the MAE against the
simulator's true probabilities. The report also gives, per question, the share of random's labels
BALD needed to reach random's final loss on that question.
Target: BALD reaches random acquisition's final mean held-out loss with <= 65 % of random's labels
(interpolated between rounds). Everything goes to one MLflow run (gz.step = active_learning):
per-round metrics `<strategy>/seed_<s>/test_loss` and mean curves `<strategy>/test_loss` at
step = labelled galaxies, `<strategy>/label_share_test_loss`, curves.csv, report.txt and
plots/learning_curves.png.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from gz_experiments.acquisition.loop import LoopResult, closed_loop, loop_data
from gz_experiments.cli import entry_point, parse_config
from gz_experiments.config.acquisition import ActiveLearningConfig

TARGET_SHARE = 0.65


def report(result: LoopResult, minutes: float) -> str:
    """The mean curves as a table, then the labels each strategy needed to match random."""
    config, curves = result.config, result.curves
    strategies = list(dict.fromkeys(curves["strategy"]))
    means = result.mean_curves().set_index(["strategy", "n_labelled"])
    header = ["labelled"] + [f"{s} loss" for s in strategies] + [f"{s} MAE" for s in strategies]
    lines = [" | ".join(f"{h:>17}" for h in header)]
    for n in sorted(curves["n_labelled"].unique()):
        cells = [f"{n:>17d}"]
        for metric, digits in (("test_loss", 3), ("truth_mae", 4)):
            for s in strategies:
                mean, std = means.loc[(s, n), (metric, "mean")], means.loc[(s, n), (metric, "std")]
                spread = f" ± {std:.{digits}f}" if np.isfinite(std) else ""
                cells.append(f"{mean:.{digits}f}{spread}".rjust(17))
        lines.append(" | ".join(cells))
    lines.append(f"image-blind baseline held-out loss: {result.baseline_loss:.3f}")
    lines += verdicts(result)
    lines.append(
        f"seeds {','.join(map(str, config.seeds))}; initial {config.initial} + {config.rounds} "
        f"rounds x k={config.k} from a pool of {config.n_pool}; val {config.n_val}, test "
        f"{config.n_test}; {'warm start' if config.warm_start else 'retrained from scratch'} "
        f"each round; {config.img_size} px -> {config.image_size} px small_cnn; "
        f"{minutes:.1f} min"
    )
    return "\n".join(lines)


def verdicts(result: LoopResult) -> list[str]:
    strategies = list(dict.fromkeys(result.curves["strategy"]))
    if "random" not in strategies:
        return ["no random strategy: nothing to compare with"]
    final = result.config.n_labelled_final
    lines = []
    for metric in ("test_loss", "truth_mae"):
        target = result.curves[result.curves["n_labelled"] == final]
        target = target[target["strategy"] == "random"][metric].mean()
        for strategy in (s for s in strategies if s != "random"):
            needed = result.labels_to_match(strategy, metric)
            if np.isnan(needed):
                outcome = f"never reaches it within {final} labels"
            else:
                share = needed / final
                met = "met" if share <= TARGET_SHARE else "not met"
                outcome = (
                    f"reaches it with {needed:.0f} labels = {share:.0%} of random's "
                    f"(target <= {TARGET_SHARE:.0%}: {met})"
                )
            lines.append(f"{metric}: random's final mean {target:.4g} at {final}; {strategy} "
                         f"{outcome}")  # fmt: skip
    questions = [c for c in result.curves.columns if c.startswith("test_loss/")]
    for strategy in (s for s in strategies if s != "random" and questions):
        lines.append(
            f"per question, {strategy}'s share of random's labels for random's final loss:"
        )
        lines.append("  " + ", ".join(
            f"{c.removeprefix('test_loss/')} {share_text(result, strategy, c)}" for c in questions
        ))  # fmt: skip
    return lines


def share_text(result: LoopResult, strategy: str, metric: str) -> str:
    needed = result.labels_to_match(strategy, metric)
    return "never" if np.isnan(needed) else f"{needed / result.config.n_labelled_final:.0%}"


def progress_line(row: dict) -> str:
    return (
        f"{row['strategy']:>7} seed {row['seed']} round {row['round']}: {row['n_labelled']} "
        f"labelled, loss {row['test_loss']:.3f}, truth MAE {row['truth_mae']:.4f} "
        f"({row['epochs']} epochs, {row['train_seconds']:.0f} s)"
    )


@entry_point
def main(argv=None) -> LoopResult:
    from gz_experiments.tracking.acquire import log_loop, log_loop_round
    from gz_experiments.tracking.runs import step_run

    config = parse_config(ActiveLearningConfig, argv, __doc__)
    start = time.perf_counter()
    data = loop_data(config, progress=True)

    def on_round(row: dict) -> None:
        log_loop_round(row)
        print(progress_line(row), file=sys.stderr, flush=True)

    with step_run(config):
        result = closed_loop(config, data, on_round)
        text = report(result, (time.perf_counter() - start) / 60)
        log_loop(result, text)
    print(text)
    return result


if __name__ == "__main__":
    main()
