"""``distjudge sweep``: the α × ε grid as a series of train + eval runs.

Each cell trains a LoRA judge (``distjudge train``) and scores it (``distjudge eval`` with ``hf-
judge``) in its own subprocess, so a crash or OOM in one cell costs that cell only. Work is kept on
disk: a cell whose adapter exists is not retrained and one whose evaluation exists is not rescored,
so an interrupted sweep resumes where it stopped. α = 0 ignores ε (no KL term, so no adversary), so
one α = 0 run serves every ε. A raw (untrained) evaluation is the reference line.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_ALPHAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
DEFAULT_EPSILONS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25)
SUMMARY_METRICS = ("kl", "acc", "brier", "js")


@dataclass(frozen=True)
class Cell:
    alpha: float
    epsilon: float

    @property
    def name(self) -> str:
        return f"alpha{self.alpha:g}_eps{self.epsilon:g}"

    @property
    def trained_as(self) -> Cell:
        """The cell whose training run this one reuses (α = 0 makes ε irrelevant)."""
        return Cell(0.0, 0.0) if self.alpha == 0 else self


Runner = Callable[[list[str], Path], int]


def run_logged(cmd: list[str], log: Path) -> int:
    """Run ``cmd`` with its output in ``log``; returns the exit status."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        return subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode


@dataclass
class Sweep:
    out: Path
    task: str
    eval_tasks: str
    alphas: Sequence[float]
    epsilons: Sequence[float]
    limit: int | None
    train_args: list[str]
    run: Runner = run_logged
    data_dir: Path | None = None  # None: each step uses the user default ($DISTJUDGE_DATA_DIR)

    def cells(self) -> list[Cell]:
        return [Cell(a, e) for e in self.epsilons for a in self.alphas]

    def adapter_dir(self, cell: Cell) -> Path:
        return self.out / "adapters" / cell.trained_as.name

    def eval_dir(self, name: str) -> Path:
        return self.out / "eval" / name

    def trained(self, cell: Cell) -> bool:
        return (self.adapter_dir(cell) / "distjudge_config.json").is_file()

    def evaluated(self, name: str) -> bool:
        return any(self.eval_dir(name).glob("**/results_*.json"))

    def _data_flag(self) -> list[str]:
        """``--data_dir`` for every step: settings travel as flags, not in the environment."""
        return ["--data_dir", str(self.data_dir)] if self.data_dir is not None else []

    def train_cmd(self, cell: Cell) -> list[str]:
        return [
            sys.executable, "-m", "distjudge_eval.cli", "train", "--task", self.task,
            "--alpha", f"{cell.alpha:g}", "--epsilon", f"{cell.epsilon:g}",
            "--output_dir", str(self.adapter_dir(cell)), *self._data_flag(), *self.train_args,
        ]  # fmt: skip

    def eval_cmd(self, name: str, model_args: str) -> list[str]:
        limit = ["--limit", str(self.limit)] if self.limit is not None else []
        return [
            sys.executable, "-m", "distjudge_eval.cli", "eval", "--model", "hf-judge",
            "--model_args", model_args, "--tasks", self.eval_tasks,
            "--output_path", str(self.eval_dir(name)), *self._data_flag(), *limit,
        ]  # fmt: skip

    def model_args(self, cell: Cell | None) -> str:
        """hf-judge model_args: the trained base model (+ the cell's adapter)."""
        if cell is None:
            return self.base_model()
        config = json.loads((self.adapter_dir(cell) / "distjudge_config.json").read_text())
        dj = config["distjudge"]
        args = f"pretrained={dj['model']}"
        if dj.get("gguf_file"):
            args += f",gguf_file={dj['gguf_file']}"
        return args + f",peft={self.adapter_dir(cell)}"

    def base_model(self) -> str:
        model = _flag_value(self.train_args, "--model")
        gguf = _flag_value(self.train_args, "--gguf_file")
        if model is None:
            from distjudge_eval.embedded import embedded_model_args

            return embedded_model_args()
        return f"pretrained={model}" + (f",gguf_file={gguf}" if gguf else "")

    def execute(self) -> list[str]:
        """Run every missing step; returns the names of cells that failed."""
        from tqdm import tqdm

        failed: list[str] = []
        raw_cmd = self.eval_cmd("raw", self.model_args(None))
        if not self.evaluated("raw") and self.run(raw_cmd, self.out / "logs/raw.log"):
            failed.append("raw")
        bar = tqdm(self.cells(), desc="sweep", unit="cell")
        for cell in bar:
            bar.set_postfix_str(cell.name)
            if not self.trained(cell):
                log = self.out / "logs" / f"train_{cell.trained_as.name}.log"
                if self.run(self.train_cmd(cell.trained_as), log) or not self.trained(cell):
                    failed.append(cell.name)
                    continue
            if not self.evaluated(cell.name):
                log = self.out / "logs" / f"eval_{cell.name}.log"
                if self.run(self.eval_cmd(cell.name, self.model_args(cell)), log):
                    failed.append(cell.name)
        return failed

    def summary(self) -> list[dict[str, object]]:
        """Mean metrics per evaluated cell (mean over eval tasks of per-task means)."""
        from distjudge_eval.compare import load_run

        rows = []
        entries: list[tuple[str, Cell | None]] = [("raw", None)]
        entries += [(c.name, c) for c in self.cells()]
        for name, cell in entries:
            if not self.evaluated(name):
                continue
            run = load_run(self.eval_dir(name), name)
            row: dict[str, object] = {
                "cell": name,
                "alpha": "" if cell is None else cell.alpha,
                "epsilon": "" if cell is None else cell.epsilon,
                "n_items": sum(len(s) for s in run.samples.values()),
            }
            for metric in SUMMARY_METRICS:
                per_task = [np.mean([float(r[metric]) for r in s.values()]) for s in
                            run.samples.values()]  # fmt: skip
                row[metric] = round(float(np.mean(per_task)), 6)
            rows.append(row)
        return rows


def _flag_value(args: Sequence[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def write_outputs(rows: list[dict[str, object]], out: Path) -> list[Path]:
    """sweep.csv, sweep.md (KL and Acc grids, α rows × ε columns) and kl_over_alpha.png."""
    paths = [out / "sweep.csv", out / "sweep.md"]
    with paths[0].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    grid = [r for r in rows if r["cell"] != "raw"]
    raw = next((r for r in rows if r["cell"] == "raw"), None)
    alphas = sorted({float(r["alpha"]) for r in grid})  # type: ignore[arg-type]
    epsilons = sorted({float(r["epsilon"]) for r in grid})  # type: ignore[arg-type]
    lookup = {(float(r["alpha"]), float(r["epsilon"])): r for r in grid}  # type: ignore[arg-type]
    lines = []
    for metric, arrow in (("kl", "↓"), ("acc", "↑")):
        lines.append(f"## {metric.upper()}{arrow} by α (rows) and ε (columns)\n")
        if raw is not None:
            lines.append(f"Raw model: {float(raw[metric]):.4f}\n")  # type: ignore[arg-type]
        lines.append("| α \\ ε | " + " | ".join(f"{e:g}" for e in epsilons) + " |")
        lines.append("|---|" + "---:|" * len(epsilons))
        for a in alphas:
            cells = [
                f"{float(lookup[(a, e)][metric]):.4f}" if (a, e) in lookup else "—"  # type: ignore[arg-type]
                for e in epsilons
            ]
            lines.append(f"| {a:g} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("α = 0 trains without the KL term, so its ε columns share one run.")
    paths[1].write_text("\n".join(lines) + "\n")
    if grid:
        paths.append(_plot(lookup, alphas, epsilons, raw, out / "kl_over_alpha.png"))
    return paths


def _plot(lookup, alphas, epsilons, raw, path: Path) -> Path:  # type: ignore[no-untyped-def]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for e in epsilons:
        pts = [(a, float(lookup[(a, e)]["kl"])) for a in alphas if (a, e) in lookup]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker="o", label=f"ε = {e:g}")
    if raw is not None:
        ax.axhline(float(raw["kl"]), color="k", ls="--", lw=1, label="raw model")
    ax.set(xlabel="α (weight of KL; 1 − α on CE)", ylabel="mean KL(p‖q) on test items",
           title="KL over α for each adversary radius ε")  # fmt: skip
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, train_args = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        prog="distjudge sweep",
        description="Train + evaluate every (α, ε) cell; resumable. Flags after `--` go to "
        "`distjudge train` (e.g. -- --max_train_items 200 --max_steps 50 --learning_rate 5e-4).",
    )
    parser.add_argument("--task", required=True, help="training task, list or group")
    parser.add_argument("--eval_tasks", help="tasks to score (default: --task)")
    parser.add_argument("--alphas", type=_floats, default=list(DEFAULT_ALPHAS))
    parser.add_argument("--epsilons", type=_floats, default=list(DEFAULT_EPSILONS))
    parser.add_argument("--limit", type=int, help="test items per eval task")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--data_dir",
        type=Path,
        help="data folder, passed to every train and eval step (default: $DISTJUDGE_DATA_DIR)",
    )
    parser.add_argument("--dry_run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    for flag in ("--task", "--alpha", "--epsilon", "--output_dir"):
        if _flag_value(train_args, flag) is not None:
            parser.error(f"{flag} is set by the sweep; drop it after `--`")
    if _flag_value(train_args, "--data_dir") is not None:  # the eval steps need it too
        parser.error("--data_dir goes before `--`: the sweep passes it to every step")
    sweep = Sweep(
        out=args.out,
        task=args.task,
        eval_tasks=args.eval_tasks or args.task,
        alphas=args.alphas,
        epsilons=args.epsilons,
        limit=args.limit,
        train_args=train_args,
        data_dir=args.data_dir.expanduser().resolve() if args.data_dir else None,
    )
    if args.dry_run:
        seen = set()
        for cell in sweep.cells():
            if cell.trained_as not in seen:
                seen.add(cell.trained_as)
                print(" ".join(sweep.train_cmd(cell.trained_as)))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    failed = sweep.execute()
    rows = sweep.summary()
    if rows:
        for path in write_outputs(rows, args.out):
            print(f"wrote {path}")
        print((args.out / "sweep.md").read_text())
    if failed:
        print(f"{len(failed)} step(s) failed: {', '.join(failed)} (see {args.out}/logs); "
              "rerun the same command to retry them", file=sys.stderr)  # fmt: skip
        return 1
    return 0
