"""The benchmark chart's axes (bench/chart.py): linear everywhere, a far-behind peer cut off.

Only the pure axis rule is checked here: drawing needs matplotlib, which lives in bench/.venv.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def chart() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCH))
    try:
        import chart

        yield chart
    finally:
        sys.path.remove(str(BENCH))
        sys.modules.pop("chart", None)


def test_higher_is_better_panels_are_never_cut(chart: ModuleType) -> None:
    # processed/s: the lead is the point of the chart, so no bar is cut however far ahead.
    assert chart.axis_limit("processed_per_s", [5210.0, 2.0, 685.0]) == float("inf")


def test_a_far_behind_peer_is_cut_where_lower_is_better(chart: ModuleType) -> None:
    limit = chart.axis_limit("latency_p50_ms", [0.97, 15673.0, 1.3])
    assert limit == pytest.approx(0.97 * chart.AXIS_SPAN)
    assert 1.3 < limit < 15673.0


def test_every_panel_is_linear(chart: ModuleType) -> None:
    assert all(len(panel) == 3 for panel in chart.PANELS)  # no log flag left
    assert "log" not in " ".join(title for _, title, _ in chart.PANELS)
