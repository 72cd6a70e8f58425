"""The table: medians [min-max] per library, jobqueue's ratio to each peer, the targets."""

from __future__ import annotations

from typing import Any

import report_postgres

JOBQUEUE = "jobqueue"
PREFETCH = "jobqueue-prefetch"
SQLITE = "jobqueue-sqlite"
OURS = (JOBQUEUE, PREFETCH, SQLITE, *report_postgres.OURS)

COLUMNS = (
    ("submit_per_s", "submit/s", "{:,.0f}"),
    ("bulk_per_s", "bulk/s", "{:,.0f}"),
    ("processed_per_s", "processed/s", "{:,.0f}"),
    ("latency_p50_ms", "p50 ms", "{:.2f}"),
    ("latency_p99_ms", "p99 ms", "{:.2f}"),
    ("bytes_per_job", "bytes/job", "{:,.0f}"),
    ("commands_per_job", "Redis cmds/job", "{:.1f}"),
    ("scripts_per_job", "Lua calls/job", "{:.2f}"),
    ("worker_cpu_us_per_job", "worker CPU µs/job", "{:,.0f}"),
    ("redis_cpu_us_per_job", "Redis CPU µs/job", "{:,.0f}"),
    ("xacts_per_job", "PG xacts/job", "{:.2f}"),
)
HIGHER_IS_BETTER = {"submit_per_s", "bulk_per_s", "processed_per_s"}


def median(results: dict[str, Any], name: str, metric: str) -> float | None:
    cell = results["summary"].get(name, {}).get(metric)
    return None if cell is None else float(cell["median"])


def cell(results: dict[str, Any], name: str, metric: str, fmt: str, ranges: bool) -> str:
    found = results["summary"].get(name, {}).get(metric)
    if found is None:
        return "—"
    text = fmt.format(found["median"])
    if ranges and found["min"] != found["max"]:
        text += f" [{fmt.format(found['min'])}-{fmt.format(found['max'])}]"
    return text


def table(results: dict[str, Any], ranges: bool = True) -> str:
    """A Markdown table of every library's medians (with [min-max] over the rounds); the
    columns no library has a figure in are left out."""
    labels = results["labels"]
    columns = [
        (metric, title, fmt)
        for metric, title, fmt in COLUMNS
        if any(median(results, name, metric) is not None for name in results["summary"])
    ]
    header = ["library, mode", *[title for _, title, _ in columns]]
    rows = []
    for name in results["summary"]:
        label = labels.get(name, name)
        api = results.get("bulk_api", {}).get(name)
        if api:
            label += f" (bulk: `{api}`)"
        capped = [r for r in results["rounds"][name] if r.get("capped")]
        if capped:
            label += f" ¹ (capped at ~{capped[0]['processed']:,} jobs)"
        rows.append([label, *[cell(results, name, m, f, ranges) for m, _, f in columns]])
    return _markdown(header, rows)


def redis_peers(results: dict[str, Any]) -> list[str]:
    """The peers on Redis (every peer, in results written before PostgreSQL peers existed)."""
    stores = results.get("stores", {})
    return [
        name
        for name in results["summary"]
        if name not in OURS and stores.get(name, "redis") == "redis"
    ]


def ratios(results: dict[str, Any]) -> str:
    """How many times better jobqueue is than each Redis peer (>1 is better, either way)."""
    peers = redis_peers(results)
    header = [
        "jobqueue vs",
        "submit",
        "bulk",
        "processed",
        "processed (prefetch)",
        "p50",
        "p99",
        "bytes/job",
    ]
    rows = []
    for peer in peers:
        row = [peer]
        for ours, metric in (
            (JOBQUEUE, "submit_per_s"),
            (JOBQUEUE, "bulk_per_s"),
            (JOBQUEUE, "processed_per_s"),
            (PREFETCH, "processed_per_s"),
            (JOBQUEUE, "latency_p50_ms"),
            (JOBQUEUE, "latency_p99_ms"),
            (JOBQUEUE, "bytes_per_job"),
        ):
            a, b = median(results, ours, metric), median(results, peer, metric)
            if a is None or b is None or a == 0 or b == 0:
                row.append("—")
            else:
                row.append(f"{(a / b if metric in HIGHER_IS_BETTER else b / a):.2f}x")
        rows.append(row)
    return _markdown(header, rows)


def targets(results: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, what was measured, met?) for each target of the benchmark issue."""

    def m(name: str, metric: str) -> float | None:
        return median(results, name, metric)

    out: list[tuple[str, str, bool | None]] = []

    def check(target: str, value: float | None, goal: float | None, higher: bool, fmt: str) -> None:
        if value is None or goal is None:
            out.append((target, "not measured", None))
            return
        met = value >= goal if higher else value <= goal
        out.append((target, f"{fmt.format(value)} vs {fmt.format(goal)}", met))

    # The targets of the performance issue, round 2.
    huey, bullmq = m("huey", "processed_per_s"), m("bullmq", "processed_per_s")
    ours = m(JOBQUEUE, "processed_per_s")
    check(
        "processed/s at the defaults ≥ 1.25x BullMQ",
        ours,
        bullmq and 1.25 * bullmq,
        True,
        "{:,.0f}/s",
    )
    check("processed/s at the defaults ≥ 2x Huey", ours, huey and 2 * huey, True, "{:,.0f}/s")
    check(
        "one-by-one submit/s ≥ Huey's",
        m(JOBQUEUE, "submit_per_s"),
        m("huey", "submit_per_s"),
        True,
        "{:,.0f}/s",
    )
    rq_bulk, bullmq_bulk = m("rq", "bulk_per_s"), m("bullmq", "bulk_per_s")
    bulk = m(JOBQUEUE, "bulk_per_s")
    check("bulk/s ≥ 4x RQ enqueue_many", bulk, rq_bulk and 4 * rq_bulk, True, "{:,.0f}/s")
    check(
        "bulk/s ≥ 1.5x BullMQ addBulk", bulk, bullmq_bulk and 1.5 * bullmq_bulk, True, "{:,.0f}/s"
    )
    peers = redis_peers(results)
    p50s = [v for v in (m(name, "latency_p50_ms") for name in peers) if v]
    p99s = [v for v in (m(name, "latency_p99_ms") for name in peers) if v]
    check(
        "submit->start p50 ≤ 0.5x the best peer's",
        m(JOBQUEUE, "latency_p50_ms"),
        min(p50s) / 2 if p50s else None,
        False,
        "{:.2f} ms",
    )
    check(
        "submit->start p99 ≤ the best peer's",
        m(JOBQUEUE, "latency_p99_ms"),
        min(p99s) if p99s else None,
        False,
        "{:.2f} ms",
    )
    check("≤ 200 bytes per waiting job", m(JOBQUEUE, "bytes_per_job"), 200, False, "{:,.0f} B")
    check(
        "SQLite ≥ 2,000 jobs/s at the defaults",
        m(SQLITE, "processed_per_s"),
        2000,
        True,
        "{:,.0f}/s",
    )
    flat = results.get("flat", {}).get(JOBQUEUE)
    if flat:
        small, large = flat["small"]["median"], flat["large"]["median"]
        waiting = (
            f"{results['flat']['large_waiting']:,} waiting vs {results['flat']['small_waiting']:,}"
        )
        out.append(
            (
                f"claim cost flat: rate with {waiting} within 10%",
                f"{large:,.0f}/s vs {small:,.0f}/s ({large / small - 1:+.1%})",
                large >= 0.9 * small,
            )
        )
    return out


def print_report(results: dict[str, Any]) -> None:
    machine = results["machine"]
    print()
    print(
        f"{machine['cpus']} CPUs ({machine['cpu']}), Python {machine['python']}, "
        f"Redis {results['redis_version']}; load before {_load(machine['load_before'])}, "
        f"after {_load(results.get('load_after'))}"
    )
    if results.get("postgres"):
        settings = ", ".join(f"{k}={v}" for k, v in results["postgres"]["settings"].items())
        print(f"PostgreSQL {results['postgres']['version']} ({settings})")
    options = results["options"]
    if options.get("pin", "none") != "none":
        print(f"CPU placement: --pin {options['pin']}")
    print(
        f"{options['jobs']:,} jobs per phase, {options['rounds']} interleaved round(s); "
        "medians [min-max]"
    )
    print()
    print(table(results))
    if any(r.get("capped") for rounds in results["rounds"].values() for r in rounds):
        print(
            f"\n¹ processing stopped after {options['max_seconds']:.0f} s; the rate is over "
            "the jobs processed by then"
        )
    on_redis = any(name in results["summary"] for name in (JOBQUEUE, PREFETCH, SQLITE))
    if on_redis and redis_peers(results):
        print()
        print(ratios(results))
    postgres = report_postgres.has_postgres(results)
    if postgres:
        print()
        print(
            _markdown(
                ["jobqueue on PostgreSQL vs the best peer", "jobqueue", "best peer", "ratio"],
                report_postgres.versus_fastest(results),
            )
        )
    flat = results.get("flat")
    if flat:
        print()
        print(flat_table(flat))
    print()
    found = targets(results) if on_redis or not postgres else []
    found += report_postgres.targets(results) if postgres else []
    for target, measured, met in found:
        mark = {True: "met   ", False: "MISSED", None: "  ?   "}[met]
        print(f"  [{mark}] {target}: {measured}")


def flat_table(flat: dict[str, Any]) -> str:
    rows = []
    for name, figures in flat.items():
        if not isinstance(figures, dict) or "small" not in figures:
            continue
        small, large = figures["small"], figures["large"]
        rows.append(
            [
                name,
                f"{small['median']:,.0f} [{small['min']:,.0f}-{small['max']:,.0f}]",
                f"{large['median']:,.0f} [{large['min']:,.0f}-{large['max']:,.0f}]",
                f"{large['median'] / small['median'] - 1:+.1%}",
            ]
        )
    header = [
        "claim cost",
        f"jobs/s, {flat['small_waiting']:,} waiting",
        f"jobs/s, {flat['large_waiting']:,} waiting",
        "difference",
    ]
    text = _markdown(header, rows)
    if "large_fill_per_s" in flat:
        text += (
            f"\n\nfilling {flat['large_waiting']:,} jobs with submit_jobs: "
            f"{flat['large_fill_per_s']:,.0f} jobs/s, "
            f"{flat['large_bytes_per_job']:,.0f} bytes per queued job"
        )
    return text


def _load(load: Any) -> str:
    return "?" if not load else " ".join(f"{x:.2f}" for x in load)


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"]
    lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        lines.append(
            "| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        )
    return "\n".join(lines)
