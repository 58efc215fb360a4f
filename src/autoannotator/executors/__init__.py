"""Where the specialist layer runs: `local` (this process) or `ray` (Ray Data actor pools on a cluster)."""

from __future__ import annotations

from autoannotator.errors import AnnotatorError
from autoannotator.executors.local import Executor, LocalExecutor


def create_executor(name: str = "local", *, ray_address: str | None = None, **options: object) -> Executor:
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        from autoannotator.executors.ray import RayExecutor

        return RayExecutor(address=ray_address, **options)
    raise AnnotatorError(f"unknown executor '{name}' (use local or ray)")


__all__ = ["Executor", "LocalExecutor", "create_executor"]
