"""The foundation benchmark's protocol: no galaxy of a child task's held-out set reaches any
parent (the parents train on the pools only, and the script checks ids before training)."""

from __future__ import annotations

import argparse

import pandas as pd
import pytest

from benchmarks.bench_foundation import check_excluded, split_campaigns


def test_held_out_galaxies_are_in_no_parent_and_a_leak_is_caught():
    args = argparse.Namespace(seed=0, test_fraction=0.2)
    catalogs = {
        name: pd.DataFrame({"id_str": [f"{name}-{i}" for i in range(50)], "file_loc": "x.png"})
        for name in ("gz1", "gz2", "gzd5")
    }
    splits = split_campaigns(catalogs, args)
    for name, (test, pool) in splits.items():
        assert len(test) == 10 and len(pool) == 40
        assert not set(test["id_str"]) & set(pool["id_str"])
        assert set(test["id_str"]) | set(pool["id_str"]) == set(catalogs[name]["id_str"])
    pools = {name: set(pool["id_str"]) for name, (_, pool) in splits.items()}
    pools["all"] = set().union(*pools.values())
    check_excluded(splits, pools)  # what the benchmark's parents are trained on

    leaked = next(iter(splits["gz2"][0]["id_str"]))
    pools["all"].add(leaked)
    with pytest.raises(AssertionError, match="1 galaxies of gz2's test set are in parent all"):
        check_excluded(splits, pools)
    # the split is seeded: the same held-out galaxies for every arm and every run
    again = split_campaigns(catalogs, args)
    assert all(again[n][0].equals(splits[n][0]) for n in splits)
