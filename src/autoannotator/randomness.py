"""One random seed for a run: seeded torch work without touching the caller's global random state."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

DEFAULT_RANDOM_SEED = 0


@contextlib.contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Run the body with torch's CPU (and CUDA) generators seeded by `seed`, then restore them.

    Weight initialisation and dropout draw from torch's default generators, so they are seeded here through
    `torch.random.fork_rng` (the library's own way to scope a seed) instead of by a global `manual_seed`.
    """
    import torch

    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def use_deterministic_kernels() -> None:
    """Ask torch for deterministic kernels only (`--deterministic`); on CPU this changes nothing measurable.

    On a GPU, cuBLAS needs a fixed workspace (`CUBLAS_WORKSPACE_CONFIG`) and cuDNN its deterministic algorithms;
    an op with no deterministic CUDA kernel then raises instead of silently varying (torch's
    `use_deterministic_algorithms`, https://pytorch.org/docs/stable/notes/randomness.html).
    """
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
