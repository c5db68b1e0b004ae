"""Fixtures for the media tests: a real rtpengine per test module (skipped only where
rtpengine-daemon is not installed: CI installs it)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

here = Path(__file__).resolve().parent
sys.path.insert(0, str(here))
sys.path.insert(0, str(here.parent / "b2bua"))

from rtpengine_helpers import RTPENGINE, Rtpengine  # noqa: E402


@pytest.fixture
def rtpengine() -> Iterator[Rtpengine]:
    """A fresh rtpengine (a test may kill it); stopped at the end."""
    if RTPENGINE is None:
        pytest.skip("rtpengine is not installed (Debian package rtpengine-daemon)")
    engine = Rtpengine()
    engine.start()
    try:
        yield engine
    finally:
        engine.stop()
