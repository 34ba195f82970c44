"""The per-batch DoFn's routing: a source failing for one point does not sink its batch."""
import numpy as np
import pandas as pd
import pytest

from s2mos_transforms import bands, sequences
from s2mos_transforms.dataset import transforms as dt
from s2mos_transforms.dataset.samples import Rejection
from s2mos_transforms.sources import SourceError


T0 = pd.Timestamp("2018-03-01T10:30:00")
SOIL = dict(zip(bands.S2_BANDS, [800, 1000, 1200, 1400, 1500, 1600, 1800, 1900, 2800, 2500]))


class FlakySource:
    """An external source that cannot serve point 'bad' (and fails any batch holding it)."""

    name = "flaky"

    def covers(self, lat, lon):
        return np.asarray(lat) < 60

    def observations(self, points):
        if any(p.point_id == "bad" for p in points):
            raise SourceError("quota exceeded for 'bad'")
        rows = []
        for p in points:
            for d in range(3):
                t = T0 + pd.Timedelta(days=5 * d)
                rows.append({"point_id": p.point_id, "sensor": "S2", "datetime": t, "scene_cloud_pct": 1.0,
                             **SOIL, "SCL": 5, "VV": np.nan, "VH": np.nan, "angle": np.nan})
                rows.append({"point_id": p.point_id, "sensor": "S1", "datetime": t + pd.Timedelta(hours=2),
                             "scene_cloud_pct": np.nan, **{b: np.nan for b in bands.S2_BANDS}, "SCL": np.nan,
                             "VV": -10.0, "VH": -17.0, "angle": 40.0})
        return pd.DataFrame(rows, columns=list(bands.OBS_COLUMNS))


def test_batch_routing_with_a_failing_point():
    fn = dt.ExtractPoints("flaky", {}, sequences.ExtractConfig())
    fn._source = FlakySource()
    batch = [{"point_id": pid, "lat": lat, "lon": 5.0, "clay": 20.0, "origin": "samples", "row": i + 1}
             for i, (pid, lat) in enumerate([("ok1", 45.0), ("bad", 45.0), ("north", 70.0), ("ok2", 46.0)])]
    out = list(fn.process(batch))
    kept = [o for o in out if isinstance(o, dt.PointResult)]
    tagged = [o for o in out if not isinstance(o, dt.PointResult)]
    rejected = [o.value for o in tagged if o.tag == dt.REJECTED]
    counts = [o.value for o in tagged if o.tag == dt.COUNTS]
    assert [k.point_id for k in kept] == ["ok1", "ok2"]
    assert [(r.point_id, r.reason) for r in rejected] == [("bad", "source_error"), ("north", "outside_coverage")]
    assert isinstance(rejected[0], Rejection) and "quota" in rejected[0].detail
    assert len(counts) == 4 and sum(c["kept"] for c in counts) == 6 and sum(c["paired"] for c in counts) == 6
    assert kept[0].s2s1_length == 3 and kept[0].mean_s2 == pytest.approx([v / 1e4 for v in SOIL.values()])


def test_spatial_batches_group_neighbours_and_keep_every_point():
    from s2mos_transforms.dataset.pipeline import spatial_batches

    points = [{"point_id": f"p{i}", "lat": 45.0 + (i % 3), "lon": float(10 - i), "origin": "samples", "row": i + 1}
              for i in range(7)]
    batches = spatial_batches(points, 3)
    assert [len(b) for b in batches] == [3, 3, 1]
    assert [p["point_id"] for b in batches for p in b] == [f"p{i}" for i in range(6, -1, -1)]   # west → east
    assert spatial_batches([], 3) == []
