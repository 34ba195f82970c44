"""CNN training throughput (samples/s at batch 8, seconds per epoch) and, optionally, a full run.

    python benchmarks/bench_train.py                      # throughput of the Table 3 CNN, 3920 samples
    python benchmarks/bench_train.py --variants all       # compare the speed-ups (same maths)
    python benchmarks/bench_train.py --variants deterministic,parallel_bags --bags 5   # --parallel-bags
    python benchmarks/bench_train.py --full-run DATA_DIR  # time `s2mos train` with the paper's settings

The inputs are random normalised tensors of the paper's shapes (a bag: 3920 points × 150 dates
× 12 channels + lat/lon): throughput does not depend on the values. Variants differ only in how
the steps are executed (eager-free tf.function per step vs several steps per compiled call vs
XLA), never in the model, batch size, optimiser or data order. `parallel_bags` trains --bags
copies side by side in one model (`s2mos train --parallel-bags`: one batch of 8 per bag per
step, each bag its own data of --samples points), with the trainer's default settings
otherwise; its samples/s is summed over the bags, so it compares directly with `deterministic`
(one bag at a time).
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
    "parallel_bags": (False, 32, True),        # --parallel-bags: every bag side by side, trainer defaults
}
PARALLEL = {"parallel_bags"}


def bench(name: str, n: int, epochs: int, batch: int, channels: int, bags: int = 5) -> dict:
    import numpy as np
    import keras
    import tensorflow as tf
    from trainer import data, models

    jit, spe, det = VARIANTS[name]
    tf.config.experimental.disable_op_determinism() if hasattr(tf.config.experimental, "disable_op_determinism") \
        else None
    if det:
        tf.config.experimental.enable_op_determinism()
    k_bags = bags if name in PARALLEL else 1
    members, sets = [], []
    for k in range(k_bags):
        keras.utils.set_random_seed(k)
        rng = np.random.default_rng(k)
        x = {"sequence": rng.uniform(-1, 1, (n, 150, channels)).astype(np.float32),
             "coords": rng.uniform(-1, 1, (n, 2)).astype(np.float32)}
        y = rng.uniform(-1, 1, n).astype(np.float32)
        members.append(models.compile_model(models.build_cnn(channels), jit_compile=jit, steps_per_execution=spe))
        sets.append(data.make_tf_dataset(x, y, batch, shuffle=True, seed=k))
    if name in PARALLEL:
        model, ds = models.stack_bags(members, jit, spe), data.zip_bags(sets)
    else:
        model, ds = members[0], sets[0]
    times = []

    class T(keras.callbacks.Callback):
        def on_epoch_begin(self, e, logs=None):
            self.t = time.perf_counter()

        def on_epoch_end(self, e, logs=None):
            times.append(time.perf_counter() - self.t)

    t0 = time.perf_counter()
    model.fit(ds, epochs=epochs, verbose=0, callbacks=[T()], shuffle=False)   # the pipeline shuffles, seeded
    total = time.perf_counter() - t0
    steady = times[1:] or times
    per_epoch = sum(steady) / len(steady)
    keras.backend.clear_session()
    if det and hasattr(tf.config.experimental, "disable_op_determinism"):
        tf.config.experimental.disable_op_determinism()
    return {"variant": name, "jit_compile": jit, "steps_per_execution": spe, "op_determinism": det,
            "bags_per_step": k_bags, "samples": n * k_bags, "batch_size": batch, "epochs": epochs,
            "first_epoch_s": round(times[0], 2), "epoch_s": round(per_epoch, 3),
            "samples_per_s": round(n * k_bags / per_epoch, 1), "total_s": round(total, 2)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=3920, help="training points per bag (paper: 3920)")
    p.add_argument("--epochs", type=int, default=3, help="epochs timed (the first includes tracing)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--channels", type=int, default=12)
    p.add_argument("--bags", type=int, default=5, help="bags side by side in the parallel_bags variant")
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
        r = bench(name, args.samples, args.epochs, args.batch_size, args.channels, args.bags)
        results.append(r)
        print(f"  {name:<14s} jit={str(r['jit_compile']):<5s} steps/call={r['steps_per_execution']:<3d} "
              f"determinism={str(r['op_determinism']):<5s} bags/step={r['bags_per_step']} → "
              f"{r['samples_per_s']:>8.1f} samples/s, {r['epoch_s']:.2f} s/epoch (first epoch "
              f"{r['first_epoch_s']:.1f} s)", flush=True)
    out = {"device": device, "throughput": results}
    for r in results:
        # paper protocol: 100 epochs × 5 bags of 3920 points for one CNN configuration
        r["projected_cnn_5bags_100epochs_s"] = round(3920 * 5 * 100 / r["samples_per_s"], 1)
    base = next((r for r in results if r["variant"] == "deterministic"), None)
    if base:
        for r in results:
            r["speedup_vs_deterministic"] = round(r["samples_per_s"] / base["samples_per_s"], 2)
        for r in results:
            if r["variant"] in PARALLEL:
                print(f"  {r['variant']}: {r['speedup_vs_deterministic']:.2f}× the sequential default's samples/s")
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
