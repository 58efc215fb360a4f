"""Run the CLI and SIGKILL it right after a chosen store transaction commits: a real kill at an exact point.

    python -m tests.kill_after_commit "INSERT INTO items" 1 -- annotate --task ...

kills the process at the first SQL statement that follows the commit of the 1st transaction whose
statements include "INSERT INTO items". The process dies by the signal (no exception, no cleanup),
exactly as a `kill -9` at that instant would leave it.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys


def install(marker: str, nth: int) -> None:
    """Make every sqlite3 connection of this process kill it after the `nth` commit touching `marker`."""
    state = {"in_tx": False, "count": 0, "armed": False}
    connect = sqlite3.connect

    def trace(statement: str) -> None:
        if state["armed"]:
            os.kill(os.getpid(), signal.SIGKILL)
        if statement.startswith("BEGIN"):
            state["in_tx"] = False
        elif marker in statement:
            state["in_tx"] = True
        elif statement == "COMMIT" and state["in_tx"]:
            state["count"] += 1
            state["armed"] = state["count"] >= nth  # the COMMIT runs after this callback: kill at the next one

    def traced_connect(*args: object, **kwargs: object) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        conn.set_trace_callback(trace)
        return conn

    sqlite3.connect = traced_connect


if __name__ == "__main__":
    marker, nth, separator, *cli_args = sys.argv[1:]
    assert separator == "--", __doc__
    install(marker, int(nth))
    from autoannotator.cli import main

    sys.argv = ["autoannotator", *cli_args]
    main()
