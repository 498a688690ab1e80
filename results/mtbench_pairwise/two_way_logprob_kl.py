"""2-way KL of the logprob judges of ../mtbench_repro, like for like with the verbalized judges:
P(A ≻ B) = q_A + q_tie / 2 against the human binary target (distjudge_eval.pairwise.binary_target),
per slot order and for the order-averaged 3-way q. Reads the committed per-sample files only.
Usage (repo root): python results/mtbench_pairwise/two_way_logprob_kl.py"""
import glob, gzip, json
import numpy as np
from distjudge_eval.pairwise import binary_target, swap_distribution

def load(judge, task):
    f = glob.glob(f"results/mtbench_repro/eval/{judge}/**/samples_{task}_*.jsonl.gz", recursive=True)[0]
    return {r["doc"]["id"]: r for r in map(json.loads, gzip.open(f, "rt"))}

def kl(p, q):
    p, q = np.asarray(p), np.asarray(q); m = p > 0
    return float((p[m] * (np.log(p[m]) - np.log(np.maximum(q[m], 1e-12)))).sum())

print("judge        | 2-way KL original | swapped | order-averaged q | n")
for j in ["prior", "raw", "single_point", "no_adversary", "full"]:
    o, s = load(j, "distjudge_mtbench"), load(j, "distjudge_mtbench_swapped")
    ko, ks, ka = [], [], []
    for i, r in o.items():
        q1 = np.array(r["ece"]["q"]); q2r = np.array(s[i]["ece"]["q"])
        b = binary_target(r["ece"]["p"])
        ko.append(kl(b, binary_target(q1)))
        ks.append(kl(binary_target(s[i]["ece"]["p"]), binary_target(q2r)))
        ka.append(kl(b, binary_target(0.5 * (q1 + np.array(swap_distribution(q2r))))))
    print(f"{j:12s} | {np.mean(ko):.4f} | {np.mean(ks):.4f} | {np.mean(ka):.4f} | {len(ka)}")
o = load("prior", "distjudge_mtbench")
print(f"always 0.5   | {np.mean([kl(binary_target(r['ece']['p']), [0.5, 0.5]) for r in o.values()]):.4f}")
