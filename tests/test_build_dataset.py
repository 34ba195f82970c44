"""The real build-dataset pipeline on DirectRunner, on a hand-built observations table.

Every expectation below is computed by hand from the table built here: which dates are
bare, which S1 acquisition pairs with which S2 date, which points are rejected and why.
These builds apply the paper's rule, ``--require-s1-pair`` (point C is rejected
``no_s1_pair``); tests/test_s2_only_dataset.py builds the same table without it.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from s2mos_transforms import bands

from s2mos_transforms.dataset import schema

from s2mos_transforms.dataset import split
from s2mos_transforms.normalize import NormStats

import tensorflow as tf

from pipelines import build_dataset

T0 = pd.Timestamp("2018-03-01T10:30:00")
DAY = pd.Timedelta(days=1)
HOUR = pd.Timedelta(hours=1)
SOIL = dict(zip(bands.S2_BANDS, [800, 1000, 1200, 1400, 1500, 1600, 1800, 1900, 2800, 2500]))
VEG = dict(zip(bands.S2_BANDS, [300, 600, 300, 1000, 2500, 3000, 3500, 3600, 2000, 1000]))


def s2_row(pid, t, spectrum, scale=1.0, cloud=2.0, scl=5, **override):
    row = {"point_id": pid, "sensor": "S2", "datetime": t, "scene_cloud_pct": cloud, "SCL": scl,
           "VV": np.nan, "VH": np.nan, "angle": np.nan}
    row.update({b: int(round(v * scale)) for b, v in spectrum.items()})
    row.update(override)
    return row


def s1_row(pid, t, vv, vh=-18.0):
    row = {"point_id": pid, "sensor": "S1", "datetime": t, "scene_cloud_pct": np.nan, "SCL": np.nan,
           "VV": vv, "VH": vh, "angle": 38.0}
    row.update({b: np.nan for b in bands.S2_BANDS})
    return row


def observations_table() -> pd.DataFrame:
    rows = []
    # A: 12 dates, 5 days apart. d2 vegetated, d3 cloudy scene (50 %), d4 SCL cloud → 9 bare dates.
    # S1: d0 +24 h exactly (pairs), d1 +24 h 1 s (no), d5 −3 h / +3 h tie (earlier, VV −11),
    # d6 +2 h with VV missing and +5 h valid (VV −7.5) → paired dates d0, d5, d6.
    for d in range(12):
        t = T0 + 5 * d * DAY
        spec = VEG if d == 2 else SOIL
        rows.append(s2_row("A", t, spec, scale=1 + 0.002 * d, cloud=50.0 if d == 3 else 2.0,
                           scl=9 if d == 4 else 5))
    rows += [s1_row("A", T0 + DAY, -10.0), s1_row("A", T0 + 5 * DAY + DAY + pd.Timedelta(seconds=1), -99.0),
             s1_row("A", T0 + 25 * DAY - 3 * HOUR, -11.0), s1_row("A", T0 + 25 * DAY + 3 * HOUR, -9.0),
             s1_row("A", T0 + 30 * DAY + 2 * HOUR, np.nan), s1_row("A", T0 + 30 * DAY + 5 * HOUR, -7.5)]
    # B: only vegetation → no_bare_observation.
    rows += [s2_row("B", T0 + 5 * d * DAY, VEG) for d in range(6)]
    rows += [s1_row("B", T0 + 5 * d * DAY + HOUR, -12.0) for d in range(6)]
    # C: bare, but S1 two days away → no_s1_pair.
    rows += [s2_row("C", T0 + 5 * d * DAY, SOIL) for d in range(6)]
    rows += [s1_row("C", T0 + 5 * d * DAY + 2 * DAY, -12.0) for d in range(6)]
    # E: 200 daily bare dates, S1 1 h later each; day 100 has a B5 spike (still bare) → 3σ
    # outlier → 199 kept, capped to 150 spread evenly: first and last day kept.
    for d in range(200):
        rows.append(s2_row("E", T0 + d * DAY, SOIL, scale=1 + 0.0005 * (d % 7),
                           **({"B5": 9000} if d == 100 else {})))
        rows.append(s1_row("E", T0 + d * DAY + HOUR, -10.0 - 0.01 * d))
    # F1…F8: plain bare points with different brightness (the Kennard–Stone spread).
    for k in range(8):
        pid = f"F{k + 1}"
        for d in range(6):
            rows.append(s2_row(pid, T0 + 5 * d * DAY, SOIL, scale=0.7 + 0.08 * k + 0.001 * d))
            rows.append(s1_row(pid, T0 + 5 * d * DAY + HOUR, -14.0 + k))
    # H1: the held-out site point (clay 95 %, far south): test only, never in the stats.
    for d in range(4):
        rows.append(s2_row("H1", T0 + 5 * d * DAY, SOIL, scale=1.5))
        rows.append(s1_row("H1", T0 + 5 * d * DAY - HOUR, -5.0))
    df = pd.DataFrame(rows)
    df["SCL"] = df["SCL"].astype("Float64").astype("UInt8")
    for b in bands.S2_BANDS:
        df[b] = df[b].astype("Float64").astype("Int16")
    return df[list(bands.OBS_COLUMNS)]


SAMPLES = """point_id,lat,lon,clay
A,45.0,5.0,20
B,45.1,5.1,21
C,45.2,5.2,22
D,45.3,5.3,23
E,45.4,5.4,24
F1,46.0,6.0,10
F2,46.1,6.1,15
F3,46.2,6.2,30
F4,46.3,6.3,35
F5,46.4,6.4,40
F6,46.5,6.5,45
F7,46.6,6.6,50
F8,46.7,6.7,55
bad_lat,95,5,20
bad_clay,45,5,-1
,45,5,20
nolon,45,,20
text,45,5,twenty
far_lon,45,200,20
A,45,5,20
"""
HOLDOUT = """POINT_ID,GPS_LAT,GPS_LONG,clay
H1,10.0,20.0,95
F1,10.0,20.0,50
"""
N_INPUT = 22


def run_build(out, samples, observations, *extra, holdout=None, **flags):
    parser = argparse.ArgumentParser()
    build_dataset.configure(parser)
    argv = ["--samples", str(samples), "--source", "table", "--observations", str(observations),
            "--out", str(out)]
    if holdout:
        argv += ["--holdout-samples", str(holdout)]
    for key, value in flags.items():
        argv += [f"--{key.replace('_', '-')}", str(value)]
    args, beam_flags = parser.parse_known_args(argv + list(extra))
    return build_dataset.build(args, beam_flags)


def read_split(out, name):
    files = sorted(tf.io.gfile.glob(os.path.join(str(out), f"{name}-*.tfrecord.gz")))
    records = {}
    spec = schema.feature_spec(schema.read_schema(str(out)))       # the schema written beside the data
    for raw in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        rec = schema.decode_example(raw.numpy())
        parsed = tf.io.parse_single_example(raw, spec)              # the trainer's parsing path
        assert int(parsed["s2s1_length"]) == rec["s2s1_length"]
        assert tf.sparse.to_dense(parsed["s2s1"]).shape[0] == rec["s2s1_length"] * 12
        records[rec["point_id"]] = rec
    return records


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    observations_table().to_parquet(d / "obs.parquet")
    (d / "samples.csv").write_text(SAMPLES)
    (d / "site.csv").write_text(HOLDOUT)
    return d


@pytest.fixture(scope="module")
def built(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ds"
    summary = run_build(out, inputs / "samples.csv", inputs / "obs.parquet", "--require-s1-pair",
                        holdout=inputs / "site.csv", test_fraction=0.25, shards=2)
    return out, summary


def test_accounting_and_every_reason(built):
    out, summary = built
    rejected = [json.loads(line) for line in (out / "rejected.jsonl").read_text().splitlines()]
    reasons = {r["point_id"]: r["reason"] for r in rejected if r["origin"] == "samples"}
    assert reasons == {"B": "no_bare_observation", "C": "no_s1_pair", "D": "no_observations",
                       "bad_lat": "lat_out_of_range", "bad_clay": "clay_out_of_range", None: "missing_point_id",
                       "nolon": "missing_value", "text": "non_numeric", "far_lon": "lon_out_of_range",
                       "A": "duplicate_point_id"}
    assert [(r["point_id"], r["reason"]) for r in rejected if r["origin"] == "holdout"] == [
        ("F1", "duplicate_point_id")]
    assert [r["row"] for r in rejected][:3] == [2, 3, 4]                       # sorted by input row
    cal, test = read_split(out, "calibration"), read_split(out, "test")
    assert summary["input_points"] == N_INPUT == len(cal) + len(test) + len(rejected)
    assert (summary["calibration"], summary["test"], summary["rejected"]) == (len(cal), len(test), len(rejected))
    assert set(cal) | set(test) == {"A", "E", "H1"} | {f"F{k}" for k in range(1, 9)}
    assert not set(cal) & set(test)
    assert summary["rejected_by_reason"]["duplicate_point_id"] == 2
    # Beam counters agree: 14 valid rows sent to the source, 3 rejected there, 11 written.
    assert summary["beam_counters"] == {
        "points_kept": 11, "points_read": 14, "points_with_s1_pair": 11, "rejected_no_bare_observation": 1,
        "rejected_no_observations": 1, "rejected_no_s1_pair": 1, "written_calibration": len(cal),
        "written_test": len(test)}
    assert summary["require_s1_pair"] is True
    assert (summary["points_with_s1_pair"], summary["points_without_s1_pair"]) == (11, 0)
    assert summary["s1_pair_by_split"] == {"calibration": {"with": len(cal), "without": 0},
                                           "test": {"with": len(test), "without": 0}}
    written = json.loads((out / "summary.json").read_text())
    assert written["rejected_by_reason"] == summary["rejected_by_reason"]
    for name in ("schema.pbtxt", "stats.json", "split.csv", "bare_observations_per_point.png", "correlogram.png"):
        assert (out / name).stat().st_size > 0
    assert sorted(p.name for p in out.glob("*.tfrecord.gz")) == [
        "calibration-00000-of-00002.tfrecord.gz", "calibration-00001-of-00002.tfrecord.gz",
        "test-00000-of-00002.tfrecord.gz", "test-00001-of-00002.tfrecord.gz"]
    assert not list(out.parent.glob(".ds.staging-*"))


def test_the_job_finishes_the_dataset_without_its_launcher(built, inputs, tmp_path):
    """A launcher that never waits (a Flex Template launch) still leaves a whole dataset: the
    job's own last step writes it and swaps it into --out; the launcher adds only the counters."""
    out = tmp_path / "ds"
    parser = argparse.ArgumentParser()
    build_dataset.configure(parser)
    args, extra = parser.parse_known_args(
        ["--samples", str(inputs / "samples.csv"), "--holdout-samples", str(inputs / "site.csv"), "--source", "table",
         "--observations", str(inputs / "obs.parquet"), "--out", str(out), "--test-fraction", "0.25", "--shards", "2",
         "--require-s1-pair"])
    p, staging = build_dataset.construct(args, extra)
    p.run()                                                 # the job only; nothing after it
    written = json.loads((out / "summary.json").read_text())
    reference = json.loads((built[0] / "summary.json").read_text())
    assert written["beam_counters"] is None and written["job_tallies"] == {
        "points_read": 14, "points_with_s1_pair": 11, "points_without_s1_pair": 0,
        "written_calibration": written["calibration"], "written_test": written["test"]}
    assert {k: v for k, v in written.items() if k not in ("beam_counters", "inputs")} == {
        k: v for k, v in reference.items() if k not in ("beam_counters", "inputs")}
    for name in ("calibration-00000-of-00002.tfrecord.gz", "test-00001-of-00002.tfrecord.gz", "schema.pbtxt"):
        assert (out / name).read_bytes() == (built[0] / name).read_bytes()
    assert not os.path.exists(staging) and not (out / "_parts").exists()


def test_point_a_masks_and_pairing(built):
    out, _ = built
    records = {**read_split(out, "calibration"), **read_split(out, "test")}
    a = records["A"]
    bare_days = [0, 1, 5, 6, 7, 8, 9, 10, 11]
    expect = [int((T0 + 5 * d * DAY).timestamp()) for d in bare_days]
    assert a["s2_length"] == 9 and a["s2_dates"].tolist() == expect
    np.testing.assert_allclose(a["s2"][0], [SOIL[b] / 1e4 for b in bands.S2_BANDS], rtol=1e-6)
    np.testing.assert_allclose(a["s2"][1, 0], round(800 * 1.002) / 1e4, rtol=1e-6)
    assert a["s2s1_length"] == 3
    assert a["s2s1_dates"].tolist() == [expect[0], expect[2], expect[3]]        # d0, d5, d6
    np.testing.assert_allclose(a["s2s1"][:, 10], [-10.0, -11.0, -7.5])         # VV: edge, tie→earlier, NaN skipped
    np.testing.assert_allclose(a["s2s1"][:, :10], a["s2"][[0, 2, 3]])
    assert (a["lat"], a["lon"], a["clay"]) == (45.0, 5.0, 20.0)


def test_point_e_outlier_and_cap(built):
    out, summary = built
    records = {**read_split(out, "calibration"), **read_split(out, "test")}
    e = records["E"]
    days = (e["s2_dates"] - int(T0.timestamp())) // 86400
    assert e["s2_length"] == 150 and e["s2s1_length"] == 150
    assert days[0] == 0 and days[-1] == 199 and 100 not in days.tolist()
    assert np.all(np.diff(days) >= 1) and np.all(np.diff(days) <= 3)             # spread evenly
    kept = [d for d in range(200) if d != 100]
    ranks = np.floor(np.arange(150) * 198 / 149 + 0.5).astype(int)
    assert days.tolist() == [kept[r] for r in ranks]
    assert summary["points_capped"] == 1 and summary["bare_per_point"]["max"] == 199


def test_split_and_stats_from_calibration_only(built):
    out, summary = built
    cal, test = read_split(out, "calibration"), read_split(out, "test")
    assert "H1" in test and summary["test_from_holdout"] == 1
    # The split is Kennard–Stone on the mean of each recorded S2 sequence, main table order.
    order = ["A", "E"] + [f"F{k}" for k in range(1, 9)]
    recs = {**cal, **test}
    feats = np.stack([recs[p]["s2"].astype(np.float64).mean(axis=0) for p in order])
    is_test = split.kennard_stone_split(feats, 0.25)
    assert sorted(p for p, t in zip(order, is_test) if t) == sorted(p for p in test if p != "H1")
    assert len(cal) == 7 and len(test) == 4                                      # 10 × 0.25 → 3 (half up) + H1
    # Stats: min/max over the calibration records only (H1, clay 95 and lat 10, is in test).
    stats = NormStats.load(str(out))
    s2s1 = np.concatenate([r["s2s1"] for r in cal.values()])
    np.testing.assert_allclose(stats["s2s1"].lo, s2s1.min(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats["s2s1"].hi, s2s1.max(axis=0), rtol=1e-6)
    s2 = np.concatenate([r["s2"] for r in cal.values()])
    np.testing.assert_allclose(stats["s2"].hi, s2.max(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats["clay"].hi, [max(r["clay"] for r in cal.values())])
    np.testing.assert_allclose(stats["coords"].lo, [min(r["lat"] for r in cal.values()),
                                                    min(r["lon"] for r in cal.values())])
    assert stats["clay"].hi[0] < 95 and stats["coords"].lo[0] > 10


def test_summary_counts(built):
    _, summary = built
    obs = summary["observations"]
    # S2 acquisitions of the points that reached the source: A 12, B 6, C 6, E 200, F 8×6, H1 4.
    assert obs["s2_acquisitions"] == 12 + 6 + 6 + 200 + 48 + 4
    assert obs["kept"] == 9 + 6 + 199 + 48 + 4 and obs["bare"] == obs["kept"] + 1
    assert obs["paired"] == 3 + 199 + 48 + 4
    assert summary["thresholds"]["ndvi_max"] == bands.NDVI_MAX
    assert summary["notes"] == []
    assert set(summary["correlation_with_clay"]) == {"B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11",
                                                     "B12", "VV", "VH", "lat", "lon"}


@pytest.mark.slow
def test_multiprocessing_run_is_byte_identical_then_rerun_replaces(built, inputs):
    out, _ = built
    other = out.parent / "mp"
    run_build(other, inputs / "samples.csv", inputs / "obs.parquet", "--direct_num_workers=2",
              "--direct_running_mode=multi_processing", "--require-s1-pair", holdout=inputs / "site.csv",
              test_fraction=0.25, shards=2)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in other.iterdir())
    for name in names:
        assert (out / name).read_bytes() == (other / name).read_bytes(), name
    # Rerun into the same directory with other settings: the old dataset is gone whole.
    summary = run_build(other, inputs / "samples.csv", inputs / "obs.parquet", test_fraction=0.5, shards=1,
                        ndvi_max=0.3)
    names = sorted(p.name for p in other.iterdir())
    assert "calibration-00000-of-00002.tfrecord.gz" not in names
    assert [n for n in names if n.endswith(".gz")] == ["calibration-00000-of-00001.tfrecord.gz",
                                                        "test-00000-of-00001.tfrecord.gz"]
    assert summary["input_points"] == 20 and summary["test_from_holdout"] == 0
    assert json.loads((other / "summary.json").read_text())["thresholds"]["ndvi_max"] == 0.3
    assert not [p for p in other.parent.iterdir() if "staging" in p.name]


def test_refuses_to_replace_a_foreign_directory(inputs, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(build_dataset.UserError, match="refusing to replace"):
        run_build(foreign, inputs / "samples.csv", inputs / "obs.parquet")
    assert (foreign / "thesis.tex").read_text() == "precious"


@pytest.mark.slow
def test_cli_errors_are_one_line(inputs, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("point_id,lat,lon\nA,1,2\n")
    exe = os.path.join(os.path.dirname(sys.executable), "s2mos")
    cases = [
        (["--samples", str(bad), "--out", str(tmp_path / "o")], f"samples {bad}: missing required column(s) clay"),
        (["--samples", str(inputs / "samples.csv"), "--source", "table", "--out", str(tmp_path / "o")],
         "the 'table' source needs --observations"),
        (["--samples", str(inputs / "samples.csv"), "--out", str(tmp_path / "o"), "--test-fraction", "1"],
         "--test-fraction must be in [0, 1)"),
        (["--samples", str(inputs / "samples.csv"), "--out", str(tmp_path / "o"), "--no-such-flag=1"],
         "unknown option(s) --no-such-flag=1"),
    ]
    for argv, message in cases:
        proc = subprocess.run([exe, "build-dataset", *argv], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("s2mos")]
        assert lines == [f"s2mos: error: {lines[0][len('s2mos: error: '):]}"] and message in lines[0]
        assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()
