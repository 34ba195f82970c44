"""Training throughput of the whole-series model against the paper's CNN, in one run, on real inputs.

    python benchmarks/bench_series.py --data DATASET_DIR [--points 3920] [--epochs 3] [--batch-size 8]

Both models are built and fitted exactly as `s2mos train` fits one bag (`trainer.fit.seeded_bag`:
the seeded model, the tf.data pipeline with its shuffling; the series model's batches cut to their
own longest series), on the first `--points` calibration points each can use (`train.usable_points`)
of a dataset of `s2mos build-dataset`. Samples/s are timed over the epochs after the first (which
includes tracing); the printed ratio is series ÷ CNN, measured in the same process.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def bench(name: str, data_dir: str, points: int, epochs: int, batch: int) -> dict:
    import keras
    from trainer import data, fit, inputs, specs
    from trainer.config import TrainConfig
    from trainer.train import set_determinism, usable_points

    spec = specs.all_specs()[name]
    cal = data.read_split(data_dir, "calibration")
    stats = data.load_stats(data_dir, cal, log=lambda _: None)
    idx = usable_points(spec, cal)[:points]
    sub = cal.subset(idx)
    prep = inputs.prepare(spec, sub, stats)
    y = data.target(sub, stats)
    set_determinism(0)
    cfg = TrainConfig(data=data_dir, model_dir=tempfile.mkdtemp(prefix="bench-series-"), epochs=epochs,
                      batch_size=batch)
    model, train_ds, _ = fit.seeded_bag(spec, prep.x, y, None, None, cfg, 0, batch)
    times: list[float] = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.t0)

    model.fit(train_ds, epochs=epochs, verbose=0, callbacks=[Timer()], shuffle=False)
    steady = times[1:] or times
    per_epoch = sum(steady) / len(steady)
    width = prep.x[next(iter(prep.x))].shape[1]
    keras.backend.clear_session()
    return {"model": name, "points": int(len(sub)), "input_width": int(width), "params": int(model.count_params()),
            "first_epoch_s": round(times[0], 2), "epoch_s": round(per_epoch, 2),
            "samples_per_s": round(len(sub) / per_epoch, 1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, metavar="DIR", help="dataset directory of `s2mos build-dataset`")
    p.add_argument("--points", type=int, default=3920, help="training points (paper bag size: 3920)")
    p.add_argument("--epochs", type=int, default=3, help="epochs timed (the first includes tracing)")
    p.add_argument("--batch-size", type=int, default=8)
    args = p.parse_args(argv)
    from s2mos_transforms import quiet
    quiet.configure(0)
    rows = [bench(name, args.data, args.points, args.epochs, args.batch_size) for name in ("cnn", "series")]
    print(f"{'model':<8s} {'points':>6s} {'width':>5s} {'params':>7s} {'1st epoch s':>11s} {'epoch s':>8s} "
          f"{'samples/s':>9s}")
    for r in rows:
        print(f"{r['model']:<8s} {r['points']:>6d} {r['input_width']:>5d} {r['params']:>7d} {r['first_epoch_s']:>11.2f} "
              f"{r['epoch_s']:>8.2f} {r['samples_per_s']:>9.1f}")
    print(f"series / cnn samples/s: {rows[1]['samples_per_s'] / rows[0]['samples_per_s']:.2f}× "
          f"(batch {args.batch_size}, same process, same machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
