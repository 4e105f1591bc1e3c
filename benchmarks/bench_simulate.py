"""Simulator speed (1 worker vs all cores, side by side) and realism (first-question votes vs real).

    python -m benchmarks.bench_simulate            # ~1-2 minutes on 2 cores
    python -m benchmarks.bench_simulate --quick    # fewer galaxies

Speed includes everything `simulate` does: latents, votes, rendering, PNG writing (compress
level 1), catalog and truth tables. Realism compares the default vote mix (cpu preset) with the
4,000 real GZ DECaLS rows in ../shared/data/gzd5_q1_votes (skipped when absent).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

from gz_experiments.config import SimulateConfig
from gz_experiments.schema import get_schema
from gz_experiments.simulate.dataset import simulate
from gz_experiments.simulate.realism import question_summary, read_real_votes
from gz_experiments.simulate.volunteers import simulate_votes

REAL_VOTES = Path(__file__).resolve().parents[2] / "shared" / "data" / "gzd5_q1_votes"


def time_simulate(n: int, size: int, workers: int) -> tuple[float, float]:
    """(galaxies per wall-clock second, per CPU second of this process) for one simulation.

    With one worker everything runs in this process, so its CPU rate is what one free core
    gives even while other jobs share the machine.
    """
    with tempfile.TemporaryDirectory(prefix="gz-bench-sim-") as tmp:
        config = SimulateConfig.resolve(
            "cpu", n_galaxies=n, img_size=size, n_workers=workers, out_dir=f"{tmp}/sim"
        )
        wall, cpu = time.perf_counter(), time.process_time()
        simulate(config, progress=False)
        return n / (time.perf_counter() - wall), n / (time.process_time() - cpu)


def speed_table(quick: bool) -> pd.DataFrame:
    cores = len(os.sched_getaffinity(0))
    rows = []
    for size, n in ((128, 400 if quick else 1500), (424, 40 if quick else 150)):
        one, one_cpu = time_simulate(n, size, 1)
        many, _ = time_simulate(n, size, cores)
        rows.append(
            {
                "img_size": size,
                "galaxies": n,
                "1 worker gal/s": one,
                f"{cores} workers gal/s": many,
                "ratio": many / one,
                "1 worker gal/CPU-s": one_cpu,
            }
        )
    return pd.DataFrame(rows).set_index("img_size")


def votes_speed(n: int = 20000) -> float:
    start = time.perf_counter()
    simulate_votes(SimulateConfig.resolve("cpu", n_galaxies=n))
    return n / (time.perf_counter() - start)


def realism_table() -> pd.DataFrame | None:
    if not REAL_VOTES.exists():
        return None
    schema = get_schema("gzd5")
    first = schema.questions[0]
    votes = simulate_votes(SimulateConfig.resolve("cpu", n_galaxies=4000))
    sim = pd.DataFrame(votes.counts, columns=schema.label_cols)
    many_votes = sim[first.label_cols].sum(axis=1) >= 30
    parts = {
        "simulated (all)": question_summary(sim, first),
        "simulated (>=30 votes)": question_summary(sim[many_votes], first),
        "real GZ DECaLS": question_summary(read_real_votes(REAL_VOTES), first),
    }
    return pd.concat(parts, axis=1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"== simulate speed (galaxies/s, PNG writing included; load average {load}) ==")
    print(speed_table(args.quick).round(2).to_string())
    print(f"\nvotes only (no images): {votes_speed():,.0f} galaxies/s")
    table = realism_table()
    if table is None:
        print(f"\n{REAL_VOTES} is absent: realism comparison skipped")
        return
    print("\n== smooth-or-featured: vote fractions and total votes, simulated vs real ==")
    print(table.round(3).to_string())


if __name__ == "__main__":
    main()
