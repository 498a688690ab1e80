"""distjudge compare on synthetic lm-eval outputs, checked against independent computations."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from distjudge_eval import compare as C
from distjudge_eval.cli import main as cli_main
from distjudge_eval.errors import UserError
from distjudge_eval.metrics import item_metrics


def write_run(
    folder: Path, task: str, scores: np.ndarray, ps: np.ndarray, model: str = "model"
) -> None:
    """An lm-eval output: <output_path>/<model name>/samples_<task>_<time>.jsonl."""
    sub = folder / model
    sub.mkdir(parents=True)
    with (sub / f"samples_{task}_2026-01-01T00-00-00.jsonl").open("w") as fh:
        for i, (s, p) in enumerate(zip(scores, ps)):
            row = {"doc_id": i, **item_metrics(p, s, f"item{i}")}
            fh.write(json.dumps(row) + "\n")


@pytest.fixture
def two_runs(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    rng = np.random.default_rng(1)
    ps = rng.dirichlet(np.ones(3), size=40)
    base = rng.normal(size=(40, 3))
    better = np.log(ps + 0.05)  # closer to p
    write_run(tmp_path / "raw", "distjudge_snli", base, ps)
    write_run(tmp_path / "tuned", "distjudge_snli", better, ps)
    return tmp_path / "raw", tmp_path / "tuned", ps


def test_tables_use_the_per_sample_values(two_runs, tmp_path: Path) -> None:
    raw, tuned, _ = two_runs
    runs = [C.load_run(raw), C.load_run(tuned)]
    report = C.compare(runs)
    kl_raw = np.mean([json.loads(x)["kl"] for x in next(raw.glob("**/*.jsonl")).open()])
    row = next(r for r in report.csv_rows if r["run"] == "raw" and r["metric"] == "kl")
    assert row["mean"] == pytest.approx(kl_raw)
    assert row["ci_lo"] < kl_raw < row["ci_hi"]
    ece = next(r for r in report.csv_rows if r["run"] == "raw" and r["metric"] == "ece")["mean"]
    items = [json.loads(x)["ece"] for x in next(raw.glob("**/*.jsonl")).open()]
    assert ece == pytest.approx(C.expected_calibration_error(items))
    paired = next(r for r in report.csv_rows if r["metric"] == "paired_delta_kl")
    assert paired["mean_diff"] < 0 and paired["p"] < 0.01  # tuned is clearly closer to p
    assert "δ=0.25" in report.markdown and "Paired vs raw" in report.markdown


def test_bootstrap_interval_matches_a_brute_force_bootstrap() -> None:
    values = np.random.default_rng(3).exponential(size=50)
    lo, hi = C.bootstrap_ci(values, 7)
    rng = np.random.default_rng(11)
    means = [values[rng.integers(0, 50, size=50)].mean() for _ in range(20_000)]
    # an independent percentile bootstrap agrees to Monte Carlo error
    assert (lo, hi) == pytest.approx(
        (np.percentile(means, 2.5), np.percentile(means, 97.5)), abs=0.04
    )
    assert C.bootstrap_ci(values, 7) == (lo, hi)  # one seeded call: repeatable


def test_sign_flip_p_value_matches_exact_enumeration() -> None:
    diff = np.array([0.3, -0.1, 0.25, 0.4, -0.05, 0.2, 0.15, 0.1])
    observed = abs(diff.mean())
    flips = [np.array(s) for s in itertools.product([-1, 1], repeat=len(diff))]
    exact = np.mean([abs((s * diff).mean()) >= observed - 1e-12 for s in flips])
    res = C.paired_test(np.zeros_like(diff), diff, 0)
    assert res["p"] == pytest.approx(exact, abs=1e-12)  # 2^8 < resamples: scipy enumerates
    assert res["mean_diff"] == pytest.approx(diff.mean())


def test_intervals_do_not_depend_on_the_other_runs(two_runs) -> None:
    raw, tuned, _ = two_runs
    alone = C.compare([C.load_run(raw), C.load_run(tuned)]).csv_rows
    with_more = C.compare([C.load_run(tuned, "again"), C.load_run(raw), C.load_run(tuned)]).csv_rows

    def pick(rows):
        return {(r["run"], r["task"], r["metric"]): (r.get("ci_lo"), r.get("ci_hi")) for r in rows}

    a, b = pick(alone), pick(with_more)
    assert all(b[k] == v for k, v in a.items() if k[2] != "paired_delta_kl")


def test_cli_writes_markdown_csv_and_plots(two_runs, tmp_path: Path) -> None:
    raw, tuned, _ = two_runs
    out = tmp_path / "cmp"
    assert (
        cli_main(["compare", str(raw), str(tuned), "--names", "raw", "tuned", "--out", str(out)])
        == 0
    )
    for name in (
        "comparison.md",
        "comparison.csv",
        "reliability.png",
        "p_vs_q_majority.png",
        "kl_per_task.png",
    ):
        assert (out / name).stat().st_size > 0, name
    assert (out / "reliability.png").read_bytes()[:4] == b"\x89PNG"


def test_a_folder_without_samples_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="log_samples"):
        C.load_run(tmp_path)


def test_gzipped_samples_read_the_same(two_runs, tmp_path: Path) -> None:
    import gzip
    import shutil

    raw, _, _ = two_runs
    zipped = tmp_path / "zipped"
    shutil.copytree(raw, zipped)
    for path in zipped.glob("**/samples_*.jsonl"):
        with path.open("rb") as src, gzip.open(f"{path}.gz", "wb") as dst:
            shutil.copyfileobj(src, dst)
        path.unlink()
    assert C.load_run(zipped).samples == C.load_run(raw).samples


def test_one_output_path_for_two_judges_compares_both(tmp_path: Path, capsys) -> None:
    """lm-eval writes each judge to <output_path>/<model name>/: a raw judge and its fine-tune
    scored with one --output_path are two judges, named after their models, not one merged
    run in which the later file replaces the earlier."""
    rng = np.random.default_rng(2)
    ps = rng.dirichlet(np.ones(3), size=30)
    shared = tmp_path / "runs"
    for model, scores in (
        ("__root__.cache__models__SmolLM2", rng.normal(size=(30, 3))),
        ("__tmp__runs__tox", np.log(ps + 0.05)),
    ):
        write_run(shared, "distjudge_snli", scores, ps, model)
    judges = C.judges_of([str(shared)], None)
    assert [name for _, name in judges] == ["SmolLM2", "tox"]
    out = tmp_path / "cmp"
    assert cli_main(["compare", str(shared), "--out", str(out), "--no_plots"]) == 0
    assert "2 judges, compared side by side: SmolLM2, tox" in capsys.readouterr().out
    report = (out / "comparison.md").read_text()
    assert "| SmolLM2 |" in report and "| tox |" in report and "Paired vs SmolLM2" in report
    with pytest.raises(UserError, match="holds 2 judges"):
        C.judges_of([str(shared)], ["mine"])
    # one judge per folder (the usual case) keeps the folder's name, or the one given
    single = tmp_path / "single"
    write_run(single, "distjudge_snli", np.log(ps + 0.05), ps)
    assert C.judges_of([str(single)], None) == [(single, None)]
    assert C.judges_of([str(single)], ["mine"]) == [(single, "mine")]
