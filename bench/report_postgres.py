"""The PostgreSQL peers' part of the report: jobqueue-pg against the fastest peer for each
figure, and the targets of the PostgreSQL issue (21, "Speed") met or missed."""

from __future__ import annotations

from typing import Any

PG = "jobqueue-pg"
PG_PREFETCH1 = "jobqueue-pg-prefetch1"
PG_NOLISTEN = "jobqueue-pg-nolisten"
OURS = (PG, PG_PREFETCH1, PG_NOLISTEN)
POLL_MAX_MS = 50.0
"""The SQL store's longest pause between two looks for work (``sql.store.POLL_MAX``)."""

Target = tuple[str, str, bool | None]


def has_postgres(results: dict[str, Any]) -> bool:
    return any(store == "postgres" for store in results.get("stores", {}).values())


def peers(results: dict[str, Any], one_at_a_time: bool = False) -> list[str]:
    """The PostgreSQL peers measured (only those running one job at a time, if asked)."""
    stores, single = results.get("stores", {}), results.get("one_at_a_time", {})
    return [
        name
        for name in results["summary"]
        if stores.get(name) == "postgres"
        and name not in OURS
        and (single.get(name, True) or not one_at_a_time)
    ]


def _median(results: dict[str, Any], name: str, metric: str) -> float | None:
    cell = results["summary"].get(name, {}).get(metric)
    return None if cell is None else float(cell["median"])


def best(
    results: dict[str, Any], metric: str, higher: bool, one_at_a_time: bool = False
) -> tuple[str, float] | None:
    """The peer with the best median of ``metric``, and that median."""
    found = [
        (name, value)
        for name in peers(results, one_at_a_time)
        if (value := _median(results, name, metric))
    ]
    if not found:
        return None
    return (max if higher else min)(found, key=lambda item: item[1])


# (what, our row, metric, higher is better, only peers running one job at a time, format)
COMPARISONS = (
    ("submit/s, one by one", PG, "submit_per_s", True, False, "{:,.0f}"),
    ("bulk submit/s", PG, "bulk_per_s", True, False, "{:,.0f}"),
    ("processed/s, defaults (vs any mode)", PG, "processed_per_s", True, False, "{:,.0f}"),
    (
        "processed/s, prefetch=1 (vs concurrency 1)",
        PG_PREFETCH1,
        "processed_per_s",
        True,
        True,
        "{:,.0f}",
    ),
    ("submit->start p50 ms", PG, "latency_p50_ms", False, False, "{:.2f}"),
    ("submit->start p99 ms", PG, "latency_p99_ms", False, False, "{:.2f}"),
    ("PostgreSQL xacts/job", PG, "xacts_per_job", False, False, "{:.2f}"),
)


def versus_fastest(results: dict[str, Any]) -> list[list[str]]:
    """Rows of: figure, jobqueue's, the best peer's (which), the ratio (>1: jobqueue better)."""
    rows = []
    for what, ours, metric, higher, single, fmt in COMPARISONS:
        value, found = _median(results, ours, metric), best(results, metric, higher, single)
        shown = "—" if found is None else f"{fmt.format(found[1])} ({found[0]})"
        if value is None or found is None:
            rows.append([what, "—" if value is None else fmt.format(value), shown, "—"])
            continue
        theirs = found[1]
        ratio = value / theirs if higher else (theirs / value if value else float("inf"))
        rows.append([what, fmt.format(value), shown, f"{ratio:.2f}x"])
    return rows


def targets(results: dict[str, Any]) -> list[Target]:
    """(target, what was measured, met?) for each target of issue 21's "Speed"."""
    out: list[Target] = []

    def check(
        target: str,
        ours: str,
        metric: str,
        goal: tuple[str, float] | None,
        factor: float,
        higher: bool,
        fmt: str,
    ) -> None:
        value = _median(results, ours, metric)
        if value is None or goal is None:
            out.append((target, "not measured", None))
            return
        name, theirs = goal
        wanted = theirs * factor
        met = value >= wanted if higher else value <= wanted
        shown = f"{fmt.format(value)} vs {fmt.format(wanted)}"
        out.append(
            (target, f"{shown} ({factor:g}x {name})" if factor != 1 else f"{shown} ({name})", met)
        )

    processed = best(results, "processed_per_s", True)
    single = best(results, "processed_per_s", True, one_at_a_time=True)
    check(
        "PostgreSQL: processed/s at the defaults ≥ 1.25x the fastest peer in any mode",
        PG,
        "processed_per_s",
        processed,
        1.25,
        True,
        "{:,.0f}/s",
    )
    check(
        "PostgreSQL: processed/s with prefetch=1 ≥ 3x the fastest peer at concurrency 1",
        PG_PREFETCH1,
        "processed_per_s",
        single,
        3,
        True,
        "{:,.0f}/s",
    )
    check(
        "PostgreSQL: one-by-one submit/s ≥ 1.25x the fastest peer's",
        PG,
        "submit_per_s",
        best(results, "submit_per_s", True),
        1.25,
        True,
        "{:,.0f}/s",
    )
    check(
        "PostgreSQL: bulk submit/s ≥ the fastest peer's bulk",
        PG,
        "bulk_per_s",
        best(results, "bulk_per_s", True),
        1,
        True,
        "{:,.0f}/s",
    )
    xacts = _median(results, PG, "xacts_per_job")
    out.append(
        (
            "PostgreSQL: transactions per processed job at the defaults ≤ 0.5",
            "not measured" if xacts is None else f"{xacts:.2f}",
            None if xacts is None else xacts <= 0.5,
        )
    )
    check(
        "PostgreSQL: submit->start p50 ≤ the best peer's (LISTEN on)",
        PG,
        "latency_p50_ms",
        best(results, "latency_p50_ms", False),
        1,
        False,
        "{:.2f} ms",
    )
    nolisten = _median(results, PG_NOLISTEN, "latency_p50_ms")
    out.append(
        (
            f"PostgreSQL: submit->start p50 with listen=false ≤ 2x the poll ({POLL_MAX_MS:g} ms)",
            "not measured" if nolisten is None else f"{nolisten:.2f} ms",
            None if nolisten is None else nolisten <= 2 * POLL_MAX_MS,
        )
    )
    return out
