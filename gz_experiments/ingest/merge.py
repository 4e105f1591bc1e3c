"""Several sources -> one catalog row per galaxy, matched on id_str (GZ DECaLS: the iauname).

A galaxy's votes from each source go into that source's columns; every other answer of the tree
gets 0 votes, which says "never asked": a question with no votes adds exactly nothing to the
Dirichlet-multinomial loss, so a galaxy seen only in GZD-5 teaches nothing about GZD-1/2.

Its image is the first listed source's that gives the galaxy (order sources to prefer one); the
GZD-1/2 and GZD-5 releases both point at the same DR5 cutout, so the choice rarely matters.

Two sources giving votes to the *same* question for one galaxy (the same file twice, or two
overlapping exports of one campaign) cannot both be right and would double its votes: every
such row is rejected, naming the other file and row.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from gz_experiments.catalog import FILE_COL, ID_COL
from gz_experiments.ingest.sources import Rejection, SourceRows
from gz_experiments.schema import Schema

SOURCES_COL = "sources"  # releases that gave a galaxy votes, e.g. "gzd12+gzd5"


def merge_sources(
    parts: list[SourceRows], schema: Schema
) -> tuple[pd.DataFrame, list[list[Rejection]], list[int]]:
    """The merged votes (id_str, file_loc, label columns, sources), the rejections the merge
    added per source, and the rows of each source that made it into the catalog."""
    keep, rejected = _drop_conflicts(parts, schema)
    frames = [part.accepted[mask] for part, mask in zip(parts, keep, strict=True)]
    names = [p.prepared.release.name for p in parts]
    written = [int(mask.sum()) for mask in keep]
    return merge_on_id(frames, names, schema), rejected, written


def merge_on_id(frames: list[pd.DataFrame], names: list[str], schema: Schema) -> pd.DataFrame:
    """Frames of (id_str, file_loc, some label columns) -> one row per id_str: each frame's votes
    in its columns (0 elsewhere: never asked), the first frame's image, and `sources` naming the
    frames that had the galaxy ("gzd12+gzd5"). Shared by ingest (releases) and combine."""
    stacked = pd.concat(
        [f[[ID_COL, FILE_COL]].assign(source=name) for f, name in zip(frames, names, strict=True)],
        ignore_index=True,
    )
    first = stacked.drop_duplicates(ID_COL, keep="first").set_index(ID_COL)
    votes = pd.DataFrame(0.0, index=first.index, columns=schema.label_cols)
    for frame in frames:
        given = [c for c in frame.columns if c in votes.columns]
        votes.loc[frame[ID_COL].to_numpy(), given] = frame[given].to_numpy()
    catalog = pd.concat([first[[FILE_COL]], votes], axis=1)
    catalog[SOURCES_COL] = stacked.groupby(ID_COL, sort=False)["source"].agg("+".join)
    return catalog.rename_axis(ID_COL).reset_index()


def rows_behind(catalog: pd.DataFrame) -> int:
    """The source rows behind a merged catalog: a galaxy from two sources stands for two."""
    return int(catalog[SOURCES_COL].str.count(r"\+").sum()) + len(catalog)


def _drop_conflicts(parts: list[SourceRows], schema: Schema):
    questions = [
        {schema.answer(c).question for c in p.accepted.columns if c in schema.label_cols}
        for p in parts
    ]
    keep = [np.ones(len(p.accepted), dtype=bool) for p in parts]
    rejected: list[list[Rejection]] = [[] for _ in parts]
    for a, b in combinations(range(len(parts)), 2):
        shared = sorted(questions[a] & questions[b])
        if not shared:
            continue
        kept = [set(parts[i].accepted[ID_COL][keep[i]]) for i in (a, b)]
        both = kept[0] & kept[1]
        for this, other in ((a, b), (b, a)):
            rows = parts[this].accepted
            other_rows = parts[other].accepted.set_index(ID_COL)["row"]
            clash = rows[ID_COL].isin(both).to_numpy() & keep[this]
            id_col = parts[this].prepared.columns.id_col
            for _, row in rows[clash].iterrows():
                rejected[this].append(
                    Rejection(
                        str(parts[this].prepared.path),
                        int(row["row"]),
                        row[ID_COL],
                        f"column '{id_col}': galaxy {row[ID_COL]!r} also has votes for "
                        f"{', '.join(shared[:3])} in {parts[other].prepared.path} row "
                        f"{other_rows[row[ID_COL]]}: a question's votes must come from one file",
                    )
                )
            keep[this] &= ~clash
    return keep, rejected
