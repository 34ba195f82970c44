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

    ledger = json.load(open(os.path.join(ckpt, "cnn", backup, "s2mos_epochs.json")))
    assert ledger["epochs"] == 2 and ledger["seconds"] > 0

    monkeypatch.undo()
    assert main(args) == 0
    manifest = json.load(open(os.path.join(model, "manifest.json")))
    (record,) = manifest["models"]
    assert record["resumed_from_epoch"] == {backup: 2}
    assert record["history_complete"] and record["seconds_before_resume"] == round(ledger["seconds"], 2)
    assert record["seconds"] > record["seconds_before_resume"]
    history = json.load(open(os.path.join(model, "history", "cnn", "bag_0.json")))
    assert len(history["loss"]) == 5                      # epochs 1 … 2 from the ledger, 3 … 5 from this fit
    # the ledger holds the model's own log names: the stacked model's bag0/loss … with --parallel-bags
    assert history["loss"][:2] == ledger["history"]["bag0/loss" if parallel else "loss"]
    assert not os.path.exists(os.path.dirname(meta))      # Keras removes the backup when the fit ends


@pytest.mark.slow
def test_a_backup_without_an_epoch_ledger_resumes_and_says_its_history_is_partial(tmp_path, monkeypatch):
    """A backup from before the ledger existed (session 10's hand-over) still resumes; the record
    says that only the last epochs are in the history and timed."""
    data_dir, model, ckpt = str(tmp_path / "data"), str(tmp_path / "model"), str(tmp_path / "ckpt")
    fx.write_dataset(data_dir, n_calibration=24, n_test=8, seed=11)
    args = ["train", "--data", data_dir, "--model-dir", model, "--models", "cnn", "--epochs", "5", "--bags", "2",
            "--checkpoint-dir", ckpt, "--quiet", "--parallel-bags"]
    fx.kill_fits_in_epoch(monkeypatch, 3)
    assert main(args) == 130
    ledger = os.path.join(ckpt, "cnn", "parallel_bags", "s2mos_epochs.json")
    os.remove(ledger)
    monkeypatch.undo()
    # killed again after the resume: the ledger it starts says it saw epoch 3 only, not 1 … 3
    fx.kill_fits_in_epoch(monkeypatch, 4)
    assert main(args) == 130
    restarted = json.load(open(ledger))
    assert (restarted["from_epoch"], restarted["epochs"], len(restarted["history"]["bag0/loss"])) == (2, 3, 1)
    monkeypatch.undo()
    assert main(args) == 0
    (record,) = json.load(open(os.path.join(model, "manifest.json")))["models"]
    assert record["resumed_from_epoch"] == {"parallel_bags": 3} and record["history_complete"] is False
    assert len(json.load(open(os.path.join(model, "history", "cnn", "bag_0.json")))["loss"]) == 2


def test_checkpoint_dir_is_a_flag_of_s2mos_train_only():
    import argparse

    from trainer import cli, task

    p = argparse.ArgumentParser()
    cli.add_train_flags(p)
    args = p.parse_args(["--data", "d", "--model-dir", "m", "--checkpoint-dir", "c"])
    assert cli.train_config(args, checkpoint_dir=args.checkpoint_dir).checkpoint_dir == "c"
    assert task.build_parser().parse_args(["--checkpoint-dir", "c"]).checkpoint_dir == "c"   # no clash
