#!/usr/bin/env bash
# SNLI on this machine's 2 CPU cores (session 8): the GPU run of run.sh was stopped before its SNLI
# judges finished, but their first-epoch logs showed the loss on not-yet-seen items falling far
# below the prior's. This trains one judge (w/o adversary, α = 0.8, ε = 0; the GPU run's settings:
# batch 16, lr 5e-4, seed 0) on 2,400 train items for 1 epoch (150 steps), then scores it on every
# SNLI test item, every ChaosNLI-SNLI test item and 200 train items (temperature fit).
# Session 9 added METHOD (single_point: α = 0; full: α = 0.8, ε = 0.25) and SEED to compare the
# methods at this size; two jobs ran side by side with THREADS=1 each. Session 10 added eps0.1
# (α = 0.8, ε = 0.1), the middle of the paper's ε grid. Session 11 added EPOCHS (the paper's
# regime is 2 epochs; the train and test KL on 100 items each are logged after every epoch, and the
# run's name gets an _e2 suffix).
# Usage (repo root): DISTJUDGE_DATA_DIR=../shared/data [METHOD=full] [SEED=1] [EPOCHS=2] \
#   [THREADS=1] bash results/more_data/snli_cpu.sh
set -euo pipefail
OUT=${OUT:-results/more_data/snli}
ITEMS=${ITEMS:-2400}
METHOD=${METHOD:-no_adversary}
case $METHOD in
  single_point) FLAGS="--alpha 0 --epsilon 0" ;;
  no_adversary) FLAGS="--alpha 0.8 --epsilon 0" ;;
  eps0.1) FLAGS="--alpha 0.8 --epsilon 0.1" ;;
  full) FLAGS="--alpha 0.8 --epsilon 0.25" ;;
  *) echo "METHOD must be single_point, no_adversary, eps0.1 or full, not $METHOD" >&2; exit 2 ;;
esac
if [ -n "${THREADS:-}" ]; then export OMP_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS; fi
SEED=${SEED:-0}
EPOCHS=${EPOCHS:-1}
NAME=${METHOD}_n${ITEMS}_s${SEED}
if [ "$EPOCHS" != 1 ]; then NAME=${NAME}_e${EPOCHS}; fi
mkdir -p "$OUT/logs" "$OUT/eval" "$OUT/eval_chaos" "$OUT/eval_train"
BASE=$(python -c "from distjudge_eval.embedded import embedded_model_args as a; print(a())")
ADAPTER=$OUT/adapters/$NAME
if [ ! -f "$ADAPTER/adapter_model.safetensors" ]; then
  start=$SECONDS
  distjudge train --task distjudge_snli --max_train_items "$ITEMS" --num_train_epochs "$EPOCHS" \
    --per_device_train_batch_size 16 --learning_rate 5e-4 --logging_steps 5 --eval_items 100 \
    --save_strategy no --seed "$SEED" $FLAGS --output_dir "$ADAPTER" \
    > "$OUT/logs/train_$NAME.log" 2>&1
  echo "train $NAME: $((SECONDS - start)) s" | tee -a "$OUT/logs/train_$NAME.log"
fi
run_eval() {  # folder, task, [extra args]
  local folder=$1 task=$2
  shift 2
  ls "$folder"/*/results_*.json >/dev/null 2>&1 && return 0
  distjudge eval --model hf-judge --model_args "$BASE,peft=$ADAPTER" --tasks "$task" \
    --batch_size 8 --output_path "$folder" "$@" > "$folder.log" 2>&1
}
run_eval "$OUT/eval/$NAME" distjudge_snli
run_eval "$OUT/eval_chaos/$NAME" distjudge_chaosnli_snli
run_eval "$OUT/eval_train/$NAME" distjudge_snli --limit 200 --metadata '{"eval_split": "train"}'
cp "$ADAPTER/eval_history.json" "$OUT/eval_history_$NAME.json"
