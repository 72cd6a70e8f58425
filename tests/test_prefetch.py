"""Adaptive prefetch: heavy jobs spread across dispatchers, tiny jobs claimed in batches."""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from jobqueue import JobQueue, JobState
from jobqueue.runtime.prefetch import (
    BUDGET,
    MAX_DEPTH,
    SEED,
    WINDOW,
    AdaptivePrefetch,
    FixedPrefetch,
    make_policy,
)
from tests.backends.redis_fixtures import delete_namespace, new_namespace

TINY = 0.0001
"""A run time (seconds) fed to the estimator for a tiny job: floor(BUDGET / TINY) > MAX_DEPTH."""


def make_queue(url: str = "memory://") -> JobQueue:
    return JobQueue(url, load_entrypoints=False)


# -- the estimator ----------------------------------------------------------------------------


def test_an_unknown_name_is_claimed_one_at_a_time() -> None:
    policy = AdaptivePrefetch()
    assert policy.depth() == 1
    policy.claimed(1, ["new"])  # full, but the seed says the name may be heavy
    assert policy.means["new"] == SEED and policy.depth() == 1


def test_depth_doubles_on_full_claims_up_to_the_limit() -> None:
    policy = AdaptivePrefetch()
    policy.means["tiny"] = TINY
    depths = []
    for _ in range(8):
        asked = policy.depth()
        policy.claimed(asked, ["tiny"] * asked)
        depths.append(policy.depth())
    assert depths == [2, 4, 8, 16, 32, MAX_DEPTH, MAX_DEPTH, MAX_DEPTH]


def test_the_limit_is_the_budget_over_the_mean() -> None:
    policy = AdaptivePrefetch(alpha=1.0)  # the mean is the last run: easy to read
    policy.claimed(1, ["w"])
    for seconds, limit in [(BUDGET / 4, 4), (BUDGET / 2.5, 2), (BUDGET, 1), (BUDGET * 50, 1)]:
        policy.ran("w", seconds)
        assert policy.limit() == limit
    policy.ran("w", 0.0)  # a clock too coarse to see the run
    assert policy.limit() == MAX_DEPTH


def test_the_mean_falls_from_the_seed_as_short_runs_come() -> None:
    policy = AdaptivePrefetch()
    policy.claimed(1, ["tiny"])
    runs = 0
    while policy.limit() < MAX_DEPTH:
        policy.ran("tiny", TINY)
        runs += 1
        assert runs < 100
    # Pessimistic at first: a couple of dozen short runs before the full depth is allowed.
    assert 10 < runs < 50
    assert policy.means["tiny"] < BUDGET / MAX_DEPTH


def test_a_short_claim_drops_the_depth_to_one() -> None:
    policy = AdaptivePrefetch()
    policy.means["tiny"] = TINY
    for _ in range(4):
        policy.claimed(policy.depth(), ["tiny"] * policy.depth())
    assert policy.depth() == 16
    policy.claimed(16, ["tiny"] * 3)  # the backlog was 3 deep: we took it all
    assert policy.depth() == 1
    policy.claimed(1, [])
    assert policy.depth() == 1


def test_a_long_run_drops_the_depth_to_one_at_once() -> None:
    policy = AdaptivePrefetch()
    policy.means["tiny"] = TINY
    for _ in range(6):
        policy.claimed(policy.depth(), ["tiny"] * policy.depth())
    assert policy.depth() == MAX_DEPTH
    policy.ran("tiny", BUDGET * 1.5)
    assert policy.depth() == 1
    # The mean alone would still allow several ahead; the drop does not wait for it.
    assert policy.limit() > 1


def test_the_slowest_recent_name_sets_the_limit() -> None:
    policy = AdaptivePrefetch(alpha=1.0)
    policy.claimed(2, ["tiny", "heavy"])
    policy.ran("tiny", TINY)
    policy.ran("heavy", 2.0)
    assert policy.limit() == 1
    # Once the heavy name has not been claimed for WINDOW jobs, it no longer holds claims back.
    for _ in range(WINDOW - 1):
        policy.claimed(1, ["tiny"])
        assert policy.limit() == 1
    policy.claimed(1, ["tiny"])
    assert policy.limit() == MAX_DEPTH
    policy.claimed(1, ["heavy"])  # back: remembered as heavy
    assert policy.limit() == 1 and policy.depth() == 1


class WalkingPrefetch(AdaptivePrefetch):
    """The limit as computed before it was kept incrementally: a walk of every name ever
    claimed. The reference the incremental limit must match exactly."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.last_claimed: dict[str, int] = {}
        self.jobs = 0

    def claimed(self, asked: int, names: Iterable[str]) -> None:
        names = list(names)
        if asked > 0:
            for got, name in enumerate(names, start=1):
                self.last_claimed[name] = self.jobs + got
            self.jobs += len(names)
        super().claimed(asked, names)

    def limit(self) -> int:
        recent = [
            self.means[name]
            for name, at in self.last_claimed.items()
            if self.jobs - at < self.window
        ]
        if not recent:
            return 1
        slowest = max(recent)
        if slowest <= 0:
            return self.max_depth
        return max(1, min(self.max_depth, math.floor(self.budget / slowest + 1e-9)))


SOME_NAMES = st.sampled_from(["a", "b", "c", "d", "e", "f"])
RUN_TIMES = st.sampled_from([0.0, TINY, BUDGET / 7, BUDGET / 3, BUDGET, 0.5, 2.0]) | st.floats(
    min_value=0.0, max_value=3.0
)
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("claimed"), st.integers(0, 8), st.lists(SOME_NAMES, max_size=8)),
        st.tuples(st.just("ran"), SOME_NAMES, RUN_TIMES),
    ),
    max_size=200,
)


@given(
    steps=STEPS, window=st.sampled_from([1, 2, 3, 5, WINDOW]), alpha=st.sampled_from([0.25, 1.0])
)
@settings(max_examples=300, deadline=None, derandomize=True, database=None)
def test_the_incremental_limit_chooses_the_depths_the_full_walk_did(
    steps: list[tuple[Any, ...]], window: int, alpha: float
) -> None:
    kept = AdaptivePrefetch(window=window, alpha=alpha, max_depth=8)
    walked = WalkingPrefetch(window=window, alpha=alpha, max_depth=8)
    for step in steps:
        for policy in (kept, walked):
            if step[0] == "claimed":
                policy.claimed(step[1], step[2])
            else:
                policy.ran(step[1], step[2])
        assert (kept.limit(), kept.depth()) == (walked.limit(), walked.depth()), step


class CountedReads(dict[str, float]):
    """A means table that counts how often a mean is read."""

    reads = 0

    def __getitem__(self, name: str) -> float:
        self.reads += 1
        return super().__getitem__(name)


def test_a_claims_work_does_not_grow_with_the_names_served() -> None:
    # 2,000 names claimed in turn, one job each, each run once: the old limit read the mean of
    # every recent name (up to WINDOW) on every claim.
    policy = AdaptivePrefetch()
    means = policy.means = CountedReads()
    claims = 0
    for round_ in range(3):
        for number in range(2000):
            name = f"w{number}"
            policy.claimed(policy.depth(), [name])
            policy.ran(name, TINY * (1 + (number + round_) % 7))
            claims += 1
    assert means.reads <= 8 * claims, means.reads


def test_fixed_prefetch_ignores_what_it_is_told() -> None:
    policy = FixedPrefetch(7)
    policy.claimed(7, ["a"])
    policy.ran("a", 60.0)
    assert policy.depth() == 7
    assert isinstance(make_policy(None), AdaptivePrefetch)
    assert make_policy(3).depth() == 3


# -- in the dispatcher ------------------------------------------------------------------------


class FedDurations(AdaptivePrefetch):
    """The adaptive policy fed run times chosen by the test instead of the measured ones, and
    recording what it was asked and told."""

    def __init__(self) -> None:
        super().__init__()
        self.next_run = TINY  # a handler may set the run time of its own job
        self.asked: list[int] = []  # every claim's asked depth, in order
        self.after_runs: list[tuple[float, int]] = []  # (fed run time, depth after it)

    def claimed(self, asked: int, names: Iterable[str]) -> None:
        if asked > 0:
            self.asked.append(asked)
        super().claimed(asked, names)

    def ran(self, name: str, seconds: float) -> None:
        fed, self.next_run = self.next_run, TINY
        super().ran(name, fed)
        self.after_runs.append((fed, self.depth()))


class BatchCalls:
    """Counts the backend's calls and the limits of its batch claims."""

    def __init__(self, queue: JobQueue) -> None:
        self.calls: Counter[str] = Counter()
        self.limits: list[int] = []
        backend = queue.backend
        for name in ("claim", "complete", "fail", "claim_many", "finish_many"):
            setattr(backend, name, self._counted(name, getattr(backend, name)))

    def _counted(self, name: str, method: Any) -> Any:
        def call(*args: Any) -> Any:
            self.calls[name] += 1
            if name in ("claim_many", "finish_many") and args[-2] is not None:
                self.limits.append(args[-1])
            return method(*args)

        return call


def test_tiny_jobs_from_a_deep_backlog_are_claimed_max_depth_at_a_time() -> None:
    queue = make_queue()
    queue.add_worker("tiny", lambda job: None)
    queue.submit_jobs("tiny", [{"i": i} for i in range(1000)])
    dispatcher = queue.dispatcher()
    policy = FedDurations()
    dispatcher.new_prefetch_policy = lambda: policy
    calls = BatchCalls(queue)
    assert dispatcher.run(burst=True) == 1000
    assert queue.count_by_state()[JobState.COMPLETED] == 1000
    # Pessimistic at first, then doubling up to the maximum, which most of the jobs ran at.
    assert policy.asked[:10] == [1] * 10
    assert MAX_DEPTH in policy.asked
    # Each step at most doubles (less while the falling mean still holds it back).
    ramp = policy.asked[policy.asked.index(2) : policy.asked.index(MAX_DEPTH) + 1]
    assert all(a < b <= 2 * a for a, b in itertools.pairwise(ramp)), ramp
    assert calls.limits.count(MAX_DEPTH) >= 15
    assert sum(calls.calls.values()) < 1000 / 5  # far fewer round trips than jobs


def test_a_long_job_drops_the_depth_to_one_at_once() -> None:
    queue = make_queue()
    policy = FedDurations()

    def handle(job: Any) -> None:
        if job.data["long"]:
            policy.next_run = 5.0

    queue.add_worker("mixed", handle)
    queue.submit_jobs("mixed", [{"long": i == 300} for i in range(600)])
    dispatcher = queue.dispatcher()
    dispatcher.new_prefetch_policy = lambda: policy
    assert dispatcher.run(burst=True) == 600
    runs = [fed for fed, _ in policy.after_runs]
    long_at = runs.index(5.0)
    depths = [depth for _, depth in policy.after_runs]
    assert max(depths[:long_at]) == MAX_DEPTH
    assert depths[long_at] == 1  # at once, though the name's mean alone allows more
    # The jobs claimed with it still ran ahead; the next claim asked for one.
    claims_before = sum(1 for _ in _claims_covering(policy.asked, long_at + 1))
    assert policy.asked[claims_before] == 1


def _claims_covering(asked: list[int], jobs: int) -> Iterable[int]:
    """The claims (each full, in a deep backlog) that brought the first ``jobs`` jobs."""
    total = 0
    for depth in asked:
        if total >= jobs:
            return
        total += depth
        yield depth


def test_adaptive_claimed_ahead_jobs_are_given_back_on_stop() -> None:
    queue = make_queue()
    started, release = threading.Event(), threading.Event()
    policy = FedDurations()
    policy.means["gated"] = TINY  # as if it had been short until now

    def gated(job: Any) -> None:
        if job.data["gate"]:
            started.set()
            release.wait(10)

    queue.add_worker("gated", gated)
    queue.submit_jobs("gated", [{"gate": i == 40} for i in range(200)])
    dispatcher = queue.dispatcher()
    dispatcher.new_prefetch_policy = lambda: policy
    thread = threading.Thread(target=dispatcher.run, daemon=True)
    thread.start()
    assert started.wait(10)
    counts = queue.count_by_state()
    held = counts[JobState.ACTIVE]
    assert held > 1  # claimed ahead, each under its own lease
    dispatcher.stop(grace_seconds=10)
    release.set()
    thread.join(10)
    assert not thread.is_alive()
    counts = queue.count_by_state()
    assert counts[JobState.ACTIVE] == 0
    assert counts[JobState.COMPLETED] == 41
    assert counts[JobState.WAITING] == 200 - 41


# -- heavy jobs across dispatchers ------------------------------------------------------------


def _two_dispatchers(url: str, prefetch: int | None, handle: Any) -> dict[str, int]:
    """Ten jobs, then two dispatchers (each its own queue on the same store) in threads until
    none is ready; how many each ran."""
    queues = {who: make_queue(url) for who in ("a", "b")}
    ran: Counter[str] = Counter()
    lock = threading.Lock()
    for who, queue in queues.items():

        def run(job: Any, who: str = who) -> None:
            handle(job)
            with lock:
                ran[who] += 1

        queue.add_worker("heavy", run)
    queues["a"].submit_jobs("heavy", [{"i": i} for i in range(10)])
    threads = [
        threading.Thread(target=queue.work, kwargs={"prefetch": prefetch}, daemon=True)
        for queue in queues.values()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()
    assert queues["a"].count_by_state()[JobState.COMPLETED] == 10
    for queue in queues.values():
        queue.close()
    return {who: ran[who] for who in queues}


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store several queues share: a temp SQLite file, or a new Redis namespace."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'jobs.db'}"
        return
    base = request.getfixturevalue("redis_url")
    namespace = new_namespace()
    yield f"{base}?namespace={namespace}"
    delete_namespace(redis.Redis.from_url(base), namespace)


def test_heavy_jobs_are_spread_across_dispatchers(shared_url: str) -> None:
    """Ten jobs of about a second each, two idle dispatchers, the defaults: each runs about
    five. With the old fixed prefetch=50 (below) the first to claim takes all ten."""
    ran = _two_dispatchers(shared_url, None, lambda job: time.sleep(1.0))  # the workload itself
    assert sum(ran.values()) == 10
    assert min(ran.values()) >= 3, ran


def test_fixed_prefetch_lets_one_dispatcher_grab_the_heavy_jobs(shared_url: str) -> None:
    """The contrast: with prefetch=50 the first claim takes the whole backlog. The jobs wait
    on an event until it is seen that no job is left for the other dispatcher."""
    first_started, release = threading.Event(), threading.Event()

    def handle(job: Any) -> None:
        first_started.set()
        release.wait(10)

    checked: list[dict[JobState, int]] = []
    watcher = threading.Thread(
        target=_release_once_a_job_runs, args=(shared_url, first_started, release, checked)
    )
    watcher.start()
    ran = _two_dispatchers(shared_url, 50, handle)
    watcher.join(10)
    assert checked and checked[0][JobState.WAITING] == 0  # all ten claimed by one
    assert sorted(ran.values()) == [0, 10], ran


def _release_once_a_job_runs(
    url: str, started: threading.Event, release: threading.Event, checked: list[Any]
) -> None:
    try:
        if started.wait(30):
            with make_queue(url) as queue:
                checked.append(queue.count_by_state())
    finally:
        release.set()
