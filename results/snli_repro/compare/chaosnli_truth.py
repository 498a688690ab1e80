"""#13 §3 on SNLI: every stored SNLI judge scored against the 100-vote p of ChaosNLI.

The SNLI judges were scored on 300 SNLI test items (`results/snli_repro/eval/*`). The ones among
them that ChaosNLI re-annotated with 100 votes (the ambiguous ones) get their 100-vote p here;
each judge's stored per-label scores are scored against both the 5-vote p (what it was trained
on) and the 100-vote p, with the package's metric functions, and compared with the prior on the
same items (paired bootstrap, `distjudge_eval.compare.paired_test`). No model runs: this reads
the committed samples. Temperatures are the fitted ones recorded in ../README.md.

Usage (repo root):
    DISTJUDGE_DATA_DIR=../shared/data python results/snli_repro/compare/chaosnli_truth.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from distjudge_eval.compare import paired_test
from distjudge_eval.metrics import (
    log_softmax,
    score_rows,
    scores_from_results,
)
from distjudge_eval.runs import read_run

HERE = Path(__file__).resolve().parent
EVAL = HERE.parent / "eval"
SNLI, TRUTH, FIVE = "distjudge_snli", "distjudge_chaosnli_snli", "distjudge_chaosnli_snli_5vote"
# judges scored on every ChaosNLI-SNLI test item (eval/chaos_*; the other adapters were not kept)
ALL_ITEMS = [
    ("raw", "raw", 1.0),
    ("raw", "raw, temperature-scaled (T = 100)", 100.0),
    ("single_point_rt", "single-point (retrained, seeded)", 1.0),
    ("single_point_rt", "single-point (retrained), temperature-scaled (T = 2.617)", 2.61718),
]
# folder, label, temperature (fitted on train items; see ../README.md)
JUDGES = [
    ("prior", "prior (reads nothing)", 1.0),
    ("raw", "raw", 1.0),
    ("raw", "raw, temperature-scaled (T = 100)", 100.0),
    ("single_point", "single-point", 1.0),
    ("single_point_rt", "single-point (retrained, seeded)", 1.0),
    ("single_point_rt", "single-point (retrained), temperature-scaled (T = 2.617)", 2.61718),
    ("no_adversary", "w/o adversary", 1.0),
    ("full", "full", 1.0),
]


def chaos_docs() -> tuple[dict[str, dict], set[str]]:
    """ChaosNLI-SNLI docs by id (every split), and the ids of distjudge_snli's train split."""
    from lm_eval.tasks import TaskManager

    from distjudge_eval.paths import tasks_dir

    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False)
    tasks = dict(manager.load([TRUTH, FIVE, SNLI])["tasks"])
    docs = {}
    for split in (tasks[TRUTH].training_docs(), tasks[TRUTH].test_docs()):
        docs.update({str(d["id"]): d for d in split})
    five = {str(d["id"]): np.asarray(d["p"], dtype=float) for d in tasks[FIVE].test_docs()}
    for i, p in five.items():
        docs[i]["p5"] = p
    train_ids = {str(d["id"]) for d in tasks[SNLI].training_docs()}
    return docs, train_ids


def scored(
    folder: str, temperature: float, task: str = SNLI
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per item id: (the doc's p, log q at the temperature) from a judge's stored samples."""
    (run_dir,) = {p.parent for p in (EVAL / folder).glob(f"**/samples_{task}_2*")}
    run = read_run(run_dir)
    out = {}
    for row in run.samples[task].values():
        scores = np.asarray(scores_from_results(row["filtered_resps"]), dtype=float)
        out[str(row["doc"]["id"])] = (
            np.asarray(row["doc"]["p"]),
            log_softmax(scores / temperature),
        )
    return out


TABLE_HEAD = [
    "| judge | KL vs 5-vote p↓ | KL vs 100-vote p↓ | Δ vs prior (100-vote) | p |"
    " worst KL δ=0.25 (100)↓ | ECE (100)↓ | acc (100-vote plurality)↑ |",
    "|---|---:|---:|---|---:|---:|---:|---:|",
]


def table_row(
    label: str, p5: np.ndarray, p100: np.ndarray, log_q: np.ndarray, prior_kl100: np.ndarray
) -> tuple[str, dict]:
    """One judge's line of a table (and its record): metrics against both p's, and the paired
    test of its KL against the prior's on the same items ("—" for the prior itself)."""
    five, hundred = score_rows(p5, log_q), score_rows(p100, log_q)
    if np.array_equal(hundred["kl"], prior_kl100):
        delta, pcell = "—", "—"
    else:
        res = paired_test(prior_kl100, hundred["kl"], seed=0)
        delta = f"{res['mean_diff']:+.3f} [{res['lo']:+.3f}, {res['hi']:+.3f}]"
        pcell = f"{res['p']:.3f}"
    line = (
        f"| {label} | {five['kl'].mean():.3f} | {hundred['kl'].mean():.3f} | {delta} | "
        f"{pcell} | {hundred['worst'].mean():.3f} | {hundred['ece']:.3f} | "
        f"{hundred['acc'].mean():.3f} |"
    )
    record = {"judge": label, "kl5": five["kl"].mean(), "kl100": hundred["kl"].mean(),
              "worst100": hundred["worst"].mean(), "ece100": hundred["ece"],
              "acc100": hundred["acc"].mean(), "delta_vs_prior": delta, "p": pcell}  # fmt: skip
    return line, record


def main() -> None:
    docs, train_ids = chaos_docs()
    runs = {(f, t): scored(f, t) for f, _, t in JUDGES}
    ids = sorted(set.intersection(*(set(r) for r in runs.values())) & set(docs))
    leaked = set(ids) & train_ids
    if leaked:
        raise SystemExit(f"{len(leaked)} items are in distjudge_snli's train split")
    splits = {docs[i]["split"] for i in ids}
    groups = len({docs[i]["split_key"] for i in ids})
    p100 = np.array([docs[i]["p"] for i in ids])
    lines = [
        f"# SNLI judges against ChaosNLI's 100 votes: {len(ids)} of the 300 scored SNLI test "
        f"items ({groups} premises; ChaosNLI split: {', '.join(sorted(splits))})",
        "",
        "Stored per-label scores of each judge (`results/snli_repro/eval/`), rescored; none of",
        "these items is in distjudge_snli's train split. Δ = judge − prior on the same items,",
        "paired bootstrap 95% CI and sign-flip p (`distjudge_eval.compare.paired_test`).",
        "",
        *TABLE_HEAD,
    ]
    prior_kl100 = None
    record = []
    for folder, label, t in JUDGES:
        run = runs[(folder, t)]
        log_q = np.stack([run[i][1] for i in ids])
        p5 = np.array([run[i][0] for i in ids])
        if prior_kl100 is None:  # the first judge is the prior
            prior_kl100 = score_rows(p100, log_q)["kl"]
        line, row = table_row(label, p5, p100, log_q, prior_kl100)
        lines.append(line)
        record.append(row)
    lines += all_test_items(docs, train_ids)
    text = "\n".join(lines) + "\n"
    (HERE / "chaosnli_truth.md").write_text(text)
    (HERE / "chaosnli_truth.json").write_text(json.dumps({"n": len(ids), "rows": record}, indent=1))
    sys.stdout.write(text)


def all_test_items(docs: dict[str, dict], train_ids: set[str]) -> list[str]:
    """The judges whose adapters were kept, scored on every ChaosNLI-SNLI test item."""
    folders = {f: EVAL / f"chaos_{f}" for f, _, _ in ALL_ITEMS}
    if not all(list(f.glob("**/samples_*")) for f in folders.values()):
        return ["", "(eval/chaos_* not found: run the commands in ../README.md for all items)"]
    runs = {(f, t): scored(f"chaos_{f}", t, TRUTH) for f, _, t in ALL_ITEMS}
    ids = sorted(set.intersection(*(set(r) for r in runs.values())))
    if set(ids) & train_ids:
        raise SystemExit("a ChaosNLI test item is in distjudge_snli's train split")
    (prior_dir,) = {p.parent for p in (EVAL / "prior").glob("**/samples_distjudge_snli_*")}
    prior_row = next(iter(read_run(prior_dir).samples[SNLI].values()))
    prior_log_q = log_softmax(np.asarray(scores_from_results(prior_row["filtered_resps"])))
    p100 = np.array([docs[i]["p"] for i in ids])
    p5 = np.array([docs[i]["p5"] for i in ids])
    groups = len({docs[i]["split_key"] for i in ids})
    lines = [
        "",
        f"## Every ChaosNLI-SNLI test item: {len(ids)} items ({groups} premises)",
        "",
        "`distjudge_chaosnli_snli` scored with the raw model and the kept single-point adapter",
        "(eval/chaos_*); the prior is distjudge_snli's (mean 5-vote p of its train split).",
        "",
        *TABLE_HEAD,
    ]
    prior_q = np.tile(prior_log_q, (len(ids), 1))
    prior_kl100 = score_rows(p100, prior_q)["kl"]
    judges = [("prior (reads nothing)", prior_q)]
    judges += [(label, np.stack([runs[(f, t)][i][1] for i in ids])) for f, label, t in ALL_ITEMS]
    for label, log_q in judges:
        lines.append(table_row(label, p5, p100, log_q, prior_kl100)[0])
    return lines


if __name__ == "__main__":
    main()
