"""Release adapters by name: where each public Galaxy Zoo file keeps ids, images and votes.

    get_release("gzd5").columns(header, path)  -> SourceColumns (file-level checks)
    get_release("gzd5").images(table, ids, ImageRoot(folder)) -> ImagePaths

| release    | file                             | id       | images, under `images`          |
|------------|----------------------------------|----------|---------------------------------|
| gzd5       | gz_decals_volunteers_5.csv       | iauname  | png_loc (a relative path)       |
| gzd12      | gz_decals_volunteers_1_and_2.csv | iauname  | dr5/<iauname[:4]>/<iauname>.png |
| gz2        | gz2_hart16.csv (Hart+16)         | dr7objid | <asset_id>.jpg, via the mapping |
| kaggle-gz2 | training_solutions_rev1.csv      | GalaxyID | <GalaxyID>.jpg                  |
| generic    | any table + a YAML column map    | (map)    | (map)                           |

Each adapter names labels in its own tree (gzd12's `how-rounded_completely` becomes
`how-rounded-dr12_completely`), so sources of different campaigns never share a column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd

from gz_experiments.config.ingest import GENERIC, RELEASE_NAMES
from gz_experiments.errors import UserError
from gz_experiments.ingest.fractions import kaggle_columns
from gz_experiments.schema import Schema, get_schema

GZ2_MAPPING_NAME = "gz2_filename_mapping.csv"


@lru_cache(maxsize=32)
def load_tree(name_or_path: str) -> Schema:
    """A built-in tree or a tree file, parsed once."""
    return get_schema(name_or_path)


@dataclass(frozen=True)
class SourceColumns:
    """Where one file keeps what ingest needs; label columns are named in the release's tree."""

    id_col: str
    labels: dict[str, str]  # label column -> the file's column
    totals: dict[str, str] = field(default_factory=dict)  # question -> the file's total column
    absent: tuple[str, ...] = ()  # questions without columns: never asked
    extra: tuple[str, ...] = ()  # other columns the images need (png_loc, sample)

    @property
    def needed(self) -> list[str]:
        wanted = [self.id_col, *self.extra, *self.labels.values(), *self.totals.values()]
        return list(dict.fromkeys(wanted))


@dataclass(frozen=True)
class ImageRoot:
    folder: Path  # images are looked up under this folder
    filename_mapping: Path | None = None  # gz2: objid -> asset_id table


@dataclass(frozen=True)
class ImagePaths:
    paths: pd.Series  # absolute paths as text; None where no path could be built
    why_none: pd.Series  # where paths is None: why (naming the column)
    column: str  # the column the paths come from, for "image not found" reasons
    how: str  # how they were built from it


class Release:
    """One public release format. Subclasses set the class attributes and `columns`/`images`."""

    name = ""
    tree = ""  # the tree its labels are named in
    summary = ""
    values = "counts"  # or "cumulative" (Kaggle's shares of all volunteers)

    def schema(self) -> Schema:
        return load_tree(self.tree)

    def count_mode(self, configured: str) -> str:
        """How its values become votes: counts as they are, else the configured mode."""
        return "counts" if self.values == "counts" else configured

    def columns(self, header: list[str], source: Path) -> SourceColumns:
        raise NotImplementedError

    def check_root(self, root: ImageRoot) -> None:
        """File-level checks of what the images need, before any row is read."""

    def images(self, table: pd.DataFrame, ids: pd.Series, root: ImageRoot) -> ImagePaths:
        raise NotImplementedError


def pattern_images(ids: pd.Series, root: ImageRoot, pattern: str, id_col: str) -> ImagePaths:
    """root / pattern, with {id} the galaxy id ({id:.4}: its first 4 characters)."""
    paths = ids.map(lambda i: None if i is None else str(root.folder / pattern.format(id=i)))
    return ImagePaths(
        paths, pd.Series("", index=ids.index), id_col, f"as {pattern} under {root.folder}"
    )


def column_images(table: pd.DataFrame, column: str, root: ImageRoot) -> ImagePaths:
    """A column of paths relative to root (absolute paths are kept)."""
    raw = table[column]
    empty = raw.isna() | (raw.astype(str).str.strip() == "")
    paths = raw.where(~empty, None).map(lambda p: None if p is None else str(root.folder / p))
    why = pd.Series(f"column '{column}' is empty", index=raw.index).where(empty, "")
    return ImagePaths(paths, why, column, f"relative to {root.folder}")


def missing_columns(source: Path, release: Release, missing: list[str], header) -> UserError:
    guess = detect_release(header)
    if guess and guess != release.name:
        hint = f"this looks like a {guess} file: pass releases={guess}"
    else:
        hint = "is it the unmodified release file?"
    shown = ", ".join(repr(c) for c in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    return UserError(
        f"{source}: missing column(s) {shown}{more} required by release {release.name} "
        f"({release.summary}); {hint}"
    )


class DecalsRelease(Release):
    """GZ DECaLS volunteer catalogues: `{q}_{a}` counts and `{q}_total-votes`, unsuffixed."""

    def __init__(self, name: str, tree: str, suffix: str, summary: str, image: str, pattern: str):
        self.name, self.tree, self.suffix, self.summary = name, tree, suffix, summary
        self.image_col, self.pattern = image, pattern

    def columns(self, header: list[str], source: Path) -> SourceColumns:
        have = set(header)
        labels, totals = {}, {}
        for q in self.schema().questions:
            stem = q.name.removesuffix(self.suffix)
            labels.update({a.label_col: f"{stem}_{a.name}" for a in q.answers})
            # The Zenodo README says `{q}_total`; the files themselves say `{q}_total-votes`.
            names = (f"{stem}_total-votes", f"{stem}_total")
            totals[q.name] = next((n for n in names if n in have), names[0])
        extra = (self.image_col,) if self.image_col else ()
        found = SourceColumns("iauname", labels, totals, extra=extra)
        missing = [c for c in found.needed if c not in have]
        if missing:
            raise missing_columns(source, self, missing, header)
        return found

    def images(self, table: pd.DataFrame, ids: pd.Series, root: ImageRoot) -> ImagePaths:
        if self.image_col:
            return column_images(table, self.image_col, root)
        return pattern_images(ids, root, self.pattern, "iauname")


# gz2 tree label -> Hart et al. (2016) column stem; the file's count is `{stem}_count`.
# T08 (odd feature) is not in the gz2 tree and is left out.
HART16_STEMS = {
    "smooth-or-featured_smooth": "t01_smooth_or_features_a01_smooth",
    "smooth-or-featured_featured-or-disk": "t01_smooth_or_features_a02_features_or_disk",
    "smooth-or-featured_artifact": "t01_smooth_or_features_a03_star_or_artifact",
    "disk-edge-on_yes": "t02_edgeon_a04_yes",
    "disk-edge-on_no": "t02_edgeon_a05_no",
    "has-spiral-arms_yes": "t04_spiral_a08_spiral",
    "has-spiral-arms_no": "t04_spiral_a09_no_spiral",
    "bar_yes": "t03_bar_a06_bar",
    "bar_no": "t03_bar_a07_no_bar",
    "bulge-size_dominant": "t05_bulge_prominence_a13_dominant",
    "bulge-size_obvious": "t05_bulge_prominence_a12_obvious",
    "bulge-size_just-noticeable": "t05_bulge_prominence_a11_just_noticeable",
    "bulge-size_no": "t05_bulge_prominence_a10_no_bulge",
    "something-odd_yes": "t06_odd_a14_yes",
    "something-odd_no": "t06_odd_a15_no",
    "how-rounded_round": "t07_rounded_a16_completely_round",
    "how-rounded_in-between": "t07_rounded_a17_in_between",
    "how-rounded_cigar": "t07_rounded_a18_cigar_shaped",
    "bulge-shape_round": "t09_bulge_shape_a25_rounded",
    "bulge-shape_boxy": "t09_bulge_shape_a26_boxy",
    "bulge-shape_no-bulge": "t09_bulge_shape_a27_no_bulge",
    "spiral-winding_tight": "t10_arms_winding_a28_tight",
    "spiral-winding_medium": "t10_arms_winding_a29_medium",
    "spiral-winding_loose": "t10_arms_winding_a30_loose",
    "spiral-arm-count_1": "t11_arms_number_a31_1",
    "spiral-arm-count_2": "t11_arms_number_a32_2",
    "spiral-arm-count_3": "t11_arms_number_a33_3",
    "spiral-arm-count_4": "t11_arms_number_a34_4",
    "spiral-arm-count_more-than-4": "t11_arms_number_a36_more_than_4",
    "spiral-arm-count_cant-tell": "t11_arms_number_a37_cant_tell",
}


class Gz2Release(Release):
    """Hart+16 GZ2 table: raw `_count` columns (not the weighted or debiased ones)."""

    name, tree = "gz2", "gz2"
    summary = "GZ2 gz2_hart16.csv: dr7objid, t01_..._a01_smooth_count ..."

    def columns(self, header: list[str], source: Path) -> SourceColumns:
        labels = {label: f"{stem}_count" for label, stem in HART16_STEMS.items()}
        # GZ2 galaxies were shown in several samples; `sample` tells their images apart.
        extra = ("sample",) if "sample" in header else ()
        found = SourceColumns("dr7objid", labels, extra=extra)
        missing = [c for c in found.needed if c not in set(header)]
        if missing:
            raise missing_columns(source, self, missing, header)
        return found

    def check_root(self, root: ImageRoot) -> None:
        read_gz2_mapping(root.filename_mapping, header_only=True)

    def images(self, table: pd.DataFrame, ids: pd.Series, root: ImageRoot) -> ImagePaths:
        mapping_path = root.filename_mapping
        assets = read_gz2_mapping(mapping_path)
        by_objid = _asset_ids(assets["objid"], assets)
        if "sample" in table.columns and "sample" in assets.columns:
            # GZ2 showed some galaxies in several samples, each with its own image.
            by_sample = _asset_ids(assets["objid"] + "|" + assets["sample"], assets)
            samples = table["sample"].astype(str)
            found = [
                by_sample.get(f"{i}|{s}") or by_objid.get(i, []) if i else None
                for i, s in zip(ids, samples, strict=True)
            ]
        else:
            found = [by_objid.get(i, []) if i else None for i in ids]
        found = pd.Series(found, index=ids.index, dtype=object)

        def path(asset_ids: list[str] | None) -> str | None:
            return (
                str(root.folder / f"{asset_ids[0]}.jpg")
                if asset_ids and len(asset_ids) == 1
                else None
            )

        def why(asset_ids: list[str] | None) -> str:
            if asset_ids is None:  # no id: already a problem of its own
                return ""
            if not asset_ids:
                return f"column 'dr7objid': no asset_id for it in {mapping_path}"
            if len(asset_ids) > 1:
                return f"column 'dr7objid': several asset_ids {asset_ids} for it in {mapping_path}"
            return ""

        how = f"as <asset_id>.jpg under {root.folder}, asset_id from {mapping_path}"
        return ImagePaths(found.map(path), found.map(why), "dr7objid", how)


def _asset_ids(keys: pd.Series, assets: pd.DataFrame) -> dict[str, list[str]]:
    return {k: sorted(set(v)) for k, v in assets["asset_id"].groupby(keys)}


def read_gz2_mapping(path: Path, header_only: bool = False) -> pd.DataFrame:
    if not path.is_file():
        raise UserError(
            f"{path}: the GZ2 image mapping ({GZ2_MAPPING_NAME}: objid -> asset_id) is not "
            f"there; download it with the GZ2 images and pass filename_mapping=<its path>"
        )
    try:
        assets = pd.read_csv(path, dtype=str, nrows=0 if header_only else None)
    except Exception as exc:
        raise UserError(f"{path}: cannot read it as CSV: {exc}".replace("\n", " ")) from None
    missing = [c for c in ("objid", "asset_id") if c not in assets.columns]
    if missing:
        raise UserError(
            f"{path}: missing column(s) {missing} of the GZ2 image mapping; expected "
            f"{GZ2_MAPPING_NAME} as published (objid, sample, asset_id)"
        )
    return assets.dropna(subset=["objid", "asset_id"])


class KaggleRelease(Release):
    """Kaggle's GZ2 challenge: cumulative fractions Class1.1 ... Class11.6 by tree position."""

    name, tree, values = "kaggle-gz2", "kaggle-gz2", "cumulative"
    summary = "Kaggle training_solutions_rev1.csv: GalaxyID, Class1.1 ... Class11.6"
    id_columns = ("GalaxyID", "id_str")  # id_str: the project's own catalogs of Kaggle rows

    def columns(self, header: list[str], source: Path) -> SourceColumns:
        have = set(header)
        id_col = next((c for c in self.id_columns if c in have), None)
        schema = self.schema()
        names = dict(zip(schema.label_cols, kaggle_columns(schema), strict=True))
        labels, absent, partial = {}, [], []
        for q in schema.questions:
            cols = [names[c] for c in q.label_cols]
            found = [c for c in cols if c in have]
            if not found:
                absent.append(q.name)  # a subset of Kaggle's columns: never asked here
                continue
            partial += [c for c in cols if c not in have]
            labels.update({label: names[label] for label in q.label_cols})
        missing = ([] if id_col else [self.id_columns[0]]) + partial
        if not labels:
            missing.append("Class1.1")
        if missing:
            raise missing_columns(source, self, missing, header)
        return SourceColumns(id_col, labels, absent=tuple(absent))

    def images(self, table: pd.DataFrame, ids: pd.Series, root: ImageRoot) -> ImagePaths:
        return pattern_images(ids, root, "{id}.jpg", "GalaxyID")


RELEASES: dict[str, Release] = {
    "gzd5": DecalsRelease(
        "gzd5",
        "gzd5",
        "",
        "GZD-5 gz_decals_volunteers_5.csv: iauname, png_loc, {q}_{a}",
        image="png_loc",
        pattern="",
    ),
    "gzd12": DecalsRelease(
        "gzd12",
        "gzd12",
        "-dr12",
        "GZD-1/2 gz_decals_volunteers_1_and_2.csv: iauname, {q}_{a}",
        image="",
        pattern="dr5/{id:.4}/{id}.png",
    ),
    "gz2": Gz2Release(),
    "kaggle-gz2": KaggleRelease(),
}
if (*RELEASES, GENERIC) != RELEASE_NAMES:  # the config offers exactly the adapters defined here
    raise RuntimeError(f"release adapters {list(RELEASES)} differ from {RELEASE_NAMES}")

# Trees that hold several releases side by side, for sources of different campaigns.
MERGED_TREES = {frozenset({"gzd5", "gzd12"}): "decals-all"}


def detect_release(header: list[str]) -> str | None:
    """The release a header looks like, from columns only that release has; None if unsure."""
    have = set(header)
    signatures = {
        "gzd5": {"iauname", "png_loc", "bar_strong"},
        "gzd12": {"iauname", "how-rounded_completely"},
        "gz2": {"dr7objid", "t01_smooth_or_features_a01_smooth_count"},
        "kaggle-gz2": {"Class1.1"},
    }
    return next((name for name, cols in signatures.items() if cols <= have), None)
