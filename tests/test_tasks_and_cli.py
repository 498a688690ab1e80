"""Task configs load in lm-eval, ship in the wheel, and the CLI fills in its defaults."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from lm_eval.tasks import TaskManager, get_task_dict

from distjudge_eval import cli
from distjudge_eval.data.registry import BENCHMARKS
from distjudge_eval.paths import tasks_dir

REPO = Path(__file__).resolve().parents[1]
TASK_BENCH = {
    "distjudge_snli": "snli",
    "distjudge_mtbench": "mtbench",
    "distjudge_summeval_coherence": "summeval",
    "distjudge_summeval_consistency": "summeval",
    "distjudge_summeval_fluency": "summeval",
    "distjudge_summeval_relevance": "summeval",
}


def flatten(task_dict: dict) -> dict:
    out = {}
    for key, value in task_dict.items():
        if isinstance(value, dict):
            out.update(flatten(value))
        else:
            out[key] = value
    return out


@pytest.fixture(scope="module")
def tasks(data_dir: Path, monkeypatch_module) -> dict:
    monkeypatch_module.setenv("DISTJUDGE_DATA_DIR", str(data_dir))
    manager = TaskManager(include_path=str(tasks_dir()))
    return flatten(get_task_dict(["distjudge"], manager))


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_group_holds_every_task_with_prompts_and_labels(tasks: dict) -> None:
    assert set(tasks) == set(TASK_BENCH)
    for name, task in tasks.items():
        docs = list(task.test_docs())
        assert docs and all(d["split"] == "test" for d in docs)
        doc = docs[0]
        text = task.doc_to_text(doc)
        labels = list(BENCHMARKS[TASK_BENCH[name]].label_set.labels)
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
    subprocess.run(
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
    )
    (wheel,) = tmp_path.glob("distjudge-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n for n in names if n.startswith("distjudge_tasks/")}
    expected = {
        str(p.relative_to(REPO / "tasks"))
        for p in (REPO / "tasks").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert {f"distjudge_tasks/{e}" for e in expected} <= shipped


def test_eval_defaults_to_embedded_model_and_our_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISTJUDGE_DATA_DIR", raising=False)
    argv = cli.build_lm_eval_argv(["--limit", "5", "--data_dir", "/tmp/x", "--strict"])
    assert argv[0] == "run"
    model_args = argv[argv.index("--model_args") + 1]
    assert argv[argv.index("--model") + 1] == "hf" and "gguf_file=" in model_args
    assert argv[argv.index("--include_path") + 1] == str(tasks_dir())
    assert "--log_samples" in argv and argv[argv.index("--tasks") + 1] == "distjudge_snli"
    assert "--data_dir" not in argv and "--strict" not in argv
    import os

    assert os.environ["DISTJUDGE_DATA_DIR"] == "/tmp/x" and os.environ["DISTJUDGE_STRICT"] == "1"


def test_eval_keeps_user_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISTJUDGE_DATA_DIR", "/tmp/y")
    argv = cli.build_lm_eval_argv(
        [
            "--model",
            "hf",
            "--model_args",
            "pretrained=m",
            "--include_path=/extra",
            "--device",
            "cuda:1",
            "--tasks",
            "distjudge_mtbench",
            "--output_path",
            "o",
        ]
    )
    assert argv[argv.index("--model_args") + 1] == "pretrained=m"
    assert argv[argv.index("--include_path") + 1] == f"{tasks_dir()},/extra"
    assert argv[argv.index("--device") + 1] == "cuda:1" and argv.count("--device") == 1
    assert argv[argv.index("--tasks") + 1] == "distjudge_mtbench"


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


def test_unknown_command_fails(capsys: pytest.CaptureFixture) -> None:
    assert cli.main(["nonsense"]) == 2
    assert "unknown command" in capsys.readouterr().err
