"""Loaders on the real files (counts checked against SOURCE.md) and on malformed rows."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from distjudge_eval.data.catalog import find_task, load_task_items
from distjudge_eval.data.items import MalformedDataError, SkipLog, split_of
from distjudge_eval.data.load import load_with_skips, task_dataset
from distjudge_eval.data.mtbench import load_mtbench
from distjudge_eval.data.summeval import DIMENSIONS
from distjudge_eval.errors import UserError
from distjudge_eval.labels import LIKERT_5, NLI
from distjudge_eval.settings import DataDirError


def load_items(bench: str, data_dir, dimension: str = "", **overrides) -> list[dict]:
    """Items of a built-in task, read from its YAML the way the harness reads them."""
    name = f"distjudge_{bench}" + (f"_{dimension}" if dimension else "")
    return load_task_items(name, data_dir=data_dir, **overrides)


def test_snli_counts_match_source(data_dir: Path) -> None:
    items = load_items("snli", data_dir=data_dir)
    assert len(items) == 10_000
    totals = [sum(it["votes"][i] for it in items) for i in range(3)]
    assert dict(zip(NLI.labels, totals)) == {
        "entailment": 16_978,
        "neutral": 16_603,
        "contradiction": 16_405,
    }
    assert Counter(it["n_votes"] for it in items) == {5: 9_986, 4: 14}
    no_majority = [it for it in items if it["gold_label"] == "-"]
    assert len(no_majority) == 158  # kept for KL; accuracy splits their plurality ties
    assert all(max(it["votes"]) < 3 for it in no_majority)
    for it in items:
        if it["gold_label"] != "-":
            assert NLI.labels[it["target"]] == it["gold_label"]


def test_summeval_counts_match_source(data_dir: Path) -> None:
    rating_totals: Counter = Counter()
    for dim in DIMENSIONS:
        items = load_items("summeval", data_dir=data_dir, dimension=dim)
        assert len(items) == 1_200
        assert all(it["n_votes"] == 8 for it in items)
        for it in items:
            for score, n in zip(LIKERT_5.labels, it["votes"]):
                rating_totals[int(score)] += n
    assert rating_totals == {5: 13_726, 4: 12_165, 3: 8_577, 2: 3_021, 1: 911}
    experts = load_items("summeval", data_dir=data_dir, dimension="fluency", raters="experts")
    crowd = load_items("summeval", data_dir=data_dir, dimension="fluency", raters="crowd")
    assert {it["n_votes"] for it in experts} == {3} and {it["n_votes"] for it in crowd} == {5}


def test_mtbench_counts_and_canonical_slot_order(data_dir: Path) -> None:
    items = load_items("mtbench", data_dir=data_dir)
    assert len(items) == 910
    assert sum(it["n_votes"] for it in items) == 1_689
    assert sum(it["votes"][2] for it in items) == 405  # ties are order-free
    assert Counter(it["n_votes"] for it in items) == {
        1: 425,
        2: 283,
        3: 136,
        4: 47,
        5: 13,
        6: 5,
        7: 1,
    }
    assert all(it["model_a"] < it["model_b"] for it in items)
    # Independent recount of one pair straight from the raw votes.
    raw = [json.loads(line) for line in (data_dir / "mt_bench/human_judgments_turn1.jsonl").open()]
    item = next(it for it in items if it["n_votes"] == 7)
    a, b, qid = item["model_a"], item["model_b"], item["question_id"]
    wins = Counter()
    for r in raw:
        if r["question_id"] == qid and {r["model_a"], r["model_b"]} == {a, b}:
            wins[r[r["winner"]] if r["winner"] != "tie" else "tie"] += 1
    assert item["votes"] == [wins[a], wins[b], wins["tie"]]
    question = json.loads((data_dir / "mt_bench/question.jsonl").open().readline())
    first = next(it for it in items if it["question_id"] == question["question_id"])
    assert first["question"] == question["turns"][0]


def test_split_is_deterministic_grouped_and_near_80_20(data_dir: Path) -> None:
    items = load_items("snli", data_dir=data_dir)
    train = sum(it["split"] == "train" for it in items) / len(items)
    assert 0.78 < train < 0.82
    by_group: dict[str, set[str]] = {}
    for it in items:
        by_group.setdefault(it["split_key"], set()).add(it["split"])
        assert it["split"] == split_of(it["split_key"])
    assert all(len(s) == 1 for s in by_group.values())  # no premise straddles the split
    for dim in DIMENSIONS[:1]:
        se = load_items("summeval", data_dir=data_dir, dimension=dim)
        docs: dict[str, set[str]] = {}
        for it in se:
            docs.setdefault(it["doc_id"], set()).add(it["split"])
        assert all(len(s) == 1 for s in docs.values())


def test_task_dataset_has_train_and_test_and_ignores_lm_eval_metadata(data_dir: Path) -> None:
    spec = find_task("distjudge_mtbench").spec
    ds = task_dataset(spec, data_dir=str(data_dir), version=1.0, pretrained="x")
    assert set(ds) == {"train", "test"}
    assert len(ds["train"]) + len(ds["test"]) == 910
    assert set(ds["test"]["split"]) == {"test"}


def write_jsonl(path: Path, rows: list, gz: bool = False) -> Path:
    lines = [
        r if isinstance(r, bytes) else (r if isinstance(r, str) else json.dumps(r)).encode()
        for r in rows
    ]
    data = b"\n".join(lines) + b"\n"
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def nli_row(i: int, labels: list, **extra) -> dict:
    return {
        "annotator_labels": labels,
        "gold_label": "-",
        "pairID": f"p{i}",  # not promptID + e/n/c: the split key stays the pairID
        "promptID": f"g{i // 2}",
        "sentence1": "A man sleeps.",
        "sentence2": "A person rests.",
        **extra,
    }


def test_mnli_shaped_rows_load_and_malformed_rows_are_counted(tmp_path: Path) -> None:
    rows = [
        nli_row(0, ["entailment", "entailment", "neutral", "neutral", "contradiction"]),
        nli_row(1, ["neutral"] * 5, gold_label="neutral"),
        "{not json",
        nli_row(2, ["entailment", "maybe"]),
        nli_row(3, []),
        [1, 2, 3],
        b"\xff\xfe not utf-8",
    ]
    (tmp_path / "mnli").mkdir()
    write_jsonl(tmp_path / "mnli/multinli_1.0_dev_matched.jsonl.gz", rows, gz=True)
    spec = find_task("distjudge_mnli").spec
    items, skips = load_with_skips(spec, data_dir=tmp_path, strict=False)
    assert [it["id"] for it in items] == ["p0", "p1"]
    assert items[0]["p"] == [0.4, 0.4, 0.2] and items[0]["split_key"] == "p0"
    assert skips.counts == {
        "bad JSON": 1,
        "label outside the label set": 1,
        "no votes": 1,
        "not a JSON object": 1,
        "not UTF-8 text": 1,
    }
    assert "skipped 5 rows" in skips.summary()
    assert skips.examples["not UTF-8 text"] == "multinli_1.0_dev_matched.jsonl.gz:7 byte 0"
    with pytest.raises(MalformedDataError, match="bad JSON"):
        load_with_skips(spec, data_dir=tmp_path, strict=True)


def test_mtbench_malformed_votes_are_counted(tmp_path: Path, data_dir: Path) -> None:
    folder = tmp_path / "mt_bench"
    (folder / "model_answer").mkdir(parents=True)
    src = data_dir / "mt_bench"
    (folder / "question.jsonl").write_text((src / "question.jsonl").read_text())
    for name in ("gpt-4", "claude-v1"):
        (folder / f"model_answer/{name}.jsonl").write_text(
            (src / f"model_answer/{name}.jsonl").read_text()
        )
    votes = [
        {"question_id": 81, "model_a": "gpt-4", "model_b": "claude-v1", "winner": "model_a"},
        {"question_id": 81, "model_a": "claude-v1", "model_b": "gpt-4", "winner": "model_b"},
        {"question_id": 81, "model_a": "claude-v1", "model_b": "gpt-4", "winner": "tie"},
        {"question_id": 81, "model_a": "gpt-4", "model_b": "claude-v1", "winner": "both"},
        {"question_id": 82, "model_a": "gpt-4", "model_b": "llama-13b", "winner": "tie"},
        {"question_id": 999, "model_a": "gpt-4", "model_b": "claude-v1", "winner": "tie"},
    ]
    write_jsonl(folder / "human_judgments_turn1.jsonl", votes)
    skips = SkipLog("mtbench")
    items = load_mtbench(folder, skips)
    assert len(items) == 1
    # canonical order: claude-v1 < gpt-4, both gpt-4 wins land in slot B.
    assert (items[0]["model_a"], items[0]["votes"]) == ("claude-v1", [0, 2, 1])
    assert skips.counts == {
        "unknown label": 1,
        "no answer file or row for a model": 1,
        "vote for an unknown question": 1,
    }


def test_missing_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    given = r"given by --data_dir\) does not exist: point --data_dir"
    with pytest.raises(DataDirError, match=given):
        load_items("snli", data_dir=tmp_path / "nope")
    with pytest.raises(DataDirError, match="distjudge data fetch --datasets mnli"):
        load_items("mnli", data_dir=tmp_path)
    with pytest.raises(UserError, match="no distjudge task named 'distjudge_squad'"):
        load_items("squad", data_dir=tmp_path)


def test_a_users_task_needs_no_data_dir(tmp_path: Path, monkeypatch) -> None:
    """Nothing set and no data dir at the default place: a user's task reads its file beside its
    YAML; a missing file names where it looked and how to fix it, not a fetch of a benchmark;
    a built-in task's error never points into our own tasks folder."""
    from distjudge_eval import settings
    from distjudge_eval.data.load import resolve_data_file
    from distjudge_eval.data.spec import parse_spec

    monkeypatch.delenv("DISTJUDGE_DATA_DIR", raising=False)
    monkeypatch.setattr(settings, "DEFAULT_DATA_DIR", tmp_path / "no_cache")
    assert settings.check_named_data_dir(None) is None
    with pytest.raises(DataDirError, match="given by --data_dir"):
        settings.check_named_data_dir(tmp_path / "nope")
    yaml = tmp_path / "mine/task.yaml"
    yaml.parent.mkdir()
    (yaml.parent / "votes.jsonl").write_text('{"id": "a", "votes": ["x", "y"]}\n')
    spec = parse_spec({"data_files": "votes.jsonl"}, ["x", "y"])
    assert resolve_data_file(spec, None, str(yaml)) == yaml.parent / "votes.jsonl"
    missing = parse_spec({"data_files": "other.jsonl"}, ["x", "y"])
    with pytest.raises(DataDirError) as err:
        resolve_data_file(missing, None, str(yaml))
    message = str(err.value)
    assert f"looked for {yaml.parent / 'other.jsonl'} (there is no data dir)" in message
    assert "beside the task's YAML" in message and "data fetch" not in message
    entry = find_task("distjudge_snli")
    with pytest.raises(DataDirError) as err:
        resolve_data_file(entry.spec, tmp_path, str(entry.yaml_path))
    message = str(err.value)
    assert str(entry.yaml_path.parent) not in message and str(tmp_path / "snli") in message
    assert "distjudge data fetch --datasets snli" in message


def test_duplicate_ids_are_one_item(tmp_path: Path, data_dir: Path) -> None:
    src = data_dir / "snli/snli_1.0_dev.jsonl.gz"
    lines = gzip.decompress(src.read_bytes()).splitlines(keepends=True)
    (tmp_path / "snli").mkdir()
    (tmp_path / "snli/snli_1.0_dev.jsonl").write_bytes(b"".join(lines + lines[:100]))
    items, skips = load_with_skips(find_task("distjudge_snli").spec, data_dir=tmp_path)
    assert len(items) == 10_000 and skips.counts == {"duplicate id": 100}
    assert len({it["id"] for it in items}) == 10_000
