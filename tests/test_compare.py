"""`s2mos compare` end to end: real training of small models on a fixture dataset over 2 seeds × 2
split schemes, its outputs, like-for-like scores, calibration-only stats, resuming, determinism,
and the KS partition of a real `build-dataset` output reproducing the dataset's own split."""
import csv
import json
import os
import shutil

import numpy as np
import pytest

import trainer_fixtures as fx
from pipelines.cli import main
from s2mos_transforms import metrics
from s2mos_transforms.normalize import NormStats
from trainer import compare, compare_splits, data

ARGS = ["--models", "cnn,rf", "--seeds", "2", "--splits", "ks,random", "--repeats", "1", "--epochs", "1",
        "--bags", "2", "--quick-grid", "--cv-folds", "2", "--n-boot", "300"]


def test_bad_flags_fail_in_one_line_before_any_work(tmp_path, capsys):
    out = str(tmp_path / "out")
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--data", str(tmp_path), "--out", out, "--splits", "ks,blocks"])
    assert exc.value.code == 2 and "--splits" in capsys.readouterr().err
    assert main(["compare", "--data", str(tmp_path), "--out", out, "--models", "cnn,ann", "--reference", "rf"]) == 2
    assert "--reference rf: not among --models" in capsys.readouterr().err
    assert not os.path.exists(out)


@pytest.mark.slow
def test_a_directory_without_a_dataset_is_refused_in_one_line(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["compare", "--data", str(tmp_path), "--out", out, "--models", "rf", "--quiet"]) == 2
    assert "cannot read schema.pbtxt" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(out, "runs"))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    data_dir, out = str(root / "data"), str(root / "out")
    fx.write_dataset(data_dir, n_calibration=40, n_test=16, seed=3, unpaired_fraction=0.25)
    assert main(["compare", "--data", data_dir, "--out", out, *ARGS, "--quiet"]) == 0
    return data_dir, out


@pytest.mark.slow
def test_outputs_runs_and_verdicts(run):
    _, out = run
    for name in ("compare.json", "compare.md", "runs.csv", "compare.png"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    assert open(os.path.join(out, "compare.png"), "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    result = json.load(open(os.path.join(out, "compare.json")))
    assert len(result["runs"]) == 4
    assert [(r["partition"], r["seed"]) for r in result["runs"]] == [("ks-0", 0), ("ks-0", 1),
                                                                     ("random-0", 0), ("random-0", 1)]
    assert result["complete"] == ["cnn", "rf"] and result["reference"] == "rf"
    overall = result["comparisons"]["cnn"]["overall"]
    assert overall["r2"]["n_runs"] == 4 and overall["r2"]["n_partitions"] == 2
    assert set(result["comparisons"]["cnn"]) == {"overall", "ks", "random"}
    r2 = overall["r2"]
    expected = ("cnn beats rf" if r2["low"] > 0 else "rf beats cnn" if r2["high"] < 0 else "no clear difference")
    assert overall["verdict"] == expected and r2["low"] <= r2["delta"] <= r2["high"]
    rows = list(csv.DictReader(open(os.path.join(out, "runs.csv"))))
    assert len(rows) == 8 and {r["model"] for r in rows} == {"cnn", "rf"}
    md = open(os.path.join(out, "compare.md")).read()
    assert "## Verdicts vs the reference" in md and overall["verdict"] in md
    assert set(result["summary"]["cnn"]) == {"ks", "random", "overall"}


@pytest.mark.slow
def test_like_for_like_on_the_common_points_and_calibration_only_stats(run):
    data_dir, out = run
    pooled = data.Split.concat([data.read_split(data_dir, "calibration"), data.read_split(data_dir, "test")])
    paired = set(pooled.point_id[pooled.paired_lengths() > 0])
    result = json.load(open(os.path.join(out, "compare.json")))
    for r in result["runs"]:
        part = json.load(open(os.path.join(out, "runs", r["partition"], "partition.json")))
        test_ids = set(part["test_point_ids"])
        assert len(test_ids) == r["n_test"] == round(0.2 * len(pooled)) and part["n_calibration"] == len(pooled) - r["n_test"]
        cnn, rf = r["models"]["cnn"], r["models"]["rf"]
        assert rf["n"] == len(test_ids)                                   # RF: every test point
        assert cnn["n"] == r["n_common"] == len(test_ids & paired) < rf["n"]   # CNN: the S1-paired ones
        # the RF's common-subset score, recomputed from its predictions file
        saved = np.load(os.path.join(out, "runs", r["partition"], f"seed-{r['seed']}", "predictions", "rf.npz"))
        keep = np.isin(saved["point_id"], sorted(test_ids & paired))
        assert rf["r2_common"] == pytest.approx(metrics.r2(saved["observed"][keep], saved["mean"][keep]), abs=1e-9)
        assert rf["r2"] == pytest.approx(metrics.r2(saved["observed"], saved["mean"]), abs=1e-9)
        # normalisation stats from this partition's calibration points only
        cal = pooled.subset(np.flatnonzero(~np.isin(pooled.point_id, sorted(test_ids))))
        saved_stats = NormStats.load(os.path.join(out, "runs", r["partition"]))
        assert data.stats_mismatch(saved_stats, data.fit_stats(cal)) == []
    # the two partitions differ and each is the rule's
    ks = set(json.load(open(os.path.join(out, "runs", "ks-0", "partition.json")))["test_point_ids"])
    rnd = set(json.load(open(os.path.join(out, "runs", "random-0", "partition.json")))["test_point_ids"])
    assert ks != rnd
    pool = compare.read_pool(data_dir)
    is_test = compare_splits.random_partition(len(pool.split), pool.held_out, 0.2, compare_splits.rng_for("random", 0))
    assert set(pool.split.point_id[is_test]) == rnd


@pytest.mark.slow
def test_resume_skips_finished_runs_and_retrains_deterministically(run, tmp_path, capsys):
    data_dir, first = run
    out = str(tmp_path / "out")
    shutil.copytree(first, out)
    before = json.load(open(os.path.join(out, "compare.json")))
    cnn_file = os.path.join(out, "runs", "random-0", "seed-1", "predictions", "cnn.npz")
    old = dict(np.load(cnn_file))
    os.remove(cnn_file)                                   # as if the run had crashed in that model
    moved = str(tmp_path / "data-rebuilt")                # the same dataset at another path (a later session)
    shutil.copytree(data_dir, moved)
    capsys.readouterr()
    assert main(["compare", "--data", moved, "--out", out, *ARGS]) == 0
    printed = capsys.readouterr().out
    assert printed.count("already trained (resumed)") == 7 and printed.count(": training (elapsed") == 1
    assert "[run 4/4 random-0 seed 1] cnn: done" in printed
    new = np.load(cnn_file)
    np.testing.assert_array_equal(new["point_id"], old["point_id"])
    np.testing.assert_allclose(new["bags"], old["bags"], rtol=0, atol=1e-5)   # same seed ⇒ same weights
    after = json.load(open(os.path.join(out, "compare.json")))
    for a, b in zip(before["runs"], after["runs"]):
        for name in ("cnn", "rf"):
            assert a["models"][name]["r2"] == pytest.approx(b["models"][name]["r2"], abs=1e-5)
    a, b = before["comparisons"]["cnn"]["overall"], after["comparisons"]["cnn"]["overall"]
    assert a["verdict"] == b["verdict"]
    assert [a["r2"][k] for k in ("delta", "low", "high")] == pytest.approx([b["r2"][k] for k in ("delta", "low", "high")],
                                                                           abs=1e-4)
    # other training settings on the same OUT: refused, nothing trained
    assert main(["compare", "--data", data_dir, "--out", out, *ARGS, "--epochs", "2", "--quiet"]) == 2
    assert "epochs 1 → 2" in capsys.readouterr().err
    # another dataset on the same OUT: refused by content
    other = str(tmp_path / "other")
    fx.write_dataset(other, n_calibration=40, n_test=16, seed=4, unpaired_fraction=0.25)
    assert main(["compare", "--data", other, "--out", out, *ARGS, "--quiet"]) == 2
    assert "holds runs made with other settings (data_sha256" in capsys.readouterr().err


@pytest.mark.slow
def test_ks_partition_reproduces_the_dataset_split(quick_world, tmp_path):
    ds = str(tmp_path / "ds")
    assert main(["build-dataset", "--samples", str(quick_world / "samples.csv"), "--out", ds, "--quiet"]) == 0
    pool = compare.read_pool(ds)
    parts = compare.make_partitions(pool, compare.CompareSettings(data=ds, out="", schemes=("ks",)),
                                    compare.dataset_test_fraction(ds))
    rows = {r["point_id"]: r["split"] for r in csv.DictReader(open(os.path.join(ds, "split.csv")))}
    want = np.array([rows[p] == "test" for p in pool.split.point_id])
    assert 0 < want.sum() < want.size
    np.testing.assert_array_equal(parts[0].is_test, want)


@pytest.mark.slow
def test_a_model_that_cannot_train_is_reported_and_the_others_compared(tmp_path, capsys):
    data_dir, out = str(tmp_path / "data"), str(tmp_path / "out")
    fx.write_dataset(data_dir, n_calibration=24, n_test=8, seed=5, with_radar=False)   # no S1-paired dates
    assert main(["compare", "--data", data_dir, "--out", out, "--models", "cnn,rf,ann", "--seeds", "1",
                 "--splits", "random", "--repeats", "1", "--epochs", "1", "--bags", "2", "--quick-grid",
                 "--cv-folds", "2", "--n-boot", "200"]) == 0
    assert "cnn: FAILED: ValueError: cnn: only 0 calibration point(s)" in capsys.readouterr().out
    result = json.load(open(os.path.join(out, "compare.json")))
    assert result["complete"] == ["rf", "ann"] and list(result["incomplete"]) == ["cnn"]
    assert list(result["comparisons"]) == ["ann"]
    assert result["runs"][0]["n_common"] == result["runs"][0]["n_test"] == 6     # cnn left out of the common set
    assert os.path.isfile(os.path.join(out, "runs", "random-0", "seed-0", "records", "cnn.failed.json"))
    assert "Models without predictions in every run" in open(os.path.join(out, "compare.md")).read()


@pytest.mark.slow
def test_a_fit_killed_mid_way_resumes_from_its_last_epoch(tmp_path, monkeypatch, capsys):
    """A compare interrupted inside a Keras fit (here in epoch 4 of 6) resumes that fit from the
    epoch backup, not from scratch; the backup is gone once the fit ends."""
    data_dir, out = str(tmp_path / "data"), str(tmp_path / "out")
    fx.write_dataset(data_dir, n_calibration=24, n_test=8, seed=7)
    args = ["compare", "--data", data_dir, "--out", out, "--models", "cnn,rf", "--seeds", "1", "--splits", "random",
            "--repeats", "1", "--epochs", "6", "--bags", "2", "--parallel-bags", "--quick-grid", "--cv-folds", "2",
            "--n-boot", "200"]

    fx.kill_fits_in_epoch(monkeypatch, 4)                 # its backup not yet written: epochs 1 … 3 are
    assert main(args) == 130                              # "s2mos: interrupted", as after Ctrl-C
    mdir = os.path.join(out, "runs", "random-0", "seed-0")
    meta = os.path.join(mdir, compare.CHECKPOINTS, "cnn", "parallel_bags", "training_metadata.json")
    assert json.load(open(meta))["epoch"] == 3          # epochs 1 … 3 backed up
    assert not os.path.exists(os.path.join(mdir, "records", "cnn.json"))

    monkeypatch.undo()
    capsys.readouterr()
    assert main([*args, "--train-log"]) == 0
    assert "[cnn] resuming an interrupted fit from its checkpoint: parallel_bags after epoch 3" in capsys.readouterr().out
    record = json.load(open(os.path.join(mdir, "records", "cnn.json")))
    assert record["resumed_from_epoch"] == {"parallel_bags": 3}
    history = json.load(open(os.path.join(mdir, "history", "cnn", "bag_0.json")))
    assert len(history["loss"]) == 6                      # 1 … 3 from the epoch ledger (not run again), 4 … 6
    assert record["history_complete"] and 0 < record["seconds_before_resume"] < record["compare_seconds"]
    assert not os.path.exists(os.path.dirname(meta))      # Keras removes the backup when the fit ends
    assert "resumed_from_epoch" not in json.load(open(os.path.join(mdir, "records", "rf.json")))
    result = json.load(open(os.path.join(out, "compare.json")))
    assert result["complete"] == ["cnn", "rf"]
    (run,) = result["runs"]
    assert run["models"]["cnn"]["seconds"] == record["compare_seconds"]   # both sessions' seconds
    hours = (run["models"]["cnn"]["seconds"] + run["models"]["rf"]["seconds"]) / 3600
    assert f"training time of the 2 finished model fits: {hours:.1f} h;" in open(os.path.join(out, "compare.md")).read()


@pytest.mark.slow
def test_a_killed_rf_grid_resumes_by_cell_and_selects_as_an_uninterrupted_one(tmp_path, monkeypatch, capsys):
    from trainer import baselines

    data_dir = str(tmp_path / "data")
    fx.write_dataset(data_dir, n_calibration=30, n_test=8, seed=4)

    def args(out):
        return ["compare", "--data", data_dir, "--out", out, "--models", "rf", "--seeds", "1", "--splits", "random",
                "--repeats", "1", "--bags", "2", "--quick-grid", "--cv-folds", "2", "--n-boot", "200", "--train-log"]

    whole = str(tmp_path / "whole")
    assert main(args(whole)) == 0
    real, calls = baselines._point_rmse, []

    def killed_in_third_cell(*a):
        calls.append(1)
        if len(calls) == 5:                                  # 2 folds per cell: the 3rd cell's 1st fold
            raise KeyboardInterrupt
        return real(*a)

    out = str(tmp_path / "out")
    monkeypatch.setattr(baselines, "_point_rmse", killed_in_third_cell)
    assert main(args(out)) == 130
    cv_dir = os.path.join(out, "runs", "random-0", "seed-0", "models", "rf")
    assert len(json.load(open(os.path.join(cv_dir, "rf_cv.partial.json")))["cells"]) == 2
    monkeypatch.setattr(baselines, "_point_rmse", real)
    capsys.readouterr()
    assert main(args(out)) == 0
    printed = capsys.readouterr().out
    assert "[rf] resuming the CV grid: 2 cell(s) scored before" in printed and printed.count("(resumed)") == 2
    assert not os.path.exists(os.path.join(cv_dir, "rf_cv.partial.json"))
    got = json.load(open(os.path.join(cv_dir, "rf_cv.json")))
    want = json.load(open(os.path.join(whole, "runs", "random-0", "seed-0", "models", "rf", "rf_cv.json")))
    assert got["selected"] == want["selected"]
    for a, b in zip(got["table"], want["table"], strict=True):     # the same cells and scores (np.std may differ in its last bit)
        assert {k: a[k] for k in ("mtry", "min_node_size", "trees")} == {k: b[k] for k in ("mtry", "min_node_size", "trees")}
        assert (a["cv_rmse"], a["cv_rmse_sd"]) == pytest.approx((b["cv_rmse"], b["cv_rmse_sd"]), rel=1e-12)


@pytest.mark.slow
def test_report_only_reports_the_finished_runs_and_trains_nothing(run, tmp_path, capsys):
    data_dir, first = run
    out = str(tmp_path / "out")
    shutil.copytree(first, out)
    rf_file = os.path.join(out, "runs", "random-0", "seed-1", "predictions", "rf.npz")
    os.remove(rf_file)                                     # run 4 not finished yet
    capsys.readouterr()
    assert main(["compare", "--data", data_dir, "--out", out, *ARGS, "--report-only"]) == 0
    printed = capsys.readouterr().out
    assert "3 of 4 runs finished; not yet: random-0 seed 1" in printed and "training" not in printed
    assert not os.path.exists(rf_file)
    result = json.load(open(os.path.join(out, "compare.json")))
    assert result["runs_planned"] == 4 and len(result["runs"]) == 3
    assert result["complete"] == ["cnn", "rf"] and "cnn" in result["comparisons"]
    full = json.load(open(os.path.join(first, "compare.json")))
    assert [r["models"]["cnn"]["r2"] for r in result["runs"]] == [r["models"]["cnn"]["r2"] for r in full["runs"][:3]]
    assert "**partial report** (`--report-only`): 3 of the 4 planned runs finished" in open(os.path.join(out, "compare.md")).read()
    # nothing to report: refused in one line
    assert main(["compare", "--data", data_dir, "--out", str(tmp_path / "none"), *ARGS, "--report-only"]) == 2
    assert "--report-only:" in capsys.readouterr().err and not os.path.exists(str(tmp_path / "none"))
