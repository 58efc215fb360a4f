"""A Rich progress bar that can be switched off (library use) without changing the calling code."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


@contextmanager
def progress_bar(total: int, *, done: int = 0, enabled: bool = True, description: str = "") -> Iterator[Callable[[int], None]]:
    """Yield `advance(n)`; shows a bar on stderr when enabled."""
    if not enabled:
        yield lambda n: None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task_id = progress.add_task(description, total=total, completed=done)
        yield lambda n: progress.advance(task_id, n)
