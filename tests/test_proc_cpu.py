"""The benchmarks' CPU readers: per process, per role, over a process tree."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from frontdoor.proc_cpu import process_cpu_seconds, process_role, tree_cpu_by_role

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs Linux /proc")

# A parent that burns CPU, then starts a child named like a service process which burns too.
_TREE = """
import subprocess, sys, time
end = time.process_time() + 0.3
while time.process_time() < end:
    pass
child = subprocess.Popen([sys.executable, "-c", {child!r}, "serve", "management"])
time.sleep(30)
"""
_CHILD = """
import time
end = time.process_time() + 0.3
while time.process_time() < end:
    pass
print("burnt", flush=True)
time.sleep(30)
"""


def test_the_cpu_of_a_tree_is_counted_per_role_children_included() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _TREE.format(child=_CHILD), "up"], stdout=subprocess.PIPE
    )
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == b"burnt"  # the child has burnt its share
        by_role = tree_cpu_by_role([parent.pid])
        assert by_role is not None
        assert set(by_role) == {"up", "management"}
        assert by_role["up"] >= 0.25
        assert by_role["management"] >= 0.25
        assert process_role(parent.pid) == "up"
        own = process_cpu_seconds(parent.pid)
        assert own is not None and own <= by_role["up"] + 0.05
    finally:
        children = open(f"/proc/{parent.pid}/task/{parent.pid}/children").read().split()
        for pid in children:
            os.kill(int(pid), 9)
        parent.kill()
        parent.wait()
    time.sleep(0.05)
    assert process_cpu_seconds(parent.pid) is None  # reaped: nothing to read
    assert tree_cpu_by_role([parent.pid]) is None
