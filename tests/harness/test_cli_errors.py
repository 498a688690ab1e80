"""``distjudge eval`` flags mean what they mean in lm-eval, and user mistakes fail fast.

Every wrong flag or bad input goes through the real CLI in a subprocess: one line on stderr
starting ``distjudge:``, exit status 2, no traceback, and within FAIL_FAST_S seconds (loading
the embedded model alone takes longer, so a fast failure is one that came before it).
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI

from distjudge_eval import cli
from distjudge_eval.embedded import embedded_weights
from distjudge_eval.errors import UserError
from distjudge_eval.paths import tasks_dir

# Measured through the CLI (Python and lm-eval imports included) on the 2-core dev box: a bad
# task name 1.0 s CPU (2.4 s wall at load 4.8), a missing data file 3.7 s CPU (9.5 s wall at
# load 4.8), output path / flags / extras < 0.5 s. lm-eval itself would first index its 14,000
# task files (21 s) and load the model.
FAIL_FAST_S = 10.0
# A --model typo is known only after the data preflight and importing our backends (torch,
# transformers): ~12 s CPU.
MODEL_CHECK_S = 40.0
SECRET = "sk-SECRET-42"


def run_cli(
    *args: str, env: dict[str, str] | None = None, pythonpath: Path | None = None
) -> tuple[subprocess.CompletedProcess, float]:
    """The real CLI in a fresh interpreter; returns the process and its wall time."""
    full_env = {**os.environ, **(env or {})}
    if pythonpath is not None:
        full_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(pythonpath), full_env.get("PYTHONPATH", "")) if p
        )
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "distjudge_eval.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=full_env,
    )
    return proc, time.perf_counter() - start


def assert_fails_fast(
    proc: subprocess.CompletedProcess, seconds: float, *needles: str, limit: float = FAIL_FAST_S
) -> str:
    """Exit 2, no traceback, the message one line, in time; returns the message."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    messages = [line for line in lines if line.startswith("distjudge: ")]
    assert len(messages) == 1, proc.stderr[-3000:]
    for needle in needles:
        assert needle in messages[0], messages[0]
    assert seconds < limit, f"took {seconds:.1f} s: {messages[0]}"
    return messages[0]


def hide_modules(folder: Path, *modules: str) -> Path:
    """A PYTHONPATH folder whose sitecustomize makes ``modules`` look uninstalled."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["import sys"] + [f"sys.modules[{m!r}] = None" for m in modules]
    (folder / "sitecustomize.py").write_text("\n".join(lines) + "\n")
    return folder


# --------------------------------------------------------------------------- flag spellings


def test_lm_eval_short_flags_keep_model_tasks_and_drop_the_key() -> None:
    plan = cli.plan_eval(
        [
            "-M",
            "openai-judge",
            "-a",
            f"model=x,api_key={SECRET}",
            "-t",
            "distjudge_mtbench",
            "-o",
            "out/here",
        ]
    )
    ns = plan.namespace
    assert ns.model == "openai-judge" and ns.tasks == ["distjudge_mtbench"]
    assert ns.model_args == {"model": "x"} and ns.output_path == "out/here"
    assert plan.api_key == SECRET
    assert "api_key" not in repr(vars(ns)) and SECRET not in repr(vars(ns))
    assert SECRET not in repr(plan)


@pytest.mark.parametrize(
    "spelling",
    [
        ["--model_args=model=x,api_key=" + SECRET],
        ["--model_args", "model=x", f"api_key={SECRET}"],
        ["--model_args", json.dumps({"model": "x", "api_key": SECRET})],
        ["--model_args", "model=x", "--metadata", f"api_key={SECRET}"],
    ],
    ids=["equals", "space-separated", "json", "in-metadata"],
)
def test_api_key_is_scrubbed_in_every_spelling(spelling: list[str]) -> None:
    plan = cli.plan_eval(["--model", "openai-judge", *spelling, "--tasks", "distjudge_snli"])
    assert plan.api_key == SECRET
    assert plan.namespace.model_args == {"model": "x"}
    assert SECRET not in repr(vars(plan.namespace))


def test_a_repeated_api_key_never_reaches_a_log(caplog: pytest.LogCaptureFixture) -> None:
    """lm-eval's key=value parser logs a repeated key with its value: ours is gone before."""
    caplog.set_level(logging.DEBUG)
    args = ["-M", "openai-judge", "-a", f"model=x,api_key=old-{SECRET},api_key={SECRET}"]
    plan = cli.plan_eval([*args, "-t", "distjudge_snli"])
    assert plan.api_key == SECRET and plan.namespace.model_args == {"model": "x"}
    assert SECRET not in caplog.text and "api_key" not in caplog.text


def test_api_key_in_a_config_file_is_scrubbed_too(tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    config.write_text(
        f"model: openai-judge\nmodel_args: model=x,api_key={SECRET}\nlimit: 3\n"
        f"tasks: distjudge_snli,distjudge_mtbench\ninclude_path: [{tmp_path}]\n"
    )
    plan = cli.plan_eval(["--config", str(config)])
    ns = plan.namespace
    assert ns.model == "openai-judge" and ns.model_args == {"model": "x"} and ns.limit == 3
    assert ns.tasks == ["distjudge_snli", "distjudge_mtbench"] and ns.config is None
    assert ns.include_path == [str(tasks_dir()), str(tmp_path.resolve())]
    assert plan.api_key == SECRET and SECRET not in repr(vars(ns))


def test_defaults_fill_only_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISTJUDGE_DATA_DIR", raising=False)
    ns = cli.plan_eval(["--limit", "5"]).namespace
    assert ns.model == "hf-judge" and "gguf_file" in ns.model_args
    assert ns.tasks == ["distjudge_snli"] and ns.output_path == "results/runs"
    assert ns.log_samples is True and ns.device is None
    cli.fill_device(ns)
    assert ns.device in ("cpu", "cuda")
    assert ns.include_path == [str(tasks_dir())] and ns.metadata == {}
    stock = cli.plan_eval(["--model", "hf"]).namespace
    assert "gguf_file" in stock.model_args  # the embedded model for stock hf too
    tuned = cli.plan_eval(["--model_args", "peft=runs/tox,dtype=bfloat16"]).namespace.model_args
    embedded = cli._embedded_model_args()
    assert tuned == embedded | {"peft": "runs/tox", "dtype": "bfloat16"}  # the user's keys win
    named = cli.plan_eval(["--model_args", "pretrained=my/judge"]).namespace.model_args
    assert named == {"pretrained": "my/judge"}  # a model named: nothing added
    assert "DISTJUDGE_DATA_DIR" not in os.environ  # settings travel in metadata, not the env


def test_data_dir_and_strict_travel_in_metadata(tmp_path: Path) -> None:
    ns = cli.plan_eval(
        [
            "--data_dir",
            str(tmp_path),
            "--strict",
            "--metadata",
            '{"raters": "experts"}',
            "--device",
            "cuda:1",
            "--model",
            "hf",
            "--model_args",
            "pretrained=m",
        ]
    ).namespace
    assert ns.metadata == {"raters": "experts", "data_dir": str(tmp_path), "strict": True}
    assert not hasattr(ns, "data_dir") and not hasattr(ns, "strict")  # lm-eval would reject
    assert ns.device == "cuda:1" and ns.model_args == {"pretrained": "m"}


def test_include_path_reaches_lm_eval_as_a_list(tmp_path: Path) -> None:
    ns = cli.plan_eval(["--include_path", str(tmp_path)]).namespace
    assert ns.include_path == [str(tasks_dir()), str(tmp_path.resolve())]


# --------------------------------------------------------------------------- fail fast


def test_unknown_task_lists_close_names() -> None:
    proc, seconds = run_cli("eval", "--tasks", "distjudge_snly", "--limit", "2")
    assert_fails_fast(proc, seconds, "unknown task 'distjudge_snly'", "distjudge_snli")


def test_unknown_flag_is_one_line() -> None:
    proc, seconds = run_cli("eval", "--data-dir", "/x")
    assert_fails_fast(proc, seconds, "unrecognized arguments: --data-dir")


def test_unknown_model_lists_close_names() -> None:
    proc, seconds = run_cli("eval", "--model", "hf-judg", "--limit", "2")
    assert_fails_fast(proc, seconds, "unknown --model 'hf-judg'", "hf-judge", limit=MODEL_CHECK_S)


def test_missing_data_dir_blames_the_flag(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    proc, seconds = run_cli("eval", "--data_dir", str(missing))
    assert_fails_fast(proc, seconds, f"--data_dir {missing}: no such folder")


def test_missing_data_file_blames_the_flag(tmp_path: Path) -> None:
    proc, seconds = run_cli("eval", "--data_dir", str(tmp_path), "--tasks", "distjudge_snli")
    message = assert_fails_fast(proc, seconds, "snli")
    assert message.startswith(f"distjudge: --data_dir {tmp_path}: ")


def test_missing_env_data_dir_blames_the_variable(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    env = {"DISTJUDGE_DATA_DIR": str(missing)}
    proc, seconds = run_cli("eval", "--tasks", "distjudge_snli", env=env)
    message = assert_fails_fast(proc, seconds, str(missing), "$DISTJUDGE_DATA_DIR")
    assert not message.startswith("distjudge: --data_dir")


def test_openai_without_a_key_fails_before_any_request() -> None:
    """OpenAI's own endpoint and no key anywhere: one line naming OPENAI_API_KEY, not six
    failed attempts; a key, or a server at another address, passes this check."""
    no_key = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    args = ("eval", "--tasks", "distjudge_snli", "--model", "openai-judge", "--model_args")
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "distjudge_eval.cli", *args, "model=gpt-4o-mini"],
        capture_output=True, text=True, timeout=600, env=no_key,
    )  # fmt: skip
    assert_fails_fast(proc, time.perf_counter() - start, "no API key for OpenAI", "OPENAI_API_KEY")
    from distjudge_eval.models.args import check_openai_key, openai_base_url

    check_openai_key(openai_base_url(None), "sk-given")
    check_openai_key("http://127.0.0.1:8000/v1", None)
    with pytest.raises(UserError, match="no API key"):
        check_openai_key("https://api.openai.com/v1/", "")


def test_strict_fails_on_a_malformed_row_before_the_model(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "snli").mkdir()
    with gzip.open(data_dir / "snli/snli_1.0_dev.jsonl.gz", "rt") as src:
        rows = [next(src) for _ in range(40)]
    (tmp_path / "snli/snli_1.0_dev.jsonl").write_text("".join(rows) + "{not json\n")
    proc, seconds = run_cli(
        "eval", "--data_dir", str(tmp_path), "--strict", "--tasks", "distjudge_snli"
    )
    assert_fails_fast(proc, seconds, "snli")
    # without --strict the same folder passes the preflight (the row is skipped and counted)
    plan = cli.plan_eval(["--data_dir", str(tmp_path), "--tasks", "distjudge_snli"])
    cli.preflight_tasks(["distjudge_snli"], plan.namespace, plan.data_dir)


def test_peft_without_peft_names_the_extra(tmp_path: Path) -> None:
    shim = hide_modules(tmp_path / "shim", "peft")
    proc, seconds = run_cli(
        "eval", "--model", "hf-judge", "--model_args", "pretrained=m,peft=a", pythonpath=shim
    )
    assert_fails_fast(proc, seconds, "peft", "pip install '.[train]' in the distjudge checkout")


@pytest.mark.parametrize("case", ["file", "under-a-file", "sysfs"])
def test_unwritable_output_path_fails_first(tmp_path: Path, case: str) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    target = {"file": blocker, "under-a-file": blocker / "runs", "sysfs": Path("/sys/distjudge")}
    if case == "sysfs" and not Path("/sys/kernel").is_dir():
        pytest.skip("no sysfs here")
    proc, seconds = run_cli("eval", "--output_path", str(target[case]), "--limit", "2")
    assert_fails_fast(proc, seconds, f"--output_path {target[case]}: cannot write results there")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder_fails_first(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    proc, seconds = run_cli("eval", "--output_path", str(folder), "--limit", "2")
    assert_fails_fast(proc, seconds, "Permission denied")


def test_missing_include_path_is_one_line(tmp_path: Path) -> None:
    proc, seconds = run_cli("eval", "--include_path", str(tmp_path / "nope"))
    assert_fails_fast(proc, seconds, "--include_path")


def test_user_errors_from_any_subcommand_are_one_line(monkeypatch, capsys) -> None:
    """main() turns a UserError from any subcommand into one line and exit status 2."""
    from distjudge_eval import errors, sweep

    def fail(argv: list[str]) -> int:
        raise errors.missing_extra("trl", "train", "distjudge sft")

    monkeypatch.setattr(sweep, "main", fail)
    assert cli.main(["sweep"]) == 2
    assert capsys.readouterr().err.strip() == (
        "distjudge: distjudge sft needs the `trl` package: pip install '.[train]' in the distjudge "
        "checkout (or pip install trl)"
    )


# --------------------------------------------------------------------------- compare


def test_compare_without_matplotlib_writes_tables_and_exits_0(tmp_path: Path) -> None:
    import numpy as np

    from distjudge_eval.metrics import item_metrics

    run = tmp_path / "run" / "model"
    run.mkdir(parents=True)
    rng = np.random.default_rng(0)
    with (run / "samples_distjudge_snli_2026-01-01T00-00-00.jsonl").open("w") as fh:
        for i in range(10):
            row = item_metrics(rng.dirichlet(np.ones(3)), rng.normal(size=3), f"item{i}")
            fh.write(json.dumps({"doc_id": i, **row}) + "\n")
    out = tmp_path / "cmp"
    shim = hide_modules(tmp_path / "shim", "matplotlib")
    proc, _ = run_cli("compare", str(tmp_path / "run"), "--out", str(out), pythonpath=shim)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "plots skipped: pip install '.[plot]'" in proc.stderr
    assert (out / "comparison.md").is_file() and (out / "comparison.csv").is_file()
    assert not list(out.glob("*.png"))


# --------------------------------------------------------------------------- real runs


def test_short_flags_end_to_end_with_openai_judge(tmp_path: Path, data_dir: Path) -> None:
    """The issue's command, lm-eval spellings: the named model and task run, and the key is in
    no file lm-eval writes and in no log line."""
    with FakeOpenAI() as server:
        args = f"model=fake,base_url={server.base_url},api_key={SECRET}"
        proc, _ = run_cli(
            "eval",
            "-M",
            "openai-judge",
            "-a",
            args,
            "-t",
            "distjudge_mtbench",
            "-L",
            "2",
            "-o",
            str(tmp_path / "out"),
            "--data_dir",
            str(data_dir),
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert server.headers[0]["Authorization"] == f"Bearer {SECRET}"
    assert SECRET not in proc.stdout + proc.stderr
    (results,) = (tmp_path / "out").glob("**/results_*.json")
    data = json.loads(results.read_text())
    assert data["config"]["model"] == "openai-judge"
    assert set(data["results"]) == {"distjudge_mtbench"}
    written = [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert len(written) == 2  # results and samples
    for path in written:
        assert "api_key" not in path.read_text() and SECRET not in path.read_text(), path


def test_include_path_adds_a_folder_beside_ours(tmp_path: Path, data_dir: Path) -> None:
    """lm-eval sees our tasks and a task folder outside the package in the same run (with
    lm-eval's dummy model: no weights)."""
    folder = tmp_path / "my_tasks"
    folder.mkdir()
    (folder / "items.jsonl").write_text(
        "".join(json.dumps({"q": f"q{i}", "a": i % 2}) + "\n" for i in range(4))
    )
    (folder / "my_yes_no.yaml").write_text(
        "task: my_yes_no\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files: {{test: {folder / 'items.jsonl'}}}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        "doc_to_text: '{{q}}'\n"
        "doc_to_choice: ['no', 'yes']\n"
        "doc_to_target: a\n"
        "metric_list:\n  - metric: acc\n"
    )
    proc, _ = run_cli(
        "eval",
        "--model",
        "dummy",
        "--include_path",
        str(folder),
        "--tasks",
        "my_yes_no,distjudge_snli",
        "--limit",
        "2",
        "--output_path",
        str(tmp_path / "out"),
        "--data_dir",
        str(data_dir),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (results,) = (tmp_path / "out").glob("**/results_*.json")
    assert set(json.loads(results.read_text())["results"]) == {"my_yes_no", "distjudge_snli"}


@pytest.mark.slow
def test_default_backend_is_hf_judge_on_the_embedded_model(tmp_path: Path, data_dir: Path) -> None:
    proc, _ = run_cli(
        "eval", "--limit", "2", "--output_path", str(tmp_path), "--data_dir", str(data_dir)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (results,) = tmp_path.glob("**/results_*.json")
    config = json.loads(results.read_text())["config"]
    # the embedded judge, loaded from distjudge's converted copy of its GGUF file
    assert config["model"] == "hf-judge" and str(embedded_weights()[0]) in str(config["model_args"])
