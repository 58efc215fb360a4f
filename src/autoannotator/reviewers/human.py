"""A person reviews hard items in the terminal: number keys for labels, s to skip, u to undo, q to quit.

Each answer is written to the run store the moment it is given, so quitting (or a crash) loses
nothing; the next session starts at the first item still waiting.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import click
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from autoannotator.errors import AnnotatorError
from autoannotator.reviewers.base import Answer, Reviewer, ReviewItem
from autoannotator.store import RunStore
from autoannotator.task import Task

SOURCE = "human"


@dataclass
class SessionStats:
    answered: int = 0
    skipped: int = 0
    undone: int = 0
    quit: bool = False


def require_terminal() -> None:
    """Raise AnnotatorError unless keys can be read from a terminal (stdin, or the controlling terminal /dev/tty,
    which is where `click.getchar` reads when stdin is not one)."""
    if sys.stdin is not None and sys.stdin.isatty():
        return
    try:
        open("/dev/tty").close()  # noqa: SIM115
    except OSError:
        raise AnnotatorError("the human reviewer answers in a terminal and this process has none (stdin is not a terminal, no /dev/tty): "
                             "run it in a terminal, or review later with `autoannotator review --export`/`--import`") from None


def review_in_terminal(
    items: Sequence[ReviewItem], task: Task, store: RunStore | None, *, console: Console, getkey: Callable[[], str] = click.getchar,
    answers: dict[int, str] | None = None,
) -> SessionStats:
    """Walk the items; label keys save at once, 'u' reopens the last answer, 's' skips, 'q' stops. Answers go to
    `store`, or, given `answers` (the reviewer probe: its seed items are not run items), into that dict by row."""
    stats = SessionStats()
    answered: list[int] = []
    keys = {str(i + 1): name for i, name in enumerate(task.label_names[:9])}
    legend = "  ".join(f"[bold]{k}[/] {escape(v)}" for k, v in keys.items()) + "   [bold]s[/] skip  [bold]u[/] undo  [bold]q[/] quit"
    position = 0
    while position < len(items):
        item = items[position]
        votes = ", ".join(f"{escape(name)}: {escape(str(v.get('label')))} ({v.get('p', 0):.2f})" for name, v in item.votes.items())
        console.print(Panel(escape(item.text), title=f"item {item.item_id}  ({position + 1}/{len(items)})", subtitle=votes or None))
        console.print(legend)
        key = getkey().lower()
        if key in keys:
            if answers is not None:
                answers[item.row] = keys[key]
            else:
                store.save_reviews([(item.row, SOURCE, keys[key], None, {})])
            answered.append(position)
            stats.answered += 1
            position += 1
        elif key == "s":
            stats.skipped += 1
            position += 1
        elif key == "u" and answered:
            position = answered.pop()
            if answers is not None:
                answers.pop(items[position].row, None)
            else:
                store.reopen(items[position].row, SOURCE)
            stats.answered -= 1
            stats.undone += 1
        elif key == "q":
            stats.quit = True
            break
        else:
            console.print(f"[yellow]key {escape(key)!r} does nothing here[/]")
    return stats


class TerminalReviewer(Reviewer):
    """The human reviewer inside `annotate --reviewer human`: asks about each chunk's hard items."""

    source = SOURCE
    saves_own_answers = True

    def __init__(self, task: Task, *, console: Console | None = None, getkey: Callable[[], str] = click.getchar) -> None:
        super().__init__(task)
        self.console = console or Console(stderr=True)
        self.getkey = getkey
        self.store: RunStore | None = None
        self.stopped = False

    def attach(self, store: RunStore) -> None:
        self.store = store

    def check_ready(self) -> None:
        """Keys are read from the terminal: without one, AnnotatorError (an injected `getkey` needs none)."""
        if self.getkey is click.getchar:
            require_terminal()

    def review(self, items: Sequence[ReviewItem]) -> list[Answer]:
        """Answers go straight to the store; after 'q' the remaining hard items wait for a later session."""
        if not self.stopped:
            self.stopped = review_in_terminal(items, self.task, self.store, console=self.console, getkey=self.getkey).quit
        return [Answer(None) for _ in items]

    def answer_probe(self, items: Sequence[ReviewItem]) -> list[Answer]:
        """The reviewer probe's seed items: the person's answers are returned (kept with the probe), not saved as
        run items (they are not in the run)."""
        given: dict[int, str] = {}
        review_in_terminal(items, self.task, None, console=self.console, getkey=self.getkey, answers=given)
        return [Answer(given.get(item.row)) for item in items]
