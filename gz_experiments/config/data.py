"""Configs of the data steps: simulate (the embedded default dataset) and shard."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from gz_experiments.config.base import StepConfig, setting
from gz_experiments.errors import UserError
from gz_experiments.images.fits.stretch import PRESETS as FITS_PRESETS
from gz_experiments.images.fits.stretch import FitsSettings
from gz_experiments.images.raster import DEFAULT_MAX_PIXELS

MAX_IMAGE_SIDE = 2048  # stored images larger than this are a mistake, not a galaxy cutout
ENCODINGS = ("raw", "png")
IMAGE_FORMATS = ("png", "fits")
# FitsSettings fields that fits_stretch may override (bands and scales have their own fields).
FITS_STRETCH_KEYS = ("offset", "softening", "black", "white")


@dataclass(frozen=True)
class SimulateConfig(StepConfig):
    """The embedded default dataset: rendered galaxies + simulated volunteers (gzd5 tree).

    The output depends only on n_galaxies, img_size, seed, image_format and the vote fields
    (gz_experiments/simulate/dataset.py); n_workers changes the speed, never the bytes.
    """

    STEP: ClassVar[str] = "simulate"
    out_dir: str = setting("", "output folder; empty = the cache ($GZ_CACHE_DIR or ~/.cache/...)")
    n_galaxies: int = setting(5000, "galaxies to simulate", ge=1, le=10_000_000)
    img_size: int = setting(128, "stored image side in pixels", ge=8, le=MAX_IMAGE_SIDE)
    seed: int = setting(0, "master seed: same seed, same bytes", ge=0)
    votes_high: int = setting(40, "volunteers per galaxy for most galaxies", ge=1, le=10_000)
    votes_low: int = setting(
        5, "volunteers for the low-vote share (GZD-5's early sample)", ge=1, le=10_000
    )
    low_vote_fraction: float = setting(
        0.2, "share of galaxies with votes_low volunteers", ge=0, le=1
    )
    image_format: str = setting(
        "png", "png colour images, or fits flux cubes (g, r, z)", choices=IMAGE_FORMATS
    )
    n_workers: int = setting(0, "render processes; 0 = all cores", ge=0, le=256)

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "debug": {"n_galaxies": 64, "img_size": 64},  # < 1 s
        "cpu": {"n_galaxies": 5000, "img_size": 128},  # ~15 CPU-s, 160 MB
        # Rendered straight at the paper's training input size (it resized 424 -> 300): the
        # same pixels for half the time and disk of 424 (~4 GB, ~6 CPU-min).
        "paper": {"n_galaxies": 20000, "img_size": 300},
    }


@dataclass(frozen=True)
class ShardConfig(StepConfig):
    """Catalog -> TFRecord shards + manifest.json (paper: 300 px, greyscale, 70/10/20, 4096/file)."""

    STEP: ClassVar[str] = "shard"
    catalog: str = setting("", "labelled catalog (.csv/.parquet) -> train/val/test")
    shard_dir: str = setting("", "output folder of the shards and manifest.json")
    schema: str = setting("gzd5", "decision tree: a built-in name or a .yaml/.json file")
    img_size: int = setting(300, "stored image side in pixels", ge=1, le=MAX_IMAGE_SIDE)
    val_fraction: float = setting(0.1, "share of the labelled galaxies for validation", ge=0, lt=1)
    test_fraction: float = setting(0.2, "share of the labelled galaxies for testing", ge=0, lt=1)
    shard_size: int = setting(4096, "galaxies per TFRecord file", ge=1, le=1_000_000)
    greyscale: bool = setting(True, "plain mean of the 3 bands at shard time, as the paper")
    encoding: str = setting(
        "raw", "raw uint8, or png (half the disk, ~2x slower)", choices=ENCODINGS
    )
    unlabelled_catalog: str = setting("", "catalog to predict on -> the 'predict' split, in order")
    max_labelled: int = setting(0, "0 = no cap; else a seeded random subset", ge=0)
    max_unlabelled: int = setting(0, "0 = no cap; else the first rows", ge=0)
    seed: int = setting(42, "seed of the train/val/test split", ge=0)
    overwrite: bool = setting(False, "replace shards written from other inputs")
    max_rejected_fraction: float = setting(0.0, "share of unreadable images tolerated", ge=0, le=1)
    fill_missing_votes: bool = setting(False, "count empty vote cells as 0 votes")
    missing_questions: str = setting(
        "error", "zero: questions with no columns were never asked", choices=("error", "zero")
    )
    class_column: str = setting(
        "", "one class label per galaxy in this column = one vote for that answer (1 question)"
    )
    fractional_votes: bool = setting(
        False, "accept non-integer vote counts (vote fractions x volunteers, e.g. Kaggle GZ2)"
    )
    max_image_pixels: int = setting(
        DEFAULT_MAX_PIXELS,
        "refuse images with more pixels (FITS: pixels x bands) than this (decompression bombs)",
        ge=1,
    )
    n_workers: int = setting(0, "decode processes; 0 = all cores", ge=0, le=256)
    # How FITS flux becomes pixels (images.fits.FitsSettings); recorded in the manifest and the
    # model spec when the catalogs hold FITS files, unused otherwise.
    fits_preset: str = setting(
        "decals",
        "FITS flux -> pixels: decals (the GZ DECaLS colour images' asinh stretch) or simulator",
        choices=tuple(FITS_PRESETS),
    )
    fits_bands: tuple[str, ...] = setting(
        (), "FITS band of each channel R,G,B (e.g. z,r,g; one band = grey); empty = the preset's"
    )
    fits_scales: tuple[float, ...] = setting(
        (), "flux multiplier per band of fits_bands (or one for all); empty = the preset's", gt=0
    )
    fits_stretch: dict[str, str] = setting(
        help="asinh stretch overrides: offset=,softening=,black=,white= (empty = the preset's)",
        default_factory=dict,
    )
    fits_max_bad_fraction: float = setting(
        0.2, "refuse a FITS with more NaN/inf/blank pixels in a band (filled below)", ge=0, lt=1
    )

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "debug": {"img_size": 32, "shard_size": 32},
        "cpu": {"img_size": 64, "shard_size": 1024},
        # Survey cutouts (424 px, the galaxy in the central half): 128 px keeps its detail for
        # the real TrainConfig preset's central crop, in colour (colour, with the wider crop and
        # rate below, took Kaggle GZ2's RMSE ratio from 0.75 to 0.62: benchmarks/bench_real_gz2).
        "real": {"img_size": 128, "shard_size": 1024, "greyscale": False},
        "paper": {},
    }

    def problems(self) -> Iterator[str]:
        if self.val_fraction + self.test_fraction >= 1:
            yield (
                f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction:g} "
                f"must be below 1 (the rest is the training split)"
            )
        yield from self._fits_problems()

    def _fits_problems(self) -> Iterator[str]:
        problems = []
        unknown = sorted(set(self.fits_stretch) - set(FITS_STRETCH_KEYS))
        if unknown:
            known = ", ".join(FITS_STRETCH_KEYS)
            problems.append(f"fits_stretch has unknown key(s) {unknown}; known: {known}")
        for key, text in self.fits_stretch.items():
            try:
                float(text)
            except (TypeError, ValueError):
                problems.append(f"fits_stretch {key}={text!r} is not a number")
        yield from problems
        if problems or any(s <= 0 for s in self.fits_scales):
            return  # a bad scale is already reported by the field's range
        try:
            self.fits_settings()
        except UserError as exc:
            yield f"fits_* fields: {exc}"

    def fits_settings(self) -> FitsSettings:
        """The FitsSettings of this config: the preset, then the fits_* fields given."""
        changes: dict[str, Any] = {k: float(v) for k, v in self.fits_stretch.items()}
        if self.fits_bands:
            changes["bands"] = self.fits_bands
        if self.fits_scales:
            changes["scales"] = self.fits_scales
        return FitsSettings.preset(
            self.fits_preset, max_bad_fraction=self.fits_max_bad_fraction, **changes
        )
