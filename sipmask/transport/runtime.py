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
