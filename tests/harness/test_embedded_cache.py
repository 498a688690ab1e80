"""The converted copy of the embedded model is named by content and stale copies are pruned
(naming by mtime left one 0.5 GB copy per reinstall: 8 on one developer machine)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from distjudge_eval import embedded


@pytest.fixture
def fake_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    package = tmp_path / "package"
    package.mkdir()
    (package / embedded.EMBEDDED_GGUF).write_bytes(b"GGUF" + bytes(range(256)) * 4096)
    monkeypatch.setattr(embedded, "embedded_model_dir", lambda: package)
    monkeypatch.setenv(embedded.CACHE_DIR_ENV, str(tmp_path / "cache"))
    return package


def test_copy_is_named_by_content_not_by_install_time(fake_package: Path) -> None:
    gguf = fake_package / embedded.EMBEDDED_GGUF
    expected = hashlib.sha256(gguf.read_bytes()).hexdigest()[:16]
    first = embedded.converted_dir()
    assert first.name == f"SmolLM2-135M-Instruct.Q4_1-f32-{expected}"
    os.utime(gguf, (time.time() - 3600, time.time() - 3600))  # a reinstall: same file, new mtime
    assert embedded.converted_dir() == first
    gguf.write_bytes(gguf.read_bytes() + b"x")  # another file: its own copy
    assert embedded.converted_dir() != first


def test_prune_removes_only_copies_no_install_can_use(fake_package: Path) -> None:
    keep = embedded.converted_dir()
    models = keep.parent
    stem = "SmolLM2-135M-Instruct.Q4_1-f32"
    names = {
        "legacy": f"{stem}-98362432-1795994144",
        "legacy_staging": f"{stem}-98362432-1796015159.abc123",
        "old_staging": f"{keep.name}.k1l2m3",
        "fresh_staging": f"{keep.name}.n4o5p6",  # maybe a conversion running now
        "other_content": f"{stem}-0123456789abcdef",  # another package version's file
        "unrelated": "some-other-model",
    }
    for name in [keep.name, *names.values()]:
        (models / name).mkdir(parents=True)
        (models / name / "model.safetensors").write_bytes(b"w")
    day_old = time.time() - 2 * 86400
    os.utime(models / names["old_staging"], (day_old, day_old))

    removed = embedded.prune_stale_copies(keep)

    assert {p.name for p in removed} == {
        names["legacy"],
        names["legacy_staging"],
        names["old_staging"],
    }
    left = {p.name for p in models.iterdir()}
    assert left == {keep.name, names["fresh_staging"], names["other_content"], names["unrelated"]}
