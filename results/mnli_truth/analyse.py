"""Tables and plots for results/mnli_truth (run by run.sh; rerun alone: python analyse.py OUT).

Every judge's stored per-label scores on the ChaosNLI-MNLI test items are scored twice, against
the 5-vote p (the original annotators, what the judges were trained on) and the 100-vote p (the
closest thing to the truth), with the package's own metric functions; temperatures are fitted on
each judge's own train-item scores. The prior is q = mean 5-vote p of the whole train split.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from distjudge_eval.baselines import prior_distribution
from distjudge_eval.compare import paired_test
from distjudge_eval.metrics import (
    log_softmax,
    score_rows,
    scores_from_results,
)
from distjudge_eval.runs import read_run
from distjudge_eval.temperature import fit_from_samples

TRUTH, FIVE = "distjudge_chaosnli_mnli", "distjudge_chaosnli_mnli_5vote"
METHODS = ["single_point", "no_adversary", "eps0.1", "full"]
# method pairs tested per seed and pooled (Δ = first − second): the adversary's radius, then
# distribution training against single-point
PAIRS = [
    ("full", "no_adversary"),
    ("eps0.1", "no_adversary"),
    ("full", "eps0.1"),
    ("no_adversary", "single_point"),
]
LABELS = {
    "prior": "prior (reads nothing; mean 5-vote p of the train split)",
    "prior100": "prior from the train split's 100-vote p (knows more than any judge here)",
    "raw": "raw",
    "single_point": "single-point (α=0)",
    "no_adversary": "w/o adversary (α=0.8, ε=0)",
    "eps0.1": "adversary ε=0.1",
    "full": "full (ε=0.25)",
}
COLUMNS = ["kl5", "kl100", "worst100", "ece100", "acc100"]
HEAD = {
    "kl5": "KL vs 5-vote p↓",
    "kl100": "KL vs 100-vote p↓",
    "worst100": "worst KL δ=0.25 (100-vote)↓",
    "ece100": "ECE (100-vote)↓",
    "acc100": "acc (100-vote plurality)↑",
}


def load_docs(data_dir: str | None) -> tuple[dict, dict, np.ndarray, int]:
    """Test docs with both p's, the prior from the train split's 5-vote p, #premise groups."""
    from lm_eval.tasks import TaskManager

    from distjudge_eval.paths import tasks_dir

    meta = {"data_dir": data_dir} if data_dir else {}
    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata=meta)
    tasks = dict(manager.load([TRUTH, FIVE])["tasks"])
    truth = {d["id"]: d for d in tasks[TRUTH].test_docs()}
    five = {d["id"]: d for d in tasks[FIVE].test_docs()}
    prior = prior_distribution(list(tasks[FIVE].training_docs()))
    prior100 = prior_distribution(list(tasks[TRUTH].training_docs()))
    groups = len({d["split_key"] for d in truth.values()})
    return truth, five, (prior, prior100), groups


def per_item(scores_by_id: dict, truth: dict, five: dict, temperature: float) -> dict:
    """Per-item metric arrays (in sorted id order) against both p's."""
    ids = sorted(truth)
    log_q = np.stack([log_softmax(np.asarray(scores_by_id[i]) / temperature) for i in ids])
    hundred = score_rows(np.array([truth[i]["p"] for i in ids]), log_q)
    original = score_rows(np.array([five[i]["p"] for i in ids]), log_q)
    return {
        "kl5": original["kl"],
        "kl100": hundred["kl"],
        "worst100": hundred["worst"],
        "acc100": hundred["acc"],
        "ece100": hundred["ece"],
    }


def scores_of(folder: Path, task: str) -> dict[str, list[float]]:
    run = read_run(folder)
    return {
        str(row["doc"]["id"]): scores_from_results(row["filtered_resps"])
        for row in run.samples[task].values()
    }


def summarise(value) -> float:
    return float(np.mean(value))


def main(out: Path, data_dir: str | None = None) -> None:
    truth, five, (prior, prior100), groups = load_docs(data_dir)
    judges: dict[str, list[dict]] = {}  # name -> per seed metrics (raw: one)
    temps: dict[str, list[float]] = {}
    prior_scores = {i: list(np.log(prior)) for i in truth}
    judges["prior"] = [per_item(prior_scores, truth, five, 1.0)]
    prior100_scores = {i: list(np.log(prior100)) for i in truth}
    judges["prior100"] = [per_item(prior100_scores, truth, five, 1.0)]
    for name in ["raw", *METHODS]:
        folders = (
            [out / "eval" / "raw"] if name == "raw" else sorted((out / "eval").glob(f"{name}_s*"))
        )
        for folder in folders:
            if not list(folder.glob("**/samples_*")):
                continue
            scores = scores_of(folder, TRUTH)
            if set(scores) != set(truth):
                raise SystemExit(f"{folder}: scored {len(scores)} of {len(truth)} test items")
            judges.setdefault(name, []).append(per_item(scores, truth, five, 1.0))
            train_folder = out / "eval_train" / folder.name
            if list(train_folder.glob("**/samples_*")):
                t = fit_from_samples(train_folder)
                temps.setdefault(name, []).append(t)
                judges.setdefault(f"{name}+T", []).append(per_item(scores, truth, five, t))
    lines = [
        f"# ChaosNLI-MNLI truth test: {len(truth)} test items from {groups} premises",
        "",
        "Mean over seeds ± sd across seeds (one value when there is one run). Metrics from "
        "`distjudge_eval.metrics` / `worst_case`; ECE over the items of one run.",
        "",
        "| judge | runs | T | " + " | ".join(HEAD[c] for c in COLUMNS) + " |",
        "|---|---:|---:|" + "---:|" * len(COLUMNS),
    ]
    summary: dict[str, dict] = {}
    for name, runs in judges.items():
        base = name.removesuffix("+T")
        label = LABELS[base] + (", temperature-scaled" if name.endswith("+T") else "")
        cells, record = [], {"runs": len(runs)}
        for col in COLUMNS:
            vals = np.array([summarise(r[col]) for r in runs])
            record[col] = vals.tolist()
            sd = f" ± {vals.std(ddof=1):.3f}" if len(vals) > 1 else ""
            cells.append(f"{vals.mean():.3f}{sd}")
        t = temps.get(base) if name.endswith("+T") else None
        t_cell = "/".join(f"{x:.2f}" for x in t) if t else "—"
        record["temperatures"] = t
        summary[name] = record
        lines.append(f"| {label} | {len(runs)} | {t_cell} | " + " | ".join(cells) + " |")

    lines += ["", "## Paired tests on the test items (per seed; Δ = judge − reference)", ""]
    lines += [
        "| judge | reference | metric | seed | Δ [95% CI] | p |",
        "|---|---|---|---:|---|---:|",
    ]
    tests = []
    for name in judges:
        if name in ("prior", "prior100"):
            continue
        for metric in ("kl100", "kl5", "worst100"):
            for seed, run in enumerate(judges[name]):
                res = paired_test(judges["prior"][0][metric], run[metric], seed=seed)
                tests.append({"judge": name, "ref": "prior", "metric": metric, "seed": seed, **res})
    for a, b in PAIRS:
        for metric in ("kl100", "kl5", "worst100"):
            for seed, (ra, rb) in enumerate(zip(judges.get(a, []), judges.get(b, []))):
                res = paired_test(rb[metric], ra[metric], seed=seed)
                tests.append({"judge": a, "ref": b, "metric": metric, "seed": seed, **res})
    # Seeds pooled: each item's metric averaged over the seeds of a method, then paired.
    pooled = {n: {m: np.mean([r[m] for r in runs], axis=0) for m in ("kl100", "kl5", "worst100")}
              for n, runs in judges.items() if len(runs) > 1}  # fmt: skip
    for name, arrays in pooled.items():
        for metric, values in arrays.items():
            res = paired_test(judges["prior"][0][metric], values, seed=99)
            tests.append({"judge": name, "ref": "prior", "metric": metric, "seed": "pooled", **res})
    for a, b in PAIRS:
        if a in pooled and b in pooled:
            for metric in ("kl100", "kl5", "worst100"):
                res = paired_test(pooled[b][metric], pooled[a][metric], seed=99)
                tests.append({"judge": a, "ref": b, "metric": metric, "seed": "pooled", **res})
    for t in tests:
        lines.append(
            f"| {t['judge']} | {t['ref']} | {t['metric']} | {t['seed']} | "
            f"{t['mean_diff']:+.3f} [{t['lo']:+.3f}, {t['hi']:+.3f}] | {t['p']:.3f} |"
        )
    epochs = epoch_curves(out)
    if epochs:
        lines += ["", "## Train and test KL (5-vote p) after each epoch, mean over seeds", ""]
        lines += ["| method | epoch | train KL | test KL |", "|---|---:|---:|---:|"]
        for method, rows in epochs.items():
            for epoch, (tr, te) in sorted(rows.items()):
                lines.append(f"| {method} | {epoch:g} | {np.mean(tr):.3f} | {np.mean(te):.3f} |")
        plot_epochs(epochs, out / "epochs.png")
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    (out / "summary.json").write_text(
        json.dumps(
            {
                "prior_q": prior.tolist(),
                "prior100_q": prior100.tolist(),
                "judges": summary,
                "tests": tests,
            },
            indent=1,
        )
    )
    print("\n".join(lines))


def epoch_curves(out: Path) -> dict[str, dict[float, tuple[list, list]]]:
    """Per method and epoch, the seeds' train and test KL from each run's eval_history.json
    (copied from the adapter folders, which are not committed, into eval_history/)."""
    kept = out / "eval_history"
    kept.mkdir(exist_ok=True)
    for path in (out / "adapters").glob("*/eval_history.json"):
        (kept / f"{path.parent.name}.json").write_text(path.read_text())
    curves: dict[str, dict[float, tuple[list, list]]] = {}
    for path in sorted(kept.glob("*.json")):
        method = path.stem.rsplit("_s", 1)[0]
        for row in json.loads(path.read_text()):
            train, test = curves.setdefault(method, {}).setdefault(row["epoch"], ([], []))
            train.append(row["eval_train_kl"])
            test.append(row["eval_test_kl"])
    return curves


def plot_epochs(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for method, rows in curves.items():
        epochs = sorted(rows)
        ax.plot(epochs, [np.mean(rows[e][0]) for e in epochs], "--", label=f"{method} train")
        ax.plot(epochs, [np.mean(rows[e][1]) for e in epochs], "-o", label=f"{method} test")
    ax.set_xlabel("epoch")
    ax.set_ylabel("KL(p‖q), 5-vote p (mean over seeds)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    import os

    main(
        Path(sys.argv[1] if len(sys.argv) > 1 else "results/mnli_truth"),
        os.environ.get("DISTJUDGE_DATA_DIR"),
    )
