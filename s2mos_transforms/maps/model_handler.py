"""The Beam RunInference `ModelHandler` of the map: one engine load per worker, tiles batched
by pixel count (`batch_elements_kwargs`). After the engine, the model's trust layer
(`trainer.trust.Trust`: recalibration, 90 % interval, DI/AOA) turns (mean, std) into every
band of the map, by one NumPy function whichever engine ran, so `fast` and `padded` agree.
A whole-series model (family "series") always runs on the SavedModel engine (`engines.load_engine`);
its pixel sequences carry every bare date (`pixels.pixel_sequences` with `bands.CHANNELS_SERIES`),
so pixels without any S1 pair are mapped too."""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from s2mos_transforms.maps.engines import Ensemble, load_engine
from s2mos_transforms.maps.pixels import PixelSequences

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TileInputs:
    """What a tile sends to inference: its valid pixels' sequences and coordinates."""

    task: Any                 # tiling.TileTask
    seqs: PixelSequences      # the pixels to predict (n_obs ≥ min_obs, inside the AOI)
    coords: np.ndarray        # float32 (P, 2) lat, lon
    n_obs: np.ndarray         # int16 (size, size) bare observations used; −1 outside the AOI

    @property
    def n_pixels(self) -> int:
        return int(self.seqs.lengths.size)


@dataclasses.dataclass
class TilePrediction:
    task: Any
    pixels: np.ndarray        # flat indices
    clay_mean: np.ndarray     # float32 (P,) (recalibrated when the model is)
    clay_std: np.ndarray
    n_obs: np.ndarray
    bands: dict = dataclasses.field(default_factory=dict)   # every per-pixel band (`Trust.apply`), NaN = none


def _import_base():
    from apache_beam.ml.inference import base
    return base


class ClayEnsembleHandler(_import_base().ModelHandler):
    """RunInference handler: tiles in (`TileInputs`), `TilePrediction` out.

    The engine is loaded once per worker process by RunInference. Tiles are batched by
    their pixel count (`max_batch_pixels`); inside a batch, pixels of every tile are
    pooled, sorted by length and run `batch_size` at a time.
    """

    def __init__(self, model_dir: str, batch_size: int = 2048, mode: str = "fast",
                 max_batch_pixels: int = 131072):
        super().__init__()
        self.model_dir = model_dir
        self.batch_size = int(batch_size)
        self.mode = mode
        self.max_batch_pixels = int(max_batch_pixels)

    def load_model(self) -> Ensemble:
        from trainer.trust import Trust
        engine = load_engine(self.model_dir, self.mode)
        engine.trust = Trust.load(self.model_dir, engine.meta)
        log.info("loaded %s ensemble from %s", engine.name, self.model_dir)
        return engine

    def run_inference(self, batch: Sequence[TileInputs], model: Ensemble,
                      inference_args: Optional[dict[str, Any]] = None) -> Iterable[TilePrediction]:
        batch = list(batch)
        if not batch:
            return []
        values = np.concatenate([t.seqs.values for t in batch])
        lengths = np.concatenate([t.seqs.lengths for t in batch])
        coords = np.concatenate([t.coords for t in batch]).reshape(-1, 2)
        if lengths.size:
            mean, std = model.predict(values, lengths, coords, self.batch_size)
        else:
            mean = std = np.zeros(0, np.float32)
        bands = model.trust.apply(mean, std, values, lengths, coords)
        out, start = [], 0
        for t in batch:
            n = t.n_pixels
            part = {k: v[start:start + n] for k, v in bands.items()}
            out.append(TilePrediction(t.task, t.seqs.pixels, part["clay_mean"], part["clay_std"], t.n_obs, part))
            start += n
        return out

    def batch_elements_kwargs(self) -> dict[str, Any]:
        return {"min_batch_size": 1, "max_batch_size": self.max_batch_pixels,
                "element_size_fn": lambda t: max(1, t.n_pixels)}

    def get_num_bytes(self, batch: Sequence[TileInputs]) -> int:
        return int(sum(t.seqs.values.nbytes for t in batch))

    def get_metrics_namespace(self) -> str:
        from s2mos_transforms.beam_options import METRICS_NAMESPACE
        return METRICS_NAMESPACE
