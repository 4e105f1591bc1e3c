"""`FitsSettings`: how FITS flux becomes the uint8 RGB a shard stores (bands, asinh stretch, clip).

    settings = FitsSettings.preset("decals", bands=("r",), scales=(1 / 0.014,))
    pixels = fits_to_uint8(read_fits("J0001.fits", settings), settings)

The settings are stored in the shard manifest and in the model's spec (`to_dict` / `from_dict`),
so prediction reads FITS exactly as training did. NumPy only: configs, manifests and model specs
import this module without astropy.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from gz_experiments.errors import UserError

# The fields that decide pixel values (max_bad_fraction decides only which files are refused).
STRETCH_FIELDS = ("bands", "scales", "offset", "softening", "black", "white")


@dataclass(frozen=True)
class FitsSettings:
    """How flux in FITS bands becomes uint8 RGB (defaults: the `decals` preset).

    Per channel c (band `bands[c]`), with v = flux * scales[c] + offset:

        level = 255 * (asinh(v / softening) - asinh(black / softening))
                    / (asinh(white / softening) - asinh(black / softening))

    clipped to [0, 255] and rounded half up: v <= black is black, v >= white is white.
    """

    # Band of channel 0 (R), 1 (G), 2 (B). () = the file's bands in file order.
    bands: tuple[str, ...] = ("z", "r", "g")
    # Flux -> stretch units, one per channel (or one for all channels).
    scales: tuple[float, ...] = (1 / 0.019, 1 / 0.014, 1 / 0.008)
    offset: float = 0.0  # added after scaling: a sky pedestal so the background is not black
    softening: float = 1.0  # asinh is linear below about this many units, logarithmic above
    black: float = -0.5  # v mapped to 0
    white: float = 300.0  # v mapped to 255
    # GZ DECaLS DR1 dropped cutouts with > 20% bad pixels in any band (Willett's downloader).
    max_bad_fraction: float = 0.2

    def __post_init__(self):
        if isinstance(self.bands, str):  # tuple("W1") would silently become ("W", "1")
            raise UserError(f"FITS settings: bands must be a list of names, not {self.bands!r}")
        object.__setattr__(self, "bands", tuple(self.bands))
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        # Floats throughout, so settings read back from JSON serialise (and hash) the same way.
        for name in ("offset", "softening", "black", "white", "max_bad_fraction"):
            object.__setattr__(self, name, float(getattr(self, name)))
        problems = _settings_problems(self)
        if problems:
            raise UserError(f"invalid FITS settings: {'; '.join(problems)}")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> FitsSettings:
        """A named preset (see PRESETS), with some fields replaced."""
        if name not in PRESETS:
            raise UserError(f"unknown FITS preset {name!r}; choose one of {sorted(PRESETS)}")
        return replace(PRESETS[name], **overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (lists, not tuples), so a JSON round trip gives an equal dict."""
        data = asdict(self)
        return {**data, "bands": list(self.bands), "scales": list(self.scales)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FitsSettings:
        # Every field is required: a default filled in here could differ from what trained a model.
        known = {f.name for f in fields(cls)}
        missing, unknown = sorted(known - set(data)), sorted(set(data) - known)
        if missing or unknown:
            raise UserError(f"FITS settings: missing fields {missing}, unknown fields {unknown}")
        return cls(**data)

    def same_pixels(self, other: FitsSettings) -> bool:
        """True when both turn the same flux into the same pixels (rejection limits aside)."""
        return all(getattr(self, name) == getattr(other, name) for name in STRETCH_FIELDS)


def _settings_problems(s: FitsSettings) -> list[str]:
    problems = []
    if not all(isinstance(b, str) and b.strip() == b and b for b in s.bands):
        problems.append(f"bands must be non-empty names, got {s.bands}")
    if len(set(s.bands)) != len(s.bands):
        problems.append(f"bands repeat: {s.bands}")
    if not s.scales or not all(math.isfinite(x) and x > 0 for x in s.scales):
        problems.append(f"scales must be positive numbers, got {s.scales}")
    elif s.bands and len(s.scales) not in (1, len(s.bands)):
        problems.append(f"{len(s.scales)} scales for {len(s.bands)} bands (give 1 or one per band)")
    if not all(math.isfinite(getattr(s, x)) for x in ("offset", "softening", "black", "white")):
        problems.append("offset, softening, black and white must be finite numbers")
    if not s.softening > 0:
        problems.append(f"softening must be > 0, got {s.softening}")
    if not s.white > s.black:
        problems.append(f"white ({s.white}) must be above black ({s.black})")
    if not 0 <= s.max_bad_fraction < 1:
        problems.append(f"max_bad_fraction must be in [0, 1), got {s.max_bad_fraction}")
    return problems


PRESETS: dict[str, FitsSettings] = {
    # GZ DECaLS (DR5) subject images: Dustin Lang's DECaLS DR1/DR2 colour-image stretch with the
    # constants of zooniverse/decals `get_dr2_style_image` (Walmsley et al. 2022, MNRAS 509, 3966):
    # flux in nanomaggies divided by g 0.008, r 0.014, z 0.019; asinh with softening 1; black at
    # -0.5, white at 300. Not reproduced: their optional "desaturate" (a cross-band mixing of
    # single-colour pixels) and their final truncation to uint8 (we round: within 1 level).
    "decals": FitsSettings(),
    # gz_experiments.simulate.render.stretch: RGB_SCALE, SKY_LEVEL, STRETCH_SOFTENING, STRETCH_MAX
    # (tests/test_fits.py checks they still agree); flux in r-band sky sigmas of a 424-px image.
    "simulator": FitsSettings(
        bands=("z", "r", "g"),
        scales=(0.7, 1.0, 1.5),
        offset=1.1,
        softening=3.2,
        black=0.0,
        white=480.0,
    ),
}


@dataclass(frozen=True)
class FluxImage:
    """What read_fits found: flux per channel, ready for the stretch."""

    flux: np.ndarray  # float32 (H, W, C), row 0 at the top, bad pixels replaced by the sky
    bands: tuple[str, ...]  # band of each channel ("" where the file names none)
    bad_pixels: tuple[int, ...]  # NaN / inf / BLANK pixels replaced, per channel


def fits_to_uint8(flux_image: FluxImage, settings: FitsSettings) -> np.ndarray:
    """uint8 (H, W, C): the asinh stretch of FitsSettings applied to each channel.

    With the `simulator` preset this is exactly render.stretch (bit for bit, see below).
    """
    channels = flux_image.flux.shape[-1]
    scales = np.asarray(settings.scales, np.float32)
    if len(scales) not in (1, channels):
        raise ValueError(f"{len(scales)} scales for {channels} channels")
    # The simulator's (C, H, W) layout and float32 operation order: the same numpy kernels on the
    # same values, so a simulated galaxy gives exactly render.stretch's bytes.
    flux = np.ascontiguousarray(flux_image.flux.transpose(2, 0, 1))
    value = flux * np.broadcast_to(scales, (channels,))[:, None, None] + np.float32(settings.offset)
    low = np.arcsinh(settings.black / settings.softening)
    gain = np.float32(255 / (np.arcsinh(settings.white / settings.softening) - low))
    level = (np.arcsinh(value * np.float32(1 / settings.softening)) - np.float32(low)) * gain
    pixels = (np.clip(level, 0, 255) + 0.5).astype(np.uint8)  # round half up, as render.stretch
    return np.ascontiguousarray(pixels.transpose(1, 2, 0))
