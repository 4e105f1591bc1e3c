"""FITS files for the tests, written with astropy from simulated flux: every layout a survey
cutout comes in, and every way one can be broken (with the reason it must be refused for)."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
from astropy.io import fits

from gz_experiments.images.fits.stretch import PRESETS
from gz_experiments.images.fits.write import write_fits
from gz_experiments.simulate.latents import galaxy, sample_latents
from gz_experiments.simulate.render import BANDS, render_flux

SIMULATOR = PRESETS["simulator"]  # the stretch that turns this flux into the simulator's PNGs
SIZE = 40  # FITS side: the tests store 32 px, so every FITS is also resized
# name -> file suffix; every layout holds g, r, z except "single" (one unnamed band).
LAYOUTS = {
    "cube": ".fits",  # band-first cube, BANDS='grz' (Legacy Surveys cutout style)
    "cube_last": ".fits",  # band-last cube, named by BAND0.. keywords
    "multi_hdu": ".fits",  # one 2-D HDU per band, named by FILTER / BAND / EXTNAME
    "single": ".fits",  # one unnamed 2-D band: replicated to every channel
    "gzipped": ".fits.gz",
    "tile_compressed": ".fits.fz",
}
# name -> a fragment of the reason the file is refused for
BROKEN = {
    "no_image": "no image HDU with data",
    "wrong_dims": "image has 1 dimension(s)",
    "all_nan": "all pixels of band z are NaN/inf/blank",
    "truncated": "truncated file",
    "bitpix": "unsupported BITPIX 24",
    "too_large": "too large: 10000000000 pixels",
}


def simulated_flux(n: int, size: int = SIZE, seed: int = 0) -> list[np.ndarray]:
    """g, r, z flux (3, size, size) of n simulated galaxies, as the simulator renders them."""
    latents = sample_latents(seed, n)
    return [
        render_flux(galaxy(latents, i), size, np.random.default_rng([seed, i])) for i in range(n)
    ]


def write_layout(stem: Path, flux: np.ndarray, layout: str) -> Path:
    """`flux` (g, r, z; row 0 on top) written at `stem` + the layout's suffix."""
    path = stem.with_name(stem.name + LAYOUTS[layout])
    bottom_up = np.ascontiguousarray(flux[:, ::-1])  # FITS row 1 is the bottom of the picture
    if layout in ("cube", "gzipped", "tile_compressed"):
        return write_fits(path, flux, BANDS, 0.262)  # .gz / .fz chosen by the suffix
    if layout == "cube_last":
        header = fits.Header([(f"BAND{i}", b) for i, b in enumerate(BANDS)])
        hdus = [fits.PrimaryHDU(bottom_up.transpose(1, 2, 0).copy(), header)]
    elif layout == "multi_hdu":
        g, r, z = bottom_up
        hdus = [
            fits.PrimaryHDU(g, fits.Header([("FILTER", "g")])),
            fits.ImageHDU(r, fits.Header([("BAND", "r")])),
            fits.ImageHDU(z, name="z"),  # astropy writes EXTNAME 'Z': matched ignoring case
        ]
    else:
        hdus = [fits.PrimaryHDU(bottom_up[1])]
    fits.HDUList(hdus).writeto(path, overwrite=True)
    return path


def write_broken(folder: Path, name: str) -> Path:
    """A FITS file broken in the way `name` (a key of BROKEN) says."""
    path = folder / f"{name}.fits"
    flux = simulated_flux(1, 16, seed=9)[0]
    if name == "no_image":
        table = fits.BinTableHDU.from_columns([fits.Column("a", "E", array=np.ones(3))])
        fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    elif name == "wrong_dims":
        fits.PrimaryHDU(np.ones(64, np.float32)).writeto(path)
    elif name == "all_nan":
        flux[2] = np.nan
        write_fits(path, flux, BANDS, 0.262)
    elif name == "truncated":
        whole = write_fits(path, flux, BANDS, 0.262).read_bytes()
        path.write_bytes(whole[: len(whole) // 2])  # into the data, not just its padding
    elif name == "bitpix":
        path.write_bytes(
            header_block(SIMPLE="T", BITPIX=24, NAXIS=2, NAXIS1=4, NAXIS2=4) + bytes(2880)
        )
    elif name == "too_large":
        path.write_bytes(header_block(SIMPLE="T", BITPIX=-32, NAXIS=2, NAXIS1=10**5, NAXIS2=10**5))
    else:
        raise ValueError(name)
    return path


def header_block(**cards) -> bytes:
    """A hand-made header (no data): lets a file claim what astropy would not write."""
    lines = [f"{k:<8}= {v:>20}".ljust(80) for k, v in cards.items()] + ["END".ljust(80)]
    text = "".join(lines)
    return text.ljust(-(-len(text) // 2880) * 2880).encode("ascii")


def gzip_bytes(path: Path) -> bytes:
    return gzip.compress(path.read_bytes())


def gzip_bomb(head: bytes, zeros: int) -> bytes:
    """`head` then `zeros` zero bytes, gzipped in a stream (~1000:1, never all in memory)."""
    pack = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts, chunk = [pack.compress(head)], bytes(2**20)
    parts += [pack.compress(chunk) for _ in range(zeros // len(chunk))]
    return b"".join([*parts, pack.flush()])


def huge_header() -> bytes:
    """A FITS header declaring 20000 x 20000 x 3 float64 values, and one block of data."""
    header = fits.Header([("SIMPLE", True), ("BITPIX", -64), ("NAXIS", 3), ("NAXIS1", 20000),
                          ("NAXIS2", 20000), ("NAXIS3", 3)])  # fmt: skip
    return header.tostring().encode() + bytes(2880)
