"""Inflating a gzipped FITS file only as far as its headers say it goes (a gzip bomb stops early).

    plain = inflate_fits(gzipped_bytes, max_data_bytes=8 * max_pixels, source=path)

A 1 MB .fits.gz can inflate to gigabytes: a header declaring 64 x 64 x 3 followed by zeros
passes every header check, and inflating the whole stream costs seconds and gigabytes. Here the
stream is inflated block by block while its headers are parsed: each HDU's data size comes from
its header (|BITPIX| / 8 x GCOUNT x (PCOUNT + NAXIS1 x ... x NAXISn), the FITS standard's rule),
so inflation stops at the end of the last declared HDU, one block beyond at most. Anything after
it that is not another extension (padding, or a bomb's zeros) is never inflated. Data declared
beyond `max_data_bytes` is refused before it is inflated.
"""

from __future__ import annotations

import math
import zlib

from gz_experiments.images.raster import ImageError, Source

BLOCK, CARD = 2880, 80
MAX_HEADER_BLOCKS = 100  # 36 cards a block: far beyond any survey cutout's header
MAX_HDUS = 64
UNREADABLE = "unreadable FITS (not FITS, corrupt or truncated)"


class _Stream:
    """The inflated bytes so far, inflated further only on demand."""

    def __init__(self, compressed: bytes):
        self.inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        self.pending, self.out = compressed, bytearray()

    def has(self, n: int) -> bool:
        """Inflate until `n` bytes are out (at most that many); False if the stream ends first."""
        while len(self.out) < n and self.pending and not self.inflater.eof:
            chunk = self.inflater.decompress(self.pending, min(n - len(self.out), 2**20))
            self.pending = self.inflater.unconsumed_tail
            self.out += chunk
        return len(self.out) >= n


def inflate_fits(compressed: bytes, max_data_bytes: int, source: Source) -> bytes:
    """The plain FITS bytes of a gzipped file, through its last declared HDU (ImageError if its
    headers are unreadable or declare more than `max_data_bytes` of data)."""
    stream, start, total = _Stream(compressed), 0, 0
    try:
        for index in range(MAX_HDUS):
            if not stream.has(start + BLOCK):
                break  # the file ends after the previous HDU
            if index and not stream.out.startswith(b"XTENSION", start):
                break  # trailing bytes that are not an extension: never inflated further
            header_end, size = _header(stream, start, source)
            total += size
            if total > max_data_bytes:
                raise ImageError(
                    source, f"too large: its headers declare {total:,} bytes of data, more than "
                    f"{max_data_bytes:,} (max_pixels)"
                )  # fmt: skip
            start = header_end + math.ceil(size / BLOCK) * BLOCK
            stream.has(start)  # a short file is left short: the truncation check names it
    except zlib.error as exc:
        raise ImageError(source, f"{UNREADABLE}: {exc}") from None
    if not stream.out.startswith(b"SIMPLE  ="):
        raise ImageError(source, f"{UNREADABLE}: no FITS header after gunzip")
    return bytes(stream.out[:start] if start else stream.out)


def _header(stream: _Stream, start: int, source: Source) -> tuple[int, int]:
    """(where the header starting at `start` ends, its HDU's data size in bytes)."""
    cards: dict[str, str] = {}
    for block in range(MAX_HEADER_BLOCKS):
        at = start + block * BLOCK
        if not stream.has(at + BLOCK):
            raise ImageError(source, f"{UNREADABLE}: the file ends inside a header")
        for offset in range(at, at + BLOCK, CARD):
            card = bytes(stream.out[offset : offset + CARD]).decode("ascii", "replace")
            key = card[:8].strip()
            if key == "END":
                return at + BLOCK, _data_size(cards, source)
            if card[8:10] == "= ":
                cards[key] = card[10:].split("/", 1)[0].strip()
    raise ImageError(source, f"{UNREADABLE}: no END card in {MAX_HEADER_BLOCKS} header blocks")


def _data_size(cards: dict[str, str], source: Source) -> int:
    try:
        naxis = int(cards.get("NAXIS", "0"))
        if naxis == 0:
            return 0
        axes = math.prod(int(cards[f"NAXIS{i}"]) for i in range(1, naxis + 1))
        bits = abs(int(cards["BITPIX"]))
        groups, heap = int(cards.get("GCOUNT", "1")), int(cards.get("PCOUNT", "0"))
    except (KeyError, ValueError) as exc:
        raise ImageError(source, f"{UNREADABLE}: bad header card {exc}") from None
    if min(naxis, axes, bits, groups, heap + 1) < 0:
        raise ImageError(source, f"{UNREADABLE}: negative sizes in the header")
    return bits // 8 * groups * (heap + axes)
