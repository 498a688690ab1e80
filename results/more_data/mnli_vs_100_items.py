"""Same method, same seed, 1,271 vs 100 train items (more_data/mnli vs mnli_truth), paired on the
328 ChaosNLI-MNLI test items, against the 100-vote and the 5-vote p. Writes mnli/vs_100_items.txt.

Usage (repo root): DISTJUDGE_DATA_DIR=../shared/data python results/more_data/mnli_vs_100_items.py
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from distjudge_eval.compare import paired_test

RESULTS = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("analyse", RESULTS / "mnli_truth/analyse.py")
analyse = importlib.util.module_from_spec(spec)
assert spec.loader is not None
spec.loader.exec_module(analyse)


def main() -> None:
    truth, five, _, _ = analyse.load_docs(None)
    lines = ["judge | p | 1,271 items | 100 items | Δ [95% CI] | p-value"]
    for folder in sorted((RESULTS / "more_data/mnli/eval").iterdir()):
        small_dir = RESULTS / "mnli_truth/eval" / folder.name
        if folder.name == "raw" or not folder.is_dir() or not small_dir.is_dir():
            continue
        big = analyse.per_item(analyse.scores_of(folder, analyse.TRUTH), truth, five, 1.0)
        small = analyse.per_item(analyse.scores_of(small_dir, analyse.TRUTH), truth, five, 1.0)
        for metric, label in (("kl100", "100-vote"), ("kl5", "5-vote")):
            r = paired_test(small[metric], big[metric], seed=0)
            lines.append(
                f"{folder.name} | {label} | {big[metric].mean():.3f} | {small[metric].mean():.3f}"
                f" | {r['mean_diff']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}] | {r['p']:.3f}"
            )
    text = "\n".join(lines) + "\n"
    (RESULTS / "more_data/mnli/vs_100_items.txt").write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
