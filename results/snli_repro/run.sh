#!/usr/bin/env bash
# SNLI reproduction on the embedded SmolLM2-135M-Instruct (CPU): raw model vs three trained
# variants, all evaluated on the same SNLI test items with hf-judge (full readout).
# The steps are results/repro.sh's (same train and eval commands); this file keeps SNLI's settings.
# Usage (from the repo root): DISTJUDGE_DATA_DIR=../shared/data bash results/snli_repro/run.sh
set -euo pipefail
OUT=results/snli_repro TRAIN_TASK=distjudge_snli EVAL_TASKS=distjudge_snli \
  TRAIN_ITEMS=${TRAIN_ITEMS:-200} EVAL_LIMIT=${EVAL_LIMIT:-300} exec bash results/repro.sh
