#!/usr/bin/env bash
# One benchmark's reproduction on the embedded SmolLM2-135M-Instruct (CPU): the raw model vs
# three LoRA fine-tunes (single-point, distribution w/o adversary, full method), all evaluated
# on the same test-split items with hf-judge (full readout), then `distjudge compare`.
#
# Usage (from the repo root):
#   DISTJUDGE_DATA_DIR=../shared/data OUT=results/<bench>_repro TRAIN_TASK=<task or group> \
#     EVAL_TASKS=<tasks> bash results/repro.sh
# Knobs (env): TRAIN_ITEMS (per task), EVAL_LIMIT (per task), LR, STEPS_EPOCHS, BATCH.
# Finished adapters and evaluations are kept, so a rerun resumes where it stopped.
set -euo pipefail
: "${OUT:?}" "${TRAIN_TASK:?}" "${EVAL_TASKS:?}"
TRAIN_ITEMS=${TRAIN_ITEMS:-200}
EVAL_LIMIT=${EVAL_LIMIT:-300}
LR=${LR:-5e-4}
EPOCHS=${EPOCHS:-1}
BATCH=${BATCH:-4}
mkdir -p "$OUT/logs"
COMMON=(--task "$TRAIN_TASK" --max_train_items "$TRAIN_ITEMS" --num_train_epochs "$EPOCHS"
        --per_device_train_batch_size "$BATCH" --learning_rate "$LR" --logging_steps 10
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

for name in raw single_point no_adversary full; do
  if ! ls "$OUT/eval/$name"/*/results_*.json >/dev/null 2>&1; then
    args="$MODEL_ARGS"
    [ "$name" = raw ] || args="$MODEL_ARGS,peft=$OUT/adapters/$name"
    /usr/bin/time -f "eval $name: %e s" distjudge eval --model hf-judge --model_args "$args" \
      --tasks "$EVAL_TASKS" --limit "$EVAL_LIMIT" --output_path "$OUT/eval/$name" \
      2>&1 | tail -30 > "$OUT/logs/eval_$name.log"
  fi
done
distjudge compare "$OUT/eval/raw" "$OUT/eval/single_point" "$OUT/eval/no_adversary" \
  "$OUT/eval/full" --names raw single_point no_adversary full --out "$OUT/compare"
