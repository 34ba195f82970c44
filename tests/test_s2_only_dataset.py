"""S2-only and partly paired data in build-dataset (`--require-s1-pair`, default off).

Off, a point whose bare S2 dates have no Sentinel-1 pair is kept with an empty paired
sequence (``s2s1_length`` 0) and its S2 sequence; on, it is rejected ``no_s1_pair`` (the
paper's rule). The table source accepts observation tables without the S1 columns.
"""
import argparse
import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf  # noqa: F401 — loaded at collection, like the other dataset tests, not inside a fast test

from s2mos_transforms import bands, sequences
from s2mos_transforms.dataset import transforms as dt
from s2mos_transforms.errors import UserError
from s2mos_transforms.normalize import NormStats
from s2mos_transforms.sources import SamplePoint
from s2mos_transforms.sources.table import TableSource
from pipelines import build_dataset, tune_thresholds
from trainer.data import read_split

T0 = pd.Timestamp("2018-03-01T10:30:00")
DAY = pd.Timedelta(days=1)
SOIL = dict(zip(bands.S2_BANDS, [800, 1000, 1200, 1400, 1500, 1600, 1800, 1900, 2800, 2500]))
VEG = dict(zip(bands.S2_BANDS, [300, 600, 300, 1000, 2500, 3000, 3500, 3600, 2000, 1000]))
BARE = [f"S{k}" for k in range(1, 7)]
N_DATES = 5


def scale(k: int, d: int) -> float:
    return 0.7 + 0.08 * k + 0.001 * d


def s2_only_table() -> pd.DataFrame:
    """S2 columns only: no VV, VH, angle (nor sensor) column at all. S1…S6: 5 bare dates each,
    brightness rising with k; V: vegetation only (no_bare_observation)."""
    rows = []
    for k, pid in enumerate(BARE):
        for d in range(N_DATES):
            rows.append({"point_id": pid, "datetime": (T0 + 5 * d * DAY).isoformat(), "scene_cloud_pct": 2.0,
                         "SCL": 5, **{b: int(round(v * scale(k, d))) for b, v in SOIL.items()}})
    for d in range(3):
        rows.append({"point_id": "V", "datetime": (T0 + 5 * d * DAY).isoformat(), "scene_cloud_pct": 2.0,
                     "SCL": 5, **VEG})
    return pd.DataFrame(rows)


SAMPLES = "point_id,lat,lon,clay\n" + "".join(f"{p},{45 + 0.1 * k},{5 + 0.1 * k},{10 + 5 * k}\n"
                                              for k, p in enumerate(BARE)) + "V,46,6,30\nZ,46.5,6.5,40\n"


def run_build(out, *argv):
    parser = argparse.ArgumentParser()
    build_dataset.configure(parser)
    args, extra = parser.parse_known_args(["--out", str(out), *map(str, argv)])
    return build_dataset.build(args, extra)


def records(out) -> dict[str, dict]:
    """Every kept point, read back with the trainer's reader: id → split, sequences, dates."""
    found = {}
    for name in ("calibration", "test"):
        split = read_split(str(out), name)
        for i, pid in enumerate(split.point_id):
            found[str(pid)] = {"split": name, "s2s1_length": int(split.paired_lengths()[i]),
                               **{k: v[i] for k, v in split.sequences.items()},
                               **{f"{k}_dates": v[i] for k, v in split.dates.items()}}
    return found


# -- fast: the flag, the table source and the per-point rule --------------------------------

@pytest.mark.parametrize("argv, expect", [([], False), (["--require-s1-pair"], True),
                                          (["--require-s1-pair=true"], True), (["--require-s1-pair=false"], False)])
def test_the_flag_is_off_by_default_and_takes_a_template_value(argv, expect):
    parser = argparse.ArgumentParser()
    build_dataset.configure(parser)
    args, extra = parser.parse_known_args(["--samples", "s.csv", "--out", "o", *argv])
    assert args.require_s1_pair is expect and extra == []
    with pytest.raises(SystemExit):
        parser.parse_known_args(["--samples", "s.csv", "--out", "o", "--require-s1-pair=maybe"])


def test_table_source_reads_s2_only_tables(tmp_path):
    path = tmp_path / "obs.csv"
    s2_only_table().to_csv(path, index=False)
    src = TableSource(str(path))
    assert any("no VV/VH columns" in n and str(path) in n for n in src.notes)
    obs = src.observations([SamplePoint("S1", 45, 5)])
    assert list(obs.columns) == list(bands.OBS_COLUMNS) and (obs["sensor"] == "S2").all() and len(obs) == N_DATES
    assert obs[list(bands.OBS_S1_COLUMNS)].isna().all().all()
    # S1 columns present but no S1 row: the same observations, and no S2-only note.
    with_cols = tmp_path / "with_cols.csv"
    s2_only_table().assign(sensor="S2", VV=np.nan, VH=np.nan, angle=np.nan).to_csv(with_cols, index=False)
    both = TableSource(str(with_cols))
    assert not any("VV/VH" in n for n in both.notes)
    pd.testing.assert_frame_equal(both.observations([SamplePoint("S1", 45, 5)]), obs)


@pytest.mark.parametrize("mutate, message", [
    (lambda df: df.drop(columns=["B12"]), "missing required column(s) B12 "),
    (lambda df: df.drop(columns=["B2", "B8A"]), "missing required column(s) B2, B8A "),
    (lambda df: df.assign(VV=-10.0), "missing required column(s) VH "),      # one S1 band without the other
])
def test_missing_s2_columns_still_name_the_file_and_column(tmp_path, mutate, message):
    path = tmp_path / "obs.csv"
    mutate(s2_only_table()).to_csv(path, index=False)
    with pytest.raises(UserError) as err:
        TableSource(str(path))
    assert message in str(err.value) and str(path) in str(err.value)


def test_a_point_without_s1_pair_is_kept_unless_required(tmp_path):
    path = tmp_path / "obs.csv"
    s2_only_table().to_csv(path, index=False)
    obs = sequences.point_observations(TableSource(str(path)).observations([SamplePoint("S2", 45, 5)]))["S2"]
    point = {"point_id": "S2", "lat": 45.1, "lon": 5.1, "clay": 15.0, "origin": "samples", "row": 3}
    config = sequences.ExtractConfig()
    record, rej, counts = dt.process_point(point, obs, config)
    assert rej is None and record["s2s1_length"] == 0 and record["s2"].shape == (N_DATES, 10)
    assert counts["kept"] == N_DATES and counts["paired"] == 0
    result = dt.point_result(point, record, counts)
    assert result.s2s1_min == [] and result.moments[0] == 0
    record, rej, _ = dt.process_point(point, obs, config, require_s1_pair=True)
    assert record is None and rej.reason == dt.NO_S1_PAIR and f"{N_DATES} bare S2 dates" in rej.detail
    # Stats: the calibration min/max of s2s1 comes from the points that have paired dates only.
    combine = dt.MinMaxCombine()
    acc = combine.add_input(combine.create_accumulator(), result)
    assert combine.extract_output(acc)["s2s1"] == {"min": [0.0] * 12, "max": [0.0] * 12}   # trainer's placeholder
    paired = dt.PointResult(**{**result.__dict__, "s2s1_min": [-1.0] * 12, "s2s1_max": [2.0] * 12})
    out = combine.extract_output(combine.add_input(acc, paired))
    assert out["s2s1"] == {"min": [-1.0] * 12, "max": [2.0] * 12}
    assert out["s2"]["min"] == result.s2_min                           # the unpaired point still counts for s2


def _staged_one_point(staging, obs_path) -> None:
    """A staging directory as the job leaves it before FinishDataset: one S2-only point in
    calibration (its shard and the JSON parts), built with the job's own functions."""
    from s2mos_transforms.dataset.pipeline import PARTS_DIR

    obs = sequences.point_observations(TableSource(str(obs_path)).observations([SamplePoint("S1", 45, 5)]))["S1"]
    point = {"point_id": "S1", "lat": 45.0, "lon": 5.0, "clay": 10.0, "origin": "samples", "row": 2}
    record, _, counts = dt.process_point(point, obs, sequences.ExtractConfig())
    result = dt.point_result(point, record, counts)
    path = f"{staging}/{dt.shard_name('calibration', 0, 1)}"
    dt.write_tfrecords(path, [result.example])
    combine = dt.MinMaxCombine()
    parts = {"points": dt.make_plan([result.digest()], 0.0)["points"],
             "stats": combine.extract_output(combine.add_input(combine.create_accumulator(), result)),
             "moments": dt.MomentsCombine().extract_output(list(result.moments)),
             "counts": counts, "rejected": [],
             "shards": [{"split": "calibration", "shard": 0, "records": 1, "path": path}]}
    (staging / PARTS_DIR).mkdir(parents=True)
    for name, value in parts.items():
        dt.write_json(f"{staging}/{PARTS_DIR}/{name}.json", value)


def test_finish_checks_the_pair_counts_on_disk(tmp_path):
    """The in-job identity (FinishDataset): the records on disk with s2s1_length 0 are the
    kept points without a pair, and none may exist when the job required a pair."""
    from s2mos_transforms.dataset.finalize import AccountingError, check_counters, finalize

    s2_only_table().to_csv(tmp_path / "obs.csv", index=False)
    args = dict(inputs={}, test_fraction=0.0, n_input=1, row_rejections=[], config=sequences.ExtractConfig(),
                notes=[], num_shards=1)
    _staged_one_point(tmp_path / "a", tmp_path / "obs.csv")
    summary = finalize(str(tmp_path / "a"), **args)
    assert (summary["calibration"], summary["points_without_s1_pair"], summary["points_with_s1_pair"]) == (1, 1, 0)
    assert summary["job_tallies"]["points_without_s1_pair"] == 1
    check_counters(summary, {"points_read": 1, "points_kept": 1, "points_without_s1_pair": 1,
                             "written_calibration": 1}, "here")
    with pytest.raises(AccountingError, match="points_without_s1_pair 0 != 1"):
        check_counters(summary, {"points_read": 1, "points_kept": 1, "points_with_s1_pair": 1,
                                 "written_calibration": 1}, "here")
    _staged_one_point(tmp_path / "b", tmp_path / "obs.csv")
    with pytest.raises(AccountingError, match="require_s1_pair=True"):
        finalize(str(tmp_path / "b"), **args, require_s1_pair=True)


def test_tune_thresholds_on_an_s2_only_table(tmp_path, capsys):
    """tune-thresholds never used S1 pairing: an S2-only table scores the grid as before."""
    s2_only_table().to_csv(tmp_path / "obs.csv", index=False)
    (tmp_path / "samples.csv").write_text(SAMPLES)
    lab = pd.DataFrame([{"point_id": p, **{b: SOIL[b] * scale(k, 0) / 1e4 * 1.1 for b in bands.S2_BANDS}}
                        for k, p in enumerate(BARE)])
    lab.to_csv(tmp_path / "lab.csv", index=False)
    parser = argparse.ArgumentParser()
    tune_thresholds.configure(parser)
    args, extra = parser.parse_known_args(["--samples", str(tmp_path / "samples.csv"), "--lab-spectra",
                                           str(tmp_path / "lab.csv"), "--source", "table", "--observations",
                                           str(tmp_path / "obs.csv"), "--json", str(tmp_path / "grid.json")])
    assert tune_thresholds.run(args, extra) == 0
    chosen = json.loads((tmp_path / "grid.json").read_text())["chosen"]
    assert chosen["points"] == len(BARE) and chosen["score"] > 0.99


# -- slow: the real Beam pipeline ------------------------------------------------------------

@pytest.mark.slow
def test_s2_only_table_builds_a_dataset_end_to_end(tmp_path):
    s2_only_table().to_csv(tmp_path / "obs.csv", index=False)
    (tmp_path / "samples.csv").write_text(SAMPLES)
    common = ["--samples", tmp_path / "samples.csv", "--source", "table", "--observations", tmp_path / "obs.csv"]
    summary = run_build(tmp_path / "ds", *common)
    got = records(tmp_path / "ds")
    assert set(got) == set(BARE)
    for k, pid in enumerate(BARE):
        rec = got[pid]
        assert rec["s2s1_length"] == 0 and rec["s2s1"].shape == (0, 12) and rec["s2s1_dates"].size == 0
        expect = [[round(SOIL[b] * scale(k, d)) / 1e4 for b in bands.S2_BANDS] for d in range(N_DATES)]
        np.testing.assert_allclose(rec["s2"], expect, rtol=1e-6)
        assert rec["s2_dates"].tolist() == [int((T0 + 5 * d * DAY).timestamp()) for d in range(N_DATES)]
    # Counts add up: 8 input points = 6 kept (all without an S1 pair) + V + Z rejected.
    assert (summary["calibration"], summary["test"]) == (5, 1)
    assert summary["input_points"] == summary["calibration"] + summary["test"] + summary["rejected"] == 8
    assert summary["rejected_by_reason"] == {"no_bare_observation": 1, "no_observations": 1}
    assert summary["require_s1_pair"] is False
    assert (summary["points_with_s1_pair"], summary["points_without_s1_pair"]) == (0, 6)
    assert summary["s1_pair_by_split"] == {"calibration": {"with": 0, "without": 5},
                                           "test": {"with": 0, "without": 1}}
    assert summary["beam_counters"]["points_without_s1_pair"] == 6
    assert "points_with_s1_pair" not in summary["beam_counters"]            # never incremented
    assert summary["job_tallies"]["points_without_s1_pair"] == 6
    assert summary["s2s1_length"] == {"min": 0, "median": 0.0, "max": 0}
    assert set(summary["correlation_with_clay"].values()) == {None}        # no paired observation
    assert any("0…0 placeholder" in n for n in summary["notes"])
    assert any("no VV/VH columns" in n for n in summary["notes"])
    stats = NormStats.load(str(tmp_path / "ds"))
    cal = [got[p]["s2"] for p in got if got[p]["split"] == "calibration"]
    np.testing.assert_allclose(stats["s2"].lo, np.concatenate(cal).min(axis=0), rtol=1e-6)
    split_csv = (tmp_path / "ds" / "split.csv").read_text().splitlines()
    assert all(line.endswith(f",{N_DATES},0") for line in split_csv[1:])

    # The paper's rule: every bare point is rejected no_s1_pair, nothing is written.
    strict = run_build(tmp_path / "strict", *common, "--require-s1-pair")
    assert strict["require_s1_pair"] is True and strict["calibration"] == strict["test"] == 0
    assert strict["rejected_by_reason"] == {"no_bare_observation": 1, "no_observations": 1, "no_s1_pair": 6}
    assert strict["points_without_s1_pair"] == strict["points_with_s1_pair"] == 0


@pytest.mark.slow
def test_quick_world_kept_with_and_without_the_pair_rule(tmp_path):
    """40 points of the quick world (`--preset quick`): the first 39 of its 300 sample points
    plus P00293, the one point of the 300 whose bare dates have no S1 acquisition within the
    paper's ±1 day (measured; not constructed). Everything else equal, dropping the rule keeps
    exactly the points the rule rejects ``no_s1_pair``, and every other point's record is
    unchanged."""
    from s2mos_transforms.sources.synthetic import SyntheticSource

    points = SyntheticSource("quick").sample_points()[["point_id", "lat", "lon", "clay"]]
    subset = pd.concat([points.iloc[:39], points[points["point_id"] == "P00293"]])
    assert len(subset) == 40
    subset.to_csv(tmp_path / "samples.csv", index=False)
    common = ["--samples", tmp_path / "samples.csv", "--preset", "quick"]
    on = run_build(tmp_path / "on", *common, "--require-s1-pair")
    off = run_build(tmp_path / "off", *common)

    kept_on, kept_off = on["calibration"] + on["test"], off["calibration"] + off["test"]
    no_pair = on["rejected_by_reason"].get("no_s1_pair", 0)
    assert no_pair >= 1 and kept_off > kept_on
    assert kept_off == kept_on + no_pair
    assert off["rejected_by_reason"] == {k: v for k, v in on["rejected_by_reason"].items() if k != "no_s1_pair"}
    assert (off["points_without_s1_pair"], off["points_with_s1_pair"]) == (no_pair, kept_on)
    assert off["beam_counters"]["points_without_s1_pair"] == no_pair
    assert on["thresholds"] == off["thresholds"]             # the rule is not an extraction setting

    rec_on, rec_off = records(tmp_path / "on"), records(tmp_path / "off")
    rejected_on = [json.loads(x) for x in (tmp_path / "on" / "rejected.jsonl").read_text().splitlines()]
    unpaired = {r["point_id"] for r in rejected_on if r["reason"] == "no_s1_pair"}
    assert "P00293" in unpaired and set(rec_off) == set(rec_on) | unpaired
    for pid in unpaired:
        assert rec_off[pid]["s2s1_length"] == 0 and len(rec_off[pid]["s2"]) >= 1
    for pid, rec in rec_on.items():
        for key in ("s2s1", "s2", "s2s1_dates", "s2_dates"):
            np.testing.assert_array_equal(rec_off[pid][key], rec[key])
    # stats.json: the s2s1 range over the calibration points that have paired dates.
    stats = NormStats.load(str(tmp_path / "off"))
    s2s1 = np.concatenate([r["s2s1"] for r in rec_off.values() if r["split"] == "calibration"])
    np.testing.assert_allclose(stats["s2s1"].lo, s2s1.min(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats["s2s1"].hi, s2s1.max(axis=0), rtol=1e-6)
