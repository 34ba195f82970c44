#!/bin/sh
# The trust measurements of docs/trainer.md ("How far to trust a map") on the paper preset and
# the independent site, with the reduced settings stated there (2 CPU cores: the paper world's
# 8 426 samples, the CNN alone, 5 bags × EPOCHS (30) epochs; AOA cross-validation 5 spatial
# folds × 2 bags × 15 epochs; maps at 40 m). The dataset follows the paper: --require-s1-pair (only
# points with an S1-paired bare date). Usage: sh benchmarks/trust_paper.sh [OUT]
set -e
OUT=${1:-/tmp/trust-paper}
EPOCHS=${EPOCHS:-30}
S=.venv/bin/s2mos
PY=.venv/bin/python
BEAM="--direct_num_workers 2 --direct_running_mode multi_processing"
mkdir -p "$OUT"
mkdir -p "$OUT/world"
$PY -c "from s2mos_transforms.sources.synthetic import SyntheticSource as S; S('paper').sample_points().to_csv('$OUT/world/samples.csv', index=False)"
$S build-dataset --samples "$OUT/world/samples.csv" --preset paper --out "$OUT/dataset" --require-s1-pair $BEAM
$S train --data "$OUT/dataset" --model-dir "$OUT/model" --models cnn --epochs "$EPOCHS" --bags 5 --parallel-bags
$S evaluate --data "$OUT/dataset" --model-dir "$OUT/model"
mkdir -p "$OUT/site"
$PY -c "from s2mos_transforms.sources.synthetic import SyntheticSource as S; S('independent-site').sample_points().to_csv('$OUT/site/samples.csv', index=False)"
$PY -m trainer.trust_experiments recal-curve --model-dir "$OUT/model" --samples "$OUT/site/samples.csv" \
    --preset independent-site --out "$OUT"
head -8 "$OUT/site/samples.csv" > "$OUT/site7.csv"          # 7 local samples (header + 7 rows)
$S recalibrate --model-dir "$OUT/model" --samples "$OUT/site7.csv" --out "$OUT/model-site" --preset independent-site
for m in model model-site; do
  $S predict-map --model-dir "$OUT/$m" --preset independent-site --resolution 40 --tile-size 128 \
      --out "$OUT/map-site-$m" $BEAM
done
$S predict-map --model-dir "$OUT/model" --preset paper --resolution 40 --tile-size 128 --out "$OUT/map-paper" $BEAM
$PY -m trainer.trust_experiments aoa-cv --data "$OUT/dataset" --out "$OUT/aoacv" --epochs 15 --bags 2
