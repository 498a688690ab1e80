"""The house rules of the layout, checked: dependencies run one way (the trainer imports the
evaluation core, never the reverse; only the CLI dispatch imports both), and run settings travel
as parameters and lm-eval metadata, not through the environment."""

from __future__ import annotations

import ast
import os
import re
import sys
from pathlib import Path

import pytest

REPO = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
CORE = REPO / "distjudge_eval"
TRAINER = "distjudge_trainer"
# The one module of the evaluation core allowed to import the trainer: `distjudge train` etc.
ALLOWED = {CORE / "cli.py"}
TRAINER_MODULE = re.compile(r"distjudge_trainer(\.\w+)*")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, at any depth (imports inside functions count), plus names
    handed to importlib.import_module as string literals or f-string prefixes, and any string
    that names a trainer module (a dispatch table of module names imported later)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
        ):
            arg = node.args[0]
            if isinstance(arg, ast.JoinedStr) and arg.values:
                arg = arg.values[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((node.lineno, arg.value))
        elif isinstance(node, ast.Constant) and TRAINER_MODULE.fullmatch(str(node.value)):
            found.append((node.lineno, node.value))
    return found


def trainer_imports(path: Path) -> list[str]:
    return [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for line, name in imported_modules(path)
        if name == TRAINER or name.startswith((TRAINER + ".", "trainer."))
    ]


def test_the_evaluation_core_never_imports_the_trainer() -> None:
    offenders = [
        hit for path in sorted(CORE.rglob("*.py")) if path not in ALLOWED
        for hit in trainer_imports(path)
    ]  # fmt: skip
    assert not offenders, "the evaluation core must not depend on the trainer:\n" + "\n".join(
        offenders
    )


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    """The rule above would pass vacuously if the scan missed the imports it exists to catch."""
    sample = tmp_path / "m.py"
    sample.write_text(
        "from importlib import import_module\n"
        "def f(cmd):\n"
        "    from distjudge_trainer.cli import main\n"
        "    import distjudge_trainer.objective as o\n"
        "    return import_module(f'distjudge_trainer.{cmd}')\n"
        "TABLE = {'train': 'distjudge_trainer.cli'}\n"
    )
    names = [name for _, name in imported_modules(sample)]
    assert names.count("distjudge_trainer.cli") == 2 and "distjudge_trainer.objective" in names
    assert "distjudge_trainer." in names
    assert len([n for n in names if n.startswith(TRAINER)]) == 4
    cli_hits = trainer_imports(CORE / "cli.py")  # the allowed edge exists and is seen
    assert cli_hits and all("distjudge_trainer" in hit for hit in cli_hits)


def test_the_trainer_package_imports_no_trainer_by_its_folder_name() -> None:
    """trainer/ installs as distjudge_trainer; a bare ``trainer`` import would find Coqui's."""
    offenders = [
        f"{path.relative_to(REPO)}:{line} imports {name}"
        for path in sorted((REPO / "trainer").rglob("*.py"))
        for line, name in imported_modules(path)
        if name == "trainer" or name.startswith("trainer.")
    ]
    assert not offenders, "\n".join(offenders)


def test_trainer_data_dir_travels_as_metadata_not_env(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path, tmp_path: Path
) -> None:
    """``--data_dir`` reaches the trainer's tasks through lm-eval's metadata; the process
    environment is left as the user set it."""
    pytest.importorskip("trl")
    from distjudge_trainer.cli import parse, preflight
    from distjudge_trainer.data import load_docs

    monkeypatch.delenv("DISTJUDGE_DATA_DIR", raising=False)
    ours = lambda: {k: v for k, v in os.environ.items() if k.startswith("DISTJUDGE_")}  # noqa: E731
    before = ours()
    config, args = parse(["--data_dir", str(data_dir), "--output_dir", str(tmp_path / "out")])
    preflight(config, args, "distjudge train")
    assert config.data_dir == str(data_dir.resolve())
    (loaded,) = load_docs(config.task, max_items=2, data_dir=config.data_dir)
    assert len(loaded.docs) == 2
    assert loaded.task.config.metadata["data_dir"] == config.data_dir
    assert ours() == before and "DISTJUDGE_DATA_DIR" not in before  # nothing set, nothing left


def test_sweep_steps_get_data_dir_as_a_flag(tmp_path: Path) -> None:
    from distjudge_eval.sweep import Cell, Sweep

    sweep = Sweep(tmp_path, "distjudge_snli", "distjudge_snli", [0.5], [0.1], 2, [])
    sweep.data_dir = tmp_path / "data"
    train = sweep.train_cmd(Cell(0.5, 0.1))
    evaluate = sweep.eval_cmd("raw", "pretrained=x")
    for cmd in (train, evaluate):
        assert cmd[cmd.index("--data_dir") + 1] == str(tmp_path / "data")
    assert train[:4] == [sys.executable, "-m", "distjudge_eval.cli", "train"]  # via the CLI
    sweep.data_dir = None
    assert "--data_dir" not in sweep.train_cmd(Cell(0.5, 0.1))


def test_packages_install_under_our_names_and_ship_no_bench_or_test_helpers() -> None:
    """trainer/ and tasks/ install as distjudge_trainer / distjudge_tasks (a bare ``trainer``
    is another PyPI project's import name); benchmarks and test helpers stay out of the wheel."""
    import tomllib

    setup = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages, folders = setup["packages"], setup["package-dir"]
    assert all(name.startswith("distjudge_") for name in packages), packages
    assert folders == {"distjudge_tasks": "tasks", "distjudge_trainer": "trainer"}
    assert not any(p.startswith(("benchmarks", "tests")) for p in packages)
    shipped = [REPO / Path(folders.get(p, p.replace(".", "/"))) for p in packages]
    helpers = {"bench.py", "llama_server.py", "fake_openai.py"}
    assert not [f for folder in shipped for f in folder.glob("*.py") if f.name in helpers]
