"""``freeze_long_lived``: opt-in, collects what was replaced, freezes what stays.

Run in a child interpreter: freezing changes the collector of the whole process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import gc
    import weakref

    from events.memory import freeze_long_lived


    class Node:
        pass


    def cycle():
        node = Node()
        node.me = node  # only the cyclic collector can free it
        return node


    def tracked(obj):
        return any(o is obj for o in gc.get_objects())


    # A process that did not opt in keeps its collector as it is.
    freeze_long_lived("a test")
    assert gc.get_freeze_count() == 0

    gc.freeze()  # opting in, as frontdoor.eventloop.run does
    model = cycle()
    freeze_long_lived("loading a model")
    assert not tracked(model), "what stays is frozen (out of the collector's passes)"

    old = weakref.ref(model)
    del model  # replaced: an unreachable cycle among the frozen objects
    replacement = cycle()
    freeze_long_lived("loading another model")
    assert old() is None, "what was replaced since the last freeze is collected"
    assert not tracked(replacement)
    print("ok")
    """
)


def test_freeze_long_lived_in_a_child_interpreter() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
