"""The scheduler and the schedule facade on every backend, with an injected clock: one job
per tick however many schedulers run, catch-up and overlap rules, pause, run now, listings,
declaration mistakes, plugins, a definition changed between runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

import jobqueue
from jobqueue import InvalidScheduleError, JobQueue, JobState, Schedule, ScheduleNotFoundError
from jobqueue.backend import TickOutcome
from jobqueue.errors import BackendUnavailableError

START = 1_800_000_000.0  # a whole minute, UTC


def _noop(job: Any) -> None:
    return None


@pytest.fixture
def queue(backend_url: str) -> Iterator[JobQueue]:
    with JobQueue(backend_url, load_entrypoints=False) as queue:
        queue.add_worker("ping", _noop)
        yield queue


def every_second(**fields: Any) -> Schedule:
    return Schedule(
        name=fields.pop("name", "ping"),
        worker="ping",
        every=timedelta(seconds=1),
        overlap=fields.pop("overlap", "allow"),
        **fields,
    )


def waiting(queue: JobQueue) -> int:
    return queue.count_by_state()[JobState.WAITING]


def submitted_ticks(queue: JobQueue, name: str = "ping") -> list[float]:
    record = queue.backend.schedule_record(name)
    assert record is not None
    # recent is newest first: oldest first here.
    return [e.tick for e in reversed(record.recent) if e.outcome is TickOutcome.SUBMITTED]


# -- declaring ---------------------------------------------------------------------------------


def test_periodic_above_worker_schedules_that_worker(queue: JobQueue) -> None:
    @queue.periodic("0 3 * * *", tz="Europe/Paris", data={"scope": "all"})
    @queue.worker("sync")
    def synchronize(job: Any) -> None:
        return None

    @queue.periodic(every=timedelta(minutes=5), name="stats-every-5")
    @queue.worker("stats")
    def stats(job: Any) -> None:
        return None

    declared = {schedule.name: schedule for schedule in queue.schedule_book}
    assert declared["sync"].worker == "sync" and declared["sync"].cron == "0 3 * * *"
    assert declared["sync"].tz == "Europe/Paris" and declared["sync"].data == {"scope": "all"}
    assert declared["stats-every-5"].every == timedelta(minutes=5)
    assert [info.name for info in queue.schedules()] == ["stats-every-5", "sync"]


def test_periodic_needs_the_worker_below_it(queue: JobQueue) -> None:
    def handler(job: Any) -> None:
        return None

    with pytest.raises(InvalidScheduleError, match=r"above @queue\.worker"):
        queue.periodic("0 3 * * *")(handler)
    assert len(queue.schedule_book) == 0


def test_declaration_mistakes_are_refused_and_nothing_is_stored(queue: JobQueue) -> None:
    with pytest.raises(InvalidScheduleError, match="not registered"):
        queue.add_schedule(Schedule(name="x", worker="nobody", cron="0 3 * * *"))
    queue.add_schedule(every_second())
    queue.add_schedule(every_second())  # the same definition again: fine
    with pytest.raises(InvalidScheduleError, match="different definitions"):
        queue.add_schedule(every_second(overlap="skip"))
    with pytest.raises(InvalidScheduleError):
        queue.add_schedule("ping")  # type: ignore[arg-type]
    assert [schedule.name for schedule in queue.schedule_book] == ["ping"]
    assert queue.backend.schedule_records() == []  # declaring stores nothing


def test_plugins_ship_schedules_through_the_hook(backend_url: str) -> None:
    class Plugin:
        @jobqueue.hookimpl
        def jobqueue_register_workers(self) -> list[jobqueue.Worker]:
            return [jobqueue.Worker("nightly-sync", _noop)]

        @jobqueue.hookimpl
        def jobqueue_register_schedules(self) -> list[Schedule]:
            return [Schedule(name="nightly", worker="nightly-sync", cron="0 0 * * *")]

    with JobQueue(backend_url, load_entrypoints=False, plugins=[Plugin()]) as queue:
        (info,) = queue.schedules()
        assert info.name == "nightly" and info.worker == "nightly-sync"
        assert info.next_run is not None and info.next_run % 86400 == 0


# -- ticks -------------------------------------------------------------------------------------


def test_first_sight_submits_nothing_then_one_job_per_tick(queue: JobQueue) -> None:
    queue.add_schedule(every_second())
    scheduler = queue.scheduler()
    (baseline,) = scheduler.run_pending(now=START + 0.5)
    assert baseline.outcome is TickOutcome.RECORDED and waiting(queue) == 0
    assert scheduler.run_pending(now=START + 0.9) == []  # nothing new is due
    (first,) = scheduler.run_pending(now=START + 1.2)
    assert first.outcome is TickOutcome.SUBMITTED and first.job is not None
    assert first.job.name == "ping" and waiting(queue) == 1
    assert submitted_ticks(queue) == [START + 1]


def test_many_schedulers_one_job_per_tick(queue: JobQueue) -> None:
    queue.add_schedule(every_second())
    schedulers = [queue.scheduler() for _ in range(4)]
    for scheduler in schedulers:
        scheduler.run_pending(now=START)
    for second in range(1, 21):
        for scheduler in schedulers[second % 4 :] + schedulers[: second % 4]:
            scheduler.run_pending(now=START + second + 0.25)
    assert waiting(queue) == 20
    assert submitted_ticks(queue)[-20:] == [START + s for s in range(1, 21)]


def test_racing_threads_on_separate_connections_submit_once(backend_url: str) -> None:
    # Four schedulers in threads, each with its own queue (its own connections) where the
    # store is shared (SQLite file, Redis), released together at every tick.
    shared = backend_url == "memory://"
    first = JobQueue(backend_url, load_entrypoints=False)
    queues = [first] + [
        first if shared else JobQueue(backend_url, load_entrypoints=False) for _ in range(3)
    ]
    try:
        for each in {id(q): q for q in queues}.values():
            each.add_worker("ping", _noop)
            each.add_schedule(every_second())
        first.scheduler().run_pending(now=START)
        barrier = threading.Barrier(len(queues))
        outcomes: list[TickOutcome] = []
        lock = threading.Lock()

        def race(scheduler: Any) -> None:
            for second in range(1, 11):
                barrier.wait(10)
                for result in scheduler.run_pending(now=START + second + 0.1):
                    with lock:
                        outcomes.append(result.outcome)

        threads = [threading.Thread(target=race, args=(q.scheduler(),)) for q in queues]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert outcomes.count(TickOutcome.SUBMITTED) == 10, outcomes
        assert waiting(first) == 10 and submitted_ticks(first) == [START + s for s in range(1, 11)]
    finally:
        for each in {id(q): q for q in queues}.values():
            each.close()


def test_catch_up_skip_once_and_backfill(backend_url: str) -> None:
    for policy, runs, missed in (("skip", 1, 9), ("once", 1, 9), (3, 3, 7)):
        with JobQueue(backend_url, load_entrypoints=False) as queue:
            queue.add_worker("ping", _noop)
            name = f"ping-{policy}"
            queue.add_schedule(every_second(name=name, catch_up=policy))
            scheduler = queue.scheduler()
            scheduler.run_pending(now=START)
            # Nobody ran for ten ticks; a scheduler comes back 0.3 s after the tenth.
            results = scheduler.run_pending(now=START + 10.3)
            kinds = [result.outcome for result in results]
            assert kinds == [TickOutcome.SUBMITTED] * runs, (policy, kinds)
            assert submitted_ticks(queue, name) == [START + 10 - n for n in reversed(range(runs))]
            record = queue.backend.schedule_record(name)
            assert record is not None and record.missed == missed and record.last_tick == START + 10


def test_late_tick_with_skip_is_missed_not_run(queue: JobQueue) -> None:
    queue.add_schedule(Schedule(name="nightly", worker="ping", cron="0 3 * * *"))
    scheduler = queue.scheduler()
    scheduler.run_pending(now=START)
    next_run = queue.schedules()[0].next_run
    assert next_run is not None
    (late,) = scheduler.run_pending(now=next_run + 3600)  # an hour late: past the grace
    assert late.outcome is TickOutcome.RECORDED and waiting(queue) == 0
    record = queue.backend.schedule_record("nightly")
    assert record is not None and record.missed == 1 and record.last_tick == next_run


def test_overlap_skip_waits_for_the_previous_job(queue: JobQueue) -> None:
    queue.add_schedule(every_second(overlap="skip"))
    scheduler = queue.scheduler()
    scheduler.run_pending(now=START)
    (first,) = scheduler.run_pending(now=START + 1.1)
    (second,) = scheduler.run_pending(now=START + 2.1)
    assert first.outcome is TickOutcome.SUBMITTED
    assert second.outcome is TickOutcome.OVERLAP_SKIPPED and waiting(queue) == 1
    queue.work(burst=True)  # the previous one runs and completes
    (third,) = scheduler.run_pending(now=START + 3.1)
    assert third.outcome is TickOutcome.SUBMITTED
    (info,) = queue.schedules()
    assert info.skipped == 1 and info.last_job_state is JobState.WAITING


def test_pause_resume_and_run_now(queue: JobQueue) -> None:
    queue.add_schedule(every_second())
    scheduler = queue.scheduler()
    scheduler.run_pending(now=START)
    queue.pause_schedule("ping")
    (paused,) = scheduler.run_pending(now=START + 1.1)
    assert paused.outcome is TickOutcome.PAUSED and waiting(queue) == 0
    queue.resume_schedule("ping")
    (resumed,) = scheduler.run_pending(now=START + 2.1)
    assert resumed.outcome is TickOutcome.SUBMITTED
    job = queue.run_schedule_now("ping")
    assert job.name == "ping" and waiting(queue) == 2
    with pytest.raises(ScheduleNotFoundError, match="no schedule named"):
        queue.run_schedule_now("nope")
    with pytest.raises(ScheduleNotFoundError, match="no schedule named"):
        queue.pause_schedule("nope")
    assert queue.backend.schedule_record("nope") is None  # nothing stored
    (info,) = queue.schedules()
    assert not info.paused and info.skipped == 1 and info.last_tick == START + 2


def test_a_changed_definition_is_picked_up_without_a_duplicate(backend_url: str) -> None:
    def ten_then_four(every: int) -> Schedule:
        return Schedule(name="job", worker="ping", every=timedelta(seconds=every), overlap="allow")

    before = JobQueue(backend_url, load_entrypoints=False)
    before.add_worker("ping", _noop)
    before.add_schedule(ten_then_four(10))
    scheduler = before.scheduler()
    scheduler.run_pending(now=START)
    scheduler.run_pending(now=START + 10.5)
    assert submitted_ticks(before, "job") == [START + 10]
    # Restarted with a new definition, every 4 s (a memory store survives only in-process).
    kept = {"backend": before.backend} if backend_url == "memory://" else {}
    after = JobQueue(backend_url, load_entrypoints=False, **kept)
    try:
        after.add_worker("ping", _noop)
        after.add_schedule(ten_then_four(4))
        scheduler = after.scheduler()
        assert scheduler.run_pending(now=START + 10.6) == []  # tick 8 is older than 10
        (next_one,) = scheduler.run_pending(now=START + 12.2)
        assert next_one.outcome is TickOutcome.SUBMITTED
        assert submitted_ticks(after, "job") == [START + 10, START + 12]
        record = after.backend.schedule_record("job")
        assert record is not None and '"every":4' in record.definition.replace(" ", "")
    finally:
        after.close()
        before.close()


def test_the_loop_survives_backend_trouble_and_stops(queue: JobQueue) -> None:
    queue.add_schedule(every_second())
    scheduler = queue.scheduler()
    calls: list[str] = []
    real = queue.backend.schedule_record
    failed_once = threading.Event()
    done = threading.Event()

    def flaky(name: str) -> Any:
        calls.append(name)
        if not failed_once.is_set():
            failed_once.set()
            raise BackendUnavailableError("the store went away for a moment")
        done.set()
        return real(name)

    queue.backend.schedule_record = flaky  # type: ignore[method-assign]
    thread = scheduler.start_thread()
    try:
        assert done.wait(10), "the scheduler did not try again after the error"
    finally:
        scheduler.stop()
        thread.join(10)
    assert not thread.is_alive() and len(calls) >= 2
