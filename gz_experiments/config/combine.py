"""Config of the combine step: catalogs of several campaigns (each on its own tree) -> one catalog.

    CombineConfig.resolve("cpu", catalogs="gz2/catalog.parquet,gz1.csv,decals/catalog.parquet",
                          trees="kaggle-gz2,gz1,gzd5", campaigns="gz2,gz1,gzd5",
                          class_columns={"gz1": "gz1_class_name"}, out="pretrain")

Only the shape is checked here; the catalogs and trees are read by `combine.run_combine`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from gz_experiments.config.base import StepConfig, setting, split_list_fields

AUTO = "auto"  # a tree: the one ingest noted in the catalog

CATALOG_SUFFIXES = (".csv", ".parquet", ".pq")
LIST_FIELDS = ("catalogs", "trees", "campaigns")


@dataclass(frozen=True)
class CampaignFields:
    """The catalogs of several campaigns and how to read each: what `combine` and `pretrain`
    (which runs combine first) both take."""

    catalogs: tuple[str, ...] = setting(
        (), "catalogs (.csv/.parquet), one per campaign, comma-separated"
    )
    trees: tuple[str, ...] = setting(
        (),
        "tree of each catalog (built-in name or file; auto = the tree ingest noted in its "
        "catalog.parquet); empty = auto for all",
    )
    campaigns: tuple[str, ...] = setting(
        (),
        "campaign name of each catalog (its questions' suffix); empty = each tree's name",
    )
    class_columns: dict[str, str] = setting(
        help="campaign=column for catalogs with one class label per galaxy (e.g. gz1=gz1_class_name)",
        default_factory=dict,
    )
    fractional_votes: bool = setting(False, "accept non-integer votes (Kaggle fractions)")
    fill_missing_votes: bool = setting(False, "count empty vote cells as 0 votes")
    missing_questions: str = setting(
        "error", "zero: questions with no columns were never asked", choices=("error", "zero")
    )

    def __post_init__(self) -> None:
        split_list_fields(self, LIST_FIELDS)
        super().__post_init__()  # the StepConfig's checks, with the lists already split

    def campaign_problems(self) -> Iterator[str]:
        n = len(self.catalogs)
        if n < 2:
            yield (
                f"catalogs has {n} catalog(s): give two or more, e.g. "
                f"catalogs=gz2/catalog.parquet,gz1.csv"
            )
        for catalog in self.catalogs:
            if Path(catalog).suffix.lower() not in CATALOG_SUFFIXES:
                yield f"catalog {catalog!r} is not a {'/'.join(CATALOG_SUFFIXES)} file"
        for name, given in (("trees", self.trees), ("campaigns", self.campaigns)):
            if given and len(given) != n:
                yield f"{len(given)} {name} for {n} catalogs: give one per catalog, or none"

    def class_columns_text(self) -> str:
        """class_columns as a -P / flag value: gz1=gz1_class_name,..."""
        return ",".join(f"{k}={v}" for k, v in self.class_columns.items())


@dataclass(frozen=True)
class CombineConfig(CampaignFields, StepConfig):
    """Catalogs of several campaigns -> one catalog on their derived tree (gz_experiments/combine.py)."""

    STEP: ClassVar[str] = "combine"
    out: str = setting("", "output folder: catalog.parquet, tree.yaml, combine.json")
    name: str = setting("", "name of the combined tree; empty = the campaigns joined by +")
    overwrite: bool = setting(False, "replace the catalog already in out")

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"debug": {}, "cpu": {}, "paper": {}}

    def problems(self) -> Iterator[str]:
        yield from self.campaign_problems()
        if not self.out:
            yield "out is empty: give the output folder"
