"""`s2mos train --checkpoint-dir`: a local training killed inside a Keras fit resumes that fit from
its last epoch backup when the same command runs again (as a Vertex job does with
AIP_CHECKPOINT_DIR), on a real fixture dataset with real Keras fits."""
import json
import os

import pytest

import trainer_fixtures as fx
from pipelines.cli import main


@pytest.mark.slow
@pytest.mark.parametrize("parallel", [True, False], ids=["parallel-bags", "bag-by-bag"])
def test_a_killed_train_resumes_its_fit_from_the_last_epoch(tmp_path, monkeypatch, capsys, parallel):
    data_dir, model, ckpt = str(tmp_path / "data"), str(tmp_path / "model"), str(tmp_path / "ckpt")
    fx.write_dataset(data_dir, n_calibration=24, n_test=8, seed=11)
    args = ["train", "--data", data_dir, "--model-dir", model, "--models", "cnn", "--epochs", "5", "--bags", "2",
            "--checkpoint-dir", ckpt, "--quiet", *(["--parallel-bags"] if parallel else [])]

    fx.kill_fits_in_epoch(monkeypatch, 3)
    assert main(args) == 130                              # "s2mos: interrupted", as after Ctrl-C
    backup = "parallel_bags" if parallel else "bag_0"
    meta = os.path.join(ckpt, "cnn", backup, "training_metadata.json")
    assert json.load(open(meta))["epoch"] == 2            # epochs 1 and 2 backed up
    assert not os.path.exists(os.path.join(model, "manifest.json"))

    monkeypatch.undo()
    assert main(args) == 0
    manifest = json.load(open(os.path.join(model, "manifest.json")))
    (record,) = manifest["models"]
    assert record["resumed_from_epoch"] == {backup: 2}
    history = json.load(open(os.path.join(model, "history", "cnn", "bag_0.json")))
    assert len(history["loss"]) == 3                      # epochs 3 … 5 only
    assert not os.path.exists(os.path.dirname(meta))      # Keras removes the backup when the fit ends


def test_checkpoint_dir_is_a_flag_of_s2mos_train_only():
    import argparse

    from trainer import cli, task

    p = argparse.ArgumentParser()
    cli.add_train_flags(p)
    args = p.parse_args(["--data", "d", "--model-dir", "m", "--checkpoint-dir", "c"])
    assert cli.train_config(args, checkpoint_dir=args.checkpoint_dir).checkpoint_dir == "c"
    assert task.build_parser().parse_args(["--checkpoint-dir", "c"]).checkpoint_dir == "c"   # no clash
