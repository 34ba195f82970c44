"""Per-pixel sequences of a map tile: the dataset pipeline's own chain, run on pixel blocks.

`pixel_sequences` turns a tile's `ImageStack` into ragged per-pixel sequences with exactly
the dataset pipeline's functions (`sequences.extract` → masks + S1 pairing, and
`sequences.select_dates`), in pixel blocks so memory follows the block, not the tile.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from s2mos_transforms import bands
from s2mos_transforms.grid import Tile

# Pixels per block when building sequences (bounds the temporaries of the masks).
SEQUENCE_BLOCK_PIXELS = 4096


@dataclasses.dataclass
class PixelSequences:
    """Ragged sequences of some pixels of a tile.

    pixels: int64 (P,) flat indices (row-major) into the tile; lengths: int32 (P,);
    values: float32 (sum(lengths), C) pixel-major, dates ascending, in the model's channels
    (S2 reflectance 0–1, then VV, VH dB; then the day for the series model).
    """

    pixels: np.ndarray
    lengths: np.ndarray
    values: np.ndarray

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths, dtype=np.int64)])

    def sequence(self, i: int) -> np.ndarray:
        o = self.offsets
        return self.values[o[i]:o[i + 1]]

    def subset(self, keep: np.ndarray) -> "PixelSequences":
        keep = np.asarray(keep, bool)
        row_keep = np.repeat(keep, self.lengths)
        return PixelSequences(self.pixels[keep], self.lengths[keep], self.values[row_keep])


def _extract_config(config):
    from s2mos_transforms.sequences import ExtractConfig
    return config if config is not None else ExtractConfig()


def pixel_sequences(stack, pixels: np.ndarray | None = None,
                    channels: Sequence[str] = bands.CHANNELS_S2S1, config=None,
                    block: int = SEQUENCE_BLOCK_PIXELS) -> PixelSequences:
    """Sequences of the given pixels (flat indices; default all) of an `ImageStack`.

    The same chain as the dataset build (`sequences.extract`: scene filter, SCL, bare soil,
    3σ outliers, S1 pairing; `sequences.select_dates`: at most max_dates, spread evenly).
    With the 12 CNN channels a date needs an S1 pair; with the 10 S2 channels it does not; with
    the whole-series model's 13 (`bands.CHANNELS_SERIES`) every bare date is kept, with the VV/VH
    of its pair (NaN where it has none) and its day, so a pixel without any S1 pair has a series.
    Per the `ImageStack` contract each pixel brings its own scene cloud (T2, P) and nodata:
    S2 slots that do not cover it are masked (SCL 0, all bands 0), S1 slots that do not
    cover it (NaN) are never paired, so a pixel's sequence equals the point's at its centre.
    """
    from s2mos_transforms import sequences

    cfg = _extract_config(config)
    channels = tuple(channels)
    if channels not in (bands.CHANNELS_S2S1, bands.CHANNELS_S2, bands.CHANNELS_SERIES):
        raise ValueError(f"unsupported model channels {channels}")
    series = channels == bands.CHANNELS_SERIES
    h, w = stack.s2.shape[-2:]
    pixels = np.arange(h * w, dtype=np.int64) if pixels is None else np.asarray(pixels, np.int64)
    s2 = stack.s2.reshape(stack.s2.shape[:2] + (h * w,))
    scl = None if stack.scl is None else stack.scl.reshape(stack.scl.shape[:1] + (h * w,))
    cloud = stack.scene_cloud_pct.reshape(stack.scene_cloud_pct.shape[:1] + (h * w,))
    s1 = stack.s1.reshape(stack.s1.shape[:2] + (h * w,))
    lengths, values = [], []
    for start in range(0, pixels.size, block):
        # `block_sequences` = `extract` → `select_dates` → gather, on the observations that pass
        # the scene/SCL filters only. Nodata S2 slots (SCL 0, or all bands 0: NDVI 0/0) never
        # pass, so they count as not acquired, as for a point, which has no row for them.
        seq = sequences.block_sequences(stack.s2_times, s2, scl, cloud, stack.s1_times, s1,
                                        pixels[start:start + block], channels == bands.CHANNELS_S2S1, cfg,
                                        series=series)
        lengths.append(seq.lengths)
        values.append(seq.values)
    if not lengths:
        return PixelSequences(pixels, np.zeros(0, np.int32), np.zeros((0, len(channels)), np.float32))
    return PixelSequences(pixels, np.concatenate(lengths), np.concatenate(values))


def coords_of(tile: Tile, pixels: np.ndarray) -> np.ndarray:
    """float32 (P, 2) (lat, lon) of pixel centres given by flat indices."""
    lon, lat = tile.pixel_centres_lonlat()
    return np.stack([lat.ravel()[pixels], lon.ravel()[pixels]], axis=1).astype(np.float32)
