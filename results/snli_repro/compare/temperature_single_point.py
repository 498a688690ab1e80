"""Temperature-scaled single-point (retrained adapter) on the SNLI test items, against the prior.
T comes from `distjudge calibrate eval/single_point_rt_train` (logs/calibrate_single_point_rt.log);
q_T is recomputed exactly from the stored label scores of eval/single_point_rt
(distjudge_eval.metrics.metrics_from_sample(row, temperature=T): the same numbers an eval with
--metadata '{"temperature": T}' writes, checked on the raw judge: 0.8301 both ways).
Usage (repo root): python results/snli_repro/compare/temperature_single_point.py 2.61718"""
import sys
from pathlib import Path
import numpy as np
from distjudge_eval.compare import comparison_seed, paired_test
from distjudge_eval.metrics import metrics_from_sample
from distjudge_eval.runs import read_run

T = float(sys.argv[1])
E = Path("results/snli_repro/eval")
prior = read_run(E / "prior").samples["distjudge_snli"]
sp = read_run(E / "single_point_rt").samples["distjudge_snli"]
ids = sorted(set(prior) & set(sp))
assert all(prior[i]["doc"]["id"] == sp[i]["doc"]["id"] for i in ids)
kp = np.array([prior[i]["kl"] for i in ids])
k1 = np.array([sp[i]["kl"] for i in ids])
kt = np.array([metrics_from_sample(sp[i], temperature=T)["kl"] for i in ids])
print(f"n {len(ids)}  prior KL {kp.mean():.4f}  single-point (retrained) T=1 {k1.mean():.4f}  T={T:g} {kt.mean():.4f}")
for name, v in (("T=1", k1), (f"T={T:g}", kt)):
    r = paired_test(kp, v, comparison_seed("prior", "single_point_rt", name))
    print(f"single-point {name} - prior: {r['mean_diff']:+.4f} [{r['lo']:+.4f}, {r['hi']:+.4f}] p {r['p']:.4f}")
r = paired_test(k1, kt, comparison_seed("single_point_rt", "T"))
print(f"T-scaled - unscaled: {r['mean_diff']:+.4f} [{r['lo']:+.4f}, {r['hi']:+.4f}] p {r['p']:.4f}")
