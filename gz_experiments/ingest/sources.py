"""One source file through its release adapter: file-level checks, then its rows.

prepared = prepare(path, "gzd5", images="", mapping="", filename_mapping="")  # header only
check_tree_fit(prepared, schema)   # its questions must be whole questions of the tree
rows = read_rows(prepared, "pseudo", 40)   # row problems -> rejections; the rest -> votes
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gz_experiments.config.ingest import AUTO, GENERIC, RELEASE_NAMES
from gz_experiments.errors import UserError
from gz_experiments.ingest import checks
from gz_experiments.ingest.fractions import cumulative_to_counts
from gz_experiments.ingest.generic import GenericRelease
from gz_experiments.ingest.posteriors import is_posteriors, posteriors_error
from gz_experiments.ingest.releases import (
    GZ2_MAPPING_NAME,
    MERGED_TREES,
    RELEASES,
    ImageRoot,
    Release,
    SourceColumns,
    detect_release,
)
from gz_experiments.ingest.tables import read_columns, read_header
from gz_experiments.schema import Schema


def get_release(name: str, mapping: str | Path = "") -> Release:
    """The adapter of a named release, or the generic one read from its mapping file."""
    if name == GENERIC:
        return GenericRelease.from_file(Path(mapping))
    if name not in RELEASES:
        raise UserError(f"unknown release {name!r}: use one of {', '.join(RELEASE_NAMES)}")
    return RELEASES[name]


@dataclass(frozen=True)
class Rejection:
    """One rejected data row: the file, its 1-based data row, its id (if any) and why."""

    source: str
    row: int
    id_str: str
    reason: str


@dataclass(frozen=True)
class Prepared:
    path: Path
    release: Release
    columns: SourceColumns
    images: ImageRoot


@dataclass(frozen=True)
class SourceRows:
    prepared: Prepared
    rows_read: int
    accepted: pd.DataFrame  # row (1-based), id_str, file_loc, votes per label column it gives
    rejected: list[Rejection]
    count_mode: str
    votes_outside: dict[str, dict]  # question -> rows and votes for answers the file lacks


def prepare(
    path: Path, release_name: str, images: str, mapping: str, filename_mapping: str
) -> Prepared:
    """Check a source from its header alone (wrong file or release: a UserError); no row is read."""
    header = read_header(path)
    if is_posteriors(header):
        raise posteriors_error(path)
    if release_name == AUTO:
        release_name = detect_release(header)
        if release_name is None:
            raise UserError(
                f"{path}: cannot tell which release this is from its columns (expected e.g. "
                f"iauname + png_loc, dr7objid, GalaxyID + Class1.1); pass releases=<one of "
                f"{', '.join(RELEASES)}> or releases=generic with mapping=<YAML file>"
            )
    release = get_release(release_name, mapping)
    columns = release.columns(header, path)
    folder = Path(images) if images else path.parent
    if not folder.is_dir():
        raise UserError(f"{folder}: image folder of {path} not found; check images=")
    beside = path.parent / GZ2_MAPPING_NAME
    root = ImageRoot(folder.resolve(), Path(filename_mapping) if filename_mapping else beside)
    release.check_root(root)
    return Prepared(path, release, columns, root)


def check_tree_fit(prepared: Prepared, schema: Schema) -> None:
    """Every question the source gives must be in the tree with exactly the same answers."""
    release, labels = prepared.release, prepared.columns.labels
    given = {release.schema().answer(label).question for label in labels}
    questions = {q.name: q for q in schema.questions}
    foreign = [label for label in labels if label not in schema.label_cols]
    short = [
        c
        for name in given
        if name in questions
        for c in questions[name].label_cols
        if c not in labels
    ]
    if not foreign and not short:
        return
    fitting = [release.tree] + [t for names, t in MERGED_TREES.items() if release.name in names]
    problem = (
        f"answer columns {foreign[:4]} that tree {schema.name!r} lacks"
        if foreign
        else f"no votes for {short[:4]}, which tree {schema.name!r} asks"
    )
    raise UserError(
        f"{prepared.path}: release {release.name} gives {problem}; use tree="
        f"{' or tree='.join(fitting)}"
    )


def read_rows(
    prepared: Prepared,
    count_mode: str,
    n_volunteers: int,
    max_rows: int = 0,
    outside_votes: str = "accept",
    images_outside: bool = False,
) -> SourceRows:
    """Every data row: rejected with its reasons, or turned into votes."""
    path, release, columns = prepared.path, prepared.release, prepared.columns
    text = [columns.id_col, *columns.extra]
    table = read_columns(path, columns.needed, text, max_rows)
    if table.empty:
        raise UserError(f"{path}: the file has no data rows")
    schema = release.schema()
    problems = checks.Problems(len(table))
    ids = checks.check_ids(table[columns.id_col], columns.id_col, problems)
    values = checks.check_values(table, columns.labels, release.values, problems)
    outside = pd.DataFrame(index=table.index)
    if release.values == "counts":
        outside = checks.check_totals(table, values, columns, schema, problems, outside_votes)
    else:
        checks.check_cumulative(values, columns, schema, problems)
    images = release.images(table, ids, prepared.images)
    inside = None if images_outside else prepared.images.folder
    paths = checks.check_images(images, problems, inside)

    mode = release.count_mode(count_mode)
    ok = ~problems.rejected
    votes = _votes(values[ok], schema, columns, mode, n_volunteers)
    accepted = pd.DataFrame(
        {
            "row": np.flatnonzero(ok) + 1,
            "id_str": ids[ok].to_numpy(),
            "file_loc": paths[ok].to_numpy(),
        }
    )
    accepted = pd.concat([accepted, votes.reset_index(drop=True)], axis=1)
    rejected = [
        Rejection(str(path), i + 1, ids[i] or "", problems.reason(i))
        for i in sorted(problems.by_row)
    ]
    shortfall = outside[ok]
    votes_outside = {
        q: {"rows": int((shortfall[q] > 0).sum()), "votes": float(shortfall[q].sum())}
        for q in shortfall.columns
        if (shortfall[q] > 0).any()
    }
    return SourceRows(prepared, len(table), accepted, rejected, mode, votes_outside)


def _votes(values: pd.DataFrame, schema: Schema, columns: SourceColumns, mode: str, n: int):
    if mode == "counts":
        return values
    full = pd.DataFrame(0.0, index=values.index, columns=schema.label_cols)
    full[list(values.columns)] = values
    present = np.array([q.name not in columns.absent for q in schema.questions])
    counts = cumulative_to_counts(full.to_numpy(), schema, n, mode, present)
    return pd.DataFrame(counts, index=values.index, columns=schema.label_cols)[list(values.columns)]
