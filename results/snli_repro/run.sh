#!/usr/bin/env bash
# SNLI reproduction on the embedded SmolLM2-135M-Instruct (CPU): raw model vs three trained
# variants, all evaluated on the same SNLI test items with hf-judge (full readout).
# Usage (from the repo root): DISTJUDGE_DATA_DIR=../shared/data bash results/snli_repro/run.sh
set -euo pipefail
OUT=results/snli_repro
TRAIN_ITEMS=${TRAIN_ITEMS:-200}
EVAL_LIMIT=${EVAL_LIMIT:-300}
COMMON=(--task distjudge_snli --max_train_items "$TRAIN_ITEMS" --num_train_epochs 1
        --per_device_train_batch_size 4 --learning_rate 5e-4 --logging_steps 10
        --save_strategy no --seed 0)
MODEL_ARGS=$(python -c "from distjudge_eval.embedded import embedded_model_args as a; print(a())")

declare -A METHODS=(
  [single_point]="--alpha 0 --epsilon 0"
  [no_adversary]="--alpha 0.8 --epsilon 0"
  [full]="--alpha 0.8 --epsilon 0.25"
)
for name in single_point no_adversary full; do
  if [ ! -f "$OUT/adapters/$name/adapter_model.safetensors" ]; then
    # shellcheck disable=SC2086
    /usr/bin/time -f "train $name: %e s" distjudge train "${COMMON[@]}" ${METHODS[$name]} \
      --output_dir "$OUT/adapters/$name" 2>&1 | tee "$OUT/logs/train_$name.log"
  fi
done

distjudge eval --model hf-judge --model_args "$MODEL_ARGS" --tasks distjudge_snli \
  --limit "$EVAL_LIMIT" --output_path "$OUT/eval/raw" 2>&1 | tail -20 > "$OUT/logs/eval_raw.log"
for name in single_point no_adversary full; do
  distjudge eval --model hf-judge --model_args "$MODEL_ARGS,peft=$OUT/adapters/$name" \
    --tasks distjudge_snli --limit "$EVAL_LIMIT" --output_path "$OUT/eval/$name" \
    2>&1 | tail -20 > "$OUT/logs/eval_$name.log"
done
distjudge compare "$OUT/eval/raw" "$OUT/eval/single_point" "$OUT/eval/no_adversary" \
  "$OUT/eval/full" --names raw single_point no_adversary full --out "$OUT/compare"
