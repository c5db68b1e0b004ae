"""Media metrics in /metrics: the anchoring hook's counters and gauges, read at scrape time
from one process and summed over a supervisor's workers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from rtpengine_helpers import Rtpengine
from test_anchored_calls import anchored_call

from sipmask.metrics import Metrics, snapshot


def _value(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def test_media_metrics_of_a_process_and_of_its_workers(rtpengine: Rtpengine,
                                                        tmp_path: Path) -> None:
    async def main() -> None:
        async with anchored_call(rtpengine) as call:
            metrics = Metrics()
            metrics.engine = call.r.engine
            text = metrics.exposition().decode()
            assert _value(text, "sipmask_media_calls_anchored_total") == 1
            assert _value(text, "sipmask_media_calls_anchored_now") == 1
            assert _value(text, "sipmask_media_rtpengine_up") == 1
            assert _value(text, "sipmask_media_rtpengine_down") == 0
            assert _value(text, "sipmask_media_ng_timeouts_total") == 0
            assert (_value(text, "sipmask_media_ng_requests_total") or 0) >= 2
            # two workers with these counters: the supervisor's scrape sums them
            for n in (0, 1):
                (tmp_path / f"worker-{n}.json").write_text(
                    json.dumps(snapshot(call.r.engine, call.r.endpoint)))
        supervisor = Metrics()
        supervisor.worker_stats_dir = tmp_path
        text = supervisor.exposition().decode()
        assert _value(text, "sipmask_media_calls_anchored_total") == 2
        assert _value(text, "sipmask_media_rtpengine_up") == 2

    asyncio.run(main())


def test_no_media_metrics_without_anchoring() -> None:
    from b2bua_helpers import rig

    async def main() -> None:
        async with rig() as r:
            metrics = Metrics()
            metrics.engine = r.engine
            assert b"sipmask_media_" not in metrics.exposition()

    asyncio.run(main())
