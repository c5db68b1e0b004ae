"""Summary of the core micro-benchmarks: messages/s per case and the sipmask/sippy ratio.

pytest-benchmark prints its own tables per `benchmark.group`; this adds the figures the issue
targets are stated in. It prints nothing when timing is off (`--benchmark-disable`, as CI runs
the benchmarks as a smoke test).
"""

from __future__ import annotations

from collections import defaultdict


def _times(bench) -> tuple[float, float] | None:
    """(median, min) seconds per call, or None for a benchmark that did not run."""
    stats = getattr(bench, "stats", None)
    if not stats:
        return None
    return stats.median, stats.min


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    session = getattr(config, "_benchmarksession", None)
    if session is None or getattr(session, "disabled", False):
        return
    rows = []
    for bench in session.benchmarks:
        times = _times(bench)
        if times is None or times[0] <= 0:
            continue
        info = bench.extra_info
        impl, case = info.get("impl", "?"), info.get("case", bench.name)
        rows.append((bench.group or "", impl, case, *times))
    if not rows:
        return
    by_group: dict[str, list[tuple[str, str, float, float]]] = defaultdict(list)
    for group, impl, case, median, fastest in rows:
        by_group[group].append((impl, case, median, fastest))

    write = terminalreporter.write_line
    terminalreporter.section("sipmask core: messages/s (median) and ratio to sippy")
    write(
        f"{'group':<14} {'impl':<8} {'case':<8} {'median us':>10} {'min us':>8}"
        f" {'msg/s':>10} {'x sippy':>8} {'(by min)':>8}"
    )
    for group in sorted(by_group):
        cases = sorted(by_group[group], key=lambda r: (r[0] != "sipmask", r[1]))
        sippy = [(median, fastest) for impl, _, median, fastest in cases if impl == "sippy"]
        for impl, case, median, fastest in cases:
            ratio = ratio_min = ""
            if sippy and impl != "sippy":
                ratio = f"{sippy[0][0] / median:.1f}"
                ratio_min = f"{sippy[0][1] / fastest:.1f}"
            write(
                f"{group:<14} {impl:<8} {case:<8} {median * 1e6:10.2f} {fastest * 1e6:8.2f}"
                f" {1 / median:10,.0f} {ratio:>8} {ratio_min:>8}"
            )
