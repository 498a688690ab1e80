"""Task configs load in lm-eval, ship in the wheel, and the CLI fills in its defaults."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from lm_eval.tasks import TaskManager

from distjudge_eval import cli
from distjudge_eval.data.catalog import find_task
from distjudge_eval.paths import tasks_dir

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
GROUP_TASKS = {
    "distjudge_snli",
    "distjudge_mtbench",
    "distjudge_summeval_coherence",
    "distjudge_summeval_consistency",
    "distjudge_summeval_fluency",
    "distjudge_summeval_relevance",
}


@pytest.fixture(scope="module")
def tasks(data_dir: Path, monkeypatch_module) -> dict:
    monkeypatch_module.setenv("DISTJUDGE_DATA_DIR", str(data_dir))
    manager = TaskManager(include_path=str(tasks_dir()))
    return dict(manager.load(["distjudge"])["tasks"])  # every leaf task of the group


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_group_holds_every_task_with_prompts_and_labels(tasks: dict) -> None:
    assert set(tasks) == GROUP_TASKS
    for name, task in tasks.items():
        docs = list(task.test_docs())
        assert docs and all(d["split"] == "test" for d in docs)
        doc = docs[0]
        text = task.doc_to_text(doc)
        labels = list(find_task(name).spec.labels)
        assert task.doc_to_choice(doc) == labels
        assert "{{" not in text and text.endswith("Answer:")
        assert ", ".join(labels) in text  # the closing line lists the allowed labels
        assert task.config.metadata["version"] == 1.0


def test_summeval_prompts_name_their_dimension(tasks: dict) -> None:
    for dim in ("coherence", "consistency", "fluency", "relevance"):
        task = tasks[f"distjudge_summeval_{dim}"]
        doc = next(iter(task.test_docs()))
        assert doc["dimension"] == dim and f"summary's {dim}" in task.doc_to_text(doc)


def test_wheel_ships_task_configs(tmp_path: Path) -> None:
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        timeout=300,
        capture_output=True,
        text=True,
    )
    log = build.stdout + build.stderr
    unlisted = re.findall(r"Package '([\w.]+)' is absent from the `packages` configuration", log)
    assert not unlisted, f"list {sorted(set(unlisted))} in pyproject.toml's packages"
    (wheel,) = tmp_path.glob("distjudge-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n for n in names if n.startswith("distjudge_tasks/")}
    expected = {
        str(p.relative_to(REPO / "tasks"))
        for p in (REPO / "tasks").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert {f"distjudge_tasks/{e}" for e in expected} <= shipped


def test_eval_defaults_to_hf_judge_on_the_embedded_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISTJUDGE_DATA_DIR", raising=False)
    ns = cli.plan_eval(["--limit", "5", "--data_dir", "/tmp/x", "--strict"]).namespace
    assert ns.model == "hf-judge" and "gguf_file" in ns.model_args
    assert ns.include_path == [str(tasks_dir())]
    assert ns.log_samples and ns.tasks == ["distjudge_snli"] and ns.limit == 5
    assert ns.metadata == {"data_dir": "/tmp/x", "strict": True}


def test_eval_keeps_user_flags(tmp_path: Path) -> None:
    ns = cli.plan_eval(
        [
            "--model",
            "hf",
            "--model_args",
            "pretrained=m",
            f"--include_path={tmp_path}",
            "--device",
            "cuda:1",
            "--tasks",
            "distjudge_mtbench",
            "--output_path",
            "o",
        ]
    ).namespace
    assert ns.model == "hf" and ns.model_args == {"pretrained": "m"}
    assert ns.include_path == [str(tasks_dir()), str(tmp_path.resolve())]
    assert ns.device == "cuda:1" and ns.output_path == "o"
    assert ns.tasks == ["distjudge_mtbench"]


def test_summary_table_reads_lm_eval_results(tmp_path: Path) -> None:
    results = {
        "results": {
            "distjudge_snli": {"alias": "x", "kl,none": 0.5, "acc,none": 0.75, "ece,none": 0.1},
            "distjudge_summeval": {"alias": "group"},
        },
        "n-samples": {"distjudge_snli": {"effective": 4}},
    }
    path = tmp_path / "results_1.json"
    path.write_text(json.dumps(results))
    table = cli.summary_table(path)
    assert "| distjudge_snli | 4 | 0.5000 | 0.7500 |  |  | 0.1000 |  |" in table
    assert "distjudge_summeval" not in table
    assert cli.newest_results_file(tmp_path) == path
    with_prior = cli.summary_table(path, {"distjudge_snli": 0.8192})
    assert "| entropy_gap | prior kl |" in with_prior
    assert "| distjudge_snli | 4 | 0.5000 | 0.7500 |  |  | 0.1000 |  | 0.8192 |" in with_prior
    assert cli.truncation_lines(path) == []
    results["results"]["distjudge_snli"]["truncated,none"] = 3
    path.write_text(json.dumps(results))
    (line,) = cli.truncation_lines(path)
    assert line.startswith("distjudge_snli: 3 items did not fit")


def test_unknown_command_fails(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["nonsense"]) == 2
    assert "unknown command" in capsys.readouterr().err
