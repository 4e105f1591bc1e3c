"""run_combine(config) -> CombineResult: catalogs of several campaigns -> one pretraining catalog.

    result = run_combine(CombineConfig.resolve("cpu",
        catalogs="gz2/catalog.parquet,gz1.csv", trees="kaggle-gz2,gz1", campaigns="gz2,gz1",
        class_columns={"gz1": "gz1_class_name"}, out="pretrain"))
    # then: shard catalog=pretrain/catalog.parquet schema=pretrain/tree.yaml; train

Each catalog is read and checked as `shard` would read it on its own tree (a bad cell stops the
run naming file, row and column: nothing is dropped), its label columns are renamed into the
derived tree (campaigns.side_by_side) and the catalogs are stacked. A galaxy (id_str) in several
catalogs is one row holding each campaign's votes in that campaign's columns, with the image of
the first catalog listed that has it (as ingest merges release files); `sources` says which
campaigns labelled it. Rows read = catalog rows behind the output, per catalog and in total.

Writes out/catalog.parquet (the standard catalog: id_str, file_loc, votes, `{q}_total-votes`,
sources), out/tree.yaml (the derived tree, with its campaigns) and out/combine.json. No MLflow,
no printing, no TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from gz_experiments.atomic import write_text
from gz_experiments.campaigns import check_campaign_names, label_renames, side_by_side
from gz_experiments.catalog import FILE_COL, ID_COL, file_sha256, load_catalog
from gz_experiments.config.combine import AUTO, CombineConfig
from gz_experiments.errors import UserError
from gz_experiments.ingest import outputs
from gz_experiments.ingest.merge import SOURCES_COL, merge_on_id, rows_behind
from gz_experiments.ingest.run import standard_catalog
from gz_experiments.schema import Schema, get_schema

CATALOG_NAME = outputs.CATALOG_NAME
TREE_NAME = "tree.yaml"
MANIFEST_NAME = "combine.json"


@dataclass(frozen=True)
class CampaignSummary:
    campaign: str
    path: str  # absolute
    sha256: str
    tree: str
    class_column: str
    rows_read: int
    galaxies_also_in_earlier: int  # of its rows, galaxies an earlier catalog already had


@dataclass(frozen=True)
class CombineResult:
    out_dir: Path
    catalog: Path
    tree_file: Path
    manifest: Path
    schema: Schema
    fractional_votes: bool
    n_galaxies: int
    catalog_sha256: str
    campaigns: tuple[CampaignSummary, ...]
    galaxies_per_campaign: dict[str, int]  # galaxies with any vote from that campaign

    @property
    def rows_read(self) -> int:
        return sum(c.rows_read for c in self.campaigns)

    def shard_command(self) -> str:
        fractional = " -P fractional_votes=true" if self.fractional_votes else ""
        return (
            f"mlflow run . -e shard --env-manager local -P catalog={self.catalog} "
            f"-P schema={self.tree_file}{fractional} -P shard_dir=<folder>"
        )


@dataclass(frozen=True)
class _Part:
    campaign: str
    path: Path
    tree: Schema
    class_column: str


def run_combine(config: CombineConfig) -> CombineResult:
    parts = _parts(config)
    schema = side_by_side({p.campaign: p.tree for p in parts}, config.name)
    out = _prepare_out(Path(config.out), config.overwrite)
    frames = [_read(part, config) for part in parts]
    votes, also_in = _stack(frames, parts, schema)
    catalog = standard_catalog(votes, schema, config.fractional_votes)
    _reconcile(frames, catalog)

    tree_file = out / TREE_NAME
    import yaml

    write_text(tree_file, yaml.safe_dump(schema.to_dict(), sort_keys=False))
    note = {"tree": str(tree_file), "count_mode": "combined",
            "fractional_votes": config.fractional_votes}  # fmt: skip
    outputs.write_catalog(out / CATALOG_NAME, catalog, note)
    summaries = tuple(
        CampaignSummary(
            campaign=p.campaign,
            path=str(p.path.resolve()),
            sha256=file_sha256(p.path),
            tree=p.tree.name,
            class_column=p.class_column,
            rows_read=len(frame),
            galaxies_also_in_earlier=n,
        )
        for p, frame, n in zip(parts, frames, also_in, strict=True)
    )
    labelled_by = catalog[SOURCES_COL].str.split("+").map(set)
    per_campaign = {p.campaign: int(labelled_by.map({p.campaign}.issubset).sum()) for p in parts}
    result = CombineResult(
        out_dir=out,
        catalog=out / CATALOG_NAME,
        tree_file=tree_file,
        manifest=out / MANIFEST_NAME,
        schema=schema,
        fractional_votes=config.fractional_votes,
        n_galaxies=len(catalog),
        catalog_sha256=file_sha256(out / CATALOG_NAME),
        campaigns=summaries,
        galaxies_per_campaign=per_campaign,
    )
    manifest = {
        "step": "combine",
        "tree": schema.to_dict(),
        "catalog": {
            "path": CATALOG_NAME,
            "rows": result.n_galaxies,
            "sha256": result.catalog_sha256,
        },  # fmt: skip
        "rows": {"read": result.rows_read, "galaxies": result.n_galaxies},
        "image_rule": "the first listed catalog that has the galaxy",
        "galaxies_per_campaign": per_campaign,
        "campaigns": [asdict(s) for s in summaries],
        "config": config.to_dict(),
    }
    write_text(result.manifest, json.dumps(manifest, indent=2) + "\n")
    return result


def _parts(config: CombineConfig) -> list[_Part]:
    paths = [Path(c) for c in config.catalogs]
    for path in paths:
        if not path.is_file():
            raise UserError(f"{path}: catalog not found (catalogs=)")
    repeated = [p for i, p in enumerate(paths) if p.resolve() in {q.resolve() for q in paths[:i]}]
    if repeated:
        raise UserError(f"{repeated[0]}: given twice in catalogs; give each catalog once")
    given = config.trees or (AUTO,) * len(paths)
    trees = [_noted(p) if t == AUTO else get_schema(t) for t, p in zip(given, paths, strict=True)]
    campaigns = list(config.campaigns) or [t.name for t in trees]
    if len(set(campaigns)) < len(campaigns):
        raise UserError(
            f"two catalogs are campaign {sorted(c for c in campaigns if campaigns.count(c) > 1)[0]!r} "
            f"(campaigns: {', '.join(campaigns)}): name each catalog's campaign, e.g. "
            f"campaigns={','.join(f'{c}-{i + 1}' for i, c in enumerate(campaigns))}"
        )
    check_campaign_names(campaigns)  # before class_columns, which are keyed by campaign
    unknown = sorted(set(config.class_columns) - set(campaigns))
    if unknown:
        raise UserError(
            f"class_columns names campaign(s) {unknown}; the campaigns are {', '.join(campaigns)}"
        )
    return [
        _Part(c, p, t, config.class_columns.get(c, ""))
        for c, p, t in zip(campaigns, paths, trees, strict=True)
    ]


def _noted(path: Path) -> Schema:
    """The tree ingest wrote into a catalog.parquet's note; other catalogs must name theirs."""
    note = outputs.read_catalog_note(path) if path.suffix.lower() in (".parquet", ".pq") else {}
    if not note.get("tree"):
        raise UserError(
            f"{path}: the catalog does not say its tree (only ingest's catalog.parquet does): "
            f"name it in trees=<one per catalog>, e.g. trees=auto,gz1"
        )
    return get_schema(note["tree"])


def _read(part: _Part, config: CombineConfig) -> pd.DataFrame:
    """The catalog checked on its own tree; label columns renamed into the combined tree."""
    df = load_catalog(
        part.path,
        part.tree,
        fill_missing_votes=config.fill_missing_votes,
        missing_questions=config.missing_questions,
        class_column=part.class_column,
        fractional_votes=config.fractional_votes,
        check_files=False,  # shard records unreadable images as rejects, with reasons
    )
    renames = label_renames(part.campaign, part.tree)
    votes = df[list(renames)].rename(columns=renames).astype("float64")
    return pd.concat([df[[ID_COL, FILE_COL]], votes], axis=1)


def _stack(frames: list[pd.DataFrame], parts: list[_Part], schema: Schema):
    """One row per galaxy (ingest's merge rule), and per catalog how many of its galaxies an
    earlier catalog already had."""
    seen: set[str] = set()
    also_in = []
    for frame in frames:
        also_in.append(int(frame[ID_COL].isin(seen).sum()))
        seen.update(frame[ID_COL])
    return merge_on_id(frames, [p.campaign for p in parts], schema), also_in


def _reconcile(frames: list[pd.DataFrame], catalog: pd.DataFrame) -> None:
    """Every row read is behind exactly one output row (a galaxy in two catalogs: two rows)."""
    read, behind = sum(len(f) for f in frames), rows_behind(catalog)
    if read != behind:  # a bug in combine, never the user's
        raise AssertionError(f"{read} catalog rows read but {behind} behind the combined catalog")


def _prepare_out(out: Path, overwrite: bool) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    if (out / CATALOG_NAME).exists() and not overwrite:
        raise UserError(
            f"{out}: already holds a {CATALOG_NAME}; pass overwrite=true to replace it, or "
            f"choose another out folder"
        )
    for name in (CATALOG_NAME, TREE_NAME, MANIFEST_NAME):
        (out / name).unlink(missing_ok=True)
    return out.resolve()
