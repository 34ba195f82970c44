#!/bin/sh
# The trust measurements of docs/trainer.md ("How far to trust a map") on the paper preset and
# the independent site, with the reduced settings stated there (2 CPU cores: the paper world's
# 8 426 samples; the CNN and the whole-series model, 5 bags × EPOCHS (30) epochs each; AOA
# cross-validation 5 spatial folds × 2 bags × 15 epochs per model; maps at 40 m). The dataset
# keeps the points without an S1-paired date (as measured: 52 of 7 881; the CNN does not use
# them, the whole-series model does). About 40 min on the 2-core dev VM (37 min in session 18,
# nothing beside it; the learnt-space AOA step added in session 19 takes ≈ 3 min more a model). Resumable by step: a step that
# finished is marked in OUT/.done/ and skipped when the script runs again with the same OUT (a
# step killed mid-way runs again from its start, a map or recalibration into a fresh directory). The
# figures the docs quote are copied to OUT/summary/<model>/ (reports, curves, quicklooks: ≈ 1 MB),
# which is what results/trust-paper-*/ in the repository holds.
# Usage: [MODELS="cnn series"] [EPOCHS=30] sh benchmarks/trust_paper.sh [OUT]   (MODELS: which of the two)
set -e
OUT=${1:-/tmp/trust-paper}
EPOCHS=${EPOCHS:-30}
MODELS=${MODELS:-"cnn series"}
S=.venv/bin/s2mos
PY=.venv/bin/python
BEAM="--direct_num_workers 2 --direct_running_mode multi_processing"
mkdir -p "$OUT/world" "$OUT/site" "$OUT/.done"
step() {   # step NAME COMMAND…: run COMMAND unless NAME finished in an earlier run
  name=$1; shift
  if [ -e "$OUT/.done/$name" ]; then echo "trust_paper: $name done earlier, skipped"; return 0; fi
  echo "trust_paper: $name ($(date -u +%H:%M:%S))"
  "$@"
  touch "$OUT/.done/$name"
}
fresh() {  # fresh NAME DIR COMMAND…: step NAME, removing DIR first unless NAME finished (what a killed run left)
  name=$1; dir=$2; shift 2
  [ -e "$OUT/.done/$name" ] || rm -rf "$dir"
  step "$name" "$@"
}
keep() {   # keep MODEL: copy the small outputs the docs quote to OUT/summary/MODEL (to commit under results/)
  m=$1; d="$OUT/summary/$m"; mkdir -p "$d"
  cp "$OUT/$m/model/evaluation/report.json" "$d/test_report.json"
  cp "$OUT/$m/recal_curve.json" "$OUT/$m/model-site/recalibration.json" "$d/"
  for map in map-paper map-site-model map-site-model-site; do
    cp "$OUT/$m/$map/map_report.json" "$d/$map.report.json"
    cp "$OUT/$m/$map/quicklook.png" "$d/$map.quicklook.png"
  done
  cp "$OUT/$m/aoacv/aoa_cv.json" "$OUT/$m"/aoacv/aoa_space_*.json "$d/"
}
$PY -c "from s2mos_transforms.sources.synthetic import SyntheticSource as S; S('paper').sample_points().to_csv('$OUT/world/samples.csv', index=False)"
$PY -c "from s2mos_transforms.sources.synthetic import SyntheticSource as S; S('independent-site').sample_points().to_csv('$OUT/site/samples.csv', index=False)"
head -8 "$OUT/site/samples.csv" > "$OUT/site7.csv"          # 7 local samples (header + 7 rows)
step dataset $S build-dataset --samples "$OUT/world/samples.csv" --preset paper --out "$OUT/dataset" $BEAM
step site-dataset $S build-dataset --samples "$OUT/site/samples.csv" --preset independent-site --out "$OUT/site-dataset"

# model: the paper's CNN (S2+S1 + coords); series: the whole-series model
for m in $MODELS; do
  M="$OUT/$m"
  step $m-train $S train --data "$OUT/dataset" --model-dir "$M/model" --models $m --serve $m --epochs "$EPOCHS" --bags 5 --parallel-bags \
      --checkpoint-dir "$M/checkpoints"
  step $m-evaluate $S evaluate --data "$OUT/dataset" --model-dir "$M/model"
  step $m-recal-curve $PY -m trainer.trust_experiments recal-curve --model-dir "$M/model" --samples "$OUT/site/samples.csv" \
      --preset independent-site --out "$M"
  fresh $m-recalibrate "$M/model-site" $S recalibrate --model-dir "$M/model" --samples "$OUT/site7.csv" --out "$M/model-site" \
      --preset independent-site
  for d in model model-site; do
    fresh $m-map-site-$d "$M/map-site-$d" $S predict-map --model-dir "$M/$d" --preset independent-site --resolution 40 \
        --tile-size 128 --out "$M/map-site-$d" $BEAM
  done
  fresh $m-map-paper "$M/map-paper" $S predict-map --model-dir "$M/model" --preset paper --resolution 40 --tile-size 128 \
      --out "$M/map-paper" $BEAM
  step $m-aoa-cv $PY -m trainer.trust_experiments aoa-cv --data "$OUT/dataset" --out "$M/aoacv" --epochs 15 --bags 2 --model $m
  for space in medians composites latent; do
    step $m-aoa-space-$space $PY -m trainer.trust_experiments aoa-space --data "$OUT/dataset" --cv-dir "$M/aoacv" --space $space \
        --site-data "$OUT/site-dataset" --model-dir "$M/model"
  done
  keep $m
done
if [ "$MODELS" = "cnn series" ]; then
  step recal-plot $PY -m trainer.trust_experiments recal-plot "CNN (S2+S1)=$OUT/cnn/recal_curve.json" \
      "whole-series=$OUT/series/recal_curve.json" --png "$OUT/recal_curve_site.png"
fi
