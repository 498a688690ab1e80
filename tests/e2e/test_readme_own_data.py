"""The README's "Your own data" example, end to end: the YAML and rows exactly as printed there
become a task that `data info`, `eval` (hf-judge), `train` and `compare` run on, in a shell
with no data dir (the user's file lies beside their YAML)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
README = REPO / "README.md"


def readme_section() -> str:
    text = README.read_text()
    start = text.index("## Your own data")
    return text[start : text.index("\n## ", start + 5)]


def code_blocks(section: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", section, flags=re.S)


def newcomer_env(cwd: Path) -> dict[str, str]:
    """A newcomer's shell: no data dir set and none at the fetch cache's default place (a HOME
    of their own); only the converted embedded model is shared, to spare converting it again."""
    from distjudge_eval.embedded import CACHE_DIR_ENV, cache_root

    env = {k: v for k, v in os.environ.items() if k not in ("DISTJUDGE_DATA_DIR", "XDG_CACHE_HOME")}
    home = cwd / "home"
    home.mkdir(exist_ok=True)
    return env | {"HOME": str(home), CACHE_DIR_ENV: str(cache_root())}


def distjudge(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = newcomer_env(cwd)
    cmd = [sys.executable, "-m", "distjudge_eval.cli", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (args, proc.stdout[-2000:], proc.stderr[-4000:])
    return proc


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """my_tasks/ with the README's YAML, and its three rows plus more rows of the same shape."""
    section = readme_section()
    (yaml_text,) = code_blocks(section, "yaml")
    (rows_text,) = code_blocks(section, "json")
    root = tmp_path_factory.mktemp("newcomer")
    folder = root / "my_tasks"
    folder.mkdir()
    (folder / "my_toxicity.yaml").write_text(yaml_text)
    rows = [json.loads(line) for line in rows_text.splitlines() if line.strip()]
    for i in range(4, 40):
        base = rows[i % 3]
        rows.append({**base, "comment_id": f"c{i}", "thread_id": f"t{i // 2}"})
    (folder / "toxicity_votes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_readme_commands_are_the_ones_tested() -> None:
    (commands,) = [b for b in code_blocks(readme_section(), "bash") if "distjudge eval" in b]
    for needle in (
        "distjudge data info --include_path my_tasks my_toxicity",
        "distjudge eval --include_path my_tasks --tasks my_toxicity",
        "distjudge train --include_path my_tasks --task my_toxicity --output_dir runs/tox",
        "distjudge eval --include_path my_tasks --tasks my_toxicity --model_args peft=runs/tox",
        "distjudge baseline --include_path my_tasks --tasks my_toxicity --out results/runs/prior",
        "distjudge compare results/runs",
    ):
        assert needle in commands


def test_newcomer_path_info_eval_train_compare(workdir: Path) -> None:
    info = distjudge(workdir, "data", "info", "--include_path", "my_tasks", "my_toxicity")
    (row,) = [line for line in info.stdout.splitlines() if line.startswith("| my_toxicity")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2] == "39" and int(cells[3]) + int(cells[4]) == 39 and cells[5] == "0"
    # every task: the user's is listed, the built-in ones are counted as needing the data dir
    info = distjudge(workdir, "data", "info", "--include_path", "my_tasks")
    assert "| my_toxicity |" in info.stdout
    assert re.search(
        r"Not listed: \d+ tasks that read the data dir .*distjudge data fetch", info.stdout
    )

    ev = distjudge(
        workdir, "eval", "--include_path", "my_tasks", "--tasks", "my_toxicity", "--limit", "4"
    )
    assert "distjudge summary" in ev.stdout and "my_toxicity" in ev.stdout
    (results_file,) = (workdir / "results/runs").glob("**/results_*.json")
    results = json.loads(results_file.read_text())
    assert results["config"]["model"] == "hf-judge"
    metrics = results["results"]["my_toxicity"]
    assert 0 <= metrics["kl,none"] < 50 and 0 <= metrics["acc,none"] <= 1
    assert results["configs"]["my_toxicity"]["metadata"]["skipped_rows"] == {}

    train = distjudge(
        workdir,
        "train",
        "--include_path",
        "my_tasks",
        "--task",
        "my_toxicity",
        "--output_dir",
        "runs/tox",
        "--max_steps",
        "1",
        "--per_device_train_batch_size",
        "2",
        "--max_train_items",
        "4",
    )
    assert (workdir / "runs/tox/adapter_config.json").is_file(), train.stdout[-2000:]
    assert re.search(r"evaluate: distjudge eval .*peft=", train.stdout)  # the printed hint
    tuned = (
        "--include_path",
        "my_tasks",
        "--tasks",
        "my_toxicity",
        "--model_args",
        "peft=runs/tox",
    )
    distjudge(workdir, "eval", *tuned, "--limit", "4")  # the README's line
    prior = ("--include_path", "my_tasks", "--tasks", "my_toxicity", "--out", "results/runs/prior")
    distjudge(workdir, "baseline", *prior, "--limit", "4")

    cmp = distjudge(workdir, "compare", "results/runs", "--out", "cmp")
    assert "results/runs: 3 judges, compared side by side" in cmp.stdout  # raw, tuned, prior
    report = (workdir / "cmp/comparison.md").read_text()
    assert "my_toxicity" in report and "| tox |" in report and "| prior |" in report
    assert "Paired vs " in report
