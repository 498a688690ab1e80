"""The closing tables of results/README.md (#13 §6): one table per benchmark, every judge on the
same test items, each cell a mean with its 95% bootstrap interval over items.

Rows: prior (reads nothing), raw, temperature-scaled raw and single-point (where a temperature
was fitted on train items), single-point, w/o adversary, full. Columns: KL vs the task's own p
(what the judges were trained on: 5 votes on SNLI and MNLI, SummEval's ratings, MT-Bench's
votes), KL vs the 100-vote p (ChaosNLI items), certified worst-case KL at δ = 0.25, ECE,
accuracy against the plurality. Judges trained with several seeds (MNLI) are pooled: each
item's value is averaged over the seeds, then the interval is taken over items. No model runs:
this rescores the stored per-label scores in each folder's eval/ with the package's metric
functions.

Usage (repo root): DISTJUDGE_DATA_DIR=../shared/data python results/final_tables.py
Writes results/final_tables.md and prints it.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from distjudge_eval.compare import bootstrap_ci
from distjudge_eval.metrics import (
    expected_calibration_error,
    log_softmax,
    score_rows,
    scores_from_results,
)
from distjudge_eval.runs import read_run
from distjudge_eval.temperature import fit_from_samples

RESULTS = Path(__file__).resolve().parent
SEED = 0
ECE_RESAMPLES = 1000
COLUMNS = ["kl5", "kl100", "worst", "ece", "acc"]
# folder in <benchmark>/eval, row label, temperature: the judges every repro folder holds
REPRO_JUDGES = [
    ("prior", "prior (reads nothing)", 1.0),
    ("raw", "raw", 1.0),
    ("single_point", "single-point", 1.0),
    ("no_adversary", "w/o adversary", 1.0),
    ("full", "full", 1.0),
]
HEAD = ["KL vs task p↓", "KL vs 100-vote p↓", "worst KL δ=0.25↓", "ECE↓", "accuracy↑"]


def stored(folder: Path, tasks: list[str]) -> dict[tuple[str, str], tuple[np.ndarray, list]]:
    """(task, item id) -> (5-vote p, per-label scores) from a judge's stored samples."""
    run = read_run(folder)
    out = {}
    for task in tasks:
        for row in run.samples[task].values():
            p = np.asarray(row["doc"]["p"], dtype=float)
            out[(task, str(row["doc"]["id"]))] = (p, scores_from_results(row["filtered_resps"]))
    return out


def ece_of(conf: np.ndarray, acc: np.ndarray) -> float:
    rows = [{"confidence": float(c), "correct": float(a)} for c, a in zip(conf, acc)]
    return expected_calibration_error(rows)


def ece_ci(conf: np.ndarray, acc: np.ndarray) -> tuple[float, float]:
    """Percentile bootstrap of ECE over items (ECE is not a mean of per-item values)."""
    rng = np.random.default_rng(SEED)
    draws = [
        ece_of(conf[i], acc[i]) for i in rng.integers(0, len(conf), (ECE_RESAMPLES, len(conf)))
    ]
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def cell(values: np.ndarray) -> str:
    lo, hi = bootstrap_ci(values, SEED)
    return f"{values.mean():.3f} [{lo:.3f}, {hi:.3f}]"


def judge_row(
    runs: list[dict], keys: list, temperature: float | list[float], truth: dict | None
) -> dict[str, str]:
    """One table row: the seeds' runs rescored on ``keys`` (pooled per item over seeds)."""
    temps = temperature if isinstance(temperature, list) else [temperature] * len(runs)
    per_seed5, per_seed100 = [], []
    for run, t in zip(runs, temps):
        log_q = [log_softmax(np.asarray(run[k][1], dtype=float) / t) for k in keys]
        per_seed5.append(score_rows([run[k][0] for k in keys], log_q))
        if truth is not None:
            per_seed100.append(score_rows([truth[k[1]] for k in keys], log_q))
    pooled5 = {m: np.mean([s[m] for s in per_seed5], axis=0) for m in per_seed5[0]}
    row = {"kl5": cell(pooled5["kl"])}
    main = pooled5
    if truth is not None:
        pooled100 = {m: np.mean([s[m] for s in per_seed100], axis=0) for m in per_seed100[0]}
        row["kl100"] = cell(pooled100["kl"])
        main = pooled100  # worst case, ECE and accuracy against the closest thing to the truth
    else:
        row["kl100"] = "—"
    row["worst"] = cell(main["worst"])
    eces = [ece_of(s["conf"], s["acc"]) for s in (per_seed100 or per_seed5)]
    if len(runs) == 1:
        lo, hi = ece_ci(main["conf"], main["acc"])
        row["ece"] = f"{eces[0]:.3f} [{lo:.3f}, {hi:.3f}]"
    else:
        row["ece"] = f"{np.mean(eces):.3f} ± {np.std(eces, ddof=1):.3f} (seeds)"
    row["acc"] = cell(main["acc"])
    return row


def render(title: str, note: str, rows: list[tuple[str, dict[str, str]]]) -> list[str]:
    lines = [f"### {title}", "", note, "", "| judge | " + " | ".join(HEAD) + " |"]
    lines.append("|---|" + "---:|" * len(HEAD))
    for name, row in rows:
        lines.append(f"| {name} | " + " | ".join(row[c] for c in COLUMNS) + " |")
    return [*lines, ""]


def benchmark_rows(
    folder: str, tasks: list[str], judges: list[tuple], truth: dict | None
) -> tuple[list[tuple[str, dict[str, str]]], int]:
    """judges: (eval folder, or a tuple of one judge's seed folders, row label, temperature);
    every row on the items all of them scored."""

    def seeds(entry: str | tuple[str, ...]) -> tuple[str, ...]:
        return entry if isinstance(entry, tuple) else (entry,)

    runs = {f: stored(RESULTS / folder / "eval" / f, tasks) for e, _, _ in judges for f in seeds(e)}
    keys = sorted(set.intersection(*(set(r) for r in runs.values())))
    if truth is not None:
        keys = [k for k in keys if k[1] in truth]
    rows = [
        (label, judge_row([runs[f] for f in seeds(e)], keys, t, truth)) for e, label, t in judges
    ]
    return rows, len(keys)


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def snli_tables(
    lines: list[str], folder: str, judges: list, title: str, note: str, source: str = ""
) -> None:
    """One SNLI judge set, twice: every test item against the 5-vote p, then the test items
    ChaosNLI re-annotated against the 100-vote p."""
    rows, n = benchmark_rows(folder, ["distjudge_snli"], judges, None)
    lines += render(title, f"{n:,} test items, 5-vote p; {note}", rows)
    truth_mod = load_module(RESULTS / "snli_repro/compare/chaosnli_truth.py", "chaosnli_truth")
    docs, _ = truth_mod.chaos_docs()
    truth = {i: np.asarray(d["p"], dtype=float) for i, d in docs.items()}
    rows, n = benchmark_rows(folder, ["distjudge_snli"], judges, truth)
    lines += render(
        f"{title}: the items ChaosNLI re-annotated{source}",
        f"The {n} of those test items that have 100 votes (the ambiguous ones); worst case, ECE "
        "and accuracy against the 100-vote p.",
        rows,
    )


SNLI_BASELINES = [
    ("prior", "prior (reads nothing)", 1.0),
    ("raw", "raw", 1.0),
    ("raw", "raw, temperature-scaled (T = 100, fitted on 200 train items)", 100.0),
]


def snli(lines: list[str]) -> None:
    judges = [
        *SNLI_BASELINES,
        (
            "single_point_rt",
            "single-point (retrained, seeded), T = 2.617 (200 train items)",
            2.61718,
        ),
        ("single_point", "single-point", 1.0),
        ("single_point_rt", "single-point (retrained, seeded)", 1.0),
        ("no_adversary", "w/o adversary", 1.0),
        ("full", "full", 1.0),
    ]
    note = "one seed; 200 train items, 50 steps."
    source = " (`snli_repro/compare/chaosnli_truth.md`)"
    snli_tables(lines, "snli_repro", judges, "SNLI (`snli_repro/`)", note, source)


def snli_more_data(lines: list[str]) -> None:
    """The 2,400-item SNLI judges: every method at 1 epoch, then the methods that also ran the
    paper's 2 epochs (with their own seeds' 1-epoch runs beside them). Single-point also
    appears temperature-scaled, each seed at the T fitted on its own 200 train-item scores."""
    analyse = load_module(RESULTS / "more_data/analyse_snli.py", "analyse_snli")
    here = RESULTS / "more_data/snli"
    runs = {f.name: analyse.RUN.match(f.name) for f in (here / "eval").iterdir() if f.is_dir()}
    runs = {n: r for n, r in runs.items() if r and r["items"] == "2400"}
    fitted = functools.cache(lambda run: fit_from_samples(here / "eval_train" / run))  # both tables

    def rows_for(method: str, folders: list[str], epochs: int) -> list[tuple]:
        seeds = ", ".join("s" + analyse.RUN.match(f)["seed"] for f in folders)
        name = f"{analyse.METHODS[method]}, {epochs} epoch{'s' if epochs > 1 else ''} ({seeds})"
        rows = [(tuple(folders), name, 1.0)]
        if method == "single_point":
            temps = [fitted(f) for f in folders]
            t_range = (
                f"T {min(temps):.2f}-{max(temps):.2f}" if len(temps) > 1 else f"T {temps[0]:.2f}"
            )
            rows.insert(0, (tuple(folders), f"{name}, temperature-scaled ({t_range})", temps))
        return rows

    judges: list[tuple] = [*SNLI_BASELINES]
    for method in analyse.METHODS:
        folders = sorted(n for n, r in runs.items() if r["method"] == method and not r["epochs"])
        if folders:
            judges += rows_for(method, folders, 1)
    note = (
        "all of them; judges trained on 2,400 train items, 1 epoch of 150 steps, on CPU. The "
        "judges above saw 200. Several seeds: per-item values averaged over seeds, intervals "
        "over items, ECE as mean ± sd over seeds; temperatures fitted per seed on 200 train "
        "items; each seed and the paired tests per seed: `more_data/snli/summary.md`."
    )
    snli_tables(lines, "more_data/snli", judges, "SNLI with more data (`more_data/snli/`)", note)
    longer = sorted({int(r["epochs"]) for r in runs.values() if r["epochs"]})
    for epochs in longer:
        judges = [*SNLI_BASELINES]
        for method in analyse.METHODS:
            folders = sorted(
                n for n, r in runs.items() if r["method"] == method and r["epochs"] == str(epochs)
            )
            if folders:  # the same seeds at 1 epoch, then at the longer length
                judges += rows_for(method, [analyse.one_epoch_twin(f) for f in folders], 1)
                judges += rows_for(method, folders, epochs)
        note = (
            f"all of them; the paper's regime: the same 2,400 train items for {epochs} epochs "
            f"({150 * epochs} steps), for the methods that ran it, next to their 1-epoch runs "
            "of the same seeds. Pooled over seeds as above; per seed: "
            "`more_data/snli/summary.md` (More epochs)."
        )
        title = f"SNLI with more data, {epochs} epochs (`more_data/snli/`)"
        snli_tables(lines, "more_data/snli", judges, title, note)


def summeval(lines: list[str]) -> None:
    tasks = [
        f"distjudge_summeval_{d}" for d in ("coherence", "consistency", "fluency", "relevance")
    ]
    rows, n = benchmark_rows("summeval_repro", tasks, REPRO_JUDGES, None)
    lines += render(
        "SummEval, 4 dimensions pooled (`summeval_repro/`)",
        f"{n} (item, dimension) pairs = 20 articles × 3 systems × 4 dimensions; intervals over "
        "pairs (optimistic: 20 articles). One seed. Temperature scaling not run (no train-item "
        "scores stored).",
        rows,
    )


def mtbench(lines: list[str]) -> None:
    rows, n = benchmark_rows("mtbench_repro", ["distjudge_mtbench"], REPRO_JUDGES, None)
    lines += render(
        "MT-Bench, canonical slot order (`mtbench_repro/`)",
        f"{n} test items from 4 questions (a question-level test cannot go below p = 0.125); "
        "one seed; temperature scaling not run.",
        rows,
    )


def mnli(lines: list[str]) -> None:
    mnli_table(lines, "mnli_truth", "100 train items")
    mnli_table(lines, "more_data/mnli", "all 1,271 train items (one H200)")


def mnli_table(lines: list[str], folder: str, trained_on: str) -> None:
    analyse = load_module(RESULTS / "mnli_truth/analyse.py", "mnli_analyse")
    truth_docs, five_docs, _, groups = analyse.load_docs(None)
    truth = {i: np.asarray(d["p"], dtype=float) for i, d in truth_docs.items()}
    out = RESULTS / folder
    keys = sorted(("t", i) for i in truth)
    five = {("t", i): (np.asarray(five_docs[i]["p"], dtype=float)) for i in truth}
    # the prior: mean 5-vote p of the train split, as analyse.py computed and stored it
    prior_q = np.asarray(json.loads((out / "summary.json").read_text())["prior_q"])
    prior_run = {k: (five[k], list(np.log(prior_q))) for k in keys}

    def runs_of(name: str) -> list[dict]:
        folders = (
            [out / "eval" / "raw"]
            if name == "raw"
            else sorted(f for f in (out / "eval").glob(f"{name}_s*") if f.is_dir())
        )
        found = []
        for folder in folders:
            scores = analyse.scores_of(folder, analyse.TRUTH)
            if set(scores) != set(truth):
                raise SystemExit(f"{folder}: scored {len(scores)} of {len(truth)} test items")
            found.append({("t", i): (five[("t", i)], scores[i]) for i in truth})
        return found

    def temps_of(name: str) -> list[float]:
        folders = (
            [out / "eval_train" / "raw"]
            if name == "raw"
            else sorted(f for f in (out / "eval_train").glob(f"{name}_s*") if f.is_dir())
        )
        return [fit_from_samples(f) for f in folders]

    rows = [("prior (reads nothing)", judge_row([prior_run], keys, 1.0, truth))]
    raw = runs_of("raw")
    rows.append(("raw", judge_row(raw, keys, 1.0, truth)))
    t_raw = temps_of("raw")
    rows.append(
        (f"raw, temperature-scaled (T = {t_raw[0]:.2f})", judge_row(raw, keys, t_raw, truth))
    )
    for name, label in (
        ("single_point", "single-point"),
        ("no_adversary", "w/o adversary"),
        ("eps0.1", "adversary ε=0.1"),
        ("full", "full (ε=0.25)"),
    ):
        runs = runs_of(name)
        if not runs:
            continue
        seeds = f" ({len(runs)} seed{'s' * (len(runs) > 1)})"
        rows.append((label + seeds, judge_row(runs, keys, 1.0, truth)))
        temps = temps_of(name)
        if len(temps) == len(runs):
            t_cell = "/".join(f"{t:.2f}" for t in temps)
            rows.append(
                (
                    f"{label}, temperature-scaled (T = {t_cell}){seeds}",
                    judge_row(runs, keys, temps, truth),
                )
            )
    lines += render(
        f"MNLI, ChaosNLI items (`{folder}/`)",
        f"All {len(keys)} test items ({groups} premises); trained on 5-vote p of {trained_on}, "
        "2 epochs; temperatures fitted on each judge's train-item scores. Several seeds: per-item "
        "values averaged over seeds, intervals over items; ECE as mean ± sd over seeds.",
        rows,
    )


BENCHMARKS: list[Callable[[list[str]], None]] = [snli, snli_more_data, mnli, summeval, mtbench]


def main() -> None:
    lines = ["## Final tables, one per benchmark", ""]
    lines += [
        "Generated by `python results/final_tables.py` from the stored per-label scores; mean "
        "[95% bootstrap interval over items]. Read every table from its **prior** row: a judge "
        "is worth using only where its interval lies below the prior's mean. *Task p*: the "
        "human p the judges were trained on (5 votes on SNLI and MNLI, SummEval's ratings, "
        "MT-Bench's votes); *100-vote p*: ChaosNLI's. Worst case, ECE and accuracy are taken "
        "against the 100-vote p where a table has it.",
        "",
    ]
    for benchmark in BENCHMARKS:
        benchmark(lines)
    text = "\n".join(lines)
    (RESULTS / "final_tables.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
