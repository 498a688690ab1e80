#!/usr/bin/env bash
# SNLI verbalized judges on the embedded SmolLM2-135M-Instruct (CPU), #13 §5: the judge *writes*
# "entailment: x, neutral: y, contradiction: z"; raw vs SFT on dense human p vs the one-vote
# pipeline (SFT on one drawn vote per item, then GRPO on the same votes with a Brier reward),
# scored on the first EVAL_LIMIT test items with the prior (reads nothing) on the same items,
# then `distjudge compare` and the written-probability histograms (analyse.py).
# Usage (from the repo root): DISTJUDGE_DATA_DIR=../shared/data bash results/snli_verbal/run.sh
# Finished adapters and evaluations are kept, so a rerun resumes where it stopped.
set -euo pipefail
OUT=results/snli_verbal
TASK=distjudge_snli_verbalized
EVAL_LIMIT=${EVAL_LIMIT:-300}
SFT_ITEMS=${SFT_ITEMS:-240}    # SFT runs TRL's plain forward + backward: ~23 s per batch of 8 here
GRPO_ITEMS=${GRPO_ITEMS:-32}
GRPO_STEPS=${GRPO_STEPS:-16}   # 2 prompts x 4 completions per step: one pass over 32 items
mkdir -p "$OUT/logs"
MODEL_ARGS=$(python -c "from distjudge_eval.embedded import embedded_model_args as a; print(a())")

evaluate() {  # name, model args
  local name=$1 args=$2
  if ! ls "$OUT/eval/$name"/*/results_*.json >/dev/null 2>&1; then
    # batches of 8 prompts generate together (left-padded); the raw run used lm-eval's default 1
    /usr/bin/time -f "eval $name: %e s" distjudge eval --model hf-judge --model_args "$args" \
      --tasks "$TASK" --limit "$EVAL_LIMIT" --batch_size 8 --output_path "$OUT/eval/$name" 2>&1 \
      | tail -20 > "$OUT/logs/eval_$name.log"
  fi
}
sft() {  # name, extra flags
  local name=$1; shift
  if [ ! -f "$OUT/adapters/$name/adapter_model.safetensors" ]; then
    /usr/bin/time -f "$name: %e s" distjudge sft --task "$TASK" --max_train_items "$SFT_ITEMS" \
      --per_device_train_batch_size 8 --num_train_epochs 1 --learning_rate 2e-4 \
      --logging_steps 5 --seed 0 --output_dir "$OUT/adapters/$name" "$@" \
      > "$OUT/logs/train_$name.log" 2>&1
  fi
}
evaluate raw "$MODEL_ARGS"
sft sft_dense
evaluate sft_dense "$MODEL_ARGS,peft=$OUT/adapters/sft_dense"
sft sft_vote --sft_targets vote --label_seed 0 --merge_weights True
evaluate sft_vote "$MODEL_ARGS,peft=$OUT/adapters/sft_vote"
if [ ! -f "$OUT/adapters/grpo/adapter_model.safetensors" ]; then
  # from the one-vote SFT model (it learnt the reply format), on the same votes (label seed 0)
  /usr/bin/time -f "grpo: %e s" distjudge grpo --task "$TASK" \
    --model "$OUT/adapters/sft_vote/merged" --max_train_items "$GRPO_ITEMS" \
    --per_device_train_batch_size 8 --num_generations 4 --max_steps "$GRPO_STEPS" \
    --learning_rate 1e-4 --logging_steps 4 --reward brier --label_seed 0 --seed 0 \
    --output_dir "$OUT/adapters/grpo" > "$OUT/logs/train_grpo.log" 2>&1
fi
evaluate grpo "pretrained=$OUT/adapters/sft_vote/merged,peft=$OUT/adapters/grpo"
distjudge baseline --tasks "$TASK" --limit "$EVAL_LIMIT" --out "$OUT/eval/prior" \
  > "$OUT/logs/prior.log"
find "$OUT/eval" -name "samples_*.jsonl" -exec gzip -9f {} \;
distjudge compare "$OUT/eval/prior" "$OUT/eval/raw" "$OUT/eval/sft_dense" "$OUT/eval/sft_vote" \
  "$OUT/eval/grpo" --names prior raw sft_dense sft_vote grpo --out "$OUT/compare"
python results/snli_verbal/analyse.py "$OUT"
