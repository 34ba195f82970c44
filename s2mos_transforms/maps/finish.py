"""The end of a map, inside the Beam job: tiles.jsonl → VRT, mosaic, quicklook, STAC Item, summary.

A Flex Template launch (and any job whose launcher does not wait) exits once the job is
submitted, so the map-level outputs are written by the job's own last step, ``FinishMap``,
right after ``WriteManifest``. The summary (``summary.json``) also lists the outputs, so a
launcher that waits only reads it back to print it.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Sequence


@dataclass(frozen=True)
class MapFinishSpec:
    """What the last step needs, as plain picklable values (the AOI as WKB)."""
    out: str
    aoi_wkb: bytes
    start: str
    end: str
    model_dir: str
    mosaic_max_tiles: int = 64
    started_at: float = field(default_factory=time.time)   # the launch, for the summary's seconds
    properties: dict[str, Any] = field(default_factory=dict)


def finish_map(manifest_path: str, spec: MapFinishSpec, overviews: Sequence[str] = ()) -> dict[str, Any]:
    """Read the manifest the job just wrote and write the map-level outputs, with the zones'
    overviews (`overview.py`) the job wrote beside it; → the outputs."""
    from shapely import wkb

    from s2mos_transforms.maps import outputs

    records = outputs.read_manifest(manifest_path, keys=outputs.FINISH_KEYS)
    return outputs.finalize(spec.out, records, wkb.loads(spec.aoi_wkb), start=spec.start, end=spec.end,
                            model_dir=spec.model_dir, mosaic_max_tiles=spec.mosaic_max_tiles,
                            seconds=round(time.time() - spec.started_at, 1), properties=spec.properties,
                            overviews=sorted(overviews))


def read_outputs(out: str) -> dict[str, Any]:
    """The outputs a finished map lists in its summary (what `finish_map` returned)."""
    from s2mos_transforms import fileio
    from s2mos_transforms.maps.outputs import SUMMARY

    summary = json.loads(fileio.read_text(f"{out.rstrip('/')}/{SUMMARY}"))
    return {"summary": summary, **summary.get("outputs", {})}
