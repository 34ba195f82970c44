"""Every timestamp is timezone-aware UTC: the table source, the embedded world, `utc_times`."""
from __future__ import annotations

import pandas as pd
import pytest

from s2mos_transforms import bands
from s2mos_transforms.sources import SamplePoint
from s2mos_transforms.sources.base import UTC_DTYPE, utc_times
from s2mos_transforms.sources.table import TableSource


def _rows(times):
    return pd.DataFrame({"point_id": "P1", "datetime": times, **{b: 1000 for b in bands.S2_BANDS},
                         "VV": float("nan"), "VH": float("nan")})


def test_utc_times_reads_naive_as_utc_and_converts_offsets():
    out = utc_times(pd.Series(["2018-05-01T10:30:00", "2018-05-01T12:30:00+02:00", "2018-05-02"]))
    assert str(out.dtype) == UTC_DTYPE
    assert out.tolist() == [pd.Timestamp("2018-05-01T10:30:00Z")] * 2 + [pd.Timestamp("2018-05-02T00:00:00Z")]
    paris = pd.Series(pd.to_datetime(["2018-01-01T11:00:00"])).dt.tz_localize("Europe/Paris")
    assert utc_times(paris).iloc[0] == pd.Timestamp("2018-01-01T10:00:00Z")
    naive = pd.Series(pd.to_datetime(["2018-01-01T11:00:00"]).astype("datetime64[s]"))
    assert utc_times(naive).iloc[0] == pd.Timestamp("2018-01-01T11:00:00Z")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_table_source_gives_utc(tmp_path, fmt):
    times = ["2018-05-01T10:30:00", "2018-05-06T12:30:00+02:00", "2018-05-11"]
    frame = _rows(times)
    path = tmp_path / f"obs.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:                                    # a zone-aware Parquet column (Europe/Athens, +03:00)
        frame["datetime"] = utc_times(frame["datetime"]).dt.tz_convert("Europe/Athens")
        frame.to_parquet(path)
    obs = TableSource(str(path)).observations([SamplePoint("P1", 0, 0)])
    assert str(obs["datetime"].dtype) == UTC_DTYPE
    assert obs["datetime"].tolist() == [pd.Timestamp(t, tz="UTC") for t in
                                        ("2018-05-01T10:30:00", "2018-05-06T10:30:00", "2018-05-11T00:00:00")]


def test_naive_parquet_column_is_read_as_utc(tmp_path):
    frame = _rows(pd.to_datetime(["2018-05-01T10:30:00"]))
    frame.to_parquet(tmp_path / "obs.parquet")
    obs = TableSource(str(tmp_path / "obs.parquet")).observations([SamplePoint("P1", 0, 0)])
    assert obs["datetime"].tolist() == [pd.Timestamp("2018-05-01T10:30:00", tz="UTC")]


def test_world_observations_and_state_are_utc():
    from s2mos_transforms.sources.synthetic import SyntheticSource
    obs, state = SyntheticSource("quick").observations_and_state([SamplePoint("X", 48.5, 8.99)],
                                                                 start="2018-05-01", end="2018-05-31")
    assert str(obs["datetime"].dtype) == str(state["datetime"].dtype) == UTC_DTYPE
    assert len(obs) and (obs["datetime"] == state["datetime"]).all()
    assert obs["datetime"].min() >= pd.Timestamp("2018-05-01", tz="UTC")
