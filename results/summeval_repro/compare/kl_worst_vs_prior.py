# Paired tests (distjudge_eval.compare.paired_test: bootstrap 95% CI, sign-flip p) of kl_worst_0.20,
# kl_worst_0.25 and kl_exp_0.25 of each named run against eval/prior, per task and pooled over tasks.
# Usage (repo root): python results/summeval_repro/compare/kl_worst_vs_prior.py <folder> <runs...>
#   e.g. summeval_repro no_adversary full  (reads results/<folder>/eval/{prior,<runs>})
# "ALL (pooled)" treats every (task, item) as independent: meaningful across SummEval's four
# dimensions only with that caveat, and NOT for MT-Bench, whose three tasks are the same items.
# Runs stored before kl_worst existed gain it on load (distjudge_eval.runs backfill): minutes.
import sys, numpy as np
from pathlib import Path
from distjudge_eval.compare import load_run, paired_test, comparison_seed, shared_ids
rep = sys.argv[1]; names = sys.argv[2:]
E = Path(f"results/{rep}/eval")
runs = [load_run(E / n, n) for n in ["prior", *names]]
tasks = [t for t in sorted(runs[0].samples) if all(t in r.samples for r in runs)]
for metric in ["kl_worst_0.20", "kl_worst_0.25", "kl_exp_0.25"]:
    for r in runs[1:]:
        diffs_a, diffs_b = [], []
        for t in tasks:
            ids = shared_ids(runs, t)
            a = np.array([float(runs[0].samples[t][i][metric]) for i in ids])
            b = np.array([float(r.samples[t][i][metric]) for i in ids])
            res = paired_test(a, b, comparison_seed("prior", r.name, t, metric))
            print(f"{metric} {r.name} {t}: prior {a.mean():.3f} run {b.mean():.3f} Δ {res['mean_diff']:+.3f} [{res['lo']:+.3f}, {res['hi']:+.3f}] p {res['p']:.4f} n {res['n']}")
            diffs_a.append(a); diffs_b.append(b)
        if len(tasks) > 1:
            a = np.concatenate(diffs_a); b = np.concatenate(diffs_b)
            res = paired_test(a, b, comparison_seed("prior", r.name, "all", metric))
            print(f"{metric} {r.name} ALL ({len(a)} items, pooled): Δ {res['mean_diff']:+.3f} [{res['lo']:+.3f}, {res['hi']:+.3f}] p {res['p']:.4f}")
