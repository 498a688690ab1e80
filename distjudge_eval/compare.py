"""``distjudge compare``: tables (with bootstrap intervals and paired tests) and plots from
lm-eval output folders, so judges can be compared: API vs local, raw vs fine-tuned.

Everything is recomputed from the per-sample files (``samples_<task>_*.jsonl``, written with
``--log_samples``), so intervals and paired tests use the items themselves.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from distjudge_eval.distributions import DELTAS
from distjudge_eval.errors import UserError
from distjudge_eval.metrics import expected_calibration_error, worst_metric_name
from distjudge_eval.position_bias import ORDER_AVG, POSITION_METRICS, add_order_averaged
from distjudge_eval.runs import SAMPLES, Run, judge_folders, read_run
from distjudge_eval.seeding import stable_hash

BOOTSTRAP = 2000
SEED = 0


def load_run(folder: Path, name: str | None = None, pattern: str = SAMPLES) -> Run:
    """A run's rows plus the order-averaged tasks of those scored in both slot orders."""
    run = read_run(folder, name, pattern)
    add_order_averaged(run.samples)
    return run


def comparison_seed(*names: str) -> int:
    """One seed per comparison (run, task, metric): an interval does not depend on which other
    runs or tasks are in the report, nor on their order."""
    return stable_hash(SEED, *names) % 2**32


def bootstrap_ci(values: np.ndarray, seed: int) -> tuple[float, float]:
    """Percentile 95% bootstrap interval of the mean (scipy.stats.bootstrap)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2 or np.ptp(values) == 0:
        return float(values.mean()), float(values.mean())
    res = stats.bootstrap(
        (values,), np.mean, n_resamples=BOOTSTRAP, method="percentile", random_state=seed
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired_test(a: np.ndarray, b: np.ndarray, seed: int) -> dict[str, float]:
    """Mean of b − a with a bootstrap 95% interval, and a two-sided sign-flip permutation p
    (scipy.stats.permutation_test on the differences; exact when 2^n ≤ the resample count)."""
    diff = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    lo, hi = bootstrap_ci(diff, seed)
    if np.all(diff == 0):
        p = 1.0
    else:
        test = stats.permutation_test(
            (diff,),
            lambda x, axis: np.mean(x, axis=axis),
            permutation_type="samples",
            n_resamples=BOOTSTRAP,
            alternative="two-sided",
            vectorized=True,
            random_state=seed,
        )
        p = float(test.pvalue)
    return {"mean_diff": float(diff.mean()), "lo": lo, "hi": hi, "p": p, "n": len(diff)}


def metric_array(run: Run, task: str, metric: str, ids: list[int]) -> np.ndarray:
    return np.array([float(run.samples[task][i][metric]) for i in ids])


def shared_ids(runs: list[Run], task: str) -> list[int]:
    common = set.intersection(*(set(r.samples.get(task, {})) for r in runs))
    return sorted(common)


def tasks_of(runs: list[Run]) -> list[str]:
    return sorted(set().union(*(r.samples for r in runs)))


def ece_of(run: Run, task: str, ids: list[int]) -> float:
    return expected_calibration_error([run.samples[task][i]["ece"] for i in ids])


@dataclass
class Report:
    markdown: str
    csv_rows: list[dict[str, Any]]


def _ci_cell(run: Run, task: str, metric: str, ids: list[int], rows: list[dict[str, Any]]) -> str:
    """``mean [lo, hi]`` (95% bootstrap CI) of one metric as a table cell; the same numbers go
    into the CSV rows, so the two outputs cannot disagree."""
    vals = metric_array(run, task, metric, ids)
    lo, hi = bootstrap_ci(vals, comparison_seed(run.name, task, metric))
    rows.append(
        {"run": run.name, "task": task, "metric": metric, "mean": vals.mean(),
         "ci_lo": lo, "ci_hi": hi, "n": len(ids)}
    )  # fmt: skip
    return f"{vals.mean():.3f} [{lo:.3f}, {hi:.3f}]"


def compare(runs: list[Run]) -> Report:
    tasks = [t for t in tasks_of(runs) if shared_ids(runs, t)]
    md = io.StringIO()
    rows: list[dict[str, Any]] = []
    md.write("## KL↓ and Acc↑ (mean [95% bootstrap CI]) on the items every run scored\n\n")
    md.write("| run | " + " | ".join(f"{t} KL↓ | {t} Acc↑" for t in tasks) + " |\n")
    md.write("|---|" + "---:|---:|" * len(tasks) + "\n")
    for run in runs:
        cells = []
        for task in tasks:
            ids = shared_ids(runs, task)
            cells += [_ci_cell(run, task, metric, ids, rows) for metric in ("kl", "acc")]
        md.write(f"| {run.name} | " + " | ".join(cells) + " |\n")
    md.write("\nItems per task: " + ", ".join(f"{t} {len(shared_ids(runs, t))}" for t in tasks))

    md.write(
        "\n\n## δ-robustness: certified worst-case KL, max KL(p̃‖q) over p̃ in the simplex "
        "within L2 distance δ of p (`kl_worst_δ`), mean over tasks\n\n"
    )
    md.write("| run | δ=0 | " + " | ".join(f"δ={d:.2f}" for d in DELTAS) + " |\n")
    md.write("|---|---:|" + "---:|" * len(DELTAS) + "\n")
    for run in runs:
        cells = []
        for metric in ("kl", *(worst_metric_name(d) for d in DELTAS)):
            per_task = [metric_array(run, t, metric, shared_ids(runs, t)).mean() for t in tasks]
            cells.append(f"{np.mean(per_task):.3f}")
            rows.append(
                {"run": run.name, "task": "mean", "metric": metric, "mean": np.mean(per_task)}
            )
        md.write(f"| {run.name} | " + " | ".join(cells) + " |\n")

    md.write("\n## Calibration: ECE↓ / Brier↓\n\n")
    md.write("| run | " + " | ".join(f"{t} ECE | {t} Brier" for t in tasks) + " |\n")
    md.write("|---|" + "---:|---:|" * len(tasks) + "\n")
    for run in runs:
        cells = []
        for task in tasks:
            ids = shared_ids(runs, task)
            ece = ece_of(run, task, ids)
            brier = metric_array(run, task, "brier", ids).mean()
            cells += [f"{ece:.3f}", f"{brier:.3f}"]
            rows.append({"run": run.name, "task": task, "metric": "ece", "mean": ece})
            rows.append({"run": run.name, "task": task, "metric": "brier", "mean": brier})
        md.write(f"| {run.name} | " + " | ".join(cells) + " |\n")

    position_tasks = [t for t in tasks if t.endswith(ORDER_AVG)]
    if position_tasks:
        md.write(
            "\n## Position bias (both slot orders): swap consistency↑, symmetry deviation↓, "
            "mean [95% CI]\n\n| run | task | swap consistency | symmetry deviation | "
            "KL original | KL swapped | KL order-averaged | n |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|\n"
        )
        for run in runs:
            for task in position_tasks:
                ids = shared_ids(runs, task)
                base_task = task[: -len(ORDER_AVG)]
                cells = [_ci_cell(run, task, metric, ids, rows) for metric in POSITION_METRICS]
                kls = [
                    np.mean([float(r["kl"]) for r in run.samples[t].values()])
                    for t in (base_task, base_task + "_swapped", task)
                ]
                md.write(
                    f"| {run.name} | {base_task} | {cells[0]} | {cells[1]} | "
                    + " | ".join(f"{k:.3f}" for k in kls)
                    + f" | {len(ids)} |\n"
                )

    if len(runs) > 1:
        base = runs[0]
        md.write(f"\n## Paired vs {base.name}: Δ KL = run − baseline on the same items\n\n")
        md.write("| run | task | Δ KL [95% CI] | p (sign-flip) | n |\n|---|---|---:|---:|---:|\n")
        for run in runs[1:]:
            for task in tasks:
                ids = shared_ids(runs, task)
                res = paired_test(
                    metric_array(base, task, "kl", ids),
                    metric_array(run, task, "kl", ids),
                    comparison_seed(base.name, run.name, task, "kl"),
                )
                md.write(
                    f"| {run.name} | {task} | {res['mean_diff']:+.3f} [{res['lo']:+.3f}, "
                    f"{res['hi']:+.3f}] | {res['p']:.4f} | {res['n']} |\n"
                )
                rows.append({"run": run.name, "task": task, "metric": "paired_delta_kl", **res})
    return Report(md.getvalue(), rows)


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    keys = sorted(
        {k for r in rows for k in r}, key=lambda k: (k not in ("run", "task", "metric"), k)
    )
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def plot(runs: list[Run], out: Path) -> list[Path]:
    """Reliability diagram, p vs q for the majority label, per-task KL bars (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = [t for t in tasks_of(runs) if shared_ids(runs, t)]
    paths = []

    fig, ax = plt.subplots(figsize=(5, 5))
    edges = np.linspace(0, 1, 16)
    for run in runs:
        conf, correct = [], []
        for task in tasks:
            for i in shared_ids(runs, task):
                conf.append(run.samples[task][i]["ece"]["confidence"])
                correct.append(run.samples[task][i]["ece"]["correct"])
        conf_a, corr_a = np.array(conf), np.array(correct)
        bins = np.minimum((conf_a * 15).astype(int), 14)
        xs = [conf_a[bins == b].mean() for b in range(15) if (bins == b).any()]
        ys = [corr_a[bins == b].mean() for b in range(15) if (bins == b).any()]
        ax.plot(xs, ys, marker="o", label=run.name)
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set(
        xlabel="confidence (max q)",
        ylabel="agreement with human plurality",
        title="Reliability (15 bins, all tasks)",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.set_xticks(edges[::3])
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / "reliability.png"))

    fig, axes = plt.subplots(1, len(runs), figsize=(4 * len(runs), 4), squeeze=False)
    for ax, run in zip(axes[0], runs):
        ps, qs = [], []
        for task in tasks:
            for i in shared_ids(runs, task):
                rec = run.samples[task][i]["ece"]
                k = int(np.argmax(rec["p"]))
                ps.append(rec["p"][k])
                qs.append(rec["q"][k])
        ax.scatter(ps, qs, s=6, alpha=0.4)
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ax.set(
            xlabel="human p (majority label)",
            ylabel="judge q (same label)",
            title=run.name,
            xlim=(0, 1),
            ylim=(0, 1),
        )
    paths.append(_save(fig, out / "p_vs_q_majority.png"))

    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(tasks) * len(runs)), 4))
    width = 0.8 / len(runs)
    for j, run in enumerate(runs):
        vals = [metric_array(run, t, "kl", shared_ids(runs, t)).mean() for t in tasks]
        ax.bar(np.arange(len(tasks)) + j * width, vals, width, label=run.name)
    ax.set_xticks(np.arange(len(tasks)) + 0.4 - width / 2)
    ax.set_xticklabels([t.replace("distjudge_", "") for t in tasks], rotation=20, ha="right")
    ax.set(ylabel="KL(p‖q) ↓", title="KL per task")
    ax.legend(fontsize=8)
    paths.append(_save(fig, out / "kl_per_task.png"))
    return paths


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="distjudge compare")
    parser.add_argument("runs", nargs="+", help="lm-eval output folders (with samples_*.jsonl)")
    parser.add_argument("--names", nargs="*", help="a display name per run (default: folder)")
    parser.add_argument("--out", default=None, help="write comparison.md, .csv and plots here")
    parser.add_argument("--no_plots", action="store_true")
    ns = parser.parse_args(argv)
    if ns.names and len(ns.names) != len(ns.runs):
        parser.error("--names needs one name per run")
    runs = [load_run(folder, name) for folder, name in judges_of(ns.runs, ns.names)]
    report = compare(runs)
    print(report.markdown)
    if ns.out:
        out = Path(ns.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "comparison.md").write_text(report.markdown)
        write_csv(report.csv_rows, out / "comparison.csv")
        if not ns.no_plots and _have_matplotlib():
            for path in plot(runs, out):
                print(f"wrote {path}")
    return 0


def judges_of(folders: list[str], names: list[str] | None) -> list[tuple[Path, str | None]]:
    """Each folder is one judge, unless it holds several (one ``--output_path`` for a raw judge
    and its fine-tune): then each is compared on its own, named after its model, and a note
    says so; merged, the later judge's samples would replace the earlier's under one name."""
    out: list[tuple[Path, str | None]] = []
    for i, folder in enumerate(map(Path, folders)):
        judges = judge_folders(folder)
        if len(judges) < 2:
            out.append((folder, names[i] if names else None))
            continue
        if names:
            raise UserError(
                f"--names: {folder} holds {len(judges)} judges ({', '.join(judges)}); name "
                "their folders one by one, or drop --names to use these names"
            )
        print(f"{folder}: {len(judges)} judges, compared side by side: {', '.join(judges)}")
        out += [(path, name) for name, path in judges.items()]
    return out


def _have_matplotlib() -> bool:
    """Plots are optional (extra ``plot``): without matplotlib the tables still get written."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("plots skipped: pip install '.[plot]' in the distjudge checkout", file=sys.stderr)
        return False
    return True
