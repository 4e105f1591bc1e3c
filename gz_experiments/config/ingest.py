"""Config of the ingest step: public Galaxy Zoo release files -> one standard catalog.

    IngestConfig.resolve("paper", sources="volunteers_1_and_2.csv,volunteers_5.csv",
                         releases="gzd12,gzd5", out="decals")   # -> tree decals-all

Only the shape of the config is checked here (nothing is read): files are checked by
`run_ingest`, before it reads any row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from gz_experiments.config.base import StepConfig, setting, split_list_fields

# The release adapters of gz_experiments.ingest.releases (checked there), plus the generic one.
GENERIC, AUTO = "generic", "auto"
RELEASE_NAMES = ("gzd5", "gzd12", "gz2", "kaggle-gz2", GENERIC)
COUNT_MODES = ("pseudo", "fractional")  # vote fractions -> whole votes, or left fractional
SOURCE_SUFFIXES = (".csv", ".parquet", ".pq")
LIST_FIELDS = ("sources", "releases", "images")


@dataclass(frozen=True)
class IngestConfig(StepConfig):
    """Public Galaxy Zoo release files -> one standard catalog (gz_experiments/ingest/run.py)."""

    STEP: ClassVar[str] = "ingest"
    sources: tuple[str, ...] = setting((), "release files (.csv/.parquet), comma-separated")
    releases: tuple[str, ...] = setting(
        (AUTO,),
        "release of each source, or one for all (auto: from the columns)",
        choices=(*RELEASE_NAMES, AUTO),
    )
    out: str = setting("", "output folder: catalog.parquet, rejected.csv, ingest.json")
    images: tuple[str, ...] = setting(
        (), "image folder of each source, or one for all; empty = each source's own folder"
    )
    tree: str = setting(
        "", "tree of the catalog; empty = the releases' own (gzd12+gzd5: decals-all)"
    )
    mapping: str = setting("", "release generic: YAML file naming its columns", path=True)
    filename_mapping: str = setting(
        "",
        "release gz2: objid -> asset_id csv; empty = gz2_filename_mapping.csv beside it",
        path=True,
    )
    count_mode: str = setting(
        "pseudo",
        "vote fractions (Kaggle) -> whole votes (pseudo) or unrounded (fractional)",
        choices=COUNT_MODES,
    )
    # Kaggle: "typically 40-50" classifications per GZ2 galaxy (shared/data/README.md: 40-50;
    # the 3 Hart+16 rows there: 34-44). The low end: a pseudo-count claims how much evidence a
    # fraction holds, and Kaggle's weighted fractions hold no more than their volunteers.
    n_volunteers: int = setting(40, "volunteers per galaxy behind vote fractions", ge=1, le=100_000)
    votes_outside_answers: str = setting(
        "accept",
        "a _total-votes above its answers' sum (votes for answers the file does not "
        "list, as GZD-5's merging): accept the row's listed answers, or reject the row",
        choices=("accept", "reject"),
    )
    images_outside: bool = setting(
        False,
        "accept image paths that lead out of the image folder (../, absolute, links); "
        "by default such a row is rejected",
    )
    max_rejected_fraction: float = setting(0.0, "share of rejected rows tolerated", ge=0, le=1)
    max_rows: int = setting(0, "0 = every row; else the first rows of each source", ge=0)
    overwrite: bool = setting(False, "replace the catalog already in out")

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "debug": {"max_rows": 100},  # a quick look at a 250k-row release
        "cpu": {},
        "paper": {},
    }

    def __post_init__(self) -> None:
        split_list_fields(self, LIST_FIELDS)
        super().__post_init__()

    def problems(self) -> Iterator[str]:
        n = len(self.sources)
        if not n:
            yield "sources is empty: give release files, e.g. sources=gz_decals_volunteers_5.csv"
        if not self.out:
            yield "out is empty: give the output folder"
        for source in self.sources:
            if Path(source).suffix.lower() not in SOURCE_SUFFIXES:
                yield f"source {source!r} is not a {'/'.join(SOURCE_SUFFIXES)} file"
        if len(self.releases) not in (1, n):
            yield f"{len(self.releases)} releases for {n} sources: give one per source, or one"
        if len(self.images) not in (0, 1, n):
            yield f"{len(self.images)} image folders for {n} sources: give one per source, or one"
        if GENERIC in self.releases and not self.mapping:
            yield "release generic needs mapping=<YAML file naming its columns>"
        if self.mapping and GENERIC not in self.releases:
            yield "mapping is read only by release generic: add releases=generic or drop mapping"

    def per_source(self) -> list[tuple[str, str, str]]:
        """(source, release, images folder) per source; an empty folder = the source's own."""
        n = len(self.sources)
        releases = self.releases * n if len(self.releases) == 1 else self.releases
        images = self.images * n if len(self.images) == 1 else self.images or ("",) * n
        return list(zip(self.sources, releases, images, strict=True))
