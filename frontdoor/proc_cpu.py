"""CPU time of other processes, read from Linux ``/proc``, for the benchmark commands.

A benchmark's number to compare between changes is CPU time per unit of work: other load on the
machine changes latency and throughput far more than it changes the CPU a process spends.
Elsewhere than Linux every reader answers ``None`` and the benchmarks leave the number out.
"""

from __future__ import annotations

import os
from pathlib import Path


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` (its threads included); ``None`` if gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def process_role(pid: int) -> str:
    """A short name for what a Frontdoor stack's process is, from its command line.

    ``nats-server``; ``serve <what>`` gives ``<what>`` (``gateway``, ``management``, ...);
    ``frontdoor up`` is ``up`` (the gateway, and in one process every service too);
    anything else its program name.
    """
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    args = [a.decode(errors="replace") for a in argv if a]
    if not args:
        return "?"
    if any(Path(a).name == "nats-server" for a in args[:2]):
        return "nats-server"
    if "serve" in args[:-1]:
        return args[args.index("serve") + 1]
    if "up" in args:
        return "up"
    return Path(args[0]).name


def tree_cpu_by_role(pids: list[int]) -> dict[str, float] | None:
    """CPU seconds of processes ``pids`` and all their descendants alive now, by ``process_role``.

    ``None`` when a process could not be read (not Linux, or it exited while being read).
    """
    by_role: dict[str, float] = {}
    todo = list(pids)
    try:
        while todo:
            pid = todo.pop()
            cpu = process_cpu_seconds(pid)
            if cpu is None:
                return None
            role = process_role(pid)
            by_role[role] = by_role.get(role, 0.0) + cpu
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
    except (OSError, ValueError):
        return None
    return by_role
