"""One run directory, one writer: an advisory lock (`fcntl.flock`) on `RUN_DIR/.lock`.

`annotate`, `run`, `estimate` and `rollback` hold it exclusively for as long as they run; the review
commands (terminal, `--import`, `--serve`) hold it shared, so several of them may work on a run together
(each answer is one transaction, a second answer to an item is refused) but never while it is annotated.
The kernel drops a lock when its process ends, however it ends (kill -9 included): no stale lock survives.
The lock file names its holders (one `pid command` line each) for the refusal message.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from autoannotator.errors import AnnotatorError

LOCK_FILE = ".lock"


class RunBusyError(AnnotatorError):
    """Another process holds the run directory's lock (the message names it)."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def lock_holders(path: Path) -> list[str]:
    """'command (pid N)' for each process named in the lock file that is still alive."""
    holders = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    for line in lines:
        pid, _, command = line.partition(" ")
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            holders.append(f"{command or 'a process'} (pid {pid})")
    return list(dict.fromkeys(holders))


@contextmanager
def run_lock(run_dir: str | Path, command: str, *, shared: bool = False) -> Iterator[None]:
    """Hold the lock of `run_dir` (created if missing) while the block runs: exclusive for a command that
    runs or changes the run, `shared` for review commands. Never waits: raises RunBusyError naming the
    holder (command and pid) when the lock is taken."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holders = lock_holders(path) or ["another process"]
            raise RunBusyError(
                f"run directory {run_dir} is in use by {', '.join(holders)}; "
                f"run {command} again when it has finished"
            ) from None
        if not shared:
            os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {command}\n".encode())  # one small O_APPEND write: whole lines, even when shared
        yield
    finally:
        os.close(fd)  # releases the lock
