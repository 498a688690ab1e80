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


def test_baseline_main_scores_a_task_without_a_model(tmp_path: Path, capsys) -> None:
    import json

    rows = [{"id": f"i{i}", "t": "x", "v": ["a"] * (i % 3) + ["b"] * 2} for i in range(40)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "t.yaml").write_text(
        "task: my_pair\nclass: !function distjudge_eval.task.DistributionTask\n"
        "doc_to_choice: [a, b]\ndoc_to_text: '{{t}}'\n"
        "dataset_kwargs: {data_files: d.jsonl, votes_field: v, fields: [t]}\n"
    )
    argv = ["--tasks", "my_pair", "--include_path", str(tmp_path), "--out", str(tmp_path / "o")]
    assert B.main([*argv, "--limit", "3"]) == 0
    from distjudge_eval.data.catalog import load_task_items

    items = load_task_items("my_pair", folders=[tmp_path])
    train = [it for it in items if it["split"] == "train"]
    test = [it for it in items if it["split"] == "test"][:3]
    q = np.mean([it["p"] for it in train], axis=0)
    assert f"prior q = {np.round(q, 4).tolist()}, 3 test items" in capsys.readouterr().out
    run = load_run(tmp_path / "o").samples["my_pair"]
    assert len(run) == 3
    for i, it in enumerate(test):
        p = np.asarray(it["p"])
        kl = sum(pk * np.log(pk / qk) for pk, qk in zip(p, q) if pk > 0)
        assert run[i]["kl"] == pytest.approx(kl, rel=1e-9)
    with pytest.raises(ValueError, match="label counts"):
        B.prior_distribution([{"p": [1.0, 0.0]}, {"p": [1.0, 0.0, 0.0]}])


def test_prior_kl_of_a_run_uses_exactly_the_items_it_scored(tmp_path: Path) -> None:
    import json

    from distjudge_eval.data.catalog import load_task_items

    rows = [{"id": f"i{i}", "t": "x", "v": ["a"] * (i % 4) + ["b"]} for i in range(40)]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "t.yaml").write_text(
        "task: my_pair\nclass: !function distjudge_eval.task.DistributionTask\n"
        "doc_to_choice: [a, b]\ndoc_to_text: '{{t}}'\n"
        "dataset_kwargs: {data_files: d.jsonl, votes_field: v, fields: [t]}\n"
    )
    items = load_task_items("my_pair", folders=[tmp_path])
    scored = [it for it in items if it["split"] == "test"][1:4]  # any subset, any order
    path = B.write_run(tmp_path / "run", {"my_pair": B.score_items(scored, [0.5, 0.5])}, "x")
    q = np.mean([it["p"] for it in items if it["split"] == "train"], axis=0)
    expected = np.mean(
        [sum(pk * np.log(pk / qk) for pk, qk in zip(it["p"], q) if pk > 0) for it in scored]
    )
    got = B.prior_kl_of_run(path, None, [tmp_path])
    assert got == {"my_pair": pytest.approx(expected, rel=1e-12)}
