"""Sample table reading/validation, and the observations-table source."""
import numpy as np
import pandas as pd
import pytest

from s2mos_transforms import bands

from s2mos_transforms.dataset import samples
from s2mos_transforms.errors import UserError
from s2mos_transforms.sources import SamplePoint
from s2mos_transforms.sources.table import TableSource

CSV = """point_id,lat,lon,clay,extra
A,45.0,5.0,20.5,x
B,,5.0,20,x
C,45.0,5.0,abc,x
D,95.0,5.0,20,x
E,45.0,-200,20,x
F,45.0,5.0,120,x
A,46.0,6.0,30,x
,45.0,5.0,20,x
G,45.0,5.0,inf,x
H,-90,180,0,x
"""


def test_row_reasons(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text(CSV)
    table = samples.read_samples(str(path))
    assert table.n_rows == 10
    assert table.points["point_id"].tolist() == ["A", "H"]
    assert table.points["row"].tolist() == [1, 10]
    assert table.points["clay"].tolist() == [20.5, 0.0]
    got = [(r.point_id, r.reason, r.row) for r in table.rejected]
    assert got == [("B", samples.MISSING_VALUE, 2), ("C", samples.NON_NUMERIC, 3),
                   ("D", samples.LAT_OUT_OF_RANGE, 4), ("E", samples.LON_OUT_OF_RANGE, 5),
                   ("F", samples.CLAY_OUT_OF_RANGE, 6), ("A", samples.DUPLICATE_POINT_ID, 7),
                   (None, samples.MISSING_POINT_ID, 8), ("G", samples.NON_NUMERIC, 9)]
    assert "row 1" in table.rejected[5].detail
    assert all(r.file == str(path) for r in table.rejected)
    assert set(r.reason for r in table.rejected) | {samples.DUPLICATE_POINT_ID} >= set(samples.ROW_REASONS)


def test_lucas_aliases_parquet_and_leading_zeros(tmp_path):
    path = tmp_path / "lucas.parquet"
    pd.DataFrame({"POINT_ID": [26181772, 26181773], "GPS_LAT": [45.1, 45.2], "GPS_LONG": [5.0, 5.1],
                  "clay": [12.0, 40.0]}).to_parquet(path)
    table = samples.read_samples(str(path))
    assert table.points["point_id"].tolist() == ["26181772", "26181773"]
    csv = tmp_path / "ids.csv"
    csv.write_text("point_id,lat,lon,clay\n00123,45,5,10\n")
    assert samples.read_samples(str(csv)).points["point_id"].tolist() == ["00123"]


def test_held_out_table_shares_the_id_space(tmp_path):
    main, site = tmp_path / "main.csv", tmp_path / "site.csv"
    main.write_text("point_id,lat,lon,clay\nA,45,5,10\nB,45,5,11\n")
    site.write_text("point_id,lat,lon,clay\nS1,40.6,22.5,55\nA,40.6,22.5,50\n")
    points, rejected, n = samples.read_sample_tables(str(main), str(site))
    assert n == 4
    assert points["point_id"].tolist() == ["A", "B", "S1"]
    assert points["origin"].tolist() == ["samples", "samples", "holdout"]
    assert [(r.point_id, r.reason, r.origin) for r in rejected] == [("A", "duplicate_point_id", "holdout")]


@pytest.mark.parametrize("content, suffix, message", [
    (None, ".csv", "file not found"),
    ("", ".csv", "empty"),
    ("point_id,lat,clay\nA,45,10\n", ".csv", "missing required column(s) lon"),
    ("not a parquet file", ".parquet", "cannot parse"),
    ("x", ".xlsx", "unsupported file type"),
    ("point_id,lat,GPS_LAT,lon,clay\nA,1,1,1,1\n", ".csv", "both give 'lat'"),
])
def test_unreadable_tables_are_one_line_user_errors(tmp_path, content, suffix, message):
    path = tmp_path / f"s{suffix}"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError) as err:
        samples.read_samples(str(path))
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


# -- observations table source -------------------------------------------------------------

def _obs_rows():
    rows = []
    for pid in ("P2", "P1"):
        for d in range(3):
            t = pd.Timestamp("2018-05-01T10:30:00") + pd.Timedelta(days=5 * d)
            rows.append({"point_id": pid, "datetime": t.isoformat(), **{b: 1000 + d for b in bands.S2_BANDS},
                         "VV": "", "VH": ""})
            rows.append({"point_id": pid, "datetime": (t + pd.Timedelta(hours=5)).isoformat() + "+00:00",
                         **{b: "" for b in bands.S2_BANDS}, "VV": -10.5, "VH": -17.25})
    return rows


def test_table_source_is_lenient_and_indexed(tmp_path):
    path = tmp_path / "obs.csv"
    pd.DataFrame(_obs_rows()).to_csv(path, index=False)          # no sensor, SCL, cloud, angle
    src = TableSource(str(path))
    assert any("SCL" in n for n in src.notes) and any("scene_cloud_pct" in n for n in src.notes)
    assert any("sensor" in n for n in src.notes)
    obs = src.observations([SamplePoint("P1", 45, 5), SamplePoint("nope", 45, 5)])
    assert list(obs.columns) == list(bands.OBS_COLUMNS)
    assert set(obs["point_id"]) == {"P1"} and len(obs) == 6
    assert (obs["sensor"] == "S2").sum() == 3 and (obs["sensor"] == "S1").sum() == 3
    s1 = obs[obs["sensor"] == "S1"]
    assert s1["datetime"].iloc[0] == pd.Timestamp("2018-05-01T15:30:00", tz="UTC")
    assert s1["VV"].tolist() == [-10.5] * 3
    assert src.covers(np.array([0.0, 89.0]), np.array([0.0, 170.0])).all()


@pytest.mark.parametrize("mutate, message", [
    (lambda df: df.drop(columns=["B12", "VH"]), "missing required column(s) B12, VH"),
    (lambda df: df.assign(sensor="L8"), "is not S2 or S1"),
    (lambda df: df.assign(datetime="yesterday"), "is not a date/time"),
    (lambda df: df.assign(B4="x"), "B4='x' is not a number"),
])
def test_table_source_errors_name_the_file_and_row(tmp_path, mutate, message):
    path = tmp_path / "obs.csv"
    mutate(pd.DataFrame(_obs_rows())).to_csv(path, index=False)
    with pytest.raises(UserError) as err:
        TableSource(str(path))
    assert message in str(err.value) and str(path) in str(err.value)
