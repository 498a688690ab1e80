"""Temperature scaling: one temperature per judge, fitted on a task's train split.

q_T = softmax(ℓ / T) keeps the judge's ranking of labels and only sharpens (T < 1) or flattens
(T > 1) it, so it fixes a judge that is systematically over- or under-confident without touching
what it prefers. T is fitted by minimising the mean KL(p‖q_T) over train items (equivalently the
soft cross-entropy against the human distributions), a smooth one-dimensional problem solved by
bounded scalar minimisation in log T.

Workflow (the task reads ``eval_split`` and ``temperature`` from lm-eval's ``--metadata``)::

    distjudge eval ... --metadata '{"eval_split": "train"}' --log_samples --output_path out/train
    distjudge calibrate out/train            # prints T and the KL before/after
    distjudge eval ... --metadata '{"temperature": T}'
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar

from distjudge_eval.metrics import floored_log_q, scores_from_results

LOG_T_BOUNDS = (np.log(1e-2), np.log(1e2))


def _padded(per_item_scores: Sequence[Sequence[float]], ps: Sequence[Sequence[float]]):
    """Items may have different label counts: pad to a matrix, −inf scores and 0 mass."""
    if len(per_item_scores) != len(ps) or len(ps) == 0:
        raise ValueError(f"need as many score lists as p's (got {len(per_item_scores)}, {len(ps)})")
    k = max(len(s) for s in per_item_scores)
    scores = np.full((len(ps), k), -np.inf)
    target = np.zeros((len(ps), k))
    for i, (s, p) in enumerate(zip(per_item_scores, ps)):
        if len(s) != len(p):
            raise ValueError(f"item {i}: {len(s)} scores but {len(p)} probabilities")
        scores[i, : len(s)] = s
        target[i, : len(p)] = p
    if not np.isfinite(scores.max(1)).all():
        raise ValueError("an item has no finite label score")
    return scores, target


def mean_kl(scores: np.ndarray, target: np.ndarray, temperature: float) -> float:
    """Mean KL(p‖softmax(scores / T)) with the same log-q floor as the metrics."""
    z = scores / temperature
    log_q = floored_log_q(z - np.logaddexp.reduce(z, axis=1, keepdims=True))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(target > 0, target * (np.log(target) - log_q), 0.0)
    return float(terms.sum(1).mean())


def fit_temperature(
    per_item_scores: Sequence[Sequence[float]], ps: Sequence[Sequence[float]]
) -> float:
    """T minimising the mean KL(p‖softmax(ℓ/T)) over the items, T ∈ [0.01, 100].

    Bounded Brent search in log T (scale-free and keeps T > 0). The objective is the soft
    cross-entropy up to a constant, which is convex in 1/T, so the minimum is unique.
    """
    scores, target = _padded(per_item_scores, ps)
    res = minimize_scalar(
        lambda log_t: mean_kl(scores, target, float(np.exp(log_t))),
        bounds=LOG_T_BOUNDS,
        method="bounded",
        options={"xatol": 1e-10},
    )
    return float(np.exp(res.x))


def sample_files(path: str | Path) -> list[Path]:
    """One per-sample file, or every ``samples_*.jsonl[.gz]`` under a folder."""
    path = Path(path)
    if path.is_file():
        return [path]
    files = sorted(
        f for f in path.glob("**/samples_*.jsonl*") if f.name.endswith((".jsonl", ".jsonl.gz"))
    )
    if not files:
        raise FileNotFoundError(f"{path}: no samples_*.jsonl[.gz] (run lm-eval with --log_samples)")
    return files


def read_samples(path: str | Path) -> Iterator[tuple[list[float], list[float]]]:
    """(label scores, p) for every log-likelihood item in lm-eval per-sample files."""
    for file in sample_files(path):
        opener = gzip.open if file.suffix == ".gz" else open
        with opener(file, "rt") as fh:
            for line in fh:
                row = json.loads(line)
                resps = row.get("filtered_resps") or []
                if not all(isinstance(r, (list, tuple)) and len(r) == 2 for r in resps):
                    continue  # verbalized (generated text): no scores to rescale
                yield scores_from_results(resps), list(row["doc"]["p"])


def fit_from_samples(path_or_folder: str | Path) -> float:
    """Fit T on the items of lm-eval per-sample files (e.g. a run on the train split)."""
    items = list(read_samples(path_or_folder))
    if not items:
        raise ValueError(f"{path_or_folder}: no log-likelihood items to calibrate on")
    scores, ps = zip(*items)
    return fit_temperature(scores, ps)


def main(argv: Sequence[str] | None = None) -> int:
    """``distjudge calibrate SAMPLES``: print the fitted T and the KL before and after."""
    parser = argparse.ArgumentParser(
        prog="distjudge calibrate",
        description="Fit one temperature T (q = softmax(loglik / T)) on lm-eval per-sample files "
        "of a train-split run, and print it with the mean KL before and after.",
    )
    parser.add_argument("samples", help="a samples_*.jsonl[.gz] file or a folder holding them")
    args = parser.parse_args(argv)
    items = list(read_samples(args.samples))
    if not items:
        parser.error(f"{args.samples}: no log-likelihood items to calibrate on")
    scores, ps = zip(*items)
    t = fit_temperature(scores, ps)
    s, target = _padded(scores, ps)
    print(f"items: {len(items)}")
    print(f"temperature: {t:.6g}")
    print(f"mean KL at T=1: {mean_kl(s, target, 1.0):.4f}")
    print(f"mean KL at T={t:.4g}: {mean_kl(s, target, t):.4f}")
    print(f"""use it: --metadata '{{"temperature": {t:.6g}}}'""")
    return 0
