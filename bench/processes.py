"""Find and kill, by pid, every process a test or the chaos soak started: its process session, and
anything (Ray's daemons and workers) that names its own Ray temporary directory."""
from __future__ import annotations

import os
import signal
import subprocess
import time


def _table() -> list[tuple[int, int, str]]:
    # -ww: whole command lines (without it ps may cut them to a terminal width, and the Ray
    # temp dir they name would go unseen)
    out = subprocess.run(["ps", "-ww", "-eo", "pid=,sid=,args="], check=False, capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        pid, sid, *args = line.split(None, 2)
        rows.append((int(pid), int(sid), args[0] if args else ""))
    return rows


def started_by(session: int | None = None, path: str | None = None) -> list[int]:
    """Pids in process session ``session`` or whose command line names ``path``."""
    me = os.getpid()
    return [pid for pid, sid, args in _table()
            if pid != me and ((session is not None and sid == session) or (path and path in args))]


def kill_all(session: int | None = None, path: str | None = None, timeout: float = 20) -> list[int]:
    """SIGKILL what ``started_by`` finds until nothing is left; returns the pids killed."""
    killed: list[int] = []
    deadline = time.monotonic() + timeout
    while (pids := started_by(session, path)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    return killed
