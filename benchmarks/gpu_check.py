"""GPU-ready numbers in one run: stock lm-eval ``hf`` vs ``hf-judge`` on a 1-2B model shape, and
the time of a training step, written to ``results/bench/gpu_check_<machine>.{json,md}``.

No weights can be downloaded on the benchmark machine, so the model is built here with random
weights in a Llama shape (``--shape 1.5b``: 24 layers, hidden 2048, MLP 5632, 16 heads, 1.7B
parameters with SmolLM2's 49,152-token vocabulary, whose tokenizer it borrows from the embedded
judge). Random weights give meaningless q but the real cost; the q of ``hf`` and ``hf-judge`` are
still compared item by item. ``--shape tiny`` (2 layers, hidden 64) checks the script on CPU::

    python benchmarks/gpu_check.py --shape tiny --limit 4 --train_steps 2          # CPU, ~1 min
    python benchmarks/gpu_check.py --shape 1.5b --limit 200 --batch_size 16        # one GPU

Readout: each backend's model is built once (load time recorded apart), then the same items,
weights and batch size for both, rounds interleaved, the first discarded (CUDA warm-up), the
median of ``--repeats`` reported. The timed call is the backend's ``loglikelihood`` over the
task's label requests, built once beforehand (inside the timed call, lm-eval's task building and
run bookkeeping hid the readout on an H200; the build time is reported as ``task_build_s``).
Training: ``distjudge train`` (LoRA, bf16 on a GPU) for ``--train_steps`` steps on the same
model; the step time is the Trainer's ``train_runtime`` over the steps (first step included).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SHAPES: dict[str, dict[str, int]] = {
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    ),
    "1.5b": dict(
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=24,
        num_attention_heads=16,
        num_key_value_heads=16,
    ),
}


def machine_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"CPU {platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def build_model(shape: str, folder: Path, dtype: str, tokenizer_dir: Path | None = None) -> int:
    """A random-weight Llama of ``shape`` with the embedded judge's tokenizer (or the one saved in
    ``tokenizer_dir``: a few MB, where the 98 MB GGUF file cannot travel), saved to ``folder``
    (so both lm-eval backends and the trainer load it by path)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from distjudge_eval.embedded import embedded_weights

    if tokenizer_dir is not None:
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    else:
        tok_dir, gguf = embedded_weights()
        tokenizer = AutoTokenizer.from_pretrained(tok_dir, **({"gguf_file": gguf} if gguf else {}))
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **SHAPES[shape],
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def load_lm(backend: str, model_args: str, args: argparse.Namespace) -> Any:
    """The lm-eval model, built once per backend so the timed runs do not reload weights."""
    from lm_eval.api.registry import get_model

    import distjudge_eval.models  # noqa: F401  (registers hf-judge)

    extra = {"batch_size": args.batch_size, "device": args.device}
    return get_model(backend).create_from_arg_string(model_args, extra)


def build_requests(args: argparse.Namespace) -> tuple[list[Any], float]:
    """The task's label requests for the first ``--limit`` test items, built once (outside the
    timed calls: inside them, lm-eval's task building and run bookkeeping hid the readout on a
    GPU, session 8), and the build time."""
    from lm_eval.tasks import TaskManager

    from distjudge_eval.paths import tasks_dir

    start = time.perf_counter()
    meta = {"data_dir": str(args.data_dir)} if args.data_dir else {}
    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata=meta)
    task = dict(manager.load([args.task])["tasks"])[args.task]
    task.build_all_requests(limit=args.limit, rank=0, world_size=1)
    return list(task.instances), time.perf_counter() - start


def readout_once(lm: Any, requests: list[Any]) -> dict[str, Any]:
    """One timed readout: the backend's ``loglikelihood`` over every label request, then q per
    item from the returned log-likelihoods (softmax over the item's labels)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    resps = lm.loglikelihood(requests, disable_tqdm=True)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    by_item: dict[Any, dict[int, float]] = {}
    for req, (ll, _) in zip(requests, resps, strict=True):
        by_item.setdefault(req.doc_id, {})[req.idx] = float(ll)
    q = {}
    for doc_id, scores in by_item.items():
        ll = [scores[j] for j in sorted(scores)]
        top = max(ll)
        z = [math.exp(x - top) for x in ll]
        q[doc_id] = [x / sum(z) for x in z]
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    return {"seconds": seconds, "q": q, "peak_gib": peak}


def bench_readout(folder: Path, dtype: str, args: argparse.Namespace) -> dict[str, Any]:
    model_args = f"pretrained={folder},dtype={dtype}"
    runs: dict[str, list[dict[str, Any]]] = {"hf": [], "hf-judge": []}
    requests, build_s = build_requests(args)
    lms, load_s = {}, {}
    for backend in runs:
        start = time.perf_counter()
        lms[backend] = load_lm(backend, model_args, args)
        load_s[backend] = time.perf_counter() - start
    for _ in range(args.repeats + 1):  # interleaved; the first round is warm-up
        for backend in runs:
            runs[backend].append(readout_once(lms[backend], requests))
    report: dict[str, Any] = {"task_build_s": build_s}
    for backend, rounds in runs.items():
        timed = [r["seconds"] for r in rounds[1:]]
        report[backend] = {
            "median_s": statistics.median(timed),
            "items_per_s": args.limit / statistics.median(timed),
            "seconds": timed,
            "peak_gib": max((r["peak_gib"] or 0.0) for r in rounds) or None,
            "load_s": load_s[backend],
        }
    q_hf, q_judge = runs["hf"][-1]["q"], runs["hf-judge"][-1]["q"]
    report["max_abs_dq"] = max(
        abs(a - b) for k in q_hf for a, b in zip(q_hf[k], q_judge[k], strict=True)
    )
    report["speedup"] = report["hf"]["median_s"] / report["hf-judge"]["median_s"]
    return report


def bench_train(folder: Path, args: argparse.Namespace, gpu: bool) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="gpu_check_train_"))
    cmd = [sys.executable, "-m", "distjudge_eval.cli", "train", "--model", str(folder)]
    cmd += ["--task", args.task, "--max_train_items", str(args.train_batch * args.train_steps)]
    cmd += ["--per_device_train_batch_size", str(args.train_batch)]
    cmd += [
        "--max_steps",
        str(args.train_steps),
        "--logging_steps",
        "1",
        "--save_strategy",
        "steps",
    ]
    cmd += ["--save_steps", str(args.train_steps), "--output_dir", str(out), "--report_to", "none"]
    cmd += ["--bf16", "True", "--gradient_checkpointing", "True"] if gpu else ["--use_cpu", "True"]
    if args.data_dir:
        cmd += ["--data_dir", str(args.data_dir)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"training failed:\n{proc.stderr[-4000:]}")
    state_file = out / f"checkpoint-{args.train_steps}" / "trainer_state.json"
    history = json.loads(state_file.read_text())["log_history"]
    # the run's summary row is logged after the last checkpoint is written: read it from stdout
    found = re.search(r"'train_runtime': '?([0-9.eE+-]+)", proc.stdout + proc.stderr)
    if found is None:
        raise SystemExit(f"no train_runtime in the trainer's output:\n{proc.stdout[-2000:]}")
    summary = {"train_runtime": float(found.group(1))}
    return {
        "command": " ".join(cmd),
        "steps": args.train_steps,
        "items_per_step": args.train_batch,
        "train_runtime_s": summary["train_runtime"],
        "s_per_step": summary["train_runtime"] / args.train_steps,
        "losses": [row["loss"] for row in history if "loss" in row],
        "process_wall_s": wall,
        "flags": "LoRA r16 q,k,v,o; " + ("bf16, gradient checkpointing" if gpu else "float32 CPU"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="1.5b")
    parser.add_argument("--task", default="distjudge_snli")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--train_steps", type=int, default=5)
    parser.add_argument("--train_batch", type=int, default=8)
    parser.add_argument("--device", default=None)
    parser.add_argument("--data_dir", type=Path, default=os.environ.get("DISTJUDGE_DATA_DIR"))
    parser.add_argument("--out", type=Path, default=REPO / "results" / "bench")
    parser.add_argument("--skip_train", action="store_true")
    parser.add_argument(
        "--dtype",
        choices=["auto", "float32", "bfloat16"],
        default="auto",
        help="auto: bfloat16 on a GPU, float32 on CPU; float32 on a GPU separates rounding "
        "from a backend difference in max |dq|",
    )
    parser.add_argument(
        "--tokenizer", type=Path, default=None, help="a saved tokenizer folder to borrow instead"
    )
    args = parser.parse_args(argv)

    import torch

    gpu = torch.cuda.is_available()
    args.device = args.device or ("cuda" if gpu else "cpu")
    dtype = args.dtype if args.dtype != "auto" else ("bfloat16" if gpu else "float32")
    machine = machine_name()
    with tempfile.TemporaryDirectory(prefix="gpu_check_model_") as tmp:
        folder = Path(tmp)
        n_params = build_model(args.shape, folder, dtype, args.tokenizer)
        print(f"{machine}: random {args.shape} Llama, {n_params / 1e9:.2f}B parameters, {dtype}")
        readout = bench_readout(folder, dtype, args)
        print(
            f"readout on {args.limit} {args.task} items, batch {args.batch_size}: "
            f"hf {readout['hf']['median_s']:.2f}s, hf-judge {readout['hf-judge']['median_s']:.2f}s"
            f" ({readout['speedup']:.2f}x), max |dq| {readout['max_abs_dq']:.2e}"
        )
        train = None if args.skip_train else bench_train(folder, args, gpu)
        if train:
            print(f"training: {train['s_per_step']:.3f} s/step ({train['items_per_step']} items)")
    record = {
        "machine": machine,
        "torch": torch.__version__,
        "shape": args.shape,
        "parameters": n_params,
        "dtype": dtype,
        "task": args.task,
        "limit": args.limit,
        "batch_size": args.batch_size,
        "command": "python benchmarks/gpu_check.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "readout": readout,
        "train": train,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "gpu_check_" + "".join(c if c.isalnum() else "_" for c in machine).strip("_").lower()
    (args.out / f"{stem}.json").write_text(json.dumps(record, indent=2))
    lines = [
        f"# gpu_check on {machine}",
        "",
        f"`{record['command']}` ({args.shape}: {n_params / 1e9:.2f}B random-weight parameters, "
        f"{dtype}, torch {torch.__version__})",
        "",
        "| backend | median s | items/s | peak GiB |",
        "|---|---:|---:|---:|",
    ]
    for backend in ("hf", "hf-judge"):
        r = readout[backend]
        peak = f"{r['peak_gib']:.2f}" if r["peak_gib"] else "n/a"
        lines.append(f"| {backend} | {r['median_s']:.2f} | {r['items_per_s']:.1f} | {peak} |")
    lines += [
        "",
        f"hf-judge speed-up {readout['speedup']:.2f}x; max |Δq| {readout['max_abs_dq']:.2e}; "
        f"task build (once, not timed above) {readout['task_build_s']:.1f} s",
    ]
    if train:
        lines += [
            "",
            f"training ({train['flags']}): {train['s_per_step']:.3f} s/step, "
            f"{train['items_per_step']} items/step, losses {train['losses']}",
        ]
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out / stem}.json and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
