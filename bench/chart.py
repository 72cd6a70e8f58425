"""The chart: one panel per figure, a bar per library (median), whiskers for min-max."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PANELS = (  # metric, title, whether worker-only variants (prefetch) are shown
    ("submit_per_s", "submits/s, one by one", False),
    ("bulk_per_s", "submits/s, bulk API", False),
    ("processed_per_s", "jobs/s processed, 1 worker process, concurrency 1", True),
    ("latency_p50_ms", "submit→start ms, p50 bar, p99 dot (lower is better)", True),
    ("bytes_per_job", "Redis bytes per queued job (lower is better)", False),
    ("xacts_per_job", "PostgreSQL transactions per processed job (lower is better)", True),
)
# Every axis is linear (a log axis flattens the lead). Where lower is better, one peer far
# behind would squash every other bar to nothing: the axis ends at this many times the
# panel's best median, and a bar past it is cut there and labelled "off the axis".
LOWER_IS_BETTER = frozenset({"latency_p50_ms", "bytes_per_job", "xacts_per_job"})
AXIS_SPAN = 12.0
# same submits and storage as the jobqueue rows
WORKER_VARIANTS = ("jobqueue-prefetch", "jobqueue-pg-prefetch1")
OURS_COLOR = "#1f6feb"
PEER_COLOR = "#9aa4b2"


def draw(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = results["summary"]
    labels = results["labels"]
    panels = [p for p in PANELS if any(summary[name].get(p[0]) for name in summary)]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.3 + 1.9 * len(panels)), squeeze=False)
    for ax, (metric, title, variants) in zip(axes[:, 0], panels, strict=True):
        names = [
            name
            for name in summary
            if summary[name].get(metric) and (variants or name not in WORKER_VARIANTS)
        ]
        if not names:
            ax.set_visible(False)
            continue
        medians = [summary[n][metric]["median"] for n in names]
        lows = [summary[n][metric]["median"] - summary[n][metric]["min"] for n in names]
        highs = [summary[n][metric]["max"] - summary[n][metric]["median"] for n in names]
        limit = axis_limit(metric, medians)
        shown = [min(value, limit) for value in medians]
        highs = [
            0 if value >= limit else min(h, limit - value)
            for value, h in zip(medians, highs, strict=True)
        ]
        lows = [0 if value >= limit else low for value, low in zip(medians, lows, strict=True)]
        colors = [OURS_COLOR if n.startswith("jobqueue") else PEER_COLOR for n in names]
        positions = range(len(names))
        ax.barh(
            positions,
            shown,
            xerr=[lows, highs],
            color=colors,
            capsize=3,
            error_kw={"elinewidth": 0.8},
        )
        if metric == "latency_p50_ms":
            p99 = [(summary[n].get("latency_p99_ms") or {}).get("median") for n in names]
            dots = [(p, y) for p, y in zip(p99, positions, strict=True) if p and p <= limit]
            ax.plot([p for p, _ in dots], [y for _, y in dots], "o", color="black", markersize=3)
        ax.set_yticks(list(positions), [labels.get(n, n) for n in names], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10, loc="left")
        ends = [summary[n][metric]["max"] for n in names]
        if metric == "latency_p50_ms":
            ends = [
                max(end, p or 0) if p and p <= limit else end
                for end, p in zip(ends, p99, strict=True)
            ]
        for position, value, end in zip(positions, medians, ends, strict=True):
            if value >= limit:  # the bar is cut at the axis' end: say so inside it
                ax.text(
                    limit,
                    position,
                    f"{_short(value)}, off the axis  ",
                    va="center",
                    ha="right",
                    fontsize=7,
                    color="white",
                )
            else:
                ax.text(min(end, limit), position, f"  {_short(value)}", va="center", fontsize=7)
        if limit != float("inf"):
            ax.set_xlim(0, limit * 1.02)
        ax.margins(x=0.15)
        ax.grid(axis="x", alpha=0.3)
    machine = results["machine"]
    options = results["options"]
    store = f"one Redis {results['redis_version']}"
    if results.get("postgres"):
        on_redis = any(s != "postgres" for s in results.get("stores", {}).values())
        postgres = f"PostgreSQL {results['postgres']['version'].split()[0]}"
        store = f"{store} and {postgres}" if on_redis else postgres
    fig.suptitle(
        f"jobqueue vs its peers — {store}, "
        f"{machine['cpus']} CPUs, {options['jobs']:,} jobs, median of {options['rounds']} "
        "interleaved rounds",
        fontsize=10,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def axis_limit(metric: str, medians: list[float]) -> float:
    """Where the panel's linear axis ends: nowhere for "higher is better" panels (the bars
    are the lead); ``AXIS_SPAN`` times the best median where lower is better."""
    if metric not in LOWER_IS_BETTER:
        return float("inf")
    best = min((value for value in medians if value > 0), default=0.0)
    return best * AXIS_SPAN if best else float("inf")


def _short(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:,.0f}k"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.1f}"
    return f"{value:.2f}"
