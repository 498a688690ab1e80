"""distjudge sweep: grid bookkeeping (fake runner), resume, failures, and one real cell."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from distjudge_eval.metrics import item_metrics
from distjudge_eval.sweep import Cell, Sweep, write_outputs


def is_train(cmd: list[str]) -> bool:
    """A training subprocess (``distjudge train`` or ``python -m distjudge_trainer``)."""
    return "train" in cmd or "distjudge_trainer" in cmd


class FakeRunner:
    """Stands in for the train / eval subprocesses: writes what they would write."""

    def __init__(self, fail: set[str] = frozenset()) -> None:
        self.calls: list[list[str]] = []
        self.fail = fail

    def __call__(self, cmd: list[str], log: Path) -> int:
        self.calls.append(cmd)
        out = Path(cmd[cmd.index("--output_dir" if is_train(cmd) else "--output_path") + 1])
        if out.name in self.fail:
            return 1
        if is_train(cmd):
            out.mkdir(parents=True)
            alpha = float(cmd[cmd.index("--alpha") + 1])
            cfg = {"distjudge": {"model": "m", "gguf_file": None, "alpha": alpha}}
            (out / "distjudge_config.json").write_text(json.dumps(cfg))
            return 0
        # eval: q drifts toward p as alpha grows, so the grid has a known shape
        alpha = 0.0
        if "peft=" in cmd[cmd.index("--model_args") + 1]:
            adapter = Path(cmd[cmd.index("--model_args") + 1].split("peft=")[1])
            config = json.loads((adapter / "distjudge_config.json").read_text())
            alpha = config["distjudge"]["alpha"]
        rng = np.random.default_rng(0)
        sub = out / "model"
        sub.mkdir(parents=True)
        with (sub / "samples_distjudge_snli_2026.jsonl").open("w") as fh:
            for i in range(10):
                p = rng.dirichlet(np.ones(3))
                scores = np.log((1 - alpha) * np.ones(3) / 3 + alpha * p + 1e-3)
                fh.write(json.dumps({"doc_id": i, **item_metrics(p, scores, str(i))}) + "\n")
        (sub / "results_2026.json").write_text("{}")
        return 0


def make(tmp_path: Path, runner: FakeRunner, alphas=(0.0, 0.5, 1.0), eps=(0.0, 0.25)) -> Sweep:
    return Sweep(tmp_path, "distjudge_snli", "distjudge_snli", alphas, eps, 10, [], run=runner)


def test_alpha_zero_trains_once_and_resume_reruns_nothing(tmp_path: Path) -> None:
    runner = FakeRunner()
    sweep = make(tmp_path, runner)
    assert sweep.execute() == []
    trains = [c for c in runner.calls if is_train(c)]
    evals = [c for c in runner.calls if "eval" in c]
    # 3 alphas x 2 eps = 6 cells; alpha 0 shares one training run -> 5 trainings
    assert len(trains) == 5
    assert len(evals) == 6 + 1  # every cell + the raw reference
    assert Cell(0.0, 0.25).trained_as == Cell(0.0, 0.0)
    runner.calls.clear()
    assert make(tmp_path, runner).execute() == []
    assert runner.calls == []


def test_failed_cell_is_reported_others_finish_and_retry_works(tmp_path: Path) -> None:
    runner = FakeRunner(fail={"alpha0.5_eps0.25"})
    assert make(tmp_path, runner).execute() == ["alpha0.5_eps0.25"]
    assert len(make(tmp_path, FakeRunner()).summary()) == 1 + 5
    retry = FakeRunner()
    assert make(tmp_path, retry).execute() == []
    assert len(retry.calls) == 2  # the failed cell's training and evaluation only


def test_summary_tables_and_plot_match_the_samples(tmp_path: Path) -> None:
    sweep = make(tmp_path, FakeRunner())
    sweep.execute()
    rows = sweep.summary()
    paths = write_outputs(rows, tmp_path)
    assert {p.name for p in paths} == {"sweep.csv", "sweep.md", "kl_over_alpha.png"}
    # independent: the mean KL straight from one cell's samples file
    sample_file = next((tmp_path / "eval/alpha1_eps0").glob("**/samples_*.jsonl"))
    kls = [json.loads(line)["kl"] for line in sample_file.read_text().splitlines()]
    with (tmp_path / "sweep.csv").open() as fh:
        table = {r["cell"]: r for r in csv.DictReader(fh)}
    assert float(table["alpha1_eps0"]["kl"]) == pytest.approx(np.mean(kls), abs=1e-6)
    # the fake judge improves with alpha, so the grid must show it
    assert float(table["alpha1_eps0"]["kl"]) < float(table["alpha0.5_eps0"]["kl"])
    assert float(table["alpha0.5_eps0"]["kl"]) < float(table["raw"]["kl"])
    md = (tmp_path / "sweep.md").read_text()
    assert "| 1 | " in md and "Raw model" in md


def test_sweep_refuses_flags_it_sets(tmp_path: Path, capsys) -> None:
    from distjudge_eval.sweep import main

    with pytest.raises(SystemExit) as info:
        main(["--task", "distjudge_snli", "--out", str(tmp_path), "--", "--alpha", "0.3"])
    assert info.value.code == 2
    assert "--alpha is set by the sweep" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before any cell ran


@pytest.mark.slow
def test_real_one_cell_sweep(tmp_path: Path, data_dir: Path) -> None:
    """The real subprocesses: one LoRA training (1 step) and hf-judge evaluations on 2 items."""
    env = {**os.environ, "DISTJUDGE_DATA_DIR": str(data_dir)}
    cmd = [
        sys.executable, "-m", "distjudge_eval.cli", "sweep", "--task", "distjudge_snli",
        "--alphas", "0.5", "--epsilons", "0.1", "--limit", "2", "--out", str(tmp_path),
        "--", "--max_steps", "1", "--max_train_items", "4", "--per_device_train_batch_size", "2",
        "--save_strategy", "no",
    ]  # fmt: skip
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    with (tmp_path / "sweep.csv").open() as fh:
        rows = {r["cell"]: r for r in csv.DictReader(fh)}
    assert set(rows) == {"raw", "alpha0.5_eps0.1"}
    assert rows["raw"]["n_items"] == "2"
    assert float(rows["raw"]["kl"]) != float(rows["alpha0.5_eps0.1"]["kl"])
    assert (tmp_path / "kl_over_alpha.png").stat().st_size > 1000
    marker = tmp_path / "adapters" / "alpha0.5_eps0.1" / "distjudge_config.json"
    stamps = [marker.stat().st_mtime_ns, (tmp_path / "sweep.csv").read_text()]
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert [marker.stat().st_mtime_ns, (tmp_path / "sweep.csv").read_text()] == stamps
