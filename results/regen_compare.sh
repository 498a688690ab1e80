#!/usr/bin/env bash
# Regenerate every `distjudge compare` folder of the three reproductions from the stored samples
# (no model runs), with the commands their READMEs give. Session 8 ran it so that no committed
# comparison still shows the retired one-direction δ metric, which fell as δ grew.
# Usage (repo root): DISTJUDGE_DATA_DIR=../shared/data bash results/regen_compare.sh
set -euo pipefail
for bench in snli summeval mtbench; do
  E=results/${bench}_repro/eval C=results/${bench}_repro/compare
  distjudge compare $E/raw $E/single_point $E/no_adversary $E/full \
    --names raw single_point no_adversary full --out $C
  distjudge compare $E/prior $E/raw $E/single_point $E/no_adversary $E/full \
    --names prior raw single_point no_adversary full --out $C/vs_prior
  if [ "$bench" != snli ]; then
    distjudge compare $E/single_point $E/no_adversary $E/full \
      --names single_point no_adversary full --out $C/vs_single_point
    distjudge compare $E/no_adversary $E/full --names no_adversary full --out $C/vs_no_adversary
  fi
done
E=results/snli_repro/eval
distjudge compare $E/prior $E/raw_temp --names prior raw_T100 --no_plots \
  --out results/snli_repro/compare/temperature
