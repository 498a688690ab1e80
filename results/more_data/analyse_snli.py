"""Tables and a plot for results/more_data/snli (rerun: python results/more_data/analyse_snli.py).

Every SNLI judge's stored per-label scores are rescored with the package's metric functions on
(a) every SNLI test item against the 5-vote p, (b) the first 300 of them, the items of
snli_repro/, where the judges trained on 200 items are paired with the ones trained on more, and
(c) every ChaosNLI-SNLI test item against the 100-vote p. The prior is the mean 5-vote p of the
train split. Temperatures are fitted on each judge's own train-item scores (eval_train/).

The first-epoch curves come from the training logs: in the first epoch every batch is new to the
judge, so the running train KL there is a score on unseen items (progressive validation), the
only reading the stopped GPU runs left.
"""

from __future__ import annotations

import ast
import json
import os
import re
import sys
from pathlib import Path

import numpy as np

from distjudge_eval.baselines import prior_distribution
from distjudge_eval.compare import bootstrap_ci, paired_test
from distjudge_eval.metrics import log_softmax, score_rows, scores_from_results
from distjudge_eval.runs import read_run
from distjudge_eval.temperature import fit_from_samples

HERE = Path(__file__).resolve().parent / "snli"
REPRO = HERE.parent.parent / "snli_repro" / "eval"
SNLI, TRUTH, FIVE = "distjudge_snli", "distjudge_chaosnli_snli", "distjudge_chaosnli_snli_5vote"
METHODS = {
    "single_point": "single-point",
    "no_adversary": "w/o adversary",
    "eps0.1": "adversary ε=0.1",
    "full": "full",
}
COLOURS = dict(zip(METHODS, ("tab:orange", "tab:blue", "tab:purple", "tab:green")))  # plots
RUN = re.compile(
    r"(?P<method>[a-z_]+|eps0\.1)_n(?P<items>\d+)_s(?P<seed>\d+)(?:_e(?P<epochs>\d+))?$"
)
SMALL = {  # snli_repro/ judges: 200 train items, 50 steps of 4
    "no_adversary": "w/o adversary, 200 items (snli_repro)",
    "single_point": "single-point, 200 items (snli_repro)",
    "full": "full, 200 items (snli_repro)",
}


def label(name: str) -> str:
    """``no_adversary_n2400_s0`` -> ``w/o adversary, 2,400 items, 1 epoch (CPU), s0``."""
    run = RUN.match(name)
    if not run:
        return name
    epochs = f"{epochs_of(run)} epochs" if epochs_of(run) > 1 else "1 epoch"
    return f"{METHODS[run['method']]}, {int(run['items']):,} items, {epochs} (CPU), s{run['seed']}"


def epochs_of(run: re.Match) -> int:
    """A run's epochs: 1 unless its name ends in _e<N>."""
    return int(run["epochs"] or 1)


def one_epoch_twin(name: str) -> str:
    """``full_n2400_s0_e2`` -> ``full_n2400_s0``: the same method, items and seed, 1 epoch."""
    return name.rsplit("_e", 1)[0]


def with_temperatures(judges: dict, temps: dict) -> dict:
    """Table entries: each judge as it is, then temperature-scaled where a T was fitted."""
    entries = {}
    for name, scored in judges.items():
        entries[label(name)] = (scored, 1.0)
        if name in temps:
            entries[label(name) + ", temperature-scaled"] = (scored, temps[name])
    return entries


def docs() -> tuple[dict, dict, np.ndarray, np.ndarray]:
    """SNLI test docs, ChaosNLI-SNLI docs (100-vote p, with the 5-vote p as p5), the prior, and
    the SNLI train split's p (to score the prior on train items)."""
    from lm_eval.tasks import TaskManager

    from distjudge_eval.paths import tasks_dir

    data_dir = os.environ.get("DISTJUDGE_DATA_DIR")
    meta = {"data_dir": data_dir} if data_dir else {}
    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata=meta)
    tasks = dict(manager.load([SNLI, TRUTH, FIVE])["tasks"])
    train = list(tasks[SNLI].training_docs())
    test = {str(d["id"]): d for d in tasks[SNLI].test_docs()}
    chaos = {str(d["id"]): d for d in tasks[TRUTH].test_docs()}
    for d in tasks[FIVE].test_docs():
        chaos[str(d["id"])]["p5"] = d["p"]
    train_ids = {str(d["id"]) for d in train}
    if train_ids & set(chaos):
        raise SystemExit("a ChaosNLI-SNLI test item is in distjudge_snli's train split")
    return test, chaos, prior_distribution(train), np.array([d["p"] for d in train])


def scores(folder: Path, task: str) -> dict[str, np.ndarray]:
    if not list(folder.glob(f"**/samples_{task}_*")):
        return {}
    run = read_run(folder)
    return {
        str(r["doc"]["id"]): np.asarray(scores_from_results(r["filtered_resps"]), dtype=float)
        for r in run.samples[task].values()
    }


_METRICS: dict[tuple[int, int, float], tuple[dict, list, np.ndarray, dict]] = {}


def metrics(p: np.ndarray, scored: dict, ids: list[str], t: float) -> dict:
    """Per-item metrics of one judge on one item set, computed once: the tables and every
    method pair read the same judge (the worst case solves a small program per item)."""
    key = (id(scored), id(ids), t)
    if key not in _METRICS:  # the entry keeps scored and ids alive, so their ids stay unique
        log_q = np.stack([log_softmax(scored[i] / t) for i in ids])
        _METRICS[key] = (scored, ids, p, score_rows(p, log_q))
    if not np.array_equal(_METRICS[key][2], p):
        raise ValueError("the same items scored against two different p")
    return _METRICS[key][3]


def table(title: str, p: np.ndarray, ids: list[str], judges: dict, note: str) -> list[str]:
    """judges: label -> (scores by id, temperature); the first is the prior."""
    lines = [f"## {title}", "", note, ""]
    lines += [
        "| judge | T | KL↓ | Δ KL vs prior [95% CI] | p | worst KL δ=0.25↓ | ECE↓ | accuracy↑ |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    base = None
    for label, (scored, t) in judges.items():
        m = metrics(p, scored, ids, t)
        lo, hi = bootstrap_ci(m["kl"], 0)
        if base is None:
            base, delta, pv = m["kl"], "—", "—"
        else:
            res = paired_test(base, m["kl"], seed=0)
            delta = f"{res['mean_diff']:+.3f} [{res['lo']:+.3f}, {res['hi']:+.3f}]"
            pv = f"{res['p']:.3f}"
        lines.append(
            f"| {label} | {t:.2f} | {m['kl'].mean():.3f} [{lo:.3f}, {hi:.3f}] | {delta} | {pv} | "
            f"{m['worst'].mean():.3f} | {m['ece']:.3f} | {m['acc'].mean():.3f} |"
        )
    return [*lines, ""]


def paired_cells(
    sets: dict, a: str, b: str, records: dict, t_b: float = 1.0
) -> tuple[list[str], dict[str, float]]:
    """Judge a − judge b (b at temperature t_b) on each item set, paired over items: the table
    cells ("—" where either judge is missing), each set's mean Δ, and the tests into records."""
    cells, deltas = [], {}
    tag = f" (T {t_b:.2f})" if t_b != 1.0 else ""
    for title, (p, ids, judges, key) in sets.items():
        if a not in judges or b not in judges:
            cells.append("—")
            continue
        ma, mb = metrics(p, judges[a], ids, 1.0)[key], metrics(p, judges[b], ids, t_b)[key]
        res = paired_test(mb, ma, seed=0)
        records[f"{a} - {b}{tag}: {title}"] = res
        deltas[title] = res["mean_diff"]
        cells.append(
            f"{res['mean_diff']:+.3f} [{res['lo']:+.3f}, {res['hi']:+.3f}], p {res['p']:.3f}"
        )
    return cells, deltas


PAIRS = [
    ("no_adversary", "single_point"),
    ("full", "single_point"),
    ("full", "no_adversary"),
    ("eps0.1", "single_point"),
    ("eps0.1", "no_adversary"),
    ("full", "eps0.1"),
]


def method_comparison(sets: dict) -> tuple[list[str], dict]:
    """Per seed, paired differences a − b between methods trained on the same items; with more
    than one seed, also each method's mean ± sd across seeds (the paired tests see item noise
    only, not seed-to-seed variation)."""
    lines = [
        "## The methods against each other (same train items, same seed, 1 epoch)",
        "",
        "a − b, paired over items (bootstrap 95% CI, sign-flip p). Negative favours a.",
        "",
        "| a − b | seed | " + " | ".join(sets) + " |",
        "|---|---:|" + "---|" * len(sets),
    ]
    records = {}
    runs = {n: RUN.match(n) for s in sets.values() for n in s[2]}
    seeds = sorted({r["seed"] for r in runs.values() if r and epochs_of(r) == 1}, key=int)
    per_seed: dict[tuple[str, str, str], list[float]] = {}  # (a, b, set) -> each seed's Δ
    for a, b in PAIRS:
        for seed in seeds:
            cells, deltas = paired_cells(sets, f"{a}_n2400_s{seed}", f"{b}_n2400_s{seed}", records)
            for title, delta in deltas.items():
                per_seed.setdefault((a, b, title), []).append(delta)
            if any(c != "—" for c in cells):
                row = " | ".join(cells)
                lines.append(f"| {METHODS[a]} − {METHODS[b]} | {seed} | {row} |")
    lines.append("")
    if len(seeds) > 1:
        lines += ["Across seeds (mean ± sd of each seed's mean):", ""]
        lines += ["| method | seeds | " + " | ".join(sets) + " |"]
        lines += ["|---|---:|" + "---:|" * len(sets)]
        for method in METHODS:
            names = [
                n for n, r in runs.items() if r and r["method"] == method and epochs_of(r) == 1
            ]
            if names:
                cells = seed_means(sets, names)
                lines.append(f"| {METHODS[method]} | {len(names)} | " + " | ".join(cells) + " |")
        lines.append("")
        rows = {f"{METHODS[a]} − {METHODS[b]}": (a, b) for a, b in PAIRS}
        lines += across_seeds(
            sets, {row: {t: per_seed.get((*ab, t), []) for t in sets} for row, ab in rows.items()}
        )
    return lines, records


def across_seeds(sets: dict, deltas: dict[str, dict[str, list[float]]]) -> list[str]:
    """A table of paired differences across seeds: per row and item set, the mean ± sd of each
    seed's paired Δ (a − b) and in how many seeds a is lower; rows with < 2 seeds are left out."""
    lines = [
        "Each pair across seeds: mean ± sd of the per-seed paired Δ (a − b), and in how many "
        "seeds a is lower:",
        "",
        "| a − b | " + " | ".join(sets) + " |",
        "|---|" + "---:|" * len(sets),
    ]
    for row, by_set in deltas.items():
        cells = []
        for title in sets:
            seeds = by_set.get(title, [])
            if len(seeds) < 2:
                cells.append("—")
                continue
            lower = sum(d < 0 for d in seeds)
            cells.append(
                f"{np.mean(seeds):+.3f} ± {np.std(seeds, ddof=1):.3f} ({lower} of {len(seeds)})"
            )
        if any(c != "—" for c in cells):
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def seed_means(sets: dict, names: list[str], temps: dict | None = None) -> list[str]:
    """Table cells: per item set, the mean ± sd across runs (seeds) of each run's mean score,
    each run at its fitted temperature when temps is given."""
    cells = []
    for p, ids, judges, key in sets.values():
        means = [
            metrics(p, judges[n], ids, (temps or {}).get(n, 1.0))[key].mean()
            for n in names
            if n in judges
        ]
        sd = f" ± {np.std(means, ddof=1):.3f}" if len(means) > 1 else ""
        cells.append(f"{np.mean(means):.3f}{sd}" if means else "—")
    return cells


def epoch_comparison(sets: dict, temps: dict) -> tuple[list[str], dict]:
    """Runs trained for more than one epoch against the 1-epoch run of the same method and seed
    (same items, same order in epoch 1; the learning rate decays over the longer run), paired
    over test items, and the train and test KL each run logged after every epoch (100 items
    each, eval_history_*.json): a test KL that rises while the train KL falls is overfitting."""
    longer = sorted(
        {n for s in sets.values() for n in s[2] if RUN.match(n) and epochs_of(RUN.match(n)) > 1}
    )
    if not longer:
        return [], {}
    lines = [
        "## More epochs (same method, seed and train items)",
        "",
        "Longer − 1-epoch run, paired over items (bootstrap 95% CI, sign-flip p). Negative favours "
        "the longer run.",
        "",
        "| run − 1-epoch run (then method − method at the longer length) | "
        + " | ".join(sets)
        + " |",
        "|---|" + "---|" * len(sets),
    ]
    records = {}
    per_seed: dict[str, dict[str, list[float]]] = {}  # across-seeds row -> set -> each seed's Δ

    def add(row: str, deltas: dict[str, float]) -> None:
        for title, delta in deltas.items():
            per_seed.setdefault(row, {}).setdefault(title, []).append(delta)

    for name in longer:
        cells, deltas = paired_cells(sets, name, one_epoch_twin(name), records)
        lines.append(f"| {label(name)} | " + " | ".join(cells) + " |")
        run = RUN.match(name)
        add(f"{METHODS[run['method']]}: {run['epochs']} epochs − 1 epoch", deltas)
    for a, b in PAIRS:  # the methods against each other at the longer length
        for name in longer:
            run = RUN.match(name)
            if run["method"] != a:
                continue
            other = f"{b}_n{run['items']}_s{run['seed']}_e{run['epochs']}"
            # b as it is, then b temperature-scaled (a judge that overfits sharpens; T undoes it)
            for t_other in (1.0, temps.get(other)):
                if t_other is None:
                    continue
                cells, deltas = paired_cells(sets, name, other, records, t_other)
                if any(c != "—" for c in cells):
                    scaled = f" (T = {t_other:.2f})" if t_other != 1.0 else ""
                    row = f"{METHODS[a]} − {METHODS[b]}{scaled}, {run['epochs']} epochs"
                    lines.append(f"| {row}, s{run['seed']} | " + " | ".join(cells) + " |")
                    each_t = " (each seed's fitted T)" if t_other != 1.0 else ""
                    add(f"{METHODS[a]} − {METHODS[b]}{each_t}, {run['epochs']} epochs", deltas)
    lines.append("")
    lengths = sorted({epochs_of(RUN.match(n)) for n in longer})
    if max(len(v) for by_set in per_seed.values() for v in by_set.values()) > 1:
        lines += [
            "Across seeds (mean ± sd of each seed's mean; the 1-epoch rows use the seeds that "
            "also have a longer run):",
            "",
            "| method | epochs | seeds | " + " | ".join(sets) + " |",
            "|---|---:|---:|" + "---:|" * len(sets),
        ]
        for method in METHODS:
            for n_epochs in lengths:
                names = [
                    n
                    for n in longer
                    if (run := RUN.match(n))["method"] == method and epochs_of(run) == n_epochs
                ]
                if len(names) < 2:
                    continue
                for shown, runs_at in ((1, [one_epoch_twin(n) for n in names]), (n_epochs, names)):
                    for t_note, t in (("", None), (", temperature-scaled", temps)):
                        cells = seed_means(sets, runs_at, t)
                        lines.append(
                            f"| {METHODS[method]}{t_note} | {shown} | {len(runs_at)} | "
                            + " | ".join(cells)
                            + " |"
                        )
        lines.append("")
        lines += across_seeds(sets, per_seed)
    lines += [
        "After each epoch, on 100 train items (seen in training) and 100 test items (5-vote p):",
        "",
        "| run | epoch | step | train KL | test KL | train accuracy | test accuracy |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in longer:
        for run in (one_epoch_twin(name), name):
            path = HERE / f"eval_history_{run}.json"
            if not path.is_file():
                continue
            for row in json.loads(path.read_text()):
                lines.append(
                    f"| {label(run)} | {row['epoch']:.0f} | {row['step']} | "
                    f"{row['eval_train_kl']:.3f} | {row['eval_test_kl']:.3f} | "
                    f"{row['eval_train_acc']:.3f} | {row['eval_test_acc']:.3f} |"
                )
    return [*lines, ""], records


def running_curves(logs: Path) -> dict[str, list[tuple[float, float, float, float]]]:
    """Per run, parsed once: (epoch, items passed, running train KL, running train accuracy).
    Items passed counts every pass: 2,400 items over 2 epochs end at 4,800."""
    curves = {}
    for path in sorted(logs.glob("train_*.log")):
        text = path.read_text(errors="replace")
        n_items = int(re.search(r"training on (\d+) train-split items", text).group(1))
        rows = []
        for logged in re.findall(r"\{'loss'[^}]*\}", text):
            row = ast.literal_eval(logged)
            epoch = float(row["epoch"])
            rows.append((epoch, epoch * n_items, float(row["train_kl"]), float(row["train_acc"])))
        if rows:
            curves[path.stem.removeprefix("train_")] = rows
    return curves


def first_epoch(curves: dict) -> dict[str, list[tuple[float, float, float]]]:
    """Per run: (items seen, running train KL, running train accuracy) in the first epoch."""
    picked = {name: [r[1:] for r in rows if r[0] <= 1.0] for name, rows in curves.items()}
    return {name: rows for name, rows in picked.items() if rows}


def plot_epochs(curves: dict, prior_kl: float, path: Path) -> bool:
    """The longer runs over all their epochs, one panel per method, one colour per seed: the
    running train KL (from epoch 1 on, on items seen before), the train and test KL on 100 items
    each after every epoch, and the 1-epoch run of the same method and seed beside it (dotted).
    False when there is no longer run."""
    runs = {n: RUN.match(n) for n in curves}
    longer = [n for n, r in runs.items() if r and epochs_of(r) > 1]
    if not longer:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    methods = [m for m in METHODS if any(runs[n]["method"] == m for n in longer)]
    seeds = sorted({runs[n]["seed"] for n in longer}, key=int)
    seed_colour = dict(zip(seeds, ("tab:blue", "tab:orange", "tab:green", "tab:red")))
    fig, axes = plt.subplots(
        1, len(methods), figsize=(4.5 * len(methods) + 2.5, 4.5), sharey=True, squeeze=False
    )
    for ax, method in zip(axes[0], methods):
        for name in (n for n in longer if runs[n]["method"] == method):
            colour = seed_colour[runs[name]["seed"]]
            for run, style in ((name, "-"), (one_epoch_twin(name), ":")):
                if run in curves:
                    epochs, _, kl, _ = zip(*curves[run])
                    ax.plot(epochs, kl, ls=style, lw=0.8, color=colour, alpha=0.5)
                history = HERE / f"eval_history_{run}.json"
                if history.is_file():
                    rows = json.loads(history.read_text())
                    epochs = [r["epoch"] for r in rows]
                    test_kl = [r["eval_test_kl"] for r in rows]
                    ax.plot(epochs, test_kl, marker="o", ls=style, color=colour)
                    train_kl = [r["eval_train_kl"] for r in rows]
                    ax.plot(epochs, train_kl, marker="s", ls="none", mfc="none", color=colour)
        ax.axhline(prior_kl, color="k", ls="--")
        ax.set_title(METHODS[method])
        ax.set_xlabel("epoch")
        ax.set_ylim(0.3, 1.2)
    axes[0][0].set_ylabel("KL(p‖q), 5-vote p")
    handles = [Line2D([], [], color=seed_colour[s], label=f"seed {s}") for s in seeds] + [
        Line2D([], [], color="grey", ls="-", label="longer run"),
        Line2D([], [], color="grey", ls=":", label="1-epoch run, same seed"),
        Line2D(
            [],
            [],
            color="grey",
            lw=0.8,
            alpha=0.5,
            label="running train KL (training mode;\nafter epoch 1 on items seen before)",
        ),
        Line2D([], [], color="grey", marker="o", label="test KL, 100 items"),
        Line2D(
            [], [], color="grey", marker="s", mfc="none", ls="none", label="train KL, 100 items"
        ),
        Line2D([], [], color="k", ls="--", label="prior (reads nothing), train split"),
    ]
    fig.legend(handles=handles, loc="center right", fontsize=8)
    fig.suptitle("SNLI, 2,400 train items: more epochs (solid) against one (dotted)")
    fig.tight_layout(rect=(0, 0, 1 - 2.4 / (4.5 * len(methods) + 2.5), 1))
    fig.savefig(path, dpi=120)
    return True


def plot(curves: dict, prior_kl: float, prior_acc: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for name, rows in curves.items():
        e, kl, acc = zip(*rows)
        run = RUN.match(name)  # a CPU run (2,400 items, seeds): thin; a GPU run (all items): bold
        method = run["method"] if run else name.rsplit("_s", 1)[0]
        style = {"lw": 0.8, "alpha": 0.7} if run else {"lw": 2.2}
        label = f"{METHODS.get(method, method)}, " + (f"2,400, s{run['seed']}" if run else "all")
        if run and epochs_of(run) > 1:  # its first pass, under a slower-decaying learning rate
            label += f", {epochs_of(run)}-epoch run"
            style["ls"] = ":"
        for ax, ys in zip(axes, (kl, acc)):
            ax.plot(
                e, ys, color=COLOURS.get(method), label=label if ax is axes[0] else None, **style
            )
    axes[0].axhline(prior_kl, color="k", ls="--", label="prior (reads nothing)")
    axes[1].axhline(prior_acc, color="k", ls="--")
    axes[0].set_ylabel("running KL(p‖q) on items not yet seen")
    axes[1].set_ylabel("running accuracy vs majority")
    for ax in axes:
        ax.set_xlabel("train items seen (first pass: every batch is new)")
    fig.suptitle(
        "SNLI, first pass: all train items (GPU, stopped; bold) and 2,400 items (CPU, 3 seeds)"
    )
    fig.legend(loc="center right", fontsize=7)
    fig.tight_layout(rect=(0, 0, 0.78, 1))
    fig.savefig(path, dpi=120)


def main() -> None:
    test, chaos, prior, train_p = docs()
    prior_scores = np.log(prior)
    out: list[str] = ["# SNLI with more data (`results/more_data/snli`)", ""]
    judges_all: dict = {}
    for folder in sorted((HERE / "eval").iterdir()):
        if folder.is_dir() and folder.name != "prior":
            s = scores(folder, SNLI)
            if s:
                judges_all[folder.name] = s
    ids = sorted(set(test).intersection(*(set(s) for s in judges_all.values())))
    const = {i: prior_scores for i in set(test) | set(chaos)}
    temps = {
        name: fit_from_samples(HERE / "eval_train" / name)
        for name in judges_all
        if list((HERE / "eval_train" / name).glob("**/samples_*"))
    }
    entries = {"prior (reads nothing)": (const, 1.0)} | with_temperatures(judges_all, temps)
    p = np.array([test[i]["p"] for i in ids])
    out += table(
        f"Every SNLI test item ({len(ids)}), 5-vote p",
        p,
        ids,
        entries,
        "Δ = judge − prior, paired bootstrap over items; temperatures fitted on 200 train items.",
    )
    # (b) the 300 snli_repro items: the same judge trained on 200 vs 2,400 items
    small = {n: scores(REPRO / n, SNLI) for n in SMALL}
    small = {n: s for n, s in small.items() if s}
    ids300 = sorted(set(ids).intersection(*(set(s) for s in small.values())))
    entries300 = {"prior (reads nothing)": (const, 1.0)}
    entries300 |= {SMALL[n]: (s, 1.0) for n, s in small.items()}
    entries300 |= {k: v for k, v in entries.items() if k != "prior (reads nothing)"}
    out += table(
        f"The {len(ids300)} test items of snli_repro/: 200 vs 2,400 train items",
        np.array([test[i]["p"] for i in ids300]),
        ids300,
        entries300,
        "snli_repro's judges saw 200 train items (50 steps of 4); the same items, paired.",
    )
    records = {}
    p300 = np.array([test[i]["p"] for i in ids300])
    for name in judges_all:
        run = RUN.match(name)
        if run and run["method"] in small:
            a = metrics(p300, judges_all[name], ids300, 1.0)
            b = metrics(p300, small[run["method"]], ids300, 1.0)
            res = paired_test(b["kl"], a["kl"], seed=0)
            records[f"{name} - snli_repro {run['method']} (300 items)"] = res
            out.append(
                f"- {name} − snli_repro {METHODS[run['method']]} on the same 300 items: "
                f"{res['mean_diff']:+.3f} [{res['lo']:+.3f}, {res['hi']:+.3f}], p {res['p']:.3f}"
            )
    out.append("")
    # (c) ChaosNLI-SNLI test items against the 100-vote p
    chaos_judges = {}
    for name in judges_all:
        s = scores(HERE / "eval_chaos" / name, TRUTH)
        if s:
            chaos_judges[name] = s
    cids = sorted(set(chaos).intersection(*(set(s) for s in chaos_judges.values())))
    centries = {"prior (reads nothing)": (const, 1.0)} | with_temperatures(chaos_judges, temps)
    groups = len({chaos[i]["split_key"] for i in cids})
    out += table(
        f"Every ChaosNLI-SNLI test item ({len(cids)}, {groups} premises), 100-vote p",
        np.array([chaos[i]["p"] for i in cids]),
        cids,
        centries,
        "The ambiguous items; the prior is distjudge_snli's (mean 5-vote p of its train split).",
    )
    five = score_rows(
        np.array([chaos[i]["p5"] for i in cids]), np.tile(prior_scores, (len(cids), 1))
    )
    out += [f"(The prior's KL against these items' 5-vote p: {five['kl'].mean():.3f}.)", ""]
    # (d) the methods against each other, at 2,400 items
    sets = {
        "KL vs 5-vote p, all test items": (p, ids, judges_all, "kl"),
        "worst KL δ=0.25, all test items": (p, ids, judges_all, "worst"),
        "KL vs 100-vote p, ChaosNLI-SNLI": (
            np.array([chaos[i]["p"] for i in cids]), cids, chaos_judges, "kl"),
    }  # fmt: skip
    method_lines, method_records = method_comparison(sets)
    out += method_lines
    records |= method_records
    epoch_lines, epoch_records = epoch_comparison(sets, temps)
    out += epoch_lines
    records |= epoch_records
    # first-epoch curves
    prior_train = score_rows(train_p, np.tile(prior_scores, (len(train_p), 1)))
    all_epochs = running_curves(HERE / "logs")
    curves = first_epoch(all_epochs)
    if curves:
        plot(curves, prior_train["kl"].mean(), prior_train["acc"].mean(), HERE / "first_epoch.png")
        if plot_epochs(all_epochs, prior_train["kl"].mean(), HERE / "epochs.png"):
            out.append("The longer runs over all their epochs: `epochs.png`.")
            out.append("")
        out += [
            "## First epoch: running KL on items the judge has not seen yet",
            "",
            f"The prior on the train split: KL {prior_train['kl'].mean():.3f}, accuracy "
            f"{prior_train['acc'].mean():.3f}. Each running value averages the last logging "
            "window's batches (GPU: 20 steps × 16 items; CPU: 5 × 16), in training mode.",
            "",
            "| run | items seen | running KL | running accuracy |",
            "|---|---:|---:|---:|",
        ]
        for name, rows in curves.items():
            picked = rows[4::5] if rows[-1] in rows[4::5] else [*rows[4::5], rows[-1]]
            for seen, kl, acc in picked:
                out.append(f"| {name} | {seen:,.0f} | {kl:.3f} | {acc:.3f} |")
        out.append("")
    text = "\n".join(out)
    (HERE / "summary.md").write_text(text)
    (HERE / "summary.json").write_text(json.dumps({"prior_q": prior.tolist(), "tests": records}))
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
