"""Side-by-side speed and memory measurements printed as ratios, run from a checkout:

    python benchmarks/bench.py readout | projection | adversary | budget | api [options]

They live beside the package, not in it: they need cvxpy and llama-cpp-python (the ``dev``
extra) and the test helper ``tests/helpers/llama_server.py``, none of which a user's install has.

``readout``: stock lm-eval ``hf`` against ``hf-judge`` (with and without the task-prefix cache)
on the same items, same model weights and same batch size, repeats interleaved so machine noise
hits every backend alike; medians reported. Peak memory is measured per backend in a fresh
process (RSS sampled while it scores), so one backend's allocations cannot hide another's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BACKENDS = ("hf", "hf-judge", "hf-judge+prefix")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Samples this process's resident memory in a thread; ``growth`` is peak minus start."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = _rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def growth(self) -> int:
        return self.peak - self.start


def _load_backends(model_args: str, batch_size: int, which: tuple[str, ...]) -> dict[str, Any]:
    from lm_eval.models.huggingface import HFLM
    from lm_eval.utils import simple_parse_args_string

    import distjudge_eval.models  # noqa: F401
    from distjudge_eval.models.hf_judge import HFJudgeLM

    kwargs = simple_parse_args_string(model_args)
    stock = HFLM(device="cpu" if not _cuda() else "cuda", batch_size=batch_size, **kwargs)
    shared = {"pretrained": stock.model, "tokenizer": stock.tokenizer, "batch_size": batch_size}
    out: dict[str, Any] = {}
    if "hf" in which:
        out["hf"] = stock
    if "hf-judge" in which:
        out["hf-judge"] = HFJudgeLM(**shared, prefix_cache=False)
    if "hf-judge+prefix" in which:
        out["hf-judge+prefix"] = HFJudgeLM(**shared, prefix_cache=True)
    return out


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _requests(task_name: str, limit: int, data_dir: str | None) -> tuple[list[Any], int]:
    """The task's label requests as lm-eval builds them; ``data_dir`` reaches the task as
    lm-eval metadata (None: the user default)."""
    from distjudge_eval.task_names import task_manager

    metadata = {"data_dir": data_dir} if data_dir else None
    manager = task_manager(include_defaults=False, metadata=metadata)
    task = dict(manager.load([task_name])["tasks"])[task_name]
    task.build_all_requests(limit=limit, rank=0, world_size=1)
    n_items = len({inst.doc_id for inst in task.instances})
    return list(task.instances), n_items


def bench_readout(
    task: str,
    limit: int,
    batch_size: int,
    repeats: int,
    model_args: str,
    memory: bool = True,
    data_dir: str | None = None,
) -> dict[str, Any]:
    requests, n_items = _requests(task, limit, data_dir)
    backends = _load_backends(model_args, batch_size, BACKENDS)
    reference = backends["hf"].loglikelihood(requests, disable_tqdm=True)  # also a warm-up
    max_diff = {}
    for name in BACKENDS[1:]:
        got = backends[name].loglikelihood(requests, disable_tqdm=True)
        max_diff[name] = max(abs(a[0] - b[0]) for a, b in zip(got, reference))
    seconds: dict[str, list[float]] = {name: [] for name in BACKENDS}
    for _ in range(repeats):
        for name in BACKENDS:
            start = time.perf_counter()
            backends[name].loglikelihood(requests, disable_tqdm=True)
            seconds[name].append(time.perf_counter() - start)
    median = {name: statistics.median(v) for name, v in seconds.items()}
    report: dict[str, Any] = {
        "task": task,
        "items": n_items,
        "requests": len(requests),
        "batch_size": batch_size,
        "repeats": repeats,
        "model_args": model_args,
        "seconds": seconds,
        "items_per_s": {name: n_items / median[name] for name in BACKENDS},
        "speedup_vs_hf": {name: median["hf"] / median[name] for name in BACKENDS},
        "max_abs_loglik_diff_vs_hf": max_diff,
    }
    if memory:
        report["peak_rss_growth_mib"] = {
            name: _probe_memory(name, task, limit, batch_size, model_args, data_dir)
            for name in BACKENDS
        }
    return report


def _probe_memory(
    backend: str, task: str, limit: int, batch_size: int, model_args: str, data_dir: str | None
) -> float:
    cmd = [sys.executable, str(Path(__file__).resolve()), "_memory", backend, task, str(limit)]
    cmd += [str(batch_size), model_args, data_dir or ""]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"memory probe for {backend} failed:\n{proc.stderr[-3000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def _memory_probe_main(
    backend: str, task: str, limit: str, batch_size: str, model_args: str, data_dir: str = ""
) -> None:
    requests, _ = _requests(task, int(limit), data_dir or None)
    lm = _load_backends(model_args, int(batch_size), (backend,))[backend]
    with PeakRSS() as rss:
        lm.loglikelihood(requests, disable_tqdm=True)
    print(rss.growth / 2**20)


def format_readout(report: dict[str, Any]) -> str:
    lines = [
        f"task {report['task']}: {report['items']} items ({report['requests']} label requests), "
        f"batch_size {report['batch_size']}, median of {report['repeats']} interleaved repeats",
        "",
        "| backend | items/s | speed-up vs hf | max abs Δ loglik vs hf | peak RSS growth (MiB) |",
        "|---|---:|---:|---:|---:|",
    ]
    mem = report.get("peak_rss_growth_mib", {})
    for name in BACKENDS:
        diff = report["max_abs_loglik_diff_vs_hf"].get(name, 0.0)
        mib = f"{mem[name]:.0f}" if name in mem else "-"
        lines.append(
            f"| {name} | {report['items_per_s'][name]:.2f} | "
            f"{report['speedup_vs_hf'][name]:.2f}x | {diff:.1e} | {mib} |"
        )
    return "\n".join(lines)


def bench_projection(
    batch: int = 256, k: int = 3, repeats: int = 20, solver_items: int = 30
) -> dict:
    """Batched exact projection onto simplex ∩ L2-ball vs cvxpy solving one item at a time.

    A speed ratio means something only if both give the same points: the largest coordinate
    difference on the items cvxpy solved is reported beside it.
    """
    import cvxpy as cp
    import numpy as np
    import torch

    from distjudge_eval.distributions import project_to_simplex_ball

    rng = np.random.default_rng(0)
    center = rng.dirichlet(np.ones(k), size=batch)
    v = center + rng.normal(scale=0.3, size=(batch, k))
    v_t, c_t = torch.tensor(v), torch.tensor(center)
    ours = []
    for _ in range(repeats):
        start = time.perf_counter()
        projected = project_to_simplex_ball(v_t, c_t, 0.25).numpy()
        ours.append(time.perf_counter() - start)
    solver, diff = [], 0.0
    for i in range(min(solver_items, batch)):
        x = cp.Variable(k)
        constraints = [x >= 0, cp.sum(x) == 1, cp.norm(x - center[i], 2) <= 0.25]
        problem = cp.Problem(cp.Minimize(cp.sum_squares(x - v[i])), constraints)
        start = time.perf_counter()
        problem.solve(solver=cp.CLARABEL)
        solver.append(time.perf_counter() - start)
        diff = max(diff, float(np.abs(x.value - projected[i]).max()))
    per_batch_ours = statistics.median(ours)
    per_item_solver = statistics.median(solver)
    return {
        "batch": batch,
        "labels": k,
        "ours_s_per_batch": per_batch_ours,
        "cvxpy_s_per_item": per_item_solver,
        "cvxpy_s_per_batch": per_item_solver * batch,
        "speedup": per_item_solver * batch / per_batch_ours,
        "solver_items": len(solver),
        "max_abs_diff_vs_cvxpy": diff,
    }


def plain_label_scores(model: Any, items: list[Any], pad_id: int) -> Any:
    """The naive readout a training step would otherwise use: every (item, label) pair as its
    own right-padded sequence (context + label), one ordinary forward pass over all of them,
    the label's log-probability summed from the full-vocabulary log-softmax. Same tokens and
    same scores as ``label_scores``; no shared prefix, no packing, no sparse projection."""
    import torch

    seqs = [it.context + cont for it in items for cont in it.continuations]
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    logprobs = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)
    rows, positions, tokens = [], [], []
    pairs = [(item, cont) for item in items for cont in item.continuations]
    for row, (item, cont) in enumerate(pairs):
        start = len(item.context) - 1
        rows += [row] * len(cont)
        positions += range(start, start + len(cont))
        tokens += cont
    picked = logprobs[torch.tensor(rows), torch.tensor(positions), torch.tensor(tokens)]
    scores = torch.zeros(len(seqs), dtype=picked.dtype).index_add(0, torch.tensor(rows), picked)
    return scores.view(len(items), -1)


def _training_model(task: str, model_args: str | None, data_dir: str | None) -> tuple[Any, Any]:
    """The model and tokenizer as ``distjudge train`` loads them (LoRA), in train mode."""
    from distjudge_trainer.cli import load_model_and_tokenizer
    from distjudge_trainer.config import DistJudgeConfig

    config = DistJudgeConfig(task=task, data_dir=data_dir)
    if model_args:
        config.model = model_args
    model, tok = load_model_and_tokenizer(config)
    model.train()
    return model, tok


def bench_adversary(
    task: str, batch: int, steps: int, model_args: str | None, data_dir: str | None = None
) -> dict:
    """Share of a training step (readout forward + backward + PGD) spent in the PGD adversary,
    and the step against a plain forward + backward of the same tokens (``plain_label_scores``)."""
    import torch

    from distjudge_eval.readout import label_scores
    from distjudge_trainer.data import build_examples, collate
    from distjudge_trainer.objective import adversarial_target, hybrid_loss

    model, tok = _training_model(task, model_args, data_dir)
    data = collate(build_examples(task, tok, max_items=batch, data_dir=data_dir))
    pad = tok.pad_token_id or 0
    step_times, pgd_times, no_adv_times, plain_times = [], [], [], []
    max_gap = 0.0
    for i in range(steps + 1):
        for eps, sink in ((0.25, step_times), (0.0, no_adv_times), (0.25, plain_times)):
            start = time.perf_counter()
            if sink is plain_times:
                plain = plain_label_scores(model, data["items"], pad)
                hybrid_loss(plain, data["p"], data["target"], 0.8, eps).loss.backward()
            else:
                scores = label_scores(model, data["items"], pad_id=pad).scores
                hybrid_loss(scores, data["p"], data["target"], 0.8, eps).loss.backward()
            model.zero_grad()
            if i:  # the first round warms up
                sink.append(time.perf_counter() - start)
        max_gap = max(max_gap, float((plain.detach() - scores.detach()).abs().max()))
        log_q = torch.log_softmax(scores.detach().float(), -1)
        start = time.perf_counter()
        adversarial_target(data["p"], log_q, 0.25, 5, 0.05)
        if i:
            pgd_times.append(time.perf_counter() - start)
    step, pgd = statistics.median(step_times), statistics.median(pgd_times)
    return {
        "task": task,
        "batch": batch,
        "steps": steps,
        "step_s": step,
        "step_without_adversary_s": statistics.median(no_adv_times),
        "pgd_s": pgd,
        "pgd_share_of_step": pgd / step,
        "plain_step_s": statistics.median(plain_times),
        "plain_over_step": statistics.median(plain_times) / step,
        "max_abs_score_gap_plain_vs_readout": max_gap,
        "tokens_per_step": sum(
            len(it.context) + len(c) for it in data["items"] for c in it.continuations
        ),
    }


def bench_budget(
    task: str,
    items: int,
    batch: int,
    repeats: int,
    max_tokens: int | None,
    model_args: str | None,
    data_dir: str | None = None,
    memory: bool = False,
) -> dict:
    """One epoch of training forward + backward over the same items, in fixed batches of
    ``batch`` items (random order, as the stock sampler) and in token-budget batches
    (``--max_tokens_per_batch``, default: the smallest budget that needs no more steps than the
    fixed batches); repeats interleaved, medians reported. Padded tokens (items ×
    longest item per batch) drive both the compute and the peak memory of a step.

    ``memory``: each plan's largest step (most padded tokens), forward + backward in a fresh
    process, and how much its resident set grew (the benchmark runs on the CPU)."""
    import numpy as np

    from distjudge_eval.readout import label_scores
    from distjudge_trainer.batching import TokenBudgetBatchSampler, item_tokens
    from distjudge_trainer.data import build_examples, collate
    from distjudge_trainer.objective import hybrid_loss

    model, tok = _training_model(task, model_args, data_dir)
    examples = build_examples(task, tok, max_items=items or None, data_dir=data_dir)
    lengths = [item_tokens(ex.item) for ex in examples]
    budget = max_tokens or smallest_budget(lengths, -(-len(lengths) // batch))
    order = np.random.default_rng(0).permutation(len(examples)).tolist()
    plans = {
        "fixed": [order[i : i + batch] for i in range(0, len(order), batch)],
        "budget": list(TokenBudgetBatchSampler(lengths, budget, seed=0)),
    }
    pad = tok.pad_token_id or 0
    times: dict[str, list[float]] = {name: [] for name in plans}
    losses: dict[str, float] = {}
    for i in range(repeats + 1 if repeats else 0):  # repeats 0: the batch plans only
        for name, batches in plans.items():
            total, start = 0.0, time.perf_counter()
            for indices in batches:
                data = collate([examples[j] for j in indices])
                scores = label_scores(model, data["items"], pad_id=pad).scores
                loss = hybrid_loss(scores, data["p"], data["target"], 0.8, 0.0).loss
                (loss * len(indices) / len(examples)).backward()  # the epoch's item mean
                total += float(loss.detach()) * len(indices)
            model.zero_grad()
            if i:  # the first round warms up
                times[name].append(time.perf_counter() - start)
            losses[name] = total / len(examples)

    def padded(batches: list) -> list[int]:
        return [len(b) * max(lengths[j] for j in b) for b in batches]

    report: dict[str, Any] = {"task": task, "items": len(examples), "batch": batch}
    report |= {"max_tokens_per_batch": budget, "repeats": repeats}
    report["item_tokens"] = {"min": min(lengths), "median": statistics.median(lengths),
                             "max": max(lengths)}  # fmt: skip
    sizes = {name: padded(batches) for name, batches in plans.items()}
    for name, batches in plans.items():
        report[name] = {
            "batches": len(batches),
            "mean_items": len(examples) / len(batches),
            "padded_tokens": sum(sizes[name]),
            "peak_batch_tokens": max(sizes[name]),
            "epoch_s": statistics.median(times[name]) if repeats else None,
            "epoch_s_all": times[name],
            "mean_item_loss": losses.get(name),
        }
    if repeats:
        report["speedup"] = report["fixed"]["epoch_s"] / report["budget"]["epoch_s"]
        report["loss_gap"] = abs(losses["fixed"] - losses["budget"])
    if memory:
        del model  # the probes load their own copy
        for name, batches in plans.items():
            largest = batches[sizes[name].index(max(sizes[name]))]
            report[name]["peak_step_mib"] = _probe_step_memory(
                task, items, model_args, data_dir, largest
            )
    return report


def _probe_step_memory(
    task: str, items: int, model_args: str | None, data_dir: str | None, indices: list[int]
) -> float:
    """Memory of one training step on ``indices``, measured in a fresh process (MiB)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "_step_memory", task, str(items)]
    cmd += [model_args or "", data_dir or "", ",".join(map(str, indices))]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"step memory probe failed:\n{proc.stderr[-3000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def _step_memory_main(task: str, items: str, model_args: str, data_dir: str, indices: str) -> None:
    import torch

    from distjudge_eval.readout import label_scores
    from distjudge_trainer.data import build_examples, collate
    from distjudge_trainer.objective import hybrid_loss

    model, tok = _training_model(task, model_args or None, data_dir or None)
    examples = build_examples(task, tok, max_items=int(items) or None, data_dir=data_dir or None)
    data = collate([examples[int(j)] for j in indices.split(",")])
    with torch.no_grad():  # the weights are memory-mapped: touch them all before measuring
        label_scores(model, data["items"][:1], pad_id=tok.pad_token_id or 0)
    with PeakRSS() as rss:
        scores = label_scores(model, data["items"], pad_id=tok.pad_token_id or 0).scores
        hybrid_loss(scores, data["p"], data["target"], 0.8, 0.0).loss.backward()
    print(rss.growth / 2**20)


def smallest_budget(lengths: list[int], steps: int) -> int:
    """The smallest token budget whose batches number at most ``steps`` (bisection: fewer
    batches never need a smaller budget)."""
    from distjudge_trainer.batching import pack

    ordered = sorted(lengths)
    low, high = max(ordered), len(ordered) * max(ordered)
    while low < high:
        mid = (low + high) // 2
        if len(pack(ordered, mid)) <= steps:
            high = mid
        else:
            low = mid + 1
    return low


def format_budget(r: dict) -> str:
    lines = [
        f"one training epoch on {r['task']}, {r['items']} items (item tokens "
        f"{r['item_tokens']['min']}-{r['item_tokens']['max']}, median "
        f"{r['item_tokens']['median']:.0f})"
        + (f", median of {r['repeats']}:" if r["repeats"] else ", batch plans only (no timing):"),
        "",
        "| batching | steps | items per step | padded tokens | peak tokens in a step | "
        "largest step, measured MiB | epoch s | speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, title in (("fixed", f"fixed, {r['batch']} items"),
                        ("budget", f"token budget {r['max_tokens_per_batch']}")):  # fmt: skip
        row = r[name]
        timed = row["epoch_s"] is not None
        seconds = f"{row['epoch_s']:.1f}" if timed else "—"
        ratio = f"{r['fixed']['epoch_s'] / row['epoch_s']:.2f}x" if timed else "—"
        mib = f"{row['peak_step_mib']:,.0f}" if "peak_step_mib" in row else "—"
        lines.append(
            f"| {title} | {row['batches']} | {row['mean_items']:.2f} | {row['padded_tokens']:,} | "
            f"{row['peak_batch_tokens']:,} | {mib} | {seconds} | {ratio} |"
        )
    if "peak_step_mib" in r["fixed"]:
        lines += [
            "",
            "measured: resident-set growth (CPU) of each plan's largest step, fresh process each",
        ]
    if "loss_gap" in r:
        lines += ["", f"item-mean loss of the epoch: fixed and budget agree to {r['loss_gap']:.1e}"]
    return "\n".join(lines)


def bench_api(
    task: str,
    limit: int,
    concurrency: list[int],
    base_url: str | None,
    data_dir: str | None = None,
) -> dict:
    """openai-judge items/s and HTTP requests per item at several ``num_concurrent``."""
    import contextlib

    from distjudge_eval.models.openai_judge import OpenAIJudgeLM

    sys.path.insert(0, str(REPO / "tests"))  # the server helper is a test helper
    from llama_server import embedded_llama_server

    requests_, n_items = _requests(task, limit, data_dir)
    server = contextlib.nullcontext(base_url) if base_url else embedded_llama_server()
    rows = []
    with server as url:
        OpenAIJudgeLM(model="judge", base_url=url).loglikelihood(requests_[:3], True)  # warm-up
        for n in concurrency:
            lm = OpenAIJudgeLM(model="judge", base_url=url, num_concurrent=n)
            start = time.perf_counter()
            lm.loglikelihood(requests_, disable_tqdm=True)
            seconds = time.perf_counter() - start
            rows.append(
                {
                    "num_concurrent": n,
                    "seconds": seconds,
                    "items_per_s": n_items / seconds,
                    "http_requests_per_item": lm.requests_sent / n_items,
                    "retries": lm.retries,
                }
            )
    return {
        "task": task,
        "items": n_items,
        "server": base_url or "embedded llama.cpp",
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "_memory":
        _memory_probe_main(*argv[1:7])
        return 0
    if argv and argv[0] == "_step_memory":
        _step_memory_main(*argv[1:6])
        return 0
    parser = argparse.ArgumentParser(prog="python benchmarks/bench.py")
    sub = parser.add_subparsers(dest="what", required=True)
    ro = sub.add_parser("readout", help="stock hf vs hf-judge: items/s, ratio, memory")
    ro.add_argument("--task", default="distjudge_snli")
    ro.add_argument("--limit", type=int, default=100)
    ro.add_argument("--batch_size", type=int, default=8)
    ro.add_argument("--repeats", type=int, default=3)
    ro.add_argument("--model_args", default=None, help="lm-eval hf model_args (default: embedded)")
    ro.add_argument("--no_memory", action="store_true", help="skip the per-backend memory probes")
    ro.add_argument("--out", default=None, help="also write the report as JSON here")
    ro.add_argument("--data_dir", default=None)
    pj = sub.add_parser("projection", help="batched simplex∩ball projection vs cvxpy per item")
    pj.add_argument("--batch", type=int, default=256)
    pj.add_argument("--labels", type=int, default=3)
    pj.add_argument("--repeats", type=int, default=20, help="timed batches (median reported)")
    pj.add_argument("--solver_items", type=int, default=30, help="items cvxpy solves, timed")
    adv = sub.add_parser("adversary", help="PGD adversary's share of a training step")
    adv.add_argument("--task", default="distjudge_snli")
    adv.add_argument("--batch", type=int, default=4)
    adv.add_argument("--steps", type=int, default=5)
    adv.add_argument("--model", default=None, help="HF model dir (default: embedded)")
    bud = sub.add_parser("budget", help="an epoch in fixed vs token-budget batches")
    bud.add_argument("--task", default="distjudge_summeval_coherence")
    bud.add_argument("--items", type=int, default=32, help="0: the whole train split")
    bud.add_argument("--batch", type=int, default=4)
    bud.add_argument("--repeats", type=int, default=3, help="0: batch plans only, no timing")
    bud.add_argument("--max_tokens", type=int, default=None, help="default: as many steps")
    bud.add_argument("--model", default=None, help="HF model dir (default: embedded)")
    bud.add_argument(
        "--memory", action="store_true", help="also measure each plan's largest step's memory"
    )
    api = sub.add_parser("api", help="openai-judge items/s at several num_concurrent")
    api.add_argument("--task", default="distjudge_snli")
    api.add_argument("--limit", type=int, default=40)
    api.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4])
    api.add_argument("--base_url", default=None, help="default: start the embedded llama.cpp")
    for p in (pj, adv, bud, api):
        p.add_argument("--out", default=None)
        p.add_argument("--data_dir", default=None)
    ns = parser.parse_args(argv)
    data_dir = str(Path(ns.data_dir).expanduser().resolve()) if ns.data_dir else None
    if ns.what == "projection":
        report = bench_projection(ns.batch, ns.labels, ns.repeats, ns.solver_items)
        print(
            f"projection onto simplex ∩ L2-ball, {ns.batch} items × {ns.labels} labels: "
            f"batched {report['ours_s_per_batch'] * 1e3:.2f} ms per batch, cvxpy "
            f"{report['cvxpy_s_per_item'] * 1e3:.2f} ms per item "
            f"({report['cvxpy_s_per_batch']:.2f} s per batch): {report['speedup']:.0f}x; "
            f"max abs difference from cvxpy {report['max_abs_diff_vs_cvxpy']:.1e}"
        )
    elif ns.what == "api":
        report = bench_api(ns.task, ns.limit, ns.concurrency, ns.base_url, data_dir)
        print(f"openai-judge on {ns.task}, {report['items']} items, {report['server']}")
        print("| num_concurrent | items/s | HTTP requests per item | retries |")
        print("|---:|---:|---:|---:|")
        for row in report["rows"]:
            print(
                f"| {row['num_concurrent']} | {row['items_per_s']:.2f} | "
                f"{row['http_requests_per_item']:.2f} | {row['retries']} |"
            )
    elif ns.what == "budget":
        report = bench_budget(
            ns.task, ns.items, ns.batch, ns.repeats, ns.max_tokens, ns.model, data_dir, ns.memory
        )
        print(format_budget(report))
    elif ns.what == "adversary":
        report = bench_adversary(ns.task, ns.batch, ns.steps, ns.model, data_dir)
        print(
            f"training step on {ns.task}, batch {ns.batch} (median of {ns.steps}): "
            f"{report['step_s']:.3f} s with adversary, {report['step_without_adversary_s']:.3f} s "
            f"without; PGD alone {report['pgd_s'] * 1e3:.2f} ms = "
            f"{100 * report['pgd_share_of_step']:.2f}% of the step; a plain forward + backward "
            f"of the same {report['tokens_per_step']} tokens (every item-label pair its own "
            f"sequence) {report['plain_step_s']:.3f} s = {report['plain_over_step']:.2f}x the "
            f"step (scores agree to {report['max_abs_score_gap_plain_vs_readout']:.1e})"
        )
    else:
        from distjudge_eval.embedded import embedded_model_args

        model_args = ns.model_args or embedded_model_args()
        report = bench_readout(
            ns.task, ns.limit, ns.batch_size, ns.repeats, model_args, not ns.no_memory, data_dir
        )
        print(format_readout(report))
    if ns.out:
        Path(ns.out).parent.mkdir(parents=True, exist_ok=True)
        Path(ns.out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
