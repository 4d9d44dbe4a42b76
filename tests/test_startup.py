"""The collector leaves startup's objects alone once a process has started serving."""

from __future__ import annotations

import gc
import weakref

from voiceflow_channels.startup import freeze_startup_objects


class Built:
    """An object of startup's: tracked by the collector until frozen."""


def test_objects_alive_at_startup_leave_the_collectors_generations():
    before = Built()
    assert gc.is_tracked(before)
    frozen = gc.get_freeze_count()
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() > frozen
        assert all(o is not before for o in gc.get_objects())
        after = Built()  # what a call creates later is collected as usual
        assert any(o is after for o in gc.get_objects())
    finally:
        gc.unfreeze()


def test_garbage_left_by_startup_is_collected_not_frozen():
    gc.disable()  # no automatic collection: only freeze_startup_objects may collect the cycle
    try:
        node = Built()
        node.itself = node  # a cycle: only the collector frees it
        ref = weakref.ref(node)
        del node
        assert ref() is not None
        freeze_startup_objects()
        assert ref() is None
    finally:
        gc.unfreeze()
        gc.enable()
