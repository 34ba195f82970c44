"""AOI parsing, UTM-zone tiling and inside-AOI masks (s2mos_transforms.maps.tiling)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import shapely

from s2mos_transforms.maps import tiling
from s2mos_transforms.errors import UserError
from s2mos_transforms.grid import lonlat_to_xy


def test_bbox_tiles_cover_the_aoi_and_masks_follow_it():
    aoi = tiling.aoi_from_bbox(8.98, 48.495, 9.006, 48.512)
    tasks = tiling.tiles_for_aoi(aoi, 64)
    assert {t.tile.epsg for t in tasks} == {32632}
    names = [t.name for t in tasks]
    assert names == sorted(names) and len(set(names)) == len(names)
    proj = tiling.project(aoi, 32632)
    # Mask pixel count ≈ projected area / 100 m², and every tile has some pixel inside.
    n_inside = sum(int(t.inside_mask().sum()) for t in tasks)
    assert abs(n_inside - proj.area / 100.0) / (proj.area / 100.0) < 0.01
    assert all(t.inside_mask().any() for t in tasks)
    assert any(t.aoi_wkb is None for t in tasks) and any(t.aoi_wkb is not None for t in tasks)
    # A pixel centre inside/outside agrees with the polygon.
    t = next(t for t in tasks if t.aoi_wkb is not None)
    xx, yy = t.tile.pixel_centres_xy()
    m = t.inside_mask()
    i, j = np.argwhere(m)[0]
    assert proj.contains(shapely.Point(xx[i, j], yy[i, j]))
    i, j = np.argwhere(~m)[0]
    assert not proj.contains(shapely.Point(xx[i, j], yy[i, j]))


def test_aoi_across_a_zone_boundary_is_split_without_overlap():
    aoi = tiling.aoi_from_bbox(11.99, 48.0, 12.01, 48.01)
    tasks = tiling.tiles_for_aoi(aoi, 64)
    assert {t.tile.epsg for t in tasks} == {32632, 32633}
    for t in tasks:
        lon, lat = t.tile.pixel_centres_lonlat()
        m = t.inside_mask()
        if t.tile.epsg == 32632:
            assert (lon[m] <= 12.0).all()
        else:
            assert (lon[m] >= 12.0).all()
    total = sum(int(t.inside_mask().sum()) for t in tasks)
    area = tiling.aoi_area_km2(aoi) * 1e6 / 100.0
    assert abs(total - area) / area < 0.02


def test_geojson_variants(tmp_path):
    ring = [[9.0, 48.5], [9.01, 48.5], [9.01, 48.51], [9.0, 48.51], [9.0, 48.5]]
    poly = {"type": "Polygon", "coordinates": [ring]}
    feat = {"type": "Feature", "properties": {}, "geometry": poly}
    multi = {"type": "MultiPolygon", "coordinates": [[ring]]}
    fc = {"type": "FeatureCollection", "features": [feat]}
    for obj in (poly, feat, multi, fc):
        path = tmp_path / "aoi.geojson"
        path.write_text(json.dumps(obj))
        aoi = tiling.read_aoi(str(path))
        assert aoi.bounds == pytest.approx((9.0, 48.5, 9.01, 48.51))


@pytest.mark.parametrize("content, message", [
    ('{"type": "Point", "coordinates": [9.0, 48.5]}', "Polygon"),
    ("not json at all", "not JSON"),
    ('{"type": "FeatureCollection", "features": []}', "no features"),
    ('{"type": "Polygon", "coordinates": [[[500, 0], [501, 0], [501, 1], [500, 0]]]}', "lon/lat"),
])
def test_bad_aoi_files_raise_one_line_errors(tmp_path, content, message):
    path = tmp_path / "aoi.geojson"
    path.write_text(content)
    with pytest.raises(UserError, match=message) as err:
        tiling.read_aoi(str(path))
    assert "\n" not in str(err.value)


def test_missing_aoi_file_and_bad_bbox():
    with pytest.raises(UserError, match="cannot read AOI"):
        tiling.read_aoi("/nonexistent/aoi.geojson")
    with pytest.raises(UserError, match="W < E"):
        tiling.aoi_from_bbox(9.1, 48.0, 9.0, 48.1)


def test_tile_containing_a_point_is_listed():
    aoi = tiling.aoi_from_bbox(8.98, 48.495, 9.006, 48.512)
    lon, lat = tiling.sample_lonlat(aoi)
    assert shapely.contains_xy(aoi, lon, lat).all() and lon.size > 10
    x, y = lonlat_to_xy(32632, lon[0], lat[0])
    from s2mos_transforms.grid import tile_containing
    name = tile_containing(32632, float(x), float(y), 64).name
    assert name in [t.name for t in tiling.tiles_for_aoi(aoi, 64)]
