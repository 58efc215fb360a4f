"""Pick the torch device a model runs on."""

from __future__ import annotations


def auto_device(requested: str | None = None) -> str:
    """`requested` if given, else cuda, then mps, then cpu."""
    if requested and requested != "auto":
        return requested
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"
