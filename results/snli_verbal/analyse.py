"""What the SNLI verbalized judges wrote (#13 §5): parse failures, the replies, the written
probabilities against the human p (histograms), and the paired tests between judges that
`distjudge compare` (which tests each run against the first, the prior) does not make.

Usage: python results/snli_verbal/analyse.py results/snli_verbal
Writes written.md and written_probabilities.png into that folder.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np

from distjudge_eval.compare import comparison_seed, paired_test
from distjudge_eval.labels import NLI
from distjudge_eval.metrics import kl_divergence
from distjudge_eval.runs import read_run
from distjudge_eval.verbalized import cut_at_stops, parse_distribution, verbal_q

TASK = "distjudge_snli_verbalized"
JUDGES = ["raw", "sft_dense", "sft_vote", "grpo"]
NAMES = {
    "raw": "raw",
    "sft_dense": "SFT on dense p",
    "sft_vote": "SFT on one vote",
    "grpo": "SFT on one vote + GRPO (Brier, same votes)",
}
PAIRS = [("sft_dense", "sft_vote"), ("grpo", "sft_vote"), ("sft_dense", "grpo")]
SHORT = {"raw": "raw", "sft_dense": "SFT dense", "sft_vote": "SFT one vote", "grpo": "+ GRPO"}


def replies(run) -> tuple[list[int], list[str], np.ndarray, np.ndarray, np.ndarray]:
    """doc ids, reply texts, human p, written q (harness parse; uniform if unparsable), parsed."""
    rows = run.samples[TASK]
    ids = sorted(rows)
    texts = [cut_at_stops(rows[i]["resps"][0][0], ["\n"]).strip() for i in ids]
    p = np.array([rows[i]["doc"]["p"] for i in ids], dtype=np.float64)
    read = [verbal_q(t, NLI) for t in texts]
    q = np.array([r[0] for r in read])
    parsed = np.array([r[1] for r in read])
    stored = np.array([rows[i]["kl"] for i in ids])
    # the stored per-item KL is the harness's reading of the same reply: check it
    recomputed = np.array([kl_divergence(pi, np.log(qi)) for pi, qi in zip(p, q)])
    assert np.allclose(stored, recomputed, atol=1e-9), "stored KL differs from the reply's"
    return ids, texts, p, q, parsed


def main(folder: Path) -> None:
    data = {j: replies(read_run(folder / "eval" / j, j)) for j in JUDGES}
    n = len(data["raw"][0])
    assert all(d[0] == data["raw"][0] for d in data.values()), "judges scored other items"
    p = data["raw"][2]
    lines = [
        "# What the SNLI verbalized judges wrote",
        "",
        f"First {n} test items of `{TASK}`; greedy replies, cut at the newline, read by the "
        "harness's parser (`distjudge_eval.verbalized`). Human p: mean "
        f"{np.round(p.mean(0), 3).tolist()} (entailment, neutral, contradiction); "
        f"{(p.max(1) == 1).mean():.0%} of these items have a unanimous p.",
        "",
        "| judge | parse failures | distinct replies | most common reply (count) | mean written q "
        "| replies that give one label 1.00 | KL↓ |",
        "|---|---:|---:|---|---|---:|---:|",
    ]
    kl = {}
    for j in JUDGES:
        _, texts, _, q, parsed = data[j]
        kl[j] = np.array([kl_divergence(pi, np.log(qi)) for pi, qi in zip(p, q)])
        top, count = Counter(texts).most_common(1)[0]
        written = [parse_distribution(t, NLI) for t in texts]  # before the 0.01 floor
        onehot = sum(w is not None and max(w) == 1.0 for w in written)
        mean_q = np.round(q[parsed].mean(0), 3).tolist() if parsed.any() else "—"
        lines.append(
            f"| {NAMES[j]} | {int((~parsed).sum())} / {n} | {len(set(texts))} | "
            f"`{top[:60]}` ({count}) | {mean_q} | {onehot} | {kl[j].mean():.3f} |"
        )
    lines += [
        "",
        "Unparsable replies are scored as the uniform distribution (the harness's documented "
        "fallback); written probabilities are floored at 0.01 before KL.",
        "",
        "## Paired tests between judges (Δ KL = first − second, same items; bootstrap over items)",
        "",
        "| first | second | Δ KL | 95% CI | p |",
        "|---|---|---:|---|---:|",
    ]
    for a, b in PAIRS:
        res = paired_test(kl[b], kl[a], comparison_seed(a, b))  # mean of a − b
        lines.append(
            f"| {NAMES[a]} | {NAMES[b]} | {res['mean_diff']:+.3f} | "
            f"[{res['lo']:+.3f}, {res['hi']:+.3f}] | {res['p']:.3g} |"
        )
    (folder / "written.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    plot(data, p, folder / "written_probabilities.png")


def plot(data: dict, p: np.ndarray, path: Path) -> None:
    """Rows: judges; columns: labels; histogram of the written probability of that label
    (parsed replies only), with the human p of the same items as an outline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = np.linspace(0, 1, 21)
    fig, axes = plt.subplots(len(JUDGES), 3, figsize=(10, 2.2 * len(JUDGES)), sharex=True)
    for r, j in enumerate(JUDGES):
        _, _, _, q, parsed = data[j]
        for c, label in enumerate(NLI.labels):
            ax = axes[r, c]
            ax.hist(p[:, c], bins=bins, histtype="step", color="black", label="human p")
            if parsed.any():
                ax.hist(q[parsed, c], bins=bins, alpha=0.6, label="written q")
            else:
                ax.text(0.5, 0.5, "no parsable reply", ha="center", transform=ax.transAxes)
            if r == 0:
                ax.set_title(label)
            if c == 0:
                ax.set_ylabel(f"{SHORT[j]}\n(items)", fontsize=8)
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("SNLI verbalized: written probabilities vs human p (first test items)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results/snli_verbal"))
