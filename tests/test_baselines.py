"""The prior baseline against a hand computation, and its output read back by compare."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from distjudge_eval import baselines as B
from distjudge_eval.compare import load_run


def test_prior_baseline_by_hand(tmp_path: Path) -> None:
    train = [{"id": "a", "p": [1.0, 0.0, 0.0]}, {"id": "b", "p": [0.5, 0.5, 0.0]}]
    test = [{"id": "c", "p": [0.0, 1.0, 0.0]}, {"id": "d", "p": [0.6, 0.2, 0.2]}]
    q, rows = B.prior_baseline(train, test, "distjudge_toy", tmp_path)
    np.testing.assert_allclose(q, [0.75, 0.25, 0.0])
    # KL(p‖q) by hand; q_3 = 0 is floored at 1e-12 where p puts mass on it.
    kl_c = np.log(1 / 0.25)
    kl_d = 0.6 * np.log(0.6 / 0.75) + 0.2 * np.log(0.2 / 0.25) + 0.2 * np.log(0.2 / 1e-12)
    assert rows[0]["kl"] == pytest.approx(kl_c)
    assert rows[1]["kl"] == pytest.approx(kl_d, rel=1e-9)
    assert [r["acc"] for r in rows] == [0.0, 1.0]  # argmax q is label 0
    assert rows[0]["brier"] == pytest.approx(0.75**2 + 0.75**2)
    assert rows[0]["label_mass"] == pytest.approx(1.0)

    results = json.loads(next(tmp_path.glob("results_*.json")).read_text())["results"]
    assert results["distjudge_toy"]["kl,none"] == pytest.approx((kl_c + kl_d) / 2)
    run = load_run(tmp_path, "prior")
    assert sorted(run.samples["distjudge_toy"]) == [0, 1]
    assert run.samples["distjudge_toy"][1]["kl"] == pytest.approx(kl_d, rel=1e-9)


def test_baseline_main_reads_docs_of_two_runs(tmp_path: Path, capsys) -> None:
    for split, ps in (("train", [[0.2, 0.8], [0.4, 0.6]]), ("test", [[1.0, 0.0]])):
        rows = B.score_items([{"id": f"{split}{i}", "p": p} for i, p in enumerate(ps)], [0.5, 0.5])
        B.write_run(tmp_path / split, {"distjudge_pair": rows}, model="any")
    assert B.main([str(tmp_path / "train"), str(tmp_path / "test"), str(tmp_path / "out")]) == 0
    assert "prior q = [0.3, 0.7]" in capsys.readouterr().out
    row = load_run(tmp_path / "out").samples["distjudge_pair"][0]
    assert row["kl"] == pytest.approx(np.log(1 / 0.3))
    with pytest.raises(ValueError, match="label counts"):
        B.prior_distribution([{"p": [1.0, 0.0]}, {"p": [1.0, 0.0, 0.0]}])
