"""`s2mos compare`: seed- and split-aware verdicts between model families.

One `s2mos train` on the dataset's one Kennard–Stone split with one seed gives one verdict whose
noise is only the test set's; a CNN's R² also moves with its seed (± 0.02 on the embedded
world's paper preset) and with which points are in the test set. `compare` pools the dataset's
calibration and test splits, re-partitions them (`trainer.compare_splits`: Kennard–Stone as the
dataset build does it, K seeded random splits, K seeded spatial-block splits), and for every
partition and seed s = 0 … N−1 trains every model from the calibration part only (its own
normalisation stats, `data.fit_stats`; `trainer.train.fit_spec`, so each model fits and is scored
on the points it can use). Every model is then scored on its own test points and on the COMMON
test points (every compared model could use them); comparisons use the common points only. Each
model is compared with the reference (default the paper's RF, ``rf``) by ΔR² and ΔRMSE with a 95 %
interval from a nested paired bootstrap over partitions, seeds and test points
(`trainer.compare_stats`), and a verdict: "X beats Y" only when the interval excludes 0.

OUT/
  compare.json     settings, every run's scores, per-model mean ± sd, intervals and verdicts
  compare.md       the same as tables; compare.png: R² per model and scheme (runs as dots) and
                   the forest plot of ΔR² vs the reference
  runs.csv         one row per run and model
  compare_settings.json   what a resumed run must share
  runs/<scheme>-<repeat>/partition.json, stats.json
  runs/<scheme>-<repeat>/seed-<s>/   a model directory (`trainer.model_dir`): predictions/<name>.npz …
  runs/<scheme>-<repeat>/seed-<s>/records/<name>.json   the model's training record (marks it done)

Resuming is the default: a model whose record and predictions exist in its run directory is not
trained again (`--fresh` retrains everything); OUT must have been made with the same data (by
content, `data_sha256`: a dataset rebuilt at another path or in a later session resumes) and
training settings (compare_settings.json), else it is refused. Inside a model, a Keras fit backs
up its weights and optimizer state after every epoch (`runs/…/seed-<s>/checkpoints/<name>/`,
removed when the fit ends), so a compare killed mid-fit resumes that fit from its last epoch
(the record's ``resumed_from_epoch``; the epoch ledger beside the backup, `callbacks.EpochLedger`,
completes its history and seconds; its data order differs from an uninterrupted fit's,
`fit_bags.checkpoint_epochs`); an RF grid
search resumes by cell (`fit_bags.select_rf_params`). Deterministic given the seeds:
`set_determinism(seed)` before every model, seeded partitions and a seeded bootstrap.
"""
from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from s2mos_transforms import fileio
from s2mos_transforms.errors import UserError
from trainer import compare_splits as splits_mod
from trainer.config import Log, TrainConfig, printer

DEFAULT_MODELS = "cnn,series,rf_strong,qrf_strong,rf,ann"
SETTINGS_FILE = "compare_settings.json"
CHECKPOINTS = "checkpoints"   # per run: Keras fits back up each epoch here and resume from it
# settings a resumed compare must share with the runs already in OUT (they change the predictions)
FINGERPRINT = ("data_sha256", "channels", "epochs", "bags", "batch_size", "quick_grid", "cv_folds", "test_fraction",
               "block_km")


@dataclasses.dataclass
class CompareSettings:
    data: str
    out: str
    models: tuple[str, ...] = tuple(DEFAULT_MODELS.split(","))
    reference: str = "rf"
    seeds: int = 3
    schemes: tuple[str, ...] = splits_mod.SCHEMES
    repeats: int = 2
    test_fraction: float | None = None        # None: the dataset's (summary.json), else 0.2
    block_km: float = 100.0
    channels: str = "s2s1"
    epochs: int = 100
    bags: int = 5
    batch_size: int = 8
    quick_grid: bool = False
    cv_folds: int = 5
    parallel_bags: bool = False
    n_boot: int = 2000
    fresh: bool = False
    report_only: bool = False     # no training: report the runs OUT has finished (a long compare mid-way)
    verbose: int = 1


@dataclasses.dataclass
class Pool:
    """The dataset's points, calibration and test together, with the dataset build's order."""
    split: object                 # trainer.data.Split
    held_out: np.ndarray          # (N,) bool: points of a held-out site (always test)
    order: np.ndarray             # indices in the dataset build's order (split.csv), for KS


def dataset_test_fraction(data_dir: str) -> float:
    path = fileio.join(data_dir, "summary.json")
    if fileio.exists(path):
        value = fileio.read_json(path).get("test_fraction")
        if value is not None:
            return float(value)
    return 0.2


def read_pool(data_dir: str) -> Pool:
    """Pool both splits; the KS order and held-out points from split.csv (else point-id order)."""
    from trainer import data

    pooled = data.Split.concat([data.read_split(data_dir, "calibration"), data.read_split(data_dir, "test")])
    ids = pooled.point_id.astype(str)
    held_out = np.zeros(len(ids), bool)
    order = np.argsort(ids, kind="stable")
    path = fileio.join(data_dir, "split.csv")
    if fileio.exists(path):
        import csv
        import io
        rows = {r["point_id"]: r for r in csv.DictReader(io.StringIO(fileio.read_text(path)))}
        missing = [p for p in ids if p not in rows]
        if missing:
            raise UserError(f"{path}: no row for point {missing[0]} ({len(missing)} points missing)")
        held_out = np.asarray([rows[p]["origin"] != "samples" for p in ids])
        order = np.asarray(sorted(range(len(ids)), key=lambda i: (held_out[i], int(rows[ids[i]]["row"]))), np.int64)
    return Pool(pooled, held_out, order)


def make_partitions(pool: Pool, s: CompareSettings, test_fraction: float) -> list:
    split = pool.split
    try:
        return splits_mod.build_partitions(
            list(s.schemes), s.repeats, test_fraction, s.block_km,
            features=splits_mod.ks_features(split.sequences["s2"]), lat=split.coords[:, 0], lon=split.coords[:, 1],
            held_out=pool.held_out, order=pool.order)
    except ValueError as err:
        raise UserError(f"--splits: {err}") from None


def pool_sha256(pool: Pool) -> str:
    """The dataset by content (decoded points, split order), not by path: the same dataset rebuilt
    elsewhere — or in a later session, since build-dataset is deterministic — resumes the same OUT."""
    import hashlib

    h = hashlib.sha256()
    split = pool.split
    for array in (split.point_id.astype(str), split.coords, split.clay, pool.held_out, pool.order):
        h.update(np.ascontiguousarray(array).tobytes())
    for key in sorted(split.sequences):
        for part in (split.sequences[key], split.dates.get(key, [])):
            for seq in part:
                h.update(np.int64(len(seq)).tobytes())
                h.update(np.ascontiguousarray(seq).tobytes())
    return h.hexdigest()


def check_resume(s: CompareSettings, fingerprint: dict) -> None:
    """Refuse an OUT made with other data or training settings (its runs would be mixed in)."""
    path = fileio.join(s.out, SETTINGS_FILE)
    if s.report_only and not fileio.exists(path):
        raise UserError(f"--report-only: {s.out} holds no compare ({SETTINGS_FILE} missing)")
    if fileio.exists(path) and not s.fresh:
        old = fileio.read_json(path)
        diff = [k for k in FINGERPRINT if old.get(k) != fingerprint.get(k)]
        if diff:
            changes = ", ".join(f"{k} {old.get(k)!r} → {fingerprint.get(k)!r}" for k in diff)
            raise UserError(f"--out {s.out}: holds runs made with other settings ({changes}); "
                            "use a new --out, or --fresh to retrain them all")
    if not s.report_only:
        fileio.write_json(path, fingerprint)


def finished_runs(runs: list[dict], log: Log) -> list[dict]:
    """--report-only: the runs in which no model is still to train (trained or failed)."""
    finished = [all(m["status"] != "missing" for m in r["models"].values()) for r in runs]
    done = [r for r, f in zip(runs, finished) if f]
    left = [f"{r['partition']} seed {r['seed']}" for r, f in zip(runs, finished) if not f]
    if not done:
        raise UserError(f"--report-only: none of the {len(runs)} runs is finished yet")
    log(f"compare --report-only: {len(done)} of {len(runs)} runs finished"
        + (f"; not yet: {', '.join(left)}" if left else ""))
    return done


def run_dir(out: str, partition, seed: int | None = None) -> str:
    base = fileio.join(out, "runs", partition.name)
    return base if seed is None else fileio.join(base, f"seed-{seed}")


def record_path(model_dir: str, name: str) -> str:
    return fileio.join(model_dir, "records", f"{name}.json")


def is_done(model_dir: str, name: str) -> bool:
    from trainer import model_dir as md
    return fileio.exists(record_path(model_dir, name)) and fileio.exists(md.predictions_path(model_dir, name))


def write_partition(out: str, partition, pool: Pool, s: CompareSettings) -> None:
    """partition.json (its test point ids); a resumed run on other points is refused."""
    path = fileio.join(run_dir(out, partition), "partition.json")
    test_ids = sorted(pool.split.point_id[partition.is_test].astype(str).tolist())
    if fileio.exists(path) and not s.fresh and fileio.read_json(path)["test_point_ids"] != test_ids:
        raise UserError(f"{path}: the partition's test points differ from this run's (the dataset changed?); "
                        "use a new --out or --fresh")
    fileio.write_json(path, {"scheme": partition.scheme, "repeat": partition.repeat,
                             "n_calibration": int((~partition.is_test).sum()), "n_test": int(partition.is_test.sum()),
                             "test_point_ids": test_ids})


def train_partition(partition, pool: Pool, chosen: list, s: CompareSettings, progress, log: Log) -> None:
    """Every seed × model of one partition (skipping finished ones unless --fresh)."""
    from trainer import data
    from trainer.train import fit_spec, set_determinism

    cal = pool.split.subset(partition.calibration_index)
    test = pool.split.subset(partition.test_index)
    stats = data.fit_stats(cal)                               # this partition's calibration only
    stats.save(run_dir(s.out, partition))
    for seed in range(s.seeds):
        mdir = run_dir(s.out, partition, seed)
        cfg = TrainConfig(data=s.data, model_dir=mdir, channels=s.channels, epochs=s.epochs, bags=s.bags,
                          batch_size=s.batch_size, models=",".join(x.name for x in chosen), quick_grid=s.quick_grid,
                          seed=seed, cv_folds=s.cv_folds, parallel_bags=s.parallel_bags, verbose=s.verbose,
                          checkpoint_dir=fileio.join(mdir, CHECKPOINTS))
        tag = progress.start_run(partition.name, seed)
        for spec in chosen:
            if not s.fresh and is_done(mdir, spec.name):
                progress.model(tag, spec.name, "already trained (resumed)")
                continue
            progress.model(tag, spec.name, "training")
            t0 = time.perf_counter()
            set_determinism(seed, True)
            inner = (lambda m, t=tag: log(f"  {t} {m}")) if s.verbose > 1 else (lambda m: None)
            try:
                record, *_ = fit_spec(spec, cal, test, stats, cfg, inner)
            except Exception as err:    # noqa: BLE001 — one model failing (e.g. the CNN without S1-paired
                # calibration points) is reported; the others still run and are compared
                why = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                fileio.write_json(fileio.join(mdir, "records", f"{spec.name}.failed.json"), {"error": why})
                progress.model(tag, spec.name, f"FAILED: {why}")
                continue
            # a fit resumed from an earlier session's backup adds the seconds that session trained
            record["compare_seconds"] = round(time.perf_counter() - t0 + record.get("seconds_before_resume", 0.0), 2)
            fileio.write_json(record_path(mdir, spec.name), record)
            stale = fileio.join(mdir, "records", f"{spec.name}.failed.json")
            if fileio.exists(stale):
                fileio.remove(stale)
            progress.model(tag, spec.name, f"done in {record['compare_seconds']:.1f}s "
                                           f"({record['n_calibration']} calibration, {record['n_test']} test points)")


class Progress:
    """Progress lines: which run, which model, elapsed time."""

    def __init__(self, n_runs: int, log: Log):
        self.n_runs, self.k, self.log, self.t0 = n_runs, 0, log, time.perf_counter()

    def elapsed(self) -> str:
        sec = int(time.perf_counter() - self.t0)
        return f"{sec // 3600}:{sec % 3600 // 60:02d}:{sec % 60:02d}"

    def start_run(self, partition: str, seed: int) -> str:
        self.k += 1
        return f"[run {self.k}/{self.n_runs} {partition} seed {seed}]"

    def model(self, tag: str, name: str, what: str) -> None:
        self.log(f"{tag} {name}: {what} (elapsed {self.elapsed()})")


def compare(s: CompareSettings, log: Log | None = None) -> dict:
    """The whole `s2mos compare`; returns compare.json's content."""
    from trainer import compare_report, compare_scores, specs

    log = log or printer(s.verbose)
    t0 = time.perf_counter()
    chosen = specs.select(",".join(s.models), s.channels, True, log)
    names = [c.name for c in chosen]
    if s.reference not in names:
        raise UserError(f"--reference {s.reference}: not among --models ({', '.join(names)})")
    test_fraction = dataset_test_fraction(s.data) if s.test_fraction is None else s.test_fraction
    if not 0.0 < test_fraction < 1.0:
        raise UserError(f"--test-fraction must be in (0, 1), got {test_fraction:g}")
    pool = read_pool(s.data)
    partitions = make_partitions(pool, s, test_fraction)
    fingerprint = {"data": os.path.abspath(s.data) if not fileio.is_remote(s.data) else s.data,
                   "data_sha256": pool_sha256(pool), "channels": s.channels, "epochs": s.epochs, "bags": s.bags,
                   "batch_size": s.batch_size, "quick_grid": s.quick_grid, "cv_folds": s.cv_folds,
                   "test_fraction": test_fraction, "block_km": s.block_km}
    if not s.report_only:
        fileio.makedirs(s.out)
    check_resume(s, fingerprint)
    n_runs = len(partitions) * s.seeds
    log(f"compare: {len(pool.split)} points ({int(pool.held_out.sum())} held out), {len(partitions)} partitions "
        f"({', '.join(p.name for p in partitions)}) × {s.seeds} seeds = {n_runs} runs of {', '.join(names)}; "
        f"test fraction {test_fraction:g}; reference {s.reference}; → {s.out}")
    progress = Progress(n_runs, log)
    if not s.report_only:
        for partition in partitions:
            write_partition(s.out, partition, pool, s)
            train_partition(partition, pool, chosen, s, progress, log)
    runs = compare_scores.collect_runs(s.out, partitions, s.seeds, names, pool)
    if s.report_only:
        runs = finished_runs(runs, log)
    result = compare_scores.summarise(runs, names, s.reference, s.n_boot)
    result.update(settings={**dataclasses.asdict(s), **fingerprint, "models": names,
                            "partitions": [p.name for p in partitions]},
                  runs_planned=n_runs, seconds=round(time.perf_counter() - t0, 1))
    compare_report.write_outputs(s.out, result)
    for line in compare_report.verdict_lines(result):
        log(line)
    done = f"{len(runs)} of {n_runs} runs reported (--report-only)" if s.report_only else \
        f"{n_runs} runs in {progress.elapsed()}"
    log(f"compare: {done} → {fileio.join(s.out, 'compare.md')}")
    return result


# ---------------------------------------------------------------- CLI (s2mos compare)

def _schemes(text: str) -> tuple[str, ...]:
    import argparse
    items = tuple(dict.fromkeys(t.strip() for t in text.split(",") if t.strip()))
    bad = [t for t in items if t not in splits_mod.SCHEMES]
    if bad or not items:
        raise argparse.ArgumentTypeError(f"expected a comma list of {', '.join(splits_mod.SCHEMES)}, got {text!r}")
    return items


def _positive_float(text: str) -> float:
    import argparse
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected > 0, got {text}")
    return value


def configure(parser) -> None:
    from s2mos_transforms.cli_types import int_at_least

    pos = int_at_least(1)
    parser.add_argument("--data", required=True, metavar="DIR", help="dataset directory of `s2mos build-dataset`")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output directory (runs/, compare.json/.md/.png, runs.csv); an existing one is resumed")
    parser.add_argument("--models", default=DEFAULT_MODELS, help=f"comma list of models or groups (default {DEFAULT_MODELS})")
    parser.add_argument("--reference", default="rf", help="the model every other is compared with (default: rf, the paper's)")
    parser.add_argument("--seeds", type=pos, default=3, help="training seeds 0 … N−1 per partition (default 3)")
    parser.add_argument("--splits", dest="schemes", type=_schemes, default=splits_mod.SCHEMES,
                        help="comma list of split schemes: ks (the paper's Kennard–Stone, one partition), random, "
                             "spatial (blocks of --block-km) (default: all three)")
    parser.add_argument("--repeats", type=pos, default=2, help="partitions per seeded scheme (random, spatial; default 2)")
    parser.add_argument("--test-fraction", type=float, default=None,
                        help="share of the points in test (default: the dataset's, summary.json, else 0.2)")
    parser.add_argument("--block-km", type=_positive_float, default=100.0, help="spatial block side in km (default 100)")
    parser.add_argument("--channels", choices=("s2s1", "s2"), default="s2s1", help="the cnn's input (as `train`)")
    parser.add_argument("--epochs", type=pos, default=100, help="epochs per bag (paper: 100)")
    parser.add_argument("--bags", type=pos, default=5, help="bags per model (paper: 5)")
    parser.add_argument("--batch-size", type=pos, default=8, help="mini-batch size (paper: 8)")
    parser.add_argument("--quick-grid", action="store_true", help="small RF grid instead of the paper's")
    parser.add_argument("--cv-folds", type=pos, default=5, help="RF grid-search folds (paper: 5)")
    parser.add_argument("--parallel-bags", action="store_true", help="Keras bags side by side (speed only)")
    parser.add_argument("--n-boot", type=pos, default=2000, help="bootstrap replicates of the intervals (default 2000)")
    parser.add_argument("--fresh", action="store_true", help="retrain every run even if OUT holds finished ones")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: report the runs of OUT that are finished (a long compare mid-way)")
    parser.add_argument("--quiet", dest="verbose", action="store_const", const=0, default=1, help="no progress output")
    parser.add_argument("--train-log", dest="verbose", action="store_const", const=2,
                        help="also print each model's training lines (epochs, CV grid)")


def settings_from_args(args) -> CompareSettings:
    return CompareSettings(
        data=args.data, out=args.out, models=tuple(m.strip() for m in args.models.split(",") if m.strip()),
        reference=args.reference, seeds=args.seeds, schemes=tuple(args.schemes), repeats=args.repeats,
        test_fraction=args.test_fraction, block_km=args.block_km, channels=args.channels, epochs=args.epochs,
        bags=args.bags, batch_size=args.batch_size, quick_grid=args.quick_grid, cv_folds=args.cv_folds,
        parallel_bags=args.parallel_bags, n_boot=args.n_boot, fresh=args.fresh, verbose=args.verbose,
        report_only=args.report_only)


def run(args, extra) -> int:
    compare(settings_from_args(args))
    return 0
