#!/usr/bin/env bash
# The truth test with seeds (#13 §3-4): judges trained on the 5 original MNLI votes of ChaosNLI
# train items, scored on all ChaosNLI-MNLI test items against the 5-vote and the 100-vote p.
# Methods x seeds: single-point (a=0), w/o adversary (a=0.8, e=0), full (e=0.25) (METHODS_RUN adds
# eps0.1 = a=0.8, e=0.1 when there is machine time); 2 epochs
# with train/test KL after each epoch (--eval_items); raw model; every judge also scored on train
# items so that a temperature can be fitted (results/mnli_truth/analyse.py does the rest).
# Usage (repo root): DISTJUDGE_DATA_DIR=../shared/data bash results/mnli_truth/run.sh
# Finished adapters and evaluations are kept, so a rerun resumes where it stopped.
set -euo pipefail
OUT=${OUT:-results/mnli_truth}
TRAIN_ITEMS=${TRAIN_ITEMS:-200}   # train-split items seen in training (of 1,271)
EVAL_ITEMS=${EVAL_ITEMS:-50}      # train and test items scored after each epoch
FIT_ITEMS=${FIT_ITEMS:-100}       # train items each judge is scored on to fit a temperature
EPOCHS=${EPOCHS:-2}
SEEDS=${SEEDS:-"0 1 2"}
METHODS_RUN=${METHODS_RUN:-"single_point no_adversary full"}
TRAIN_TASK=distjudge_chaosnli_mnli_5vote
TEST_TASK=distjudge_chaosnli_mnli     # same items, 100-vote p; analyse.py joins the 5-vote p
mkdir -p "$OUT/logs"
MODEL_ARGS=$(python -c "from distjudge_eval.embedded import embedded_model_args as a; print(a())")
declare -A METHODS=(
  [single_point]="--alpha 0 --epsilon 0"
  [no_adversary]="--alpha 0.8 --epsilon 0"
  [eps0.1]="--alpha 0.8 --epsilon 0.1"
  [full]="--alpha 0.8 --epsilon 0.25"
)

evaluate() {  # name, model args: test items (all) and FIT_ITEMS train items
  local name=$1 args=$2
  if ! ls "$OUT/eval/$name"/*/results_*.json >/dev/null 2>&1; then
    /usr/bin/time -f "eval $name: %e s" distjudge eval --model hf-judge --model_args "$args" \
      --tasks "$TEST_TASK" --output_path "$OUT/eval/$name" 2>&1 | tail -20 > "$OUT/logs/eval_$name.log"
  fi
  if ! ls "$OUT/eval_train/$name"/*/results_*.json >/dev/null 2>&1; then
    /usr/bin/time -f "eval $name train: %e s" distjudge eval --model hf-judge --model_args "$args" \
      --tasks "$TRAIN_TASK" --limit "$FIT_ITEMS" --metadata '{"eval_split": "train"}' \
      --output_path "$OUT/eval_train/$name" 2>&1 | tail -20 > "$OUT/logs/eval_train_$name.log"
  fi
}

evaluate raw "$MODEL_ARGS"
for seed in $SEEDS; do
  for method in $METHODS_RUN; do
    name=${method}_s$seed
    if [ ! -f "$OUT/adapters/$name/adapter_model.safetensors" ]; then
      # shellcheck disable=SC2086
      /usr/bin/time -f "train $name: %e s" distjudge train --task "$TRAIN_TASK" \
        --max_train_items "$TRAIN_ITEMS" --num_train_epochs "$EPOCHS" \
        --per_device_train_batch_size 4 --learning_rate 5e-4 --logging_steps 10 \
        --eval_items "$EVAL_ITEMS" --eval_on_start True --save_strategy no --seed "$seed" ${METHODS[$method]} \
        --output_dir "$OUT/adapters/$name" > "$OUT/logs/train_$name.log" 2>&1
    fi
    evaluate "$name" "$MODEL_ARGS,peft=$OUT/adapters/$name"
  done
done
python results/mnli_truth/analyse.py "$OUT"
