#!/usr/bin/env bash
# MT-Bench pairwise judges on the embedded SmolLM2-135M-Instruct (CPU): verbalized <prob>
# readout before and after SFT (dense human probabilities) and GRPO (one sparse vote per prompt,
# Brier reward), each scored in both slot orders, then `distjudge compare` (swap metrics).
# Usage (from the repo root): DISTJUDGE_DATA_DIR=../shared/data bash results/mtbench_pairwise/run.sh
# Finished adapters and evaluations are kept, so a rerun resumes where it stopped.
set -euo pipefail
OUT=results/mtbench_pairwise
EVAL_LIMIT=${EVAL_LIMIT:-40}
SFT_ITEMS=${SFT_ITEMS:-24}
GRPO_ITEMS=${GRPO_ITEMS:-6}
GRPO_STEPS=${GRPO_STEPS:-2}
MAX_PROMPT=${MAX_PROMPT:-450}
TASKS=distjudge_mtbench_verbalized_both_orders
mkdir -p "$OUT/logs"
MODEL_ARGS=$(python -c "from distjudge_eval.embedded import embedded_model_args as a; print(a())")

if [ ! -f "$OUT/adapters/sft/adapter_model.safetensors" ]; then
  /usr/bin/time -f "sft: %e s" distjudge sft --max_train_items "$SFT_ITEMS" \
    --max_prompt_tokens "$MAX_PROMPT" --per_device_train_batch_size 4 --num_train_epochs 1 \
    --learning_rate 2e-4 --logging_steps 5 --seed 0 --output_dir "$OUT/adapters/sft" \
    2>&1 | tee "$OUT/logs/train_sft.log"
fi
if [ ! -f "$OUT/adapters/grpo/adapter_model.safetensors" ]; then
  /usr/bin/time -f "grpo: %e s" distjudge grpo --max_train_items "$GRPO_ITEMS" \
    --max_prompt_tokens "$MAX_PROMPT" --per_device_train_batch_size 8 --num_generations 4 \
    --max_steps "$GRPO_STEPS" --learning_rate 1e-4 --logging_steps 1 --reward brier --seed 0 \
    --output_dir "$OUT/adapters/grpo" 2>&1 | tee "$OUT/logs/train_grpo.log"
fi
for name in raw sft grpo; do
  if ! ls "$OUT/eval/$name"/*/results_*.json >/dev/null 2>&1; then
    args="$MODEL_ARGS"
    [ "$name" = raw ] || args="$MODEL_ARGS,peft=$OUT/adapters/$name"
    /usr/bin/time -f "eval $name: %e s" distjudge eval --model hf-judge --model_args "$args" \
      --tasks "$TASKS" --limit "$EVAL_LIMIT" --output_path "$OUT/eval/$name" \
      2>&1 | tail -40 > "$OUT/logs/eval_$name.log"
  fi
done
# per-sample files hold whole prompts: keep them gzipped (distjudge compare reads .jsonl.gz)
find "$OUT/eval" -name "samples_*.jsonl" -exec gzip -9f {} \;
distjudge compare "$OUT/eval/raw" "$OUT/eval/sft" "$OUT/eval/grpo" --names raw sft grpo \
  --out "$OUT/compare"
