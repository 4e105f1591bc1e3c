"""Release "generic": any table of votes, described by a YAML mapping file (`mapping=...`).

    id_column: objid                   # required
    image_column: path                 # a column of image paths under --images ...
    image_pattern: "{id}.jpg"          # ... or a pattern of the id ({id:.4}: its first 4 chars)
    tree: gzd5                         # a built-in tree, or a tree file relative to this file
    count_mode: counts                 # counts (default): the columns hold vote counts;
                                       # pseudo / fractional: they hold cumulative fractions
                                       # (as Kaggle's), turned into votes as for kaggle-gz2
    columns:                           # label column of the tree -> the file's column
      smooth-or-featured_smooth: t01_smooth
      smooth-or-featured_total-votes: t01_total   # optional: checked against the answers

A question's answers are mapped all together or not at all (a question left out was never asked).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gz_experiments.errors import UserError
from gz_experiments.ingest.fractions import COUNT_MODES
from gz_experiments.ingest.releases import (
    ImagePaths,
    ImageRoot,
    Release,
    SourceColumns,
    column_images,
    missing_columns,
    pattern_images,
)

KEYS = ("id_column", "image_column", "image_pattern", "tree", "count_mode", "columns")
TOTAL_SUFFIX = "_total-votes"


class GenericRelease(Release):
    name = "generic"
    summary = "the columns named in the mapping file"

    def __init__(self, path: Path, spec: dict):
        self.path = path
        self.id_col = str(spec["id_column"])
        self.image_col = str(spec.get("image_column") or "")
        self.pattern = str(spec.get("image_pattern") or "")
        self.tree = _tree(path, str(spec["tree"]))
        self.mode = str(spec.get("count_mode") or "counts")
        self.values = "counts" if self.mode == "counts" else "cumulative"
        self.labels, self.totals = _columns(path, spec["columns"], self.schema())

    @classmethod
    def from_file(cls, path: Path) -> GenericRelease:
        if not str(path) or str(path) == ".":
            raise UserError("release generic needs mapping=<a YAML file naming the columns>")
        if not path.is_file():
            raise UserError(f"{path}: mapping file not found")
        import yaml

        try:
            spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        except Exception as exc:  # the parser's message says where
            raise UserError(f"{path}: cannot parse the mapping: {exc}".replace("\n", " ")) from None
        _check_spec(path, spec)
        return cls(path, spec)

    def count_mode(self, configured: str) -> str:
        return self.mode

    def columns(self, header: list[str], source: Path) -> SourceColumns:
        schema = self.schema()
        mapped = {schema.answer(label).question for label in self.labels}
        absent = tuple(q.name for q in schema.questions if q.name not in mapped)
        extra = (self.image_col,) if self.image_col else ()
        found = SourceColumns(self.id_col, self.labels, self.totals, absent, extra)
        missing = [c for c in found.needed if c not in set(header)]
        if missing:
            raise missing_columns(source, self, missing, header)
        return found

    def images(self, table: pd.DataFrame, ids: pd.Series, root: ImageRoot) -> ImagePaths:
        if self.image_col:
            return column_images(table, self.image_col, root)
        return pattern_images(ids, root, self.pattern, self.id_col)


def _check_spec(path: Path, spec) -> None:
    def fail(problem: str) -> UserError:
        return UserError(f"{path}: {problem} (see gz_experiments/ingest/generic.py)")

    if not isinstance(spec, dict):
        raise fail("expected a mapping with id_column, tree and columns")
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        raise fail(f"unknown key(s) {unknown}; a mapping has {list(KEYS)}")
    missing = [k for k in ("id_column", "tree", "columns") if not spec.get(k)]
    if missing:
        raise fail(f"missing key(s) {missing}")
    if bool(spec.get("image_column")) == bool(spec.get("image_pattern")):
        raise fail("give exactly one of image_column and image_pattern")
    pattern = str(spec.get("image_pattern") or "{id}")
    try:
        pattern.format(id="J123456.78+123456.7")
    except (KeyError, IndexError, ValueError) as exc:
        raise fail(f"image_pattern {pattern!r} is not a pattern of {{id}} ({exc})") from None
    mode = spec.get("count_mode") or "counts"
    if mode not in ("counts", *COUNT_MODES):
        raise fail(f"count_mode {mode!r} is not one of counts, {', '.join(COUNT_MODES)}")
    if not isinstance(spec["columns"], dict):
        raise fail("columns must map label columns to the file's columns")


def _tree(path: Path, tree: str) -> str:
    beside = path.parent / tree
    return str(beside) if beside.suffix.lower() in (".yaml", ".yml", ".json") else tree


def _columns(path: Path, columns: dict, schema) -> tuple[dict[str, str], dict[str, str]]:
    labels, totals = {}, {}
    for key, column in columns.items():
        key, column = str(key), str(column)
        question = key.removesuffix(TOTAL_SUFFIX)
        if key.endswith(TOTAL_SUFFIX) and question in {q.name for q in schema.questions}:
            totals[question] = column
        elif key in schema.label_cols:
            labels[key] = column
        else:
            raise UserError(
                f"{path}: columns key {key!r} is not an answer column (or '<question>"
                f"{TOTAL_SUFFIX}') of tree {schema.name!r}"
            )
    for q in schema.questions:
        mapped = [c for c in q.label_cols if c in labels]
        if mapped and len(mapped) < len(q.label_cols):
            unmapped = [c for c in q.label_cols if c not in labels]
            raise UserError(
                f"{path}: question {q.name!r} maps {mapped} but not {unmapped}; map all of a "
                f"question's answers, or none if it was never asked"
            )
        if q.name in totals and not mapped:
            raise UserError(f"{path}: {q.name}{TOTAL_SUFFIX} is mapped but none of its answers")
    if not labels:
        raise UserError(f"{path}: columns maps no answer column of tree {schema.name!r}")
    return labels, totals
