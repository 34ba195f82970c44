"""Reading a netCDF / Zarr datacube's layout for the `datacube` source: where the bands, the
time axes and the pixel grid are, and how to decode each variable to the contract's units.

Kept apart from `sources.datacube` (the Source itself) so the checks of a user's cube (one
line naming the file and the variable) and the unit rules live in one place:

* S2 reflectance ``B2 … B12`` (``B02`` … accepted): integers are L2A numbers (reflectance ×
  10 000; 0 = nodata) unless ``scale_factor``/``add_offset`` say otherwise; floats are 0–1
  reflectance (NaN = nodata), or whatever ``scale_factor``/``add_offset`` make of them.
  A float band without ``scale_factor`` whose values exceed 3.2767 is refused (×10 000
  numbers stored as floats: declare ``scale_factor = 0.0001``).
* ``SCL`` integers (0 or NaN = nodata); optional (the pixel mask is then skipped, with a note).
* ``VV``, ``VH``: dB, or linear power when ``units`` is ``1``/``linear``/``power`` (converted).
* ``scene_cloud_pct`` (per S2 time, or per time and pixel) and ``angle`` (per S1 time): optional.
"""
from __future__ import annotations

import dataclasses
import os
import tempfile

import numpy as np

from s2mos_transforms import bands, fileio
from s2mos_transforms.errors import UserError

S2_NAMES = {b: (b, f"B{int(b[1:]):02d}" if b[1:].isdigit() else b) for b in bands.S2_BANDS}
LINEAR_UNITS = {"1", "linear", "power", "m2/m2", "m^2/m^2", "m2 m-2"}
DB_UNITS = {"db", "decibel", "decibels"}
X_NAMES, Y_NAMES = ("x", "X", "easting", "lon", "longitude"), ("y", "Y", "northing", "lat", "latitude")
MAX_DN = 32767


@dataclasses.dataclass
class CubeLayout:
    """A cube's variables (our band name → its variable), time axes and north-up pixel grid.

    ``x0, y0`` are the outer corner of the first column / top row, ``res_x, res_y`` positive
    pixel sizes; ``y_up`` is True when the file stores rows south to north (flipped on read).
    """

    path: str
    ds: object
    s2: dict[str, str]
    scl: str | None
    s1: dict[str, str]
    cloud: str | None
    angle: str | None
    t2: str
    t1: str
    s2_times: np.ndarray
    s1_times: np.ndarray
    xdim: str
    ydim: str
    crs: object
    epsg: int | None
    x0: float
    y0: float
    res_x: float
    res_y: float
    width: int
    height: int
    y_up: bool
    notes: list[str]

    @property
    def transform(self):
        from affine import Affine
        return Affine(self.res_x, 0.0, self.x0, 0.0, -self.res_y, self.y0)

    def read(self, var: str, tsel, rows, cols) -> np.ndarray:
        """Raw values (time, rows, cols) of a (t, y, x) variable; `rows` in north-up order.

        Only the selection is read from disk (lazy backend indexing). `rows`/`cols` are slices
        or sorted integer arrays; `tsel` an integer array (None: no time dim, e.g. a 2-D var).
        """
        da = self.ds[var]
        if self.y_up:
            rows = _flip(rows, self.height)
        sel = {self.ydim: rows, self.xdim: cols}
        tdim = next((d for d in da.dims if d in (self.t1, self.t2)), None)
        if tdim is not None:
            sel[tdim] = _as_slice(tsel)
        out = da.isel(sel).transpose(*([tdim] if tdim else []), self.ydim, self.xdim).values
        return out[..., ::-1, :] if self.y_up else out

    def read_times(self, var: str, tsel) -> np.ndarray:
        """A per-time variable (``angle``, per-scene ``scene_cloud_pct``) at `tsel`."""
        return np.asarray(self.ds[var].isel({self.ds[var].dims[0]: _as_slice(tsel)}).values)

    def attrs(self, var: str) -> dict:
        return dict(self.ds[var].attrs)


def _as_slice(sel):
    """A run of consecutive indices as a slice: backends (h5py above all) read a slice in one
    go but an index array element by element."""
    a = np.asarray(sel)
    if a.ndim == 1 and a.size and np.all(np.diff(a) == 1):
        return slice(int(a[0]), int(a[-1]) + 1)
    return sel


def _flip(sel, n: int):
    if isinstance(sel, slice):
        start, stop, _ = sel.indices(n)
        return slice(n - stop, n - start)
    return np.sort(n - 1 - np.asarray(sel))


# ------------------------------------------------------------------ decoding (pure NumPy)

def _fill(attrs: dict):
    for key in ("_FillValue", "missing_value", "nodata"):
        if key in attrs:
            return np.asarray(attrs[key]).ravel()[0]
    return None


def reflectance_dn(raw: np.ndarray, attrs: dict, where: str) -> np.ndarray:
    """Stored S2 values → int16 L2A numbers (reflectance × 10 000, 1 … 32 767), 0 where missing."""
    v = np.asarray(raw).astype(np.float64)
    missing = ~np.isfinite(v)
    fill = _fill(attrs)
    if fill is not None:
        missing |= v == float(fill)
    if np.asarray(raw).dtype.kind in "iu":
        missing |= v == 0                                   # the L2A nodata value
    scale, offset = attrs.get("scale_factor"), float(attrs.get("add_offset", 0.0))
    if scale is not None:
        dn = (v * float(scale) + offset) * bands.S2_SCALE
    elif np.asarray(raw).dtype.kind == "f":
        dn = (v + offset) * bands.S2_SCALE
        big = np.where(missing, 0.0, v)
        if big.size and big.max() > MAX_DN / bands.S2_SCALE:
            raise UserError(f"{where}: float reflectance up to {big.max():g} is not 0–1; for ×10 000 "
                            f"numbers stored as floats set the attribute scale_factor = 0.0001")
    else:
        dn = v + offset
    dn = np.clip(np.rint(np.nan_to_num(dn)), 1, MAX_DN).astype(np.int16)   # real reflectance ≥ 1
    dn[missing] = 0
    return dn


def scl_classes(raw: np.ndarray, attrs: dict) -> np.ndarray:
    """Stored SCL → uint8 classes, `bands.SCL_NO_DATA` where missing."""
    v = np.asarray(raw)
    bad = ~np.isfinite(v) if v.dtype.kind == "f" else np.zeros(v.shape, bool)
    fill = _fill(attrs)
    if fill is not None:
        bad |= v == fill
    return np.where(bad, bands.SCL_NO_DATA, np.nan_to_num(v)).astype(np.uint8)


def backscatter_db(raw: np.ndarray, attrs: dict, where: str) -> np.ndarray:
    """Stored VV/VH → float32 dB (linear power converted), NaN where missing."""
    v = np.asarray(raw).astype(np.float64)
    fill = _fill(attrs)
    if fill is not None:
        v[v == float(fill)] = np.nan
    if "scale_factor" in attrs or "add_offset" in attrs:
        v = v * float(attrs.get("scale_factor", 1.0)) + float(attrs.get("add_offset", 0.0))
    units = str(attrs.get("units", "dB")).strip().lower()
    if units in LINEAR_UNITS:
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.where(v > 0, 10.0 * np.log10(v), np.nan)
    elif units not in DB_UNITS:
        raise UserError(f"{where}: units {attrs.get('units')!r} not understood (dB, or 1/linear for power)")
    return v.astype(np.float32)


def cloud_pct(raw: np.ndarray, attrs: dict) -> np.ndarray:
    v = np.asarray(raw).astype(np.float32)
    fill = _fill(attrs)
    if fill is not None:
        v[v == fill] = np.nan
    return v


# ------------------------------------------------------------------ opening and checking

def open_cube(path: str) -> CubeLayout:
    """Open `path` lazily (nothing but metadata is read) and check its layout."""
    ds = _open(path)
    try:
        return _layout(path, ds)
    except Exception:
        ds.close()
        raise


def _is_zarr(path: str) -> bool:
    p = path.rstrip("/")
    if p.endswith(".zarr"):
        return True
    return not fileio.is_remote(p) and any(os.path.exists(os.path.join(p, f)) for f in ("zarr.json", ".zgroup"))


def _open(path: str):
    import xarray as xr
    zarr = _is_zarr(path)
    kw = dict(mask_and_scale=False, decode_times=True, chunks=None)
    # Consolidated metadata where a v2 store has it (.zmetadata); else read per array, quietly.
    zkw = dict(kw, consolidated=None if fileio.is_remote(path) else os.path.exists(os.path.join(path, ".zmetadata")))
    try:
        if fileio.is_remote(path):
            try:
                import fsspec  # noqa: F401  (gcsfs for gs://) — streams only what is read
                if zarr:
                    return xr.open_dataset(path, engine="zarr", **zkw)
                return xr.open_dataset(fsspec.open(path, "rb").open(), engine="h5netcdf", **kw)
            except ImportError:
                path_local = _local_copy(path, zarr)
                if zarr:
                    local_meta = os.path.exists(os.path.join(path_local, ".zmetadata"))
                    return xr.open_dataset(path_local, engine="zarr", **dict(zkw, consolidated=local_meta))
                return xr.open_dataset(path_local, engine="h5netcdf", **kw)
        if not os.path.exists(path):
            raise UserError(f"cube {path}: no such file or directory")
        return xr.open_dataset(path, engine="zarr", **zkw) if zarr else xr.open_dataset(path, engine="h5netcdf", **kw)
    except UserError:
        raise
    except Exception as err:
        kind = "Zarr store" if zarr else "netCDF file"
        raise UserError(f"cube {path}: cannot read it as a {kind}: {type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''}") from None


_COPIES: dict[str, str] = {}


def _local_copy(path: str, zarr: bool) -> str:
    """Without fsspec/gcsfs a remote cube is copied once per process into a temporary
    directory through `fileio` (any filesystem it knows): the whole netCDF file, or the Zarr tree."""
    if path in _COPIES and os.path.exists(_COPIES[path]):
        return _COPIES[path]
    tmp = tempfile.mkdtemp(prefix="s2mos-cube-")
    name = path.rstrip("/").rsplit("/", 1)[-1]
    local = os.path.join(tmp, name)
    if not zarr:
        with open(local, "wb") as fh:
            fh.write(fileio.read_bytes(path))
    else:
        root = path.rstrip("/")
        for remote in fileio.list_files(root):
            target = os.path.join(local, *remote[len(root):].lstrip("/").split("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            fileio.download(remote, target)
    _COPIES[path] = local
    return local


def _find_var(ds, names) -> str | None:
    lower = {str(k).lower(): str(k) for k in ds.data_vars}
    for n in names:
        if n.lower() in lower:
            return lower[n.lower()]
    return None


def _time_dim(ds, var: str, path: str) -> str:
    dims = [d for d in ds[var].dims if d in ds.coords and np.asarray(ds[d].values).dtype.kind == "M"]
    if len(dims) != 1:
        raise UserError(f"cube {path}: variable {var} has no time dimension with datetime values "
                        f"(dims: {', '.join(map(str, ds[var].dims))})")
    return dims[0]


def _crs(ds, var: str, path: str):
    from pyproj import CRS
    gm = ds[var].attrs.get("grid_mapping")
    candidates = [gm] if gm else [n for n in ("crs", "spatial_ref") if n in ds.variables]
    for name in candidates:
        if name not in ds.variables:
            raise UserError(f"cube {path}: variable {var} names grid_mapping {name!r}, which is not in the file")
        a = dict(ds[name].attrs)
        try:
            for key in ("crs_wkt", "spatial_ref"):
                if a.get(key):
                    return CRS.from_wkt(str(a[key]))
            if a.get("epsg_code") is not None:
                code = str(a["epsg_code"])
                return CRS.from_user_input(code if ":" in code else f"EPSG:{int(code)}")
            if a.get("grid_mapping_name"):
                return CRS.from_cf(a)
        except Exception as err:
            raise UserError(f"cube {path}: grid mapping {name!r} of {var} is not a CRS: {err}") from None
    raise UserError(f"cube {path}: no CRS for variable {var} (expected a CF grid_mapping variable with "
                    f"crs_wkt, spatial_ref or epsg_code, e.g. 'crs' or 'spatial_ref')")


def _axis(ds, var: str, names, path: str) -> str:
    for d in ds[var].dims:
        if d in names or ds[d].attrs.get("standard_name", "") in (
                "projection_x_coordinate" if names is X_NAMES else "projection_y_coordinate",):
            return str(d)
    raise UserError(f"cube {path}: variable {var} has no {'x' if names is X_NAMES else 'y'} dimension "
                    f"(dims: {', '.join(map(str, ds[var].dims))})")


def _spacing(values: np.ndarray, dim: str, path: str) -> tuple[float, float]:
    """(first pixel centre, step) of a regular coordinate, fitted over all its values so float32
    coordinates (openEO, rioxarray) keep sub-metre origins; irregular spacing is an error."""
    if values.size < 2:
        raise UserError(f"cube {path}: dimension {dim} needs at least 2 pixels")
    v = values.astype(np.float64)
    i = np.arange(v.size)
    step = (v[-1] - v[0]) / (v.size - 1)
    first = float(np.mean(v - i * step))
    eps = np.finfo(values.dtype).eps * np.abs(v).max() * 4 if values.dtype.kind == "f" else 0.0
    if step == 0 or np.abs(v - (first + i * step)).max() > 1e-6 * abs(step) + eps:
        raise UserError(f"cube {path}: coordinate {dim} is not regularly spaced")
    return first, float(step)


def _layout(path: str, ds) -> CubeLayout:
    notes: list[str] = []
    s2 = {b: _find_var(ds, S2_NAMES[b]) for b in bands.S2_BANDS}
    s1 = {b: _find_var(ds, (b,)) for b in bands.S1_BANDS}
    missing = [b for b, v in {**s2, **s1}.items() if v is None]
    if missing:
        raise UserError(f"cube {path}: missing band variable(s) {', '.join(missing)} "
                        f"(found: {', '.join(map(str, ds.data_vars)) or 'none'})")
    scl = _find_var(ds, ("SCL",))
    if scl is None:
        notes.append(f"{path}: no SCL variable, pixel cloud/shadow mask skipped")
    cloud = _find_var(ds, ("scene_cloud_pct",))
    if cloud is None:
        notes.append(f"{path}: no scene_cloud_pct variable, scene cloud filter skipped")
    angle = _find_var(ds, ("angle",))
    first = s2["B4"]
    t2, t1 = _time_dim(ds, first, path), _time_dim(ds, s1["VV"], path)
    for group, t in ((list(s2.values()) + ([scl] if scl else []), t2), (list(s1.values()), t1)):
        for v in group:
            if _time_dim(ds, v, path) != t:
                raise UserError(f"cube {path}: variable {v} is on time dimension "
                                f"{_time_dim(ds, v, path)}, not {t} like the other bands of its sensor")
    xdim, ydim = _axis(ds, first, X_NAMES, path), _axis(ds, first, Y_NAMES, path)
    for v in list(s2.values()) + list(s1.values()) + ([scl] if scl else []):
        if set(ds[v].dims) != {xdim, ydim, t2 if v not in s1.values() else t1}:
            raise UserError(f"cube {path}: variable {v} has dims ({', '.join(map(str, ds[v].dims))}); "
                            f"expected (time, {ydim}, {xdim})")
    if cloud is not None and ds[cloud].dims not in ((t2,), (t2, ydim, xdim)):
        raise UserError(f"cube {path}: variable {cloud} must be ({t2}) or ({t2}, {ydim}, {xdim})")
    if angle is not None and ds[angle].dims != (t1,):
        raise UserError(f"cube {path}: variable {angle} must be ({t1})")
    crs = _crs(ds, first, path)
    xs, ys = np.asarray(ds[xdim].values, float), np.asarray(ds[ydim].values, float)
    (fx, dx), (fy, dy) = _spacing(np.asarray(ds[xdim].values), xdim, path), _spacing(np.asarray(ds[ydim].values), ydim, path)
    if dx < 0:
        raise UserError(f"cube {path}: coordinate {xdim} decreases (expected west to east)")
    y_up = dy > 0
    top = fy + (ys.size - 1) * dy if y_up else fy
    return CubeLayout(path=path, ds=ds, s2=s2, scl=scl, s1=s1, cloud=cloud, angle=angle, t2=t2, t1=t1,
                      s2_times=_utc_seconds(ds[t2].values), s1_times=_utc_seconds(ds[t1].values),
                      xdim=xdim, ydim=ydim, crs=crs, epsg=crs.to_epsg(), x0=fx - dx / 2,
                      y0=float(top + abs(dy) / 2), res_x=dx, res_y=abs(dy), width=xs.size, height=ys.size,
                      y_up=y_up, notes=notes)


def _utc_seconds(values) -> np.ndarray:
    """Cube times (naive = UTC, as CF/xarray decode them) → datetime64[s]."""
    return np.asarray(values).astype("datetime64[s]")


