"""A benchmark is a YAML and a data file: user tasks outside the package, every votes layout,
counted skips, one-line errors, and the built-in ChaosNLI / MNLI tasks on the same path."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

import pytest
from lm_eval.tasks import TaskManager

from distjudge_eval.data.catalog import find_tasks
from distjudge_eval.data.items import MalformedDataError
from distjudge_eval.errors import UserError
from distjudge_eval.labels import declared_synonyms
from distjudge_eval.metrics import METRICS
from distjudge_eval.paths import tasks_dir

HEAD = "class: !function distjudge_eval.task.DistributionTask\n"


def build(folder: Path, name: str, metadata: dict | None = None):
    """The task as lm-eval builds it from a user's folder."""
    manager = TaskManager(
        include_path=[str(tasks_dir()), str(folder)], include_defaults=False, metadata=metadata
    )
    tasks = dict(manager.load([name])["tasks"])
    return tasks[name]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def toxicity_rows(n: int = 30) -> list[dict]:
    rows = []
    for i in range(n):
        ratings = ["toxic"] * (i % 4) + ["not toxic"] * (3 - i % 4 + 1)
        rows.append(
            {"comment_id": f"c{i}", "thread": f"t{i // 3}", "comment": f"text {i}", "r": ratings}
        )
    return rows


TOXICITY_YAML = HEAD + (
    "task: my_toxicity\n"
    "doc_to_choice: ['not toxic', toxic]\n"
    'doc_to_text: "Comment: {{comment}}\\nAnswer:"\n'
    "dataset_kwargs:\n"
    "  data_files: votes.jsonl\n"
    "  id_field: comment_id\n"
    "  votes_field: r\n"
    "  fields: [comment]\n"
    "  split_by: thread\n"
    "  synonyms: {toxic: ['yes', offensive]}\n"
)


@pytest.fixture()
def toxicity(tmp_path: Path) -> Path:
    (tmp_path / "toxicity.yaml").write_text(TOXICITY_YAML)
    write_jsonl(tmp_path / "votes.jsonl", toxicity_rows())
    return tmp_path


def test_user_task_gets_items_metrics_and_splits(toxicity: Path) -> None:
    task = build(toxicity, "my_toxicity")
    docs = list(task.training_docs()) + list(task.test_docs())
    assert len(docs) == 30
    by_id = {d["id"]: d for d in docs}
    for row in toxicity_rows():
        doc = by_id[row["comment_id"]]
        n_toxic = row["r"].count("toxic")
        assert doc["votes"] == [len(row["r"]) - n_toxic, n_toxic]
        assert doc["p"] == pytest.approx([1 - n_toxic / len(row["r"]), n_toxic / len(row["r"])])
        assert doc["split_key"] == row["thread"]
    # grouped split: every thread lies wholly in one split
    splits = {}
    for d in docs:
        assert splits.setdefault(d["split_key"], d["split"]) == d["split"]
    assert {d["split"] for d in task.test_docs()} == {"test"}
    assert task.doc_to_choice(docs[0]) == ["not toxic", "toxic"]
    assert task.doc_to_text(docs[0]) == f"Comment: {docs[0]['comment']}\nAnswer:"
    names = [m["metric"] for m in task.config.metric_list]
    assert names == [m.name for m in METRICS if "logprob" in m.readouts]
    assert task.config.metadata["skipped_rows"] == {}
    # the YAML's synonyms reach the backends that map written tokens to labels
    assert "offensive" in declared_synonyms(["not toxic", "toxic"])["toxic"]


def test_counts_layouts_numeric_and_multi_token_labels(tmp_path: Path) -> None:
    labels = [-2, -1, 0, 1, 2]
    rows = [
        {"id": 1, "text": "a", "counts": {"-2": 1, "2": 3}},
        {"id": 2, "text": "b", "counts": [0, 0, 5, 0, 0]},
        {"id": 3, "text": "c", "counts": {"0": 2.5, "1": 2.5}},
    ]
    write_jsonl(tmp_path / "d.jsonl", rows)
    (tmp_path / "num.yaml").write_text(
        HEAD + "task: my_numeric\n"
        f"doc_to_choice: {labels}\n"
        'doc_to_text: "{{text}}"\n'
        "dataset_kwargs:\n  data_files: d.jsonl\n  votes_field: counts\n"
        "  votes_format: counts\n  fields: [text]\n  train_fraction: 0.5\n  split_seed: 3\n"
    )
    with (tmp_path / "m.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["key", "question", "n_a", "n_b", "split"])
        w.writerow(["q1", "x", 3, 1, "train"])
        w.writerow(["q2", "y", 0, 2, "test"])
    (tmp_path / "multi.yaml").write_text(
        HEAD + "task: my_multi\n"
        "doc_to_choice: ['clearly better', 'about the same']\n"
        'doc_to_text: "{{question}}"\n'
        "dataset_kwargs:\n  data_files: m.csv\n  id_field: key\n  votes_field: [n_a, n_b]\n"
        "  votes_format: counts\n  fields: [question]\n  split_field: split\n"
    )
    task = build(tmp_path, "my_numeric")
    docs = {d["id"]: d for d in [*task.training_docs(), *task.test_docs()]}
    assert task.doc_to_choice(docs["1"]) == ["-2", "-1", "0", "1", "2"]
    assert docs["1"]["p"] == pytest.approx([0.25, 0, 0, 0, 0.75])
    assert docs["2"]["p"] == pytest.approx([0, 0, 1, 0, 0])
    assert docs["3"]["p"] == pytest.approx([0, 0, 0.5, 0.5, 0])

    multi = build(tmp_path, "my_multi")
    train, test = list(multi.training_docs()), list(multi.test_docs())
    assert [d["id"] for d in train] == ["q1"] and [d["id"] for d in test] == ["q2"]
    assert train[0]["p"] == pytest.approx([0.75, 0.25])


def test_saved_datasets_folder(tmp_path: Path) -> None:
    import datasets

    rows = [{"id": f"i{i}", "t": str(i), "v": ["yes", "no", "yes"][: 1 + i % 3]} for i in range(9)]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    (tmp_path / "ds.yaml").write_text(
        HEAD + "task: my_saved\ndoc_to_choice: ['yes', 'no']\n"
        'doc_to_text: "{{t}}"\n'
        "dataset_kwargs:\n  data_files: saved\n  votes_field: v\n  fields: [t]\n"
        "  train_fraction: 0.5\n"
    )
    task = build(tmp_path, "my_saved")
    assert len(task.training_docs()) + len(task.test_docs()) == 9


def test_malformed_rows_are_counted_per_reason(tmp_path: Path) -> None:
    rows = toxicity_rows(30)
    bad = [
        {"comment_id": "m1", "thread": "x", "r": ["toxic"]},  # missing field comment
        {"comment_id": "m2", "thread": "x", "comment": "z", "r": ["rude"]},  # outside the set
        {"comment_id": "m3", "thread": "x", "comment": "z", "r": []},  # no votes
        {"comment_id": "m4", "thread": "x", "comment": "z"},  # no votes field
        {"thread": "x", "comment": "z", "r": ["toxic"]},  # no id
        rows[0],  # duplicate id
    ]
    write_jsonl(tmp_path / "votes.jsonl", rows + bad)
    with (tmp_path / "votes.jsonl").open("a") as fh:
        fh.write("{not json\n")
    (tmp_path / "toxicity.yaml").write_text(TOXICITY_YAML)
    task = build(tmp_path, "my_toxicity")
    assert len(task.training_docs()) + len(task.test_docs()) == 30
    assert task.config.metadata["skipped_rows"] == {
        "missing field comment": 1,
        "label outside the label set": 1,
        "no votes": 1,
        "missing votes field": 1,
        "missing id (comment_id)": 1,
        "duplicate id": 1,
        "bad JSON": 1,
    }
    with pytest.raises(MalformedDataError, match=r"votes.jsonl:31: missing field comment"):
        build(tmp_path, "my_toxicity", metadata={"strict": True})


def test_nan_and_negative_counts_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text(
        '[{"id": "a", "t": "x", "c": [1, 2]}, {"id": "b", "t": "x", "c": [NaN, 1]},'
        ' {"id": "c", "t": "x", "c": [-1, 2]}, {"id": "d", "t": "x", "c": [0, 0]},'
        ' {"id": "e", "t": "x", "c": [1, 2, 3]}, {"id": "f", "t": "x", "c": [3, 0]}]'
    )
    (tmp_path / "t.yaml").write_text(
        HEAD + "task: my_counts\ndoc_to_choice: [a, b]\n"
        'doc_to_text: "{{t}}"\n'
        "dataset_kwargs:\n  data_files: d.json\n  votes_field: c\n  votes_format: counts\n"
        "  fields: [t]\n  train_fraction: 0.5\n"
    )
    task = build(tmp_path, "my_counts")
    assert task.config.metadata["skipped_rows"] == {
        "bad count (missing, negative, NaN or not a number)": 2,
        "no votes": 1,
        "wrong number of counts (need 2, one per label)": 1,
    }
    assert all(math.isclose(sum(d["p"]), 1.0) for d in task.training_docs())


@pytest.mark.parametrize(
    ("yaml_extra", "message"),
    [
        ("  votes_feild: r\n", r"unknown key 'votes_feild' \(did you mean votes_field\?\)"),
        ("  votes_format: tallies\n", r"votes_format must be one of"),
        ("  split_pattern: 'abc'\n", r"split_pattern needs one \(group\)"),
        ("  label_map: {yes: toxic}\n", r"YAML boolean True: .*quote them"),
    ],
)
def test_spec_mistakes_are_one_line(toxicity: Path, yaml_extra: str, message: str) -> None:
    (toxicity / "toxicity.yaml").write_text(TOXICITY_YAML + yaml_extra)
    with pytest.raises(UserError, match=message):
        build(toxicity, "my_toxicity")


def test_prompt_field_typo_and_missing_file(toxicity: Path) -> None:
    (toxicity / "toxicity.yaml").write_text(TOXICITY_YAML.replace("{{comment}}", "{{coment}}"))
    with pytest.raises(UserError, match=r"doc_to_text uses coment but items have"):
        build(toxicity, "my_toxicity")
    (toxicity / "toxicity.yaml").write_text(TOXICITY_YAML.replace("votes.jsonl", "nope.jsonl"))
    with pytest.raises(UserError, match=r"data file not found: looked for .*nope.jsonl"):
        build(toxicity, "my_toxicity", metadata={"data_dir": str(toxicity)})


def test_damaged_gzip_names_the_file(tmp_path: Path) -> None:
    import gzip

    payload = gzip.compress("".join(json.dumps(r) + "\n" for r in toxicity_rows()).encode())
    (tmp_path / "votes.jsonl.gz").write_bytes(payload[: len(payload) // 2])
    (tmp_path / "toxicity.yaml").write_text(TOXICITY_YAML.replace("votes.jsonl", "votes.jsonl.gz"))
    with pytest.raises(UserError, match=r"votes.jsonl.gz: cannot read past line \d+"):
        build(tmp_path, "my_toxicity")


def test_catalog_lists_builtin_and_user_tasks(toxicity: Path) -> None:
    names = [e.name for e in find_tasks([tasks_dir(), toxicity])]
    for name in (
        "distjudge_snli",
        "distjudge_mnli",
        "distjudge_chaosnli_snli",
        "distjudge_chaosnli_mnli",
        "distjudge_summeval_relevance",
        "distjudge_mtbench_swapped",
        "distjudge_snli_verbalized",
        "my_toxicity",
    ):
        assert name in names


# --------------------------------------------------------------------- ChaosNLI and MNLI


@pytest.fixture(scope="module")
def nli_tasks(data_dir: Path) -> dict:
    meta = {"data_dir": str(data_dir)}
    manager = TaskManager(include_path=str(tasks_dir()), include_defaults=False, metadata=meta)
    names = ["snli", "mnli", "chaosnli_snli", "chaosnli_mnli"]
    names += ["chaosnli_snli_5vote", "chaosnli_mnli_5vote"]
    return dict(manager.load([f"distjudge_{n}" for n in names])["tasks"])


def _all_docs(task) -> list[dict]:
    return [*task.training_docs(), *task.test_docs()]


def test_chaosnli_snli_keeps_snli_ids_and_split(nli_tasks: dict) -> None:
    snli = {d["id"]: d for d in _all_docs(nli_tasks["distjudge_snli"])}
    chaos = _all_docs(nli_tasks["distjudge_chaosnli_snli"])
    assert len(chaos) == 1514
    for doc in chaos:
        assert doc["n_votes"] == 100
        twin = snli[doc["id"]]
        assert (doc["split"], doc["split_key"], doc["premise"]) == (
            twin["split"],
            twin["split_key"],
            twin["premise"],
        )
    assert Counter(d["split"] for d in chaos) == {"train": 1197, "test": 317}


def test_mnli_runs_on_the_chaosnli_items_with_their_five_labels(nli_tasks: dict) -> None:
    mnli = _all_docs(nli_tasks["distjudge_mnli"])
    chaos = {d["id"]: d for d in _all_docs(nli_tasks["distjudge_chaosnli_mnli"])}
    assert len(mnli) == len(chaos) == 1599
    assert Counter(d["n_votes"] for d in mnli) == {5: 1599}
    for doc in mnli:
        twin = chaos[doc["id"]]
        assert doc["split"] == twin["split"] and doc["split_key"] == doc["id"][:-1]
        assert twin["n_votes"] == 100
    assert Counter(d["split"] for d in mnli) == {"train": 1271, "test": 328}


@pytest.mark.parametrize("corpus", ["snli", "mnli"])
def test_chaosnli_5vote_twins_are_the_same_items_with_the_original_votes(
    nli_tasks: dict, corpus: str
) -> None:
    """Train on 5 original votes, test on 100: same ids, split, prompt; p as in SNLI/MNLI."""
    hundred = {d["id"]: d for d in _all_docs(nli_tasks[f"distjudge_chaosnli_{corpus}"])}
    five = _all_docs(nli_tasks[f"distjudge_chaosnli_{corpus}_5vote"])
    original = {d["id"]: d for d in _all_docs(nli_tasks[f"distjudge_{corpus}"])}
    assert len(five) == len(hundred)
    assert Counter(d["n_votes"] for d in five) == (
        {5: 1507, 4: 7} if corpus == "snli" else {5: 1599}
    )
    for doc in five:
        twin = hundred[doc["id"]]
        for key in ("split", "split_key", "premise", "hypothesis"):
            assert doc[key] == twin[key], key
        assert doc["p"] == pytest.approx(original[doc["id"]]["p"], abs=1e-12)


def test_run_settings_eval_split_and_temperature(toxicity: Path) -> None:
    task = build(toxicity, "my_toxicity", metadata={"eval_split": "train", "temperature": 2.0})
    assert {d["split"] for d in task.test_docs()} == {"train"}
    doc = task.test_docs()[0]
    scores = [(-1.0, False), (-3.0, False)]
    hot = task.process_results(doc, scores)
    import numpy as np

    q = np.exp(np.array([-0.5, -1.5]) - np.logaddexp(-0.5, -1.5))  # softmax(scores / 2)
    p = np.asarray(doc["p"])
    kl = sum(pk * np.log(pk / qk) for pk, qk in zip(p, q) if pk > 0)
    assert hot["kl"] == pytest.approx(kl, rel=1e-12)
    with pytest.raises(UserError, match="temperature must be a positive number"):
        build(toxicity, "my_toxicity", metadata={"temperature": 0})
