"""build-dataset and tune-thresholds on the embedded world (40 points of the quick preset)."""
import argparse
import json

import numpy as np
import pandas as pd
import pytest

from s2mos_transforms import bands

from s2mos_transforms.dataset import schema
from s2mos_transforms.sources import SamplePoint

import tensorflow as tf
from s2mos_transforms.sources import synthetic as world_source

from pipelines import build_dataset, tune_thresholds

N = 40


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("world")
    src = world_source.SyntheticSource("quick")
    samples = src.sample_points(N)[["point_id", "lat", "lon", "clay"]]
    outside = pd.DataFrame({"point_id": ["OUT"], "lat": [30.0], "lon": [0.0], "clay": [20.0]})
    pd.concat([samples, outside]).to_csv(d / "samples.csv", index=False)
    pts = [SamplePoint(r.point_id, r.lat, r.lon, r.clay) for r in samples.itertuples(index=False)]
    src.observations(pts).to_parquet(d / "observations.parquet")
    src.lab_spectra(samples).to_csv(d / "lab_spectra.csv", index=False)
    return d


def build(out, *argv):
    parser = argparse.ArgumentParser()
    build_dataset.configure(parser)
    args, extra = parser.parse_known_args(["--out", str(out), *map(str, argv)])
    return build_dataset.build(args, extra)


def records(out, name):
    files = sorted(tf.io.gfile.glob(str(out / f"{name}-*.tfrecord.gz")))
    return [schema.decode_example(r.numpy()) for r in tf.data.TFRecordDataset(files, compression_type="GZIP")]


@pytest.mark.slow
def test_synthetic_build_and_table_export_agree(world, tmp_path):
    syn = build(tmp_path / "syn", "--samples", world / "samples.csv", "--source", "synthetic", "--preset", "quick")
    assert syn["input_points"] == N + 1
    assert syn["calibration"] + syn["test"] + syn["rejected"] == N + 1
    assert syn["calibration"] >= 10 and syn["test"] >= 3
    rejected = [json.loads(x) for x in (tmp_path / "syn" / "rejected.jsonl").read_text().splitlines()]
    assert {"point_id": "OUT", "reason": "outside_coverage"}.items() <= rejected[-1].items()
    assert set(syn["rejected_by_reason"]) <= {"outside_coverage", "no_bare_observation", "no_s1_pair"}
    cal = records(tmp_path / "syn", "calibration")
    for rec in cal:
        assert 1 <= rec["s2s1_length"] <= rec["s2_length"] <= bands.MAX_DATES
        assert np.all(np.diff(rec["s2_dates"]) > 0)
        assert set(rec["s2s1_dates"].tolist()) <= set(rec["s2_dates"].tolist())
        assert (rec["s2"] > 0).all() and (rec["s2"] < 1).all()
        assert (rec["s2s1"][:, 10:] < 5).all() and (rec["s2s1"][:, 10:] > -40).all()   # dB
        # Bare means bare: every recorded date passes the paper's tests.
        s2 = rec["s2"]
        ndvi = (s2[:, 6] - s2[:, 2]) / (s2[:, 6] + s2[:, 2])
        nbr2 = (s2[:, 8] - s2[:, 9]) / (s2[:, 8] + s2[:, 9])
        assert (ndvi < bands.NDVI_MAX).all() and (nbr2 < bands.NBR2_MAX).all()
        assert (s2[:, 1] > s2[:, 0]).all() and (s2[:, 2] > s2[:, 1]).all()
    # The same observations through the table source give the same dataset, byte for byte.
    tab = build(tmp_path / "tab", "--samples", world / "samples.csv", "--source", "table",
                "--observations", world / "observations.parquet")
    assert tab["rejected_by_reason"].keys() - syn["rejected_by_reason"].keys() == {"no_observations"}
    for name in ("calibration-00000-of-00001.tfrecord.gz", "test-00000-of-00001.tfrecord.gz", "stats.json"):
        assert (tmp_path / "syn" / name).read_bytes() == (tmp_path / "tab" / name).read_bytes(), name
    # Looser thresholds keep at least as many bare observations.
    loose = build(tmp_path / "loose", "--samples", world / "samples.csv", "--ndvi-max", "0.3", "--nbr2-max", "0.2")
    assert loose["observations"]["bare"] >= syn["observations"]["bare"]
    assert loose["rejected"] <= syn["rejected"]


def test_tune_thresholds_grid(world, capsys):
    parser = argparse.ArgumentParser()
    tune_thresholds.configure(parser)
    args = parser.parse_args(["--samples", str(world / "samples.csv"), "--lab-spectra",
                              str(world / "lab_spectra.csv"), "--json", str(world / "tune.json")])
    rc = tune_thresholds.run(args, [])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "chosen: --ndvi-max" in printed
    result = json.loads((world / "tune.json").read_text())
    assert len(result["rows"]) == len(bands.NDVI_GRID) * len(bands.NBR2_GRID)
    chosen = result["chosen"]
    assert chosen["ndvi_max"] in bands.NDVI_GRID and chosen["nbr2_max"] in bands.NBR2_GRID
    points = {(r["ndvi_max"], r["nbr2_max"]): r["points"] for r in result["rows"]}
    # Loosening a threshold never loses points.
    for ndvi in bands.NDVI_GRID:
        counts = [points[(ndvi, nbr2)] for nbr2 in bands.NBR2_GRID]
        assert counts == sorted(counts)
    best = max(r["score"] for r in result["rows"] if r["points"] >= 0.5 * max(points.values()))
    assert chosen["score"] == best
