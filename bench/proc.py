"""A server process's own CPU time: a figure other load on a shared machine moves far less
than requests per second."""

from __future__ import annotations

import os
import subprocess


def listening_pid(port: int) -> int:
    """The process listening on `port` (the one worker of `--workers 1`)."""
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True)
    return int(out.stdout.split("pid=")[1].split(",")[0])


def cpu_seconds(pid: int) -> float:
    """User + system time of every thread of `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
