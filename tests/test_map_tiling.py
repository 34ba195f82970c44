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


# ---------------------------------------------------------------- plan: ranges, expansion, counts

def _odd_aoi():
    """A non-convex AOI with a hole, across the 12° E zone boundary, plus a detached island."""
    outer = shapely.box(11.95, 48.0, 12.06, 48.06)
    notch = shapely.box(11.99, 48.02, 12.03, 48.07)          # cuts a bay into the north edge
    hole = shapely.box(11.97, 48.01, 11.98, 48.015)
    island = shapely.Point(12.1, 48.1).buffer(0.008)
    geom = shapely.union_all([outer.difference(notch).difference(hole), island])
    return tiling.aoi_from_geojson(shapely.geometry.mapping(geom))


def test_workers_expand_the_ranges_into_exactly_the_reference_tiles():
    """PlanTiles on DirectRunner (ranges + side-input AOIs → tasks) gives tiles_for_aoi's tiles,
    clipped AOIs included; the count of the plan agrees without listing them."""
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to
    from s2mos_transforms.maps import plan as map_plan
    from s2mos_transforms.maps.pipeline import PlanTiles

    aoi = _odd_aoi()
    ref = tiling.tiles_for_aoi(aoi, 64)
    assert {t.tile.epsg for t in ref} == {32632, 32633} and len(ref) > 100
    plan = map_plan.plan_tiles(aoi, 64, 10.0, ranges_per_zone=4)
    assert 4 < len(plan.ranges) <= 8 and set(plan.zones) == {32632, 32633}
    assert map_plan.count_tiles(plan) == len(ref)
    expected = sorted((t.name, t.aoi_wkb) for t in ref)
    with beam.Pipeline("DirectRunner") as p:
        got = (p | PlanTiles(plan) | beam.Map(lambda t: (t.name, t.aoi_wkb)))
        assert_that(got, equal_to(expected))
    # Each range's own expansion is a block of rows: the ranges partition the tiles.
    per_range = [[t.name for t in plan.tasks(r)] for r in plan.ranges]
    assert sum(map(len, per_range)) == len(ref) and len({n for rr in per_range for n in rr}) == len(ref)


def test_plan_counts_match_the_reference_on_bboxes_and_pixels_match_the_masks():
    from s2mos_transforms.maps import plan as map_plan

    for bbox, size in [((8.98, 48.495, 9.006, 48.512), 64), ((11.5, 47.6, 12.4, 48.2), 256)]:
        aoi = tiling.aoi_from_bbox(*bbox)
        plan = map_plan.plan_tiles(aoi, size, 10.0)
        assert map_plan.count_tiles(plan) == len(tiling.tiles_for_aoi(aoi, size))
    aoi = tiling.aoi_from_bbox(8.98, 48.495, 9.006, 48.512)
    n_mask = sum(int(t.inside_mask().sum()) for t in tiling.tiles_for_aoi(aoi, 64))
    px = map_plan.aoi_pixels(map_plan.plan_tiles(aoi, 64, 10.0))
    assert abs(px - n_mask) / n_mask < 0.01


def test_the_launcher_never_lists_the_tiles_of_a_continent():
    """Europe at 256 px is ~1.1 M tiles: the plan is ≤ 32 ranges per zone (as few as a field's
    per zone), and counting it keeps the launcher's Python memory flat (a tile list would be
    hundreds of MB)."""
    import tracemalloc
    from s2mos_transforms.maps import plan as map_plan

    field = map_plan.plan_tiles(tiling.aoi_from_bbox(8.98, 48.495, 9.006, 48.512), 256, 10.0)
    europe = map_plan.plan_tiles(tiling.aoi_from_bbox(-9, 36, 27, 60), 256, 10.0)
    assert len(field.ranges) == 1 and len(europe.zones) == 7
    assert len(europe.ranges) <= map_plan.RANGES_PER_ZONE * len(europe.zones)
    region = map_plan.plan_tiles(tiling.aoi_from_bbox(5.0, 45.0, 12.0, 50.0), 256, 10.0)

    def peak_mb(plan) -> tuple[int, float]:
        tracemalloc.start()
        n = map_plan.count_tiles(plan)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        return n, peak

    n_field, mb_field = peak_mb(field)
    n_region, mb_region = peak_mb(region)
    assert n_field == 2 and n_region > 40_000
    assert mb_region < 8 and mb_region < mb_field + 8       # one block of ≤ 4096 tiles at a time


_DRY_RUN_CHILD = """
import sys
from pipelines.cli import main
rc = main(sys.argv[1:])
hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]
print('PEAK_KB', rc, hwm)
"""


@pytest.mark.slow
def test_dry_run_of_europe_has_the_memory_of_a_field(tmp_path):
    """`predict-map --dry-run` in a fresh process: Europe (1.1 M tiles) peaks within 60 MB of
    a 2-tile field, under 500 MiB, and prints the plan."""
    import os
    import subprocess
    import sys

    def dry_run(*bbox: float) -> tuple[float, str]:
        proc = subprocess.run([sys.executable, "-c", _DRY_RUN_CHILD, "predict-map", "--bbox", *map(str, bbox),
                               "--dry-run"], capture_output=True, text=True, timeout=300,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        line = [l for l in proc.stdout.splitlines() if l.startswith("PEAK_KB")]
        assert line and line[0].split()[1] == "0", proc.stderr[-2000:]
        return int(line[0].split()[2]) / 1024.0, proc.stdout

    field_mb, _ = dry_run(8.98, 48.495, 9.006, 48.512)
    europe_mb, text = dry_run(-9, 36, 27, 60)
    assert "tiles: 1,093,871 of 256 px" in text and "core-hours" in text and "of COG tiles" in text
    assert europe_mb < 500 and europe_mb - field_mb < 60, (field_mb, europe_mb)


def test_the_dry_run_estimates_compute_at_each_source_s_measured_rate():
    """Each tile source's `map_core_seconds_per_pixel` (benchmarks/bench_sources.py) sets the
    dry run's core-hours; a source without one (Earth Engine: network reads, not measurable
    offline) gets the embedded world's rate, and the dry run says it was not measured."""
    from pipelines.predict_map import _source_rate
    from s2mos_transforms.maps import plan as map_plan
    tile_plan = map_plan.plan_tiles(tiling.aoi_from_bbox(8.98, 48.495, 9.006, 48.512), 256, 10.0)
    by_source = {}
    for name in ("synthetic", "geotiff", "datacube", "earthengine"):
        summary = map_plan.summarize(tile_plan, *_source_rate(name))
        by_source[name] = summary
        assert summary.core_hours == pytest.approx(summary.pixels * summary.core_seconds_per_pixel / 3600.0)
    assert by_source["synthetic"].core_seconds_per_pixel == map_plan.CORE_SECONDS_PER_PIXEL
    for name in ("geotiff", "datacube"):
        assert by_source[name].core_seconds_per_pixel != map_plan.CORE_SECONDS_PER_PIXEL
        assert f"measured for the '{name}' source" in map_plan.format_summary(by_source[name], 256, 10.0)
    ee = map_plan.format_summary(by_source["earthengine"], 256, 10.0)
    assert by_source["earthengine"].core_seconds_per_pixel == map_plan.CORE_SECONDS_PER_PIXEL
    assert "not measured for the 'earthengine' source" in ee
