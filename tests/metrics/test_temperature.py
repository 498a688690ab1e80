"""Temperature fit: recovers a known T*, agrees with a brute-force grid, reads lm-eval samples."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.special import softmax
from scipy.stats import entropy as scipy_entropy

from distjudge_eval import temperature as T
from distjudge_eval.metrics import item_metrics


def synthetic(t_star: float, n: int = 400, k: int = 3, seed: int = 0):
    """Judge scores ℓ whose calibrated distribution is softmax(ℓ / T*); p = that distribution."""
    rng = np.random.default_rng(seed)
    scores = rng.normal(scale=3.0, size=(n, k)) - 4.0
    ps = softmax(scores / t_star, axis=1)
    return scores, ps


@pytest.mark.parametrize("t_star", [0.3, 1.0, 2.7, 11.0])
def test_fit_recovers_the_true_temperature(t_star: float) -> None:
    scores, ps = synthetic(t_star)
    assert T.fit_temperature(scores, ps) == pytest.approx(t_star, rel=0.01)


def test_fit_matches_a_brute_force_grid_on_noisy_targets() -> None:
    rng = np.random.default_rng(1)
    scores, _ = synthetic(1.0, n=300, k=4)
    votes = np.array([rng.multinomial(5, q) for q in softmax(scores / 2.0, axis=1)])
    ps = votes / votes.sum(1, keepdims=True)
    fitted = T.fit_temperature(scores, ps)
    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 4001))

    def mean_kl(t: float) -> float:  # independent: scipy's KL (with the metric's floor)
        qs = np.maximum(softmax(scores / t, axis=1), 1e-12)
        return float(np.mean(scipy_entropy(ps.T, qs.T)))

    best = grid[np.argmin([mean_kl(t) for t in grid])]
    assert fitted == pytest.approx(best, rel=2e-3)
    assert mean_kl(fitted) <= min(mean_kl(best), mean_kl(1.0)) + 1e-9


def write_samples(path: Path, scores: np.ndarray, ps: np.ndarray) -> None:
    with gzip.open(path, "wt") as fh:
        for i, (s, p) in enumerate(zip(scores, ps)):
            row = {
                "doc_id": i,
                "doc": {"id": f"i{i}", "p": p.tolist()},
                "filtered_resps": [[str(v), "False"] for v in s],
                **item_metrics(p, s, f"i{i}"),
            }
            fh.write(json.dumps(row) + "\n")


def test_fit_from_samples_and_calibrate_main(tmp_path: Path, capsys) -> None:
    scores, ps = synthetic(2.0, n=60)
    run = tmp_path / "run" / "model"
    run.mkdir(parents=True)
    write_samples(run / "samples_distjudge_x_2026-01-01T00-00-00.jsonl.gz", scores, ps)
    assert T.fit_from_samples(tmp_path / "run") == pytest.approx(2.0, rel=0.01)
    assert T.main([str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "temperature: 2" in out and "mean KL at T=1:" in out
    with pytest.raises(FileNotFoundError):
        T.fit_from_samples(tmp_path / "nothing")


def test_mixed_label_counts_and_bad_input() -> None:
    scores = [[0.0, -1.0], [0.0, -1.0, -2.0]]
    ps = [softmax(np.array(s) / 3.0) for s in scores]
    assert T.fit_temperature(scores, ps) == pytest.approx(3.0, rel=1e-3)
    with pytest.raises(ValueError, match="scores but"):
        T.fit_temperature([[0.0, 1.0]], [[1.0, 0.0, 0.0]])
