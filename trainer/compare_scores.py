"""Scores of `s2mos compare`: each run's test predictions read back, scored on each model's own test
points and on the common subset, summarised over runs and compared with the reference
(`trainer.compare_stats`)."""
from __future__ import annotations

import numpy as np

from s2mos_transforms import fileio
from trainer import compare_stats as st


def read_model(mdir: str, name: str) -> dict:
    """One model of one run: its test predictions (point ids, observed, mean) or why there are none."""
    from trainer import compare, model_dir as md

    failed = fileio.join(mdir, "records", f"{name}.failed.json")
    if compare.is_done(mdir, name):
        saved = fileio.load_npz(md.predictions_path(mdir, name))
        record = fileio.read_json(compare.record_path(mdir, name))
        return {"status": "ok", "point_id": np.asarray(saved["point_id"]).astype(str),
                "observed": np.asarray(saved["observed"], np.float64), "mean": np.asarray(saved["mean"], np.float64),
                "seconds": training_seconds(record), "n_calibration": record.get("n_calibration")}
    if fileio.exists(failed):
        return {"status": "failed", "error": fileio.read_json(failed).get("error")}
    return {"status": "missing"}


def training_seconds(record: dict) -> float | None:
    """The seconds a model took, summed over the sessions of a resumed fit; None (unknown) when a
    fit resumed from a backup that no epoch ledger covers (only its last session was timed)."""
    if record.get("resumed_from_epoch") and not record.get("history_complete"):
        return None
    return record.get("compare_seconds", record.get("seconds"))


def collect_runs(out: str, partitions: list, seeds: int, names: list[str], pool) -> list[dict]:
    """Every run (partition × seed) with each model's predictions and its own-point scores."""
    from trainer import compare

    runs = []
    for p in partitions:
        for seed in range(seeds):
            mdir = compare.run_dir(out, p, seed)
            models = {}
            for name in names:
                m = read_model(mdir, name)
                if m["status"] == "ok":
                    m.update(st.score(m["observed"], m["mean"]) if len(m["observed"]) else
                             {"r2": float("nan"), "rmse": float("nan"), "n": 0})
                models[name] = m
            runs.append({"partition": p.name, "scheme": p.scheme, "repeat": p.repeat, "seed": seed,
                         "n_calibration": int((~p.is_test).sum()), "n_test": int(p.is_test.sum()), "models": models})
    return runs


def common_ids(runs: list[dict], names: list[str]) -> np.ndarray:
    """Test point ids every one of `names` predicted in every one of `runs` (one partition's seeds)."""
    sets = [set(r["models"][n]["point_id"]) for r in runs for n in names]
    return np.asarray(sorted(set.intersection(*sets))) if sets else np.zeros(0, str)


def aligned(model: dict, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(observed, mean) of a model at the given point ids, in that order."""
    where = {p: i for i, p in enumerate(model["point_id"])}
    index = np.asarray([where[p] for p in ids], np.int64)
    return model["observed"][index], model["mean"][index]


def add_common_scores(runs: list[dict], complete: list[str]) -> dict[str, np.ndarray]:
    """Score every complete model of every run on its partition's common points; {partition: ids}."""
    out = {}
    for part in dict.fromkeys(r["partition"] for r in runs):
        members = [r for r in runs if r["partition"] == part]
        ids = common_ids(members, complete)
        out[part] = ids
        for r in members:
            r["n_common"] = int(ids.size)
            for name in complete:
                m = r["models"][name]
                if ids.size > 1:
                    y, pred = aligned(m, ids)
                    c = st.score(y, pred)
                    m.update(r2_common=c["r2"], rmse_common=c["rmse"], n_common=c["n"])
    return out


def pair_groups(runs: list[dict], ids_of: dict, a: str, b: str, scheme: str | None = None) -> list[st.PairGroup]:
    """One `PairGroup` per partition (its seeds as rows) of models a and b on the common points."""
    groups = []
    for part, ids in ids_of.items():
        members = [r for r in runs if r["partition"] == part and (scheme is None or r["scheme"] == scheme)]
        if not members or ids.size < 2:
            continue
        y = aligned(members[0]["models"][a], ids)[0]
        pa = np.stack([aligned(r["models"][a], ids)[1] for r in members])
        pb = np.stack([aligned(r["models"][b], ids)[1] for r in members])
        groups.append(st.PairGroup(members[0]["scheme"], y, pa, pb))
    return groups


def model_summary(runs: list[dict], names: list[str]) -> dict:
    """Mean ± sd over runs of each model's R²/RMSE, own points and common subset, per scheme and overall."""
    schemes = list(dict.fromkeys(r["scheme"] for r in runs))
    out = {}
    for name in names:
        entry = {}
        for scope in schemes + ["overall"]:
            chosen = [r["models"][name] for r in runs if scope in ("overall", r["scheme"])
                      and r["models"][name]["status"] == "ok"]
            entry[scope] = {key: st.mean_sd([m.get(key) for m in chosen])
                            for key in ("r2", "rmse", "r2_common", "rmse_common")}
        out[name] = entry
    return out


def compare_pair(runs: list[dict], ids_of: dict, a: str, ref: str, n_boot: int) -> dict:
    """ΔR² and ΔRMSE of a vs ref: overall and per scheme, with verdicts."""
    schemes = list(dict.fromkeys(r["scheme"] for r in runs))
    result = {}
    for scope in ["overall"] + schemes:
        groups = pair_groups(runs, ids_of, a, ref, None if scope == "overall" else scope)
        if not groups:
            continue
        entry = {m: st.nested_bootstrap(groups, m, n_boot=n_boot, seed=0) for m in st.METRICS}
        entry["verdict"] = st.verdict(entry["r2"], a, ref)
        entry["verdict_rmse"] = st.verdict(entry["rmse"], a, ref)
        entry["n_common"] = [int(g.observed.size) for g in groups]
        result[scope] = entry
    return result


def summarise(runs: list[dict], names: list[str], reference: str, n_boot: int) -> dict:
    """compare.json's scores, summaries, intervals and verdicts (predictions left out)."""
    complete = [n for n in names if all(r["models"][n]["status"] == "ok" for r in runs)]
    incomplete = {n: sorted({f"{r['partition']} seed {r['seed']}: {r['models'][n]['status']}"
                             + (f" ({r['models'][n].get('error')})" if r["models"][n].get("error") else "")
                             for r in runs if r["models"][n]["status"] != "ok"}) for n in names if n not in complete}
    ids_of = add_common_scores(runs, complete)
    comparisons, note = {}, None
    if reference in complete:
        comparisons = {n: compare_pair(runs, ids_of, n, reference, n_boot) for n in complete if n != reference}
    else:
        note = f"the reference {reference} has no predictions in every run: no comparisons"
    keep = ("status", "error", "r2", "rmse", "n", "r2_common", "rmse_common", "n_common", "seconds", "n_calibration")
    public_runs = [{**{k: v for k, v in r.items() if k != "models"},
                    "models": {n: {k: v for k, v in m.items() if k in keep} for n, m in r["models"].items()}}
                   for r in runs]
    return {"reference": reference, "models": names, "complete": complete, "incomplete": incomplete,
            "runs": public_runs, "summary": model_summary(runs, names), "comparisons": comparisons,
            "comparisons_note": note,
            "method": "nested paired bootstrap: schemes fixed, partitions resampled within scheme, seeds within "
                      "partition, common test points within partition (shared by its seeds and both models); "
                      "statistic: mean Δ over runs; 95 % percentile interval"}
