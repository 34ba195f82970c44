"""`python -m trainer.task` honours the Vertex AI variables; an S2-only dataset trains with --channels s2."""
import json
import os
import types

import pytest

import trainer_fixtures as fx
from s2mos_transforms.errors import UserError
from s2mos_transforms.sequences import ExtractConfig
from trainer import extraction, task


def test_vertex_variables_win_over_flags():
    args = types.SimpleNamespace(model_dir="local/m", checkpoint_dir=None, tensorboard_dir="local/tb")
    env = {"AIP_MODEL_DIR": "gs://b/model", "AIP_CHECKPOINT_DIR": "gs://b/ckpt"}
    assert task.vertex_paths(args, env) == {"model_dir": "gs://b/model", "checkpoint_dir": "gs://b/ckpt",
                                            "tensorboard_dir": "local/tb"}
    assert task.vertex_paths(args, {})["model_dir"] == "local/m"
    with pytest.raises(UserError):
        task.vertex_paths(types.SimpleNamespace(model_dir=None, checkpoint_dir=None, tensorboard_dir=None), {})


@pytest.mark.slow
def test_task_trains_s2_only_dataset_into_aip_dirs(tmp_path):
    data_dir = str(tmp_path / "data")
    fx.write_dataset(data_dir, n_calibration=24, n_test=8, seed=4, with_radar=False, summary=False)
    env = {"AIP_MODEL_DIR": str(tmp_path / "aip_model"), "AIP_CHECKPOINT_DIR": str(tmp_path / "aip_ckpt"),
           "AIP_TENSORBOARD_LOG_DIR": str(tmp_path / "aip_tb")}
    rc = task.main(["--data", data_dir, "--channels", "s2", "--models", "cnn,ann", "--epochs", "1",
                    "--bags", "2", "--quiet"], environ=env)
    assert rc == 0
    m = env["AIP_MODEL_DIR"]
    meta = json.load(open(os.path.join(m, "ensemble", "s2mos_model.json")))
    assert len(meta["channels"]) == 10 and meta["sequence_feature"] == "s2"
    # no summary.json beside the data: the paper's extraction settings, recorded as such
    assert meta["extraction"] == ExtractConfig().as_dict()
    assert meta["extraction_source"] == extraction.DEFAULTS_NO_SUMMARY
    assert os.listdir(os.path.join(env["AIP_TENSORBOARD_LOG_DIR"], "cnn", "bag_1", "train"))
    report = json.load(open(os.path.join(m, "evaluation", "report.json")))
    assert set(report["models"]) == {"cnn", "ann"}
    assert task.main(["--model-dir", m, "--quiet"], environ={}) == 2          # no --data: one-line error
