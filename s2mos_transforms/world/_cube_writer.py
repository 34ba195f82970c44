"""Writing a cube block by block (netCDF through h5netcdf, Zarr through zarr), so exporting an
AOI holds one simulation tile in memory, not the whole cube (`world.export_datacube`).

Both files read back with plain xarray: CF attributes (time units, grid mapping, scale factors)
are written as attributes, Zarr v3 arrays carry their ``dimension_names``.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass
class Var:
    """One variable: its dims, dtype, attributes, fill value and chunks (None = contiguous)."""

    dims: tuple[str, ...]
    dtype: Any
    attrs: dict
    fill: Any = None
    chunks: tuple[int, ...] | None = None
    values: np.ndarray | None = None          # written at creation (coordinates, small vars)


class NetcdfWriter:
    def __init__(self, path: str, sizes: dict[str, int], variables: dict[str, Var], attrs: dict):
        import h5netcdf.legacyapi as ncl
        self.f = ncl.Dataset(path, "w")
        for d, n in sizes.items():
            self.f.createDimension(d, n)
        for name, v in variables.items():
            kw = {} if v.chunks is None else {"zlib": True, "complevel": 4, "chunksizes": v.chunks}
            var = self.f.createVariable(name, np.dtype(v.dtype), v.dims, fill_value=v.fill, **kw)
            var.attrs.update(v.attrs)
            if v.values is not None:
                var[...] = v.values
        self.f.attrs.update(attrs)

    def write(self, name: str, rows: slice, cols: slice, block: np.ndarray) -> None:
        self.f.variables[name][..., rows, cols] = block

    def close(self) -> None:
        self.f.close()


class ZarrWriter:
    def __init__(self, path: str, sizes: dict[str, int], variables: dict[str, Var], attrs: dict):
        import zarr
        self.g = zarr.open_group(path, mode="w")
        for name, v in variables.items():
            shape = tuple(sizes[d] for d in v.dims)
            attributes = dict(v.attrs)          # the fill value lives in the array metadata
            arr = self.g.create_array(name, shape=shape, dtype=np.dtype(v.dtype), chunks=v.chunks or (shape if shape else "auto"),
                                      fill_value=v.fill if v.fill is not None else 0, dimension_names=v.dims,
                                      attributes=_json_attrs(attributes))
            if v.values is not None:
                arr[...] = v.values
        self.g.attrs.update(_json_attrs(attrs))

    def write(self, name: str, rows: slice, cols: slice, block: np.ndarray) -> None:
        self.g[name][..., rows, cols] = block

    def close(self) -> None:
        pass


def _json_attrs(attrs: dict) -> dict:
    """Zarr attributes are JSON: NumPy scalars to Python, NaN fill to the string Zarr expects."""
    out = {}
    for k, v in attrs.items():
        v = v.item() if isinstance(v, np.generic) else v
        if isinstance(v, float) and np.isnan(v):
            v = "NaN"
        out[k] = v
    return out


def open_writer(path: str, zarr: bool, sizes: dict[str, int], variables: dict[str, Var], attrs: dict):
    return (ZarrWriter if zarr else NetcdfWriter)(path, sizes, variables, attrs)
