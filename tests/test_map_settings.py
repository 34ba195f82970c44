"""predict-map maps with the model's own extraction settings.

A model trained on a dataset built with non-default thresholds (`build-dataset --nbr2-max
0.10 --ndvi-max 0.3`) carries them in ``ensemble/s2mos_model.json``; predict-map masks with
them (the tiles' n_obs equal `pixel_sequences` with the model's config, not the default one),
records them in map_settings.json, the COG tags and the STAC Item, refuses a flag that
contradicts them in one line, and accepts it with --override-extraction (and a warning).
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import rasterio

import test_map_fixtures as fx
from pipelines.cli import main
from s2mos_transforms.errors import UserError
from s2mos_transforms.grid import Tile
from s2mos_transforms.maps import cog, config as map_config, pixels, tiling
from s2mos_transforms.sequences import ExtractConfig
from s2mos_transforms.world.presets import get_preset

SIZE = 32
STRICT = {"nbr2_max": 0.10, "ndvi_max": 0.3}


# ------------------------------------------------------------------ resolve_extraction (fast)

def test_flags_that_agree_pass_and_flags_that_contradict_are_refused_unless_overridden():
    recorded = ExtractConfig.from_dict(STRICT).as_dict()
    values, origin, warnings = map_config.resolve_extraction(recorded, {"nbr2_max": 0.1, "ndvi_max": None})
    assert values == recorded and origin == map_config.FROM_MODEL and warnings == []
    with pytest.raises(UserError) as err:
        map_config.resolve_extraction(recorded, {"nbr2_max": 0.2})
    assert str(err.value).startswith("the model was trained with --nbr2-max 0.1; --nbr2-max 0.2")
    assert "--override-extraction" in str(err.value) and "\n" not in str(err.value)
    values, origin, warnings = map_config.resolve_extraction(recorded, {"nbr2_max": 0.2, "s1_pair_max_days": 2},
                                                             override=True)
    assert values["nbr2_max"] == 0.2 and values["s1_pair_max_days"] == 2.0 and values["ndvi_max"] == 0.3
    assert "overridden" in origin and "nbr2_max" in origin and len(warnings) == 2
    # A model exported before the settings were recorded was trained with the paper's defaults.
    values, origin, _ = map_config.resolve_extraction(None, {})
    assert values == ExtractConfig().as_dict() and origin == map_config.FROM_DEFAULTS
    with pytest.raises(UserError, match="paper's default .*--ndvi-max 0.25; --ndvi-max 0.3"):
        map_config.resolve_extraction(None, {"ndvi_max": 0.3})
    with pytest.raises(UserError, match=r"--scene-cloud-max must be a percentage"):
        map_config.resolve_extraction(None, {"scene_cloud_max": 150.0}, override=True)


# ------------------------------------------------------------------ a model trained on strict thresholds

@pytest.fixture(scope="module")
def strict_model(quick_world, tmp_path_factory):
    """build-dataset with non-default thresholds → train (1 bag, 1 epoch) → the model dir.

    If `s2mos train` does not yet write "extraction" into s2mos_model.json, it is written here
    exactly as the trainer does: the dataset's summary.json "thresholds" (ExtractConfig.as_dict).
    """
    root = tmp_path_factory.mktemp("strict")
    data, model = str(root / "ds"), str(root / "model")
    assert main(["build-dataset", "--samples", str(quick_world / "samples.csv"), "--out", data, "--quiet",
                 "--nbr2-max", str(STRICT["nbr2_max"]), "--ndvi-max", str(STRICT["ndvi_max"])]) == 0
    assert main(["train", "--data", data, "--model-dir", model, "--models", "cnn", "--epochs", "1",
                 "--bags", "1", "--quiet"]) == 0
    meta_path = os.path.join(model, "ensemble", "s2mos_model.json")
    meta = json.load(open(meta_path))
    if meta.get("extraction") is None:
        thresholds = json.load(open(os.path.join(data, "summary.json")))["thresholds"]
        meta["extraction"] = ExtractConfig.from_dict(thresholds).as_dict()
        with open(meta_path, "w") as fh:
            json.dump(meta, fh, indent=2)
    return model


def _map_args(model: str, out: str, *extra: str) -> list[str]:
    bbox, _ = fx.small_aoi_bbox(SIZE)
    return ["predict-map", "--model-dir", model, "--bbox", *map(str, bbox), "--preset", "quick",
            "--tile-size", str(SIZE), "--out", out, "--no-report", "--runner", "DirectRunner", *extra]


def _n_obs_check(out: str, model_cfg: ExtractConfig) -> None:
    """Every tile's n_obs band == pixel_sequences with `model_cfg`; ≠ with the default config
    somewhere (the thresholds matter on this AOI)."""
    bbox, names = fx.small_aoi_bbox(SIZE)
    tasks = {t.name: t for t in tiling.tiles_for_aoi(tiling.aoi_from_bbox(*bbox), SIZE)}
    preset = get_preset("quick")
    differs = 0
    for name in names:
        epsg, col, row = map(int, name.split("_"))
        stack = fx.quick_source().tile_stack(Tile(epsg, col, row, SIZE), preset.start, preset.end)
        inside = np.flatnonzero(tasks[name].inside_mask().ravel())
        with rasterio.open(os.path.join(out, "tiles", f"{name}.tif")) as ds:
            n_obs = ds.read(3).ravel()
        ours = pixels.pixel_sequences(stack, inside, config=model_cfg).lengths
        default = pixels.pixel_sequences(stack, inside).lengths
        np.testing.assert_array_equal(n_obs[inside], ours)
        differs += int(np.count_nonzero(ours != default))
        assert (n_obs[np.setdiff1d(np.arange(SIZE * SIZE), inside)] == cog.NODATA).all()
    assert differs > 0


@pytest.mark.slow
def test_the_map_masks_with_the_model_s_thresholds_and_records_them(strict_model, capsys):
    from trainer import model_dir
    meta = model_dir.read_meta(strict_model)
    assert meta.extraction["nbr2_max"] == STRICT["nbr2_max"] and meta.extraction["ndvi_max"] == STRICT["ndvi_max"]
    out = fx.tmpdir("strict-map")
    assert main(_map_args(strict_model, out)) == 0
    _n_obs_check(out, meta.extract_config())
    settings = json.load(open(os.path.join(out, "map_settings.json")))
    assert settings["extraction"] == meta.extract_config().as_dict() and settings["extraction_from"] == "the model"
    _, names = fx.small_aoi_bbox(SIZE)
    with rasterio.open(os.path.join(out, "tiles", f"{names[0]}.tif")) as ds:
        assert json.loads(ds.tags()["extraction"]) == settings["extraction"]
    item = json.load(open(os.path.join(out, "map.stac.json")))
    assert item["properties"]["s2mos:settings"]["extraction"]["nbr2_max"] == STRICT["nbr2_max"]
    assert "nbr2_max 0.1," in capsys.readouterr().out


@pytest.mark.slow
def test_a_conflicting_flag_is_refused_and_accepted_with_override(strict_model, capsys):
    out = fx.tmpdir("override-map")
    os.rmdir(out)
    assert main(_map_args(strict_model, out, "--nbr2-max", "0.2")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("s2mos: error: the model was trained with --nbr2-max 0.1; --nbr2-max 0.2")
    assert "\n" not in err and not os.path.exists(out)

    assert main(_map_args(strict_model, out, "--nbr2-max", "0.2", "--override-extraction")) == 0
    err = capsys.readouterr().err.strip().splitlines()
    warning = [line for line in err if "--override-extraction" in line]
    assert len(warning) == 1 and "trained with --nbr2-max 0.1; mapping with --nbr2-max 0.2" in warning[0]
    settings = json.load(open(os.path.join(out, "map_settings.json")))
    assert settings["extraction"]["nbr2_max"] == 0.2 and settings["extraction"]["ndvi_max"] == STRICT["ndvi_max"]
    assert "overridden by --override-extraction: nbr2_max" in settings["extraction_from"]
    _, names = fx.small_aoi_bbox(SIZE)
    with rasterio.open(os.path.join(out, "tiles", f"{names[0]}.tif")) as ds:
        assert json.loads(ds.tags()["extraction"])["nbr2_max"] == 0.2
    item = json.load(open(os.path.join(out, "map.stac.json")))
    assert item["properties"]["s2mos:settings"]["extraction"]["nbr2_max"] == 0.2
    _n_obs_check(out, ExtractConfig.from_dict(settings["extraction"]))
