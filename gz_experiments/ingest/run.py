"""run_ingest(config) -> IngestResult: release files -> catalog.parquet, rejected.csv, ingest.json.

    result = run_ingest(IngestConfig.resolve("paper",
        sources="gz_decals_volunteers_1_and_2.csv,gz_decals_volunteers_5.csv",
        releases="gzd12,gzd5", out="ingested/decals"))       # tree decals-all

Order of work: every source's header (wrong file, release or tree: a UserError before any row
is read), then each source's rows (problems -> rejected rows), the merge, rejected.csv, the
accounting (read = written + rejected, per source and in total), then the catalog - unless more
than `max_rejected_fraction` of the rows were rejected. No MLflow, no printing, no TensorFlow.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gz_experiments.catalog import FILE_COL, ID_COL, file_sha256
from gz_experiments.config.ingest import IngestConfig
from gz_experiments.errors import UserError
from gz_experiments.ingest import outputs
from gz_experiments.ingest.merge import SOURCES_COL, merge_sources, rows_behind
from gz_experiments.ingest.releases import MERGED_TREES, load_tree
from gz_experiments.ingest.sources import Prepared, check_tree_fit, prepare, read_rows
from gz_experiments.schema import Schema


@dataclass(frozen=True)
class SourceSummary:
    path: str  # absolute
    release: str
    sha256: str
    images: str  # the folder images were looked up in
    count_mode: str  # counts, pseudo or fractional
    rows_read: int
    rows_written: int  # rows whose votes are in the catalog
    rows_rejected: int
    absent_questions: tuple[str, ...]  # questions without columns in this file: never asked
    # question -> {"rows", "votes"}: votes its `_total-votes` counts for answers the file lacks
    votes_outside_answers: dict[str, dict]


@dataclass(frozen=True)
class IngestResult:
    out_dir: Path
    catalog: Path
    rejected: Path
    manifest: Path
    tree: str
    count_mode: str  # counts, pseudo or fractional; "counts+pseudo" for a mix of sources
    fractional_votes: bool  # the catalog has non-integer votes: shard with fractional_votes
    n_galaxies: int  # catalog rows (a galaxy in two sources is one row)
    catalog_sha256: str
    sources: tuple[SourceSummary, ...]

    @property
    def rows_read(self) -> int:
        return sum(s.rows_read for s in self.sources)

    @property
    def rows_written(self) -> int:
        return sum(s.rows_written for s in self.sources)

    @property
    def rows_rejected(self) -> int:
        return sum(s.rows_rejected for s in self.sources)

    @property
    def sha256s(self) -> dict[str, str]:
        return {s.path: s.sha256 for s in self.sources}


def run_ingest(config: IngestConfig) -> IngestResult:
    prepared = [
        prepare(Path(source), release, images, config.mapping, config.filename_mapping)
        for source, release, images in config.per_source()
    ]
    _refuse_repeated_files(prepared)
    schema = choose_tree(config.tree, prepared)
    for source in prepared:
        check_tree_fit(source, schema)
    out = _prepare_out(Path(config.out), config.overwrite)

    parts = [
        read_rows(
            p,
            config.count_mode,
            config.n_volunteers,
            config.max_rows,
            config.votes_outside_answers,
            config.images_outside,
        )  # fmt: skip
        for p in prepared
    ]
    votes, merge_rejected, written = merge_sources(parts, schema)
    rejected = [[*p.rejected, *extra] for p, extra in zip(parts, merge_rejected, strict=True)]
    listed = [r for rs in rejected for r in rs]
    outputs.write_rejected(out / outputs.REJECTED_NAME, listed)
    summaries = [
        _summary(part, rows, len(rejections))
        for part, rows, rejections in zip(parts, written, rejected, strict=True)
    ]
    _reconcile(summaries, len(listed), votes)
    _refuse_too_many(config, rejected, summaries, out / outputs.REJECTED_NAME)
    return _write(config, out, votes, schema, summaries)


def _write(config, out: Path, votes, schema: Schema, summaries) -> IngestResult:
    """catalog.parquet (with its note) and ingest.json."""
    modes = {s.count_mode for s in summaries}
    fractional = "fractional" in modes
    catalog = standard_catalog(votes, schema, fractional)
    note = {
        "tree": schema.name,
        "count_mode": "+".join(sorted(modes)),  # "counts+pseudo" for a mix of sources
        "fractional_votes": fractional,
        "n_volunteers": config.n_volunteers if modes - {"counts"} else None,
    }
    outputs.write_catalog(out / outputs.CATALOG_NAME, catalog, note)
    result = IngestResult(
        out_dir=out,
        catalog=out / outputs.CATALOG_NAME,
        rejected=out / outputs.REJECTED_NAME,
        manifest=out / outputs.MANIFEST_NAME,
        tree=schema.name,
        count_mode=note["count_mode"],
        fractional_votes=fractional,
        n_galaxies=len(catalog),
        catalog_sha256=file_sha256(out / outputs.CATALOG_NAME),
        sources=tuple(summaries),
    )
    outputs.write_manifest(result.manifest, manifest(result, config, note))
    return result


def choose_tree(tree: str, prepared: list[Prepared]) -> Schema:
    """The configured tree, else the releases' own (or the tree that holds them side by side)."""
    if tree:
        return load_tree(tree)
    trees = {p.release.tree for p in prepared}
    if len(trees) == 1:
        return load_tree(trees.pop())
    names = frozenset(p.release.name for p in prepared)
    if names in MERGED_TREES:
        return load_tree(MERGED_TREES[names])
    raise UserError(
        f"sources of releases {sorted(names)} use different trees {sorted(trees)}: pass "
        f"tree=<a tree holding all their questions> (e.g. decals-all for gzd12 + gzd5)"
    )


def standard_catalog(votes: pd.DataFrame, schema: Schema, fractional: bool) -> pd.DataFrame:
    """id_str, file_loc, then per question its answers' votes and `{q}_total-votes`, sources."""
    dtype = np.float64 if fractional else np.int64
    columns = {ID_COL: votes[ID_COL], FILE_COL: votes[FILE_COL]}
    for q in schema.questions:
        for col in q.label_cols:
            columns[col] = votes[col].astype(dtype)
        columns[q.total_votes_col] = votes[q.label_cols].sum(axis=1).astype(dtype)
    columns[SOURCES_COL] = votes[SOURCES_COL]
    return pd.DataFrame(columns)


def manifest(result: IngestResult, config: IngestConfig, note: dict) -> dict:
    unit = (
        f"fractional votes: n_volunteers ({config.n_volunteers}) x cumulative vote fractions, "
        f"not rounded; read with fractional_votes=true"
        if result.fractional_votes
        else "whole volunteer votes"
    )
    return {
        "step": "ingest",
        **note,
        "label_columns": {"pattern": "{question}_{answer}", "unit": unit},
        "image_rule": "the first listed source that gives the galaxy",
        "catalog": {
            "path": outputs.CATALOG_NAME,
            "sha256": result.catalog_sha256,
            "rows": result.n_galaxies,
        },
        "rejected": {"path": outputs.REJECTED_NAME, "rows": result.rows_rejected},
        "rows": {
            "read": result.rows_read,
            "written": result.rows_written,
            "rejected": result.rows_rejected,
        },
        "sources": [dataclasses.asdict(s) for s in result.sources],
        "config": config.to_dict(),
    }


def _prepare_out(out: Path, overwrite: bool) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    names = (outputs.CATALOG_NAME, outputs.REJECTED_NAME, outputs.MANIFEST_NAME)
    if (out / outputs.CATALOG_NAME).exists() and not overwrite:
        raise UserError(
            f"{out}: already holds an ingested {outputs.CATALOG_NAME}; pass overwrite=true to "
            f"replace it, or choose another out folder"
        )
    for name in names:  # a failed run must not leave the previous run's catalog beside it
        (out / name).unlink(missing_ok=True)
    return out.resolve()


def _summary(part, written: int, rejected: int) -> SourceSummary:
    p = part.prepared
    return SourceSummary(
        path=str(p.path.resolve()),
        release=p.release.name,
        sha256=file_sha256(p.path),
        images=str(p.images.folder),
        count_mode=part.count_mode,
        rows_read=part.rows_read,
        rows_written=written,
        rows_rejected=rejected,
        absent_questions=p.columns.absent,
        votes_outside_answers=part.votes_outside,
    )


def _reconcile(summaries: list[SourceSummary], listed: int, votes: pd.DataFrame) -> None:
    """Every row read is written or rejected, exactly once: a mismatch is a bug in ingest.

    Per source from the counts; in total from what was produced: the lines of rejected.csv plus
    the source rows behind each catalog row (a galaxy from two sources stands for two rows).
    """
    for s in summaries:
        if s.rows_written + s.rows_rejected != s.rows_read:
            raise AssertionError(
                f"{s.path}: {s.rows_read} rows read but {s.rows_written} written + "
                f"{s.rows_rejected} rejected"
            )
    read = sum(s.rows_read for s in summaries)
    behind_catalog = rows_behind(votes)
    if read != listed + behind_catalog:
        raise AssertionError(
            f"{read} rows read but {listed} in rejected.csv + {behind_catalog} behind the catalog"
        )


def _refuse_repeated_files(prepared: list[Prepared]) -> None:
    seen: dict[Path, Path] = {}
    for p in prepared:
        first = seen.setdefault(p.path.resolve(), p.path)
        if first is not p.path:
            raise UserError(f"{p.path}: given twice in sources (also as {first}); give it once")


def _refuse_too_many(config, rejected, summaries, rejected_path: Path) -> None:
    n_read = sum(s.rows_read for s in summaries)
    n_rejected = sum(len(r) for r in rejected)
    first = next((r for rs in rejected for r in rs), None)
    if first and n_rejected / n_read > config.max_rejected_fraction:
        raise UserError(
            f"{first.source}: row {first.row} (id {first.id_str!r}) rejected: {first.reason}; "
            f"{n_rejected} of {n_read} rows rejected, more than max_rejected_fraction="
            f"{config.max_rejected_fraction:g}: all are listed in {rejected_path}"
        )
    if first and n_rejected == n_read:
        raise UserError(
            f"{first.source}: every row was rejected, row {first.row} because {first.reason}; "
            f"all are listed in {rejected_path}"
        )
