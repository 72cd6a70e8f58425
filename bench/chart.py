"""The chart: one panel per figure, a bar per library (median), whiskers for min-max."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PANELS = (  # metric, title, log scale, whether worker-only variants (prefetch) are shown
    ("submit_per_s", "submits/s, one by one", False, False),
    ("bulk_per_s", "submits/s, bulk API", False, False),
    ("processed_per_s", "jobs/s processed, 1 worker process, concurrency 1 (log)", True, True),
    ("latency_p50_ms", "submit→start ms, p50 bar, p99 dot (log; lower is better)", True, True),
    ("bytes_per_job", "Redis bytes per queued job (lower is better)", False, False),
    ("xacts_per_job", "PostgreSQL transactions per processed job (lower is better)", False, True),
)
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
    for ax, (metric, title, log, variants) in zip(axes[:, 0], panels, strict=True):
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
        colors = [OURS_COLOR if n.startswith("jobqueue") else PEER_COLOR for n in names]
        positions = range(len(names))
        ax.barh(
            positions,
            medians,
            xerr=[lows, highs],
            color=colors,
            capsize=3,
            error_kw={"elinewidth": 0.8},
        )
        if metric == "latency_p50_ms":
            p99 = [(summary[n].get("latency_p99_ms") or {}).get("median") for n in names]
            ax.plot(p99, list(positions), "o", color="black", markersize=3)
        ax.set_yticks(list(positions), [labels.get(n, n) for n in names], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10, loc="left")
        if log:
            ax.set_xscale("log")
        ends = [summary[n][metric]["max"] for n in names]
        if metric == "latency_p50_ms":
            ends = [max(end, p or 0) for end, p in zip(ends, p99, strict=True)]
        for position, value, end in zip(positions, medians, ends, strict=True):
            ax.text(
                end * (1.15 if log else 1.0),
                position,
                f"  {_short(value)}",
                va="center",
                fontsize=7,
            )
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


def _short(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:,.0f}k"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:.1f}"
    return f"{value:.2f}"
