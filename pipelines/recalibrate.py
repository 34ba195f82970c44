"""`s2mos recalibrate`: adapt a trained model to a new site from a few local samples.

    s2mos recalibrate --model-dir M --samples site.csv --out M2 [--kind auto|bias|linear] [--source …]

The samples (the sample table build-dataset reads: point_id, lat, lon, clay) go through the
dataset's own per-point chain (`dataset.transforms.process_point`: masks → S1 pairing →
dates) with the model's recorded extraction settings, from the chosen source; the model
predicts them (the SavedModel, as the map's `padded` path); the correction of
`trainer.recalibrate` (bias for n < 5, shrunk linear otherwise, and from 3 samples on the
kriged residuals unless --no-kriging) is fitted on the uncorrected predictions; M2 is a full
copy of M whose s2mos_model.json records it ("recalibration": kind, a, b, n, kriging, the
samples' point ids, RMSE/bias before and after on the samples), with
M2/recalibration.json listing each sample. predict-map applies it in both inference paths,
and shows it in the STAC Item, the tiles' model and the map report.
"""
from __future__ import annotations

import argparse
import datetime as dt

from s2mos_transforms.errors import UserError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", required=True, help="trained model directory (with ensemble/)")
    parser.add_argument("--samples", required=True, metavar="PATH",
                        help="local samples: CSV or Parquet, point_id, lat, lon, clay (as build-dataset reads)")
    parser.add_argument("--out", required=True, help="the recalibrated model directory to write (a full copy)")
    parser.add_argument("--kind", choices=("auto", "bias", "linear"), default="auto",
                        help="auto (default): bias below 5 samples, linear shrunk towards slope 1 from 5 on")
    parser.add_argument("--no-kriging", dest="kriging", action="store_false",
                        help="correct by the line only; by default, from 3 samples on, the residuals the line leaves "
                             "are also kriged, so pixels near a sample take part of its residual (regression kriging)")
    parser.add_argument("--fine-tune", action="store_true",
                        help="instead of an output correction, refit the bags' dense head (CNN or whole-series) with the samples "
                             "spiked into the calibration set (needs --data; trainer/finetune.py)")
    parser.add_argument("--data", help="with --fine-tune: the dataset directory the model was trained on")
    parser.add_argument("--fine-tune-epochs", type=int, default=10, help="with --fine-tune: epochs (default 10)")
    from s2mos_transforms import sources
    sources.add_source_arguments(parser, sources.POINTS)


def record_sequence(record: dict, feature: str):
    """A dataset record's raw sequence in the model's channels (`series`: bare dates joined with
    their S1 pairs, `trainer.series.raw_sequence`)."""
    if feature == "series":
        from trainer import series
        return series.raw_sequence(record["s2"], record["s2_dates"], record["s2s1"], record["s2s1_dates"])
    return record[feature]


def local_sequences(points, source, config, feature: str):
    """(kept point rows, their raw sequences in the model's channels, rejections) through the
    dataset's own per-point chain."""
    from s2mos_transforms import sequences
    from s2mos_transforms.dataset.transforms import process_point
    from s2mos_transforms.sources import SamplePoint

    sample = [SamplePoint(str(p["point_id"]), float(p["lat"]), float(p["lon"]), float(p["clay"])) for p in points]
    obs = sequences.point_observations(source.observations(sample)) if sample else {}
    kept, seqs, rejected = [], [], []
    for p in points:
        record, rej, _ = process_point(p, obs.get(str(p["point_id"])), config)
        if rej is not None:
            rejected.append({"point_id": rej.point_id, "reason": rej.reason, "detail": rej.detail})
            continue
        seq = record_sequence(record, feature)
        if len(seq) == 0:
            rejected.append({"point_id": str(p["point_id"]), "reason": f"no {feature} date", "detail": ""})
        else:
            kept.append(p)
            seqs.append(seq)
    return kept, seqs, rejected


def copy_model(src: str, dest: str) -> None:
    """Every file of model directory `src` under `dest` (local or remote)."""
    import tensorflow as tf
    src, dest = src.rstrip("/"), dest.rstrip("/")
    for root, _, files in tf.io.gfile.walk(src):
        rel = root[len(src):].lstrip("/")
        target = f"{dest}/{rel}" if rel else dest
        tf.io.gfile.makedirs(target)
        for name in files:
            tf.io.gfile.copy(f"{root}/{name}", f"{target}/{name}", overwrite=True)


def _fine_tune(args, meta, kept, seqs, coords, observed, before, rejected, n_points: int) -> int:
    """--fine-tune: copy the model, refit its bags' heads with the samples spiked in, record it."""
    import numpy as np
    from s2mos_transforms import fileio
    from s2mos_transforms.maps.engines import PaddedEnsemble
    from trainer import aoa as aoa_mod
    from trainer import data, finetune, model_dir

    feature = meta.sequence_feature or "s2s1"
    local = data.Split(np.array([str(p["point_id"]) for p in kept]), coords, observed.astype(np.float32),
                       {feature: [np.asarray(s, np.float32) for s in seqs]})
    copy_model(args.model_dir, args.out)
    record = finetune.fine_tune(args.out, args.data, local, args.fine_tune_epochs)
    values, lengths = aoa_mod.ragged(seqs, len(meta.channels))
    after, _ = PaddedEnsemble(args.out).predict(values, lengths.astype(np.int32), coords)
    rmse = lambda p: float(np.sqrt(np.mean((np.asarray(p, np.float64) - observed) ** 2)))  # noqa: E731
    record.update(before={"rmse": rmse(before), "bias": float(np.mean(before - observed))},
                  after_in_sample={"rmse": rmse(after), "bias": float(np.mean(after - observed))},
                  samples=args.samples, point_ids=[str(p["point_id"]) for p in kept],
                  from_model_dir=args.model_dir, replaces=meta.recalibration)
    model_dir.update_meta(args.out, recalibration=record)
    fileio.write_json(fileio.join(args.out, "recalibration.json"),
                      {"correction": record, "rejected": rejected,
                       "samples": [{"point_id": str(p["point_id"]), "clay": float(y), "predicted": float(b),
                                    "corrected": float(a)} for p, y, b, a in zip(kept, observed, before, after)]})
    print(f"recalibrate --fine-tune: {len(kept)} of {n_points} samples spiked ×{record['spike_repeats']} into "
          f"{record['calibration_points']} calibration points; layers {', '.join(record['trained_layers'])} refitted")
    print(f"  on these samples: RMSE {record['before']['rmse']:.2f} → {record['after_in_sample']['rmse']:.2f} %, "
          f"bias {record['before']['bias']:+.2f} → {record['after_in_sample']['bias']:+.2f} % (in-sample)")
    print(f"  wrote {args.out}/ (bags and serving ensemble refitted; s2mos_model.json records it)")
    return 0


def run(args: argparse.Namespace, extra: list[str]) -> int:
    import numpy as np
    from s2mos_transforms import fileio, sources
    from s2mos_transforms.dataset.samples import read_samples
    from s2mos_transforms.maps.engines import PaddedEnsemble
    from trainer import aoa as aoa_mod
    from trainer import model_dir, recalibrate

    problem = model_dir.check_model_dir(args.model_dir)
    if problem:
        raise UserError(problem)
    if args.out.rstrip("/") == args.model_dir.rstrip("/"):
        raise UserError("--out must differ from --model-dir (the original model is kept)")
    if args.fine_tune and not args.data:
        raise UserError("--fine-tune needs --data DATASET_DIR (the calibration split the samples are spiked into)")
    if args.fine_tune_epochs < 1:
        raise UserError(f"--fine-tune-epochs must be ≥ 1, got {args.fine_tune_epochs}")
    fileio.check_writable(args.out, "--out")
    table = read_samples(args.samples)
    if table.points.empty:
        raise UserError(f"--samples {args.samples}: no valid sample row")
    try:
        name, options = sources.resolve_source(args, sources.POINTS)
        source = sources.create(name, options)
    except sources.SourceError as err:
        raise UserError(str(err)) from None
    meta = model_dir.read_meta(args.model_dir)
    feature = meta.sequence_feature or "s2s1"
    points = table.points.to_dict("records")
    kept, seqs, rejected = local_sequences(points, source, meta.extract_config(), feature)
    if not kept:
        raise UserError(f"none of the {len(points)} samples has a bare-soil sequence at this source "
                        f"({len(rejected)} rejected)")
    values, lengths = aoa_mod.ragged(seqs, len(meta.channels))
    coords = np.array([[p["lat"], p["lon"]] for p in kept], np.float32)
    mean, std = PaddedEnsemble(args.model_dir).predict(values, lengths.astype(np.int32), coords)
    observed = np.array([p["clay"] for p in kept], np.float64)
    if args.fine_tune:
        return _fine_tune(args, meta, kept, seqs, coords, observed, mean, rejected, len(points))
    correction = recalibrate.fit(observed, mean, args.kind, coords, args.kriging)
    if meta.intervals:
        half = meta.intervals["q"] * (np.asarray(std, np.float64) + meta.intervals["eps"])
        correction["interval_scale"] = recalibrate.interval_scale(observed, mean, half, correction["kind"],
                                                                  coords=coords, kriging=args.kriging)
    correction["offset_uncertainty"] = recalibrate.offset_uncertainty(observed, mean, correction["kind"])
    corrected = recalibrate.apply(mean, correction, coords)
    correction.update(samples=args.samples, point_ids=[str(p["point_id"]) for p in kept], source=name,
                      replaces=meta.recalibration,
                      date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                      from_model_dir=args.model_dir)
    copy_model(args.model_dir, args.out)
    model_dir.update_meta(args.out, recalibration=correction)
    fileio.write_json(fileio.join(args.out, "recalibration.json"),
                      {"correction": correction, "rejected": rejected,
                       "samples": [{"point_id": str(p["point_id"]), "clay": float(y), "predicted": float(m),
                                    "corrected": float(c)}
                                   for p, y, m, c in zip(kept, observed, mean, corrected)]})
    krig = correction.get("kriging")
    print(f"recalibrate: {len(kept)} of {len(points)} samples with a sequence ({len(rejected)} rejected); "
          f"{correction['kind']}: clay' = {correction['a']:+.2f} + {correction['b']:.3f}·clay"
          + (f"; 90 % interval widened ×{correction['interval_scale']:.2f}" if correction.get("interval_scale", 1) > 1
             else ""))
    if krig:
        print(f"  residuals kriged: exponential covariance, range {krig['range_km']:.2f} km (the samples' median "
              f"spacing), nugget {krig['nugget']:.0%}; the shift fades with the distance to the samples")
    print(f"  on these samples: RMSE {correction['before']['rmse']:.2f} → {correction['after_in_sample']['rmse']:.2f} %, "
          f"bias {correction['before']['bias']:+.2f} → {correction['after_in_sample']['bias']:+.2f} % "
          f"(in-sample; score it on other samples or the map)")
    unc = correction["offset_uncertainty"]
    if unc:
        print(f"  site offset ±{unc['offset_se']:.1f} % (1 s.e.; the samples' leave-one-out residuals scatter by "
              f"{unc['residual_sd']:.1f} %): a site bias of about {unc['expected_abs_bias']:.1f} % is left on average; "
              f"≈ {unc['samples_for_target']} samples would bring it to {unc['target_abs_bias']:g} %")
    print(f"  wrote {args.out}/ (a full model directory; ensemble/s2mos_model.json records the correction)")
    return 0
