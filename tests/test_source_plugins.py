"""The source registry: a throwaway source module, registered without touching any other file,
works through build-dataset and predict-map, flags and all (and its options reach the workers)."""
from __future__ import annotations

import json
import sys
import textwrap

import pytest
import rasterio

import test_map_fixtures as fx
from pipelines.cli import main
from s2mos_transforms import sources

# A complete source module: its name, flags, options and factory. It serves the embedded
# world of --throwaway-preset (a required flag, so a worker built without the options fails)
# and, with --throwaway-no-radar, drops every Sentinel-1 acquisition (so the options' effect
# is visible in what the workers produce).
THROWAWAY = textwrap.dedent('''
    import dataclasses

    import numpy as np

    from s2mos_transforms import bands
    from s2mos_transforms.sources.base import POINTS, TILES, SourceError, SourcePlugin
    from s2mos_transforms.sources.synthetic import SyntheticSource


    class ThrowawaySource:
        name = "throwaway"

        def __init__(self, preset: str, no_radar: bool = False):
            self.world = SyntheticSource(preset)
            self.no_radar = no_radar

        def covers(self, lat, lon):
            return self.world.covers(lat, lon)

        def observations(self, points):
            obs = self.world.observations(points)
            if self.no_radar:
                obs = obs[obs["sensor"] != bands.SENSOR_S1].reset_index(drop=True)
            return obs

        def tile_stack(self, tile, start=None, end=None):
            stack = self.world.tile_stack(tile, start, end)
            if self.no_radar:
                stack = dataclasses.replace(stack, s1=np.full_like(stack.s1, np.nan))
            return stack


    def add_arguments(group):
        group.add_argument("--throwaway-preset", help="world preset served by the throwaway source")
        group.add_argument("--throwaway-no-radar", action="store_true", help="drop every S1 acquisition")


    def options(args):
        if not args.throwaway_preset:
            raise SourceError("the 'throwaway' source needs --throwaway-preset NAME")
        return {"preset": args.throwaway_preset, "no_radar": bool(args.throwaway_no_radar)}


    PLUGIN = SourcePlugin(name="throwaway", summary="a test source", serves=frozenset({POINTS, TILES}),
                          factory=ThrowawaySource, add_arguments=add_arguments, options=options)
''')


@pytest.fixture()
def throwaway(tmp_path, monkeypatch):
    module_dir = tmp_path / "plugins"
    module_dir.mkdir()
    (module_dir / "s2mos_throwaway_source.py").write_text(THROWAWAY)
    monkeypatch.syspath_prepend(str(module_dir))
    monkeypatch.setenv("PYTHONPATH", f"{module_dir}:{':'.join(sys.path)}")
    monkeypatch.setenv(sources.ENV_MODULES, "s2mos_throwaway_source")
    yield "throwaway"
    sys.modules.pop("s2mos_throwaway_source", None)


def test_registry_lists_the_builtin_sources():
    found = sources.plugins()
    assert {"synthetic", "table"} <= set(found)
    assert found["table"].serves == {sources.POINTS}
    with pytest.raises(sources.SourceError, match="unknown source 'nope'"):
        sources.get_plugin("nope")
    with pytest.raises(sources.SourceError, match="serves points only"):
        sources.get_plugin("table", sources.TILES)


@pytest.mark.slow
def test_a_source_module_works_through_build_dataset_and_predict_map(throwaway, quick_world, tmp_path, capsys):
    assert "throwaway" in sources.plugins()
    with pytest.raises(SystemExit):
        main(["build-dataset", "--help"])
    assert "--throwaway-no-radar" in capsys.readouterr().out

    samples = str(quick_world / "samples.csv")
    base = ["build-dataset", "--samples", samples, "--source", "throwaway", "--throwaway-preset", "quick", "--quiet"]
    assert main(base + ["--out", str(tmp_path / "ds")]) == 0
    summary = json.loads((tmp_path / "ds" / "summary.json").read_text())
    assert summary["inputs"]["source"] == "throwaway" and summary["inputs"]["preset"] == "quick"
    assert summary["calibration"] > 0

    # The flag reaches the workers: without radar no point has an S1 pair (kept S2-only by
    # default; --require-s1-pair would reject them all, tests/test_s2_only_dataset.py).
    assert main(base + ["--throwaway-no-radar", "--out", str(tmp_path / "ds_no_radar")]) == 0
    no_radar = json.loads((tmp_path / "ds_no_radar" / "summary.json").read_text())
    assert no_radar["points_with_s1_pair"] == 0
    assert no_radar["points_without_s1_pair"] == no_radar["calibration"] + no_radar["test"] > 0
    assert set(no_radar["rejected_by_reason"]) <= {"no_bare_observation"}

    # A flag of a source that was not chosen is refused in one line.
    capsys.readouterr()
    assert main(["build-dataset", "--samples", samples, "--throwaway-preset", "quick",
                 "--out", str(tmp_path / "never")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--throwaway-preset is a flag of the 'throwaway' source" in err[0]

    bbox, names = fx.small_aoi_bbox(32)
    model = fx.ensemble_dir()
    common = ["predict-map", "--model-dir", model, "--bbox", *map(str, bbox), "--tile-size", "32",
              "--source", "throwaway", "--throwaway-preset", "quick",
              "--start", "2018-01-01", "--end", "2019-12-31", "--no-report"]
    assert main(common + ["--out", str(tmp_path / "map")]) == 0
    records = [json.loads(line) for line in (tmp_path / "map" / "tiles.jsonl").read_text().splitlines()]
    assert sorted(r["tile"] for r in records) == names
    assert all(r["status"] == "written" for r in records)
    with rasterio.open(tmp_path / "map" / "tiles" / f"{names[0]}.tif") as ds:
        assert (ds.read(1) != ds.nodata).any()

    assert main(common + ["--throwaway-no-radar", "--out", str(tmp_path / "map_no_radar")]) == 0
    records = [json.loads(line) for line in (tmp_path / "map_no_radar" / "tiles.jsonl").read_text().splitlines()]
    assert records and all(r["status"] == "empty" for r in records)
