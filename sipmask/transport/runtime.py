"""The one event loop of a sipmask process: uvloop when installed, plain asyncio otherwise."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop factory when uvloop imports (Linux/macOS wheels), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


def loop_name() -> str:
    """'uvloop' or 'asyncio': which loop `run` will use (for logs and `sipmask version`)."""
    return "asyncio" if loop_factory() is asyncio.new_event_loop else "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run `main` to completion on a fresh loop from `loop_factory()`."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)


GC_THRESHOLDS = (50_000, 20, 100)
"""Young collections every 50,000 allocations instead of 700: per-call objects die by
reference counting, so frequent young collections mostly walk live ones."""


def tune_gc() -> None:
    """Once started: move everything alive (modules, config, the apps) out of the cyclic
    collector's reach (`gc.freeze`) and collect less often, so a full collection walks only
    the objects of calls and transactions in progress and pauses the loop less."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


FREEZE_EVERY = 1.0
"""Seconds between two `gc.freeze()` while serving."""
FULL_COLLECTION_EVERY = 60.0
"""Seconds between two full collections (all objects unfrozen and walked once)."""


async def gc_pacer() -> None:
    """Keep garbage-collection pauses short on a busy process (Instagram's `gc.freeze` idea,
    applied continuously): every second everything alive is frozen, so the collector's
    automatic passes walk only the objects of the last second; calls and transactions that
    end are freed by reference counting all the same. Once a minute everything is unfrozen
    and collected fully, so reference cycles cannot pile up for longer than that."""
    loop = asyncio.get_running_loop()
    last_full = loop.time()
    while True:
        await asyncio.sleep(FREEZE_EVERY)
        if loop.time() - last_full >= FULL_COLLECTION_EVERY:
            gc.unfreeze()
            gc.collect()
            last_full = loop.time()
        gc.freeze()
