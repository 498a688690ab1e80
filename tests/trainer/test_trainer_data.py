"""The trainer's dataset: several tasks or a group at once, each capped, label counts checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from distjudge_eval.errors import UserError


@pytest.fixture(scope="module")
def tokenizer(embedded_tokenizer):
    return embedded_tokenizer


def test_group_trains_on_every_dimension(tokenizer, data_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("DISTJUDGE_DATA_DIR", str(data_dir))
    from distjudge_trainer.data import build_examples, load_tasks

    dims = ("coherence", "consistency", "fluency", "relevance")
    assert sorted(load_tasks("distjudge_summeval")) == [f"distjudge_summeval_{d}" for d in dims]
    examples = build_examples("distjudge_summeval", tokenizer, max_items=2)
    assert len(examples) == 8
    per_task = {ex.item_id.split("/")[0] for ex in examples}
    assert per_task == {f"distjudge_summeval_{d}" for d in dims}
    assert all(len(ex.p) == 5 for ex in examples)
    listed = build_examples("distjudge_snli,distjudge_mtbench", tokenizer, max_items=1)
    assert len(listed) == 2
    with pytest.raises(UserError, match="different label counts"):
        build_examples("distjudge_snli,distjudge_summeval_fluency", tokenizer, max_items=1)
