#!/usr/bin/env bash
# More data, the paper's regime (#13 §2/§4): the embedded SmolLM2-135M judge trained with LoRA on
# EVERY train item for 2 epochs, instead of 100-200 items / 50 steps as in snli_repro/ and
# mnli_truth/. Same objective, learning rate and evaluation as those folders; only the data grows.
#   mnli/: ChaosNLI-MNLI, all 1,271 train items (5-vote p), batch 4 (as mnli_truth/), seeds 0-2,
#          methods single-point / w/o adversary / ε=0.1 / full (ε=0.25); scored on all 328 test
#          items (100-vote task) and on 100 train items (temperature fit). Read with
#          `python results/mnli_truth/analyse.py results/more_data/mnli`.
#   snli/: SNLI, all train items (~7.9k), batch 16, seed 0, single-point / w/o adversary / full;
#          scored on every SNLI test item, on every ChaosNLI-SNLI test item (100 votes) and on
#          200 train items. Read with `python results/more_data/analyse_snli.py`.
# Jobs run JOBS at a time (one GPU holds many 135M judges); DEADLINE (seconds, 0 = none) stops
# starting new jobs and ends running ones so that finished work is kept.
# Usage (repo root): DISTJUDGE_DATA_DIR=../shared/data bash results/more_data/run.sh
# Run here on one H200 (session 8); on 2 CPU cores it would take days.
set -uo pipefail
OUT=${OUT:-results/more_data}
JOBS=${JOBS:-8}
DEADLINE=${DEADLINE:-0}
SEEDS=${SEEDS:-"0 1 2"}
BATCH_EVAL=${BATCH_EVAL:-32}
ITEMS=${ITEMS:-1000000}  # --max_train_items; above the split's size = every train item
EPOCHS=${EPOCHS:-2}
TEST_LIMIT=()  # every test item unless EVAL_LIMIT is set (a smoke run)
[ -n "${EVAL_LIMIT:-}" ] && TEST_LIMIT=(--limit "$EVAL_LIMIT")
EVAL_ITEMS=${EVAL_ITEMS:-}  # per-epoch train/test items (default: MNLI 50, SNLI 100)
FIT_ITEMS=${FIT_ITEMS:-}    # train items scored for the temperature (default: MNLI 100, SNLI 200)

declare -A METHODS=(
  [single_point]="--alpha 0 --epsilon 0"
  [no_adversary]="--alpha 0.8 --epsilon 0"
  [eps0.1]="--alpha 0.8 --epsilon 0.1"
  [full]="--alpha 0.8 --epsilon 0.25"
)

evaluate() {  # folder, model args, tasks, [extra distjudge eval args]
  local folder=$1 args=$2 tasks=$3
  shift 3
  ls "$folder"/*/results_*.json >/dev/null 2>&1 && return 0
  distjudge eval --model hf-judge --model_args "$args" --tasks "$tasks" \
    --batch_size "$BATCH_EVAL" --output_path "$folder" "$@" > "$folder.log" 2>&1
}

job() {  # bench method seed  (method "raw": no training)
  local bench=$1 method=$2 seed=$3 base args name
  base=$(python -c "from distjudge_eval.embedded import embedded_model_args as a; print(a())")
  name=$method
  [ "$method" = raw ] || name=${method}_s$seed
  local dir=$OUT/$bench
  mkdir -p "$dir/logs" "$dir/eval" "$dir/eval_train" "$dir/adapters"
  args=$base
  if [ "$method" != raw ]; then
    local adapter=$dir/adapters/$name
    args="$base,peft=$adapter"
    if [ ! -f "$adapter/adapter_model.safetensors" ]; then
      local train=(--task distjudge_chaosnli_mnli_5vote --per_device_train_batch_size 4
                   --eval_items "${EVAL_ITEMS:-50}")
      [ "$bench" = snli ] && train=(--task distjudge_snli --per_device_train_batch_size 16
                                    --eval_items "${EVAL_ITEMS:-100}")
      local t0=$SECONDS
      # shellcheck disable=SC2086
      distjudge train "${train[@]}" \
        --max_train_items "$ITEMS" --num_train_epochs "$EPOCHS" --learning_rate 5e-4 --logging_steps 20 \
        --eval_on_start True --save_strategy no --seed "$seed" ${METHODS[$method]} \
        --output_dir "$adapter" > "$dir/logs/train_$name.log" 2>&1 || return 1
      echo "train $bench $name: $((SECONDS - t0)) s"
    fi
  fi
  if [ "$bench" = mnli ]; then
    evaluate "$dir/eval/$name" "$args" distjudge_chaosnli_mnli "${TEST_LIMIT[@]}"
    evaluate "$dir/eval_train/$name" "$args" distjudge_chaosnli_mnli_5vote --limit "${FIT_ITEMS:-100}" \
      --metadata '{"eval_split": "train"}'
  else
    mkdir -p "$dir/eval_chaos"
    evaluate "$dir/eval/$name" "$args" distjudge_snli "${TEST_LIMIT[@]}"
    evaluate "$dir/eval_chaos/$name" "$args" distjudge_chaosnli_snli "${TEST_LIMIT[@]}"
    evaluate "$dir/eval_train/$name" "$args" distjudge_snli --limit "${FIT_ITEMS:-200}" \
      --metadata '{"eval_split": "train"}'
  fi
  echo "done $bench $name"
}

case "${1:-}" in
  job)  # one job, stopped at the deadline (timeout signals its whole process group)
    shift
    left=100000000
    [ -n "${STOP_AT:-}" ] && left=$((STOP_AT - $(date +%s)))
    [ "$left" -gt 5 ] || { echo "skipped (deadline) $*"; exit 0; }
    timeout "$left" bash "$0" run_job "$@" || echo "FAILED or stopped: $* (rc $?)"
    exit 0 ;;
  run_job) shift; job "$@"; exit ;;
esac

mkdir -p "$OUT"
[ "$DEADLINE" -gt 0 ] && export STOP_AT=$(($(date +%s) + DEADLINE))
# convert the embedded GGUF file once, before parallel jobs would each try
python -c "from distjudge_eval.embedded import embedded_weights; embedded_weights()"
{
  # longest first: the SNLI runs, then the raw judges, then MNLI seed by seed
  for method in no_adversary full single_point; do echo "snli $method 0"; done
  echo "snli raw 0"
  echo "mnli raw 0"
  for seed in $SEEDS; do
    for method in no_adversary eps0.1 full single_point; do echo "mnli $method $seed"; done
  done
} | xargs -P "$JOBS" -L1 bash "$0" job
for path in "$OUT"/*/adapters/*/eval_history.json; do
  [ -f "$path" ] || continue
  bench_dir=${path%/adapters/*}
  name=$(basename "$(dirname "$path")")
  mkdir -p "$bench_dir/eval_history"
  cp "$path" "$bench_dir/eval_history/$name.json"
done
