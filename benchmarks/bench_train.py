"""CNN training throughput (samples/s at batch 8, seconds per epoch) and, optionally, a full run.

    python benchmarks/bench_train.py                      # throughput of the Table 3 CNN, 3920 samples
    python benchmarks/bench_train.py --variants all       # compare the speed-ups (same maths)
    python benchmarks/bench_train.py --full-run DATA_DIR  # time `s2mos train` with the paper's settings

The inputs are random normalised tensors of the paper's shapes (a bag: 3920 points × 150 dates
× 12 channels + lat/lon): throughput does not depend on the values. Variants differ only in how
the steps are executed (eager-free tf.function per step vs several steps per compiled call vs
XLA), never in the model, batch size, optimiser or data order.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

VARIANTS = {
    # name: (jit_compile, steps_per_execution, op determinism)
    "baseline": (False, 1, False),             # Keras defaults for a tf.data input, one step per call
    "deterministic": (False, 32, True),        # the trainer's default: op determinism (disables XLA), 32 steps/call
    "steps32": (False, 32, False),
    "xla_steps32": (True, 32, False),          # --no-determinism: XLA-compiled, 32 steps/call
}


def bench(name: str, n: int, epochs: int, batch: int, channels: int) -> dict:
    import numpy as np
    import keras
    import tensorflow as tf
    from trainer import data, models

    jit, spe, det = VARIANTS[name]
    tf.config.experimental.disable_op_determinism() if hasattr(tf.config.experimental, "disable_op_determinism") \
        else None
    if det:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = {"sequence": rng.uniform(-1, 1, (n, 150, channels)).astype(np.float32),
         "coords": rng.uniform(-1, 1, (n, 2)).astype(np.float32)}
    y = rng.uniform(-1, 1, n).astype(np.float32)
    model = models.compile_model(models.build_cnn(channels), jit_compile=jit, steps_per_execution=spe)
    ds = data.make_tf_dataset(x, y, batch, shuffle=True, seed=0)
    times = []

    class T(keras.callbacks.Callback):
        def on_epoch_begin(self, e, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, e, logs=None):
            times.append(time.perf_counter() - self.t)

    t0 = time.perf_counter()
    model.fit(ds, epochs=epochs, verbose=0, callbacks=[T()])
    total = time.perf_counter() - t0
    steady = times[1:] or times
    per_epoch = sum(steady) / len(steady)
    keras.backend.clear_session()
    if det and hasattr(tf.config.experimental, "disable_op_determinism"):
        tf.config.experimental.disable_op_determinism()
    return {"variant": name, "jit_compile": jit, "steps_per_execution": spe, "op_determinism": det,
            "samples": n, "batch_size": batch, "epochs": epochs, "first_epoch_s": round(times[0], 2),
            "epoch_s": round(per_epoch, 3), "samples_per_s": round(n / per_epoch, 1),
            "total_s": round(total, 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=3920, help="training points per bag (paper: 3920)")
    p.add_argument("--epochs", type=int, default=3, help="epochs timed (the first includes tracing)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--channels", type=int, default=12)
    p.add_argument("--variants", default="deterministic,xla_steps32",
                   help=f"comma list of {', '.join(VARIANTS)} or 'all'")
    p.add_argument("--full-run", metavar="DATA_DIR", help="also time a paper-settings `s2mos train` on DATA_DIR")
    p.add_argument("--full-run-args", default="", help="extra flags for the full run, e.g. '--no-determinism'")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    args = p.parse_args(argv)

    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    device = "GPU " + gpus[0].name if gpus else f"CPU ({os.cpu_count()} cores)"
    print(f"device: {device}; CNN of Table 3, {args.samples} samples × 150 dates × {args.channels} channels, "
          f"batch {args.batch_size}")
    names = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    results = []
    for name in names:
        r = bench(name, args.samples, args.epochs, args.batch_size, args.channels)
        results.append(r)
        print(f"  {name:<14s} jit={str(r['jit_compile']):<5s} steps/call={r['steps_per_execution']:<3d} "
              f"determinism={str(r['op_determinism']):<5s} → {r['samples_per_s']:>8.1f} samples/s, "
              f"{r['epoch_s']:.2f} s/epoch (first epoch {r['first_epoch_s']:.1f} s)", flush=True)
    out = {"device": device, "throughput": results}
    for r in results:
        # paper protocol: 100 epochs × 5 bags for one CNN configuration
        r["projected_cnn_5bags_100epochs_s"] = round(r["epoch_s"] * 100 * 5, 1)
    if args.full_run:
        import shlex
        import tempfile
        from pipelines import cli
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            rc = cli.main(["train", "--data", args.full_run, "--model-dir", os.path.join(tmp, "model")]
                          + shlex.split(args.full_run_args))
            out["full_run"] = {"data": args.full_run, "args": args.full_run_args, "rc": rc,
                               "seconds": round(time.perf_counter() - t0, 1)}
        print(f"full paper-settings run: {out['full_run']['seconds']:.0f} s (rc {rc})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
