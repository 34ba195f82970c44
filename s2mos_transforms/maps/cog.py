"""Cloud Optimized GeoTIFFs of the clay map: 7 float32 bands (`BAND_NAMES`), written atomically.

Bands: ``clay_mean`` (% clay, mean of the bagged models), ``clay_std`` (% clay, their
spread), ``n_obs`` (bare observations used), ``clay_p05`` / ``clay_p95`` (the 90 % prediction
interval), ``di`` (dissimilarity index to the training data) and ``aoa`` (1 inside the area of
applicability, 0 outside). ``NODATA`` marks pixels outside the AOI in every band, and in the
other bands pixels with fewer bare observations than ``--min-obs`` (their ``n_obs`` still says
how many there were). Internal 2-D tiling, DEFLATE with the
floating-point predictor, overviews; checked by ``rio_cogeo.cogeo.cog_validate``.

Atomic publication: the COG is built in a local temporary directory, then copied to
``<name>.tmp-<random>`` beside the destination and renamed (local: `os.replace`; gs://:
the object only appears under its final name once the copy is complete), so a file under
the final name is always complete — the restart test of the map pipeline relies on it.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from typing import Sequence

import numpy as np

from s2mos_transforms import fileio

BAND_NAMES: tuple[str, ...] = ("clay_mean", "clay_std", "n_obs", "clay_p05", "clay_p95", "di", "aoa")
BAND_UNITS: tuple[str, ...] = ("%", "%", "count", "%", "%", "1", "1")
NODATA: float = -9999.0


def block_size(size: int) -> int:
    """Internal tile size: at most 256, half the image for small ones (so overviews exist), ≥ 16."""
    b = 256
    while b > 16 and b * 2 > size:
        b //= 2
    return b


def cog_profile(size: int) -> dict:
    b = block_size(size)
    return {"driver": "GTiff", "interleave": "pixel", "tiled": True, "blockxsize": b, "blockysize": b,
            "compress": "DEFLATE", "predictor": 3, "zlevel": 6}


def write_cog_local(path: str, data: np.ndarray, transform, crs, nodata: float = NODATA,
                    band_names: Sequence[str] = BAND_NAMES, tags: dict | None = None) -> str:
    """Write (bands, H, W) float32 as a COG at a local path (not atomic; see `write_cog`)."""
    from rasterio.io import MemoryFile
    from rio_cogeo.cogeo import cog_translate

    data = np.asarray(data, np.float32)
    count, h, w = data.shape
    src_profile = {"driver": "GTiff", "dtype": "float32", "count": count, "height": h, "width": w,
                   "crs": crs, "transform": transform, "nodata": nodata}
    with MemoryFile() as mem:
        with mem.open(**src_profile) as ds:
            ds.write(data)
            for i, name in enumerate(band_names, start=1):
                ds.set_band_description(i, name)
                if i <= len(BAND_UNITS) and tuple(band_names) == BAND_NAMES:
                    ds.update_tags(i, units=BAND_UNITS[i - 1])
            if tags:
                ds.update_tags(**{k: str(v) for k, v in tags.items()})
        with mem.open() as src:
            levels = 0
            b = block_size(max(h, w))
            while (max(h, w) >> levels) > b:
                levels += 1
            cog_translate(src, path, cog_profile(max(h, w)), nodata=nodata, overview_level=max(levels, 1),
                          overview_resampling="average", in_memory=True, quiet=True,
                          additional_cog_metadata=None, use_cog_driver=False)
    return path


def publish(local_path: str, dest: str) -> str:
    """Copy a finished local file to `dest` atomically: locally a temp name beside it, then rename; a URI
    (gs://, any filesystem `fileio` knows) in one whole upload, so no half-written tile carries the name."""
    if fileio.is_remote(dest):
        fileio.upload(local_path, dest)          # one whole object: never seen half-written
        return dest
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    tmp = f"{dest}.tmp-{uuid.uuid4().hex}"
    shutil.copyfile(local_path, tmp)
    os.replace(tmp, dest)
    return dest


def write_cog(dest: str, data: np.ndarray, transform, crs, nodata: float = NODATA,
              band_names: Sequence[str] = BAND_NAMES, tags: dict | None = None) -> str:
    """Write a COG to a local or gs:// destination atomically."""
    with tempfile.TemporaryDirectory(prefix="s2mos-cog-") as tmpdir:
        local = os.path.join(tmpdir, os.path.basename(dest))
        write_cog_local(local, data, transform, crs, nodata, band_names, tags)
        return publish(local, dest)


def exists(path: str) -> bool:
    """Whether a complete file is published at `path` (only complete files ever carry the name)."""
    if fileio.is_remote(path):
        return fileio.exists(path)
    return os.path.isfile(path)


def validate(path: str) -> tuple[bool, list[str], list[str]]:
    """rio-cogeo's validation: (is_valid, errors, warnings)."""
    from rio_cogeo.cogeo import cog_validate
    return cog_validate(path, quiet=True)
