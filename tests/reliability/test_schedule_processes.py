"""Periodic schedules across real scheduler processes: one job per tick, a SIGKILL and a
downtime change nothing of that, and catch-up after the downtime follows the policy exactly.

Five ``jobqueue scheduler`` processes (the real CLI) share one 1-second schedule
(``tests.reliability.schedule_app``) on real Redis or a real SQLite file. About twenty ticks
pass; after eight one scheduler is SIGKILLed. The survivors are SIGTERMed (exit 0), then the
schedule's record and the stored jobs are checked: the SUBMITTED ticks are consecutive whole
seconds from the tick after the first recorded one, none twice, none missing; one stored job
per SUBMITTED tick, each entry's job there and distinct; nothing counted missed.

Then nothing runs for 10 s, two schedulers restart, a few more ticks pass, they stop, and the
catch-up is checked. ``t_s`` is the last tick submitted before the gap and ``t_r`` the newest
tick due at restart (the restarted schedulers' first pass ran in that second):

* ``"skip"`` and ``"once"``: the newest due tick runs — for a 1-second schedule it is always
  on time (its grace is the period), so both give one job, for ``t_r``, and none for the
  ticks in ``(t_s, t_r)``, which add ``t_r - t_s - 1`` to ``missed``;
* ``N``: jobs for exactly ``t_r - N + 1 ... t_r``, all submitted once ``t_r`` was due (the
  older ones late: backfilled), and ``t_r - t_s - N`` more missed.

Seen from outside, ``t_r`` is the post-gap tick the policy makes newest of its first pass: the
first post-gap SUBMITTED tick for skip/once, the N-th for N. It is checked against the restart:
``t_r >= floor(R)``, R being the wall-clock time just before the processes were started (no
pass can run before them), and every post-gap job was created at or after R and at or after
``t_r``. The record's ``recent`` keeps ``lifecycle.SCHEDULE_TICKS_KEPT`` (50) ticks, more than the
test makes: its oldest entry is still the first recorded tick at the end, so every tick claimed
is in it.
"""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from jobqueue import JobQueue, lifecycle
from jobqueue.backend import ScheduleRecord, TickEntry, TickOutcome
from jobqueue.job import Job, JobState
from tests.reliability import schedule_app
from tests.reliability.schedule_app import SCHEDULE, WORKER
from tests.reliability.support import Processes, app_env, wait_until

pytestmark = [pytest.mark.slow]

APP = "tests.reliability.schedule_app:queue"
SCHEDULERS = 5
KILL_AFTER = 8
"""SIGKILL one scheduler once the record's last tick is this far past the first recorded."""
WINDOW = 20
"""Phase 1 runs until the record's last tick is this far past the first recorded."""
RESTARTED = 2
DOWNTIME = 10.0
AFTER_RESTART = 3
"""Phase 2 runs until this many ticks after ``t_r`` are claimed."""
WAIT = 60.0
"""Bound on every wait for the schedulers' progress (generous: the CPUs are shared)."""

CASES = [
    pytest.param("redis", 3, marks=pytest.mark.redis, id="redis-backfill-3"),
    pytest.param("sqlite", "skip", id="sqlite-skip"),
    pytest.param("redis", "once", marks=pytest.mark.redis, id="redis-once"),
]


def scheduler_command() -> list[str]:
    """``python -m jobqueue --app tests.reliability.schedule_app:queue scheduler``."""
    return [sys.executable, "-m", "jobqueue", "--app", APP, "scheduler", "--log-level", "WARNING"]


def oldest_first(record: ScheduleRecord) -> list[TickEntry]:
    return list(reversed(record.recent))


def read_record(reader: JobQueue) -> ScheduleRecord | None:
    return reader.backend.schedule_record(SCHEDULE)


def tick_jobs(reader: JobQueue) -> dict[str, Job]:
    """Every stored job of worker ``tick`` (no dispatcher runs: all are waiting)."""
    counts = reader.count_by_state()
    assert counts[JobState.WAITING] == sum(counts.values()), counts
    found = reader.list_jobs(JobState.WAITING, limit=counts[JobState.WAITING] + 10)
    assert {job.name for job in found} <= {WORKER}
    return {job.id: job for job in found}


def check_alive(processes: Processes, running: list[subprocess.Popen[bytes]]) -> None:
    """Fail at once, with its log, if a scheduler that should be running has exited."""
    for process in running:
        if process.poll() is not None:
            raise AssertionError(
                f"scheduler {process.pid} exited {process.returncode}:\n{processes.log_of(process)}"
            )


def stop(processes: Processes, running: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every one, then wait: each must exit 0."""
    for process in running:
        process.send_signal(signal.SIGTERM)
    for process in running:
        code = process.wait(timeout=30)
        assert code == 0, f"scheduler {process.pid} exited {code}:\n{processes.log_of(process)}"


@dataclass(frozen=True)
class Ticks:
    """The SUBMITTED ticks of a span of entries, and what is wrong with them."""

    ticks: list[float]
    job_ids: list[str]

    @classmethod
    def of(cls, entries: list[TickEntry]) -> Ticks:
        submitted = [entry for entry in entries if entry.outcome is TickOutcome.SUBMITTED]
        assert all(entry.job_id for entry in submitted), submitted
        return cls([e.tick for e in submitted], [e.job_id for e in submitted if e.job_id])

    @property
    def duplicates(self) -> int:
        return len(self.ticks) - len(set(self.ticks))

    @property
    def misses(self) -> int:
        """Whole seconds between the first and the last with no SUBMITTED entry."""
        if not self.ticks:
            return 0
        seconds = range(int(self.ticks[0]), int(self.ticks[-1]) + 1)
        return len(set(seconds) - {int(tick) for tick in self.ticks})

    def consecutive_from(self, first: float) -> bool:
        return self.ticks == [first + n for n in range(len(self.ticks))]


def backfill_of(catch_up: str | int) -> int:
    """How many due ticks the policy runs at a restart (a 1-second schedule's newest due tick
    is always on time, so ``"skip"`` runs it too)."""
    return catch_up if isinstance(catch_up, int) else 1


@pytest.mark.parametrize(("backend", "catch_up"), CASES)
def test_schedulers_submit_one_job_per_tick_and_catch_up_exactly(
    backend: str,
    catch_up: str | int,
    processes: Processes,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    seed = int(os.environ.get("JQ_REL_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    began = time.monotonic()
    if backend == "redis":
        url: str = request.getfixturevalue("redis_url")
        namespace: str | None = request.getfixturevalue("namespace")
    else:
        url, namespace = f"sqlite:///{tmp_path / 'schedules.db'}", None
    env = app_env(url, namespace or "")
    env["JQ_REL_CATCH_UP"] = str(catch_up)
    label = f"[schedules {backend} catch_up={catch_up}]"

    # -- phase 1: five schedulers, one SIGKILLed partway --------------------------------------
    schedulers = [processes.start(scheduler_command(), env, "scheduler") for _ in range(SCHEDULERS)]
    reader = schedule_app.build(url, namespace, catch_up)
    request.addfinalizer(reader.close)

    def last_tick() -> float:
        check_alive(processes, schedulers)
        record = read_record(reader)
        return -math.inf if record is None or record.last_tick is None else record.last_tick

    def first_recorded() -> float | None:
        check_alive(processes, schedulers)
        record = read_record(reader)
        if record is None or not record.recent:
            return None
        oldest = oldest_first(record)[0]
        assert oldest.outcome is TickOutcome.RECORDED and oldest.job_id is None, oldest
        return oldest.tick

    first = wait_until(first_recorded, WAIT, "the schedule's first recorded tick")
    wait_until(lambda: last_tick() >= first + KILL_AFTER, WAIT, f"tick {first} + {KILL_AFTER}")
    victim = rng.choice(schedulers)
    schedulers.remove(victim)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=10) == -signal.SIGKILL
    killed_at = last_tick() - first
    wait_until(lambda: last_tick() >= first + WINDOW, WAIT, f"tick {first} + {WINDOW}")
    stop(processes, schedulers)

    record = read_record(reader)
    assert record is not None and record.last_tick is not None
    entries = oldest_first(record)
    assert len(entries) < lifecycle.SCHEDULE_TICKS_KEPT  # nothing trimmed: every tick is here
    assert entries[0] == TickEntry(first, TickOutcome.RECORDED, None)
    assert [e.outcome for e in entries[1:]] == [TickOutcome.SUBMITTED] * (len(entries) - 1)
    window = Ticks.of(entries)
    jobs = tick_jobs(reader)
    print(
        f"\n{label} phase 1: seed={seed} schedulers={SCHEDULERS} sigkilled=1 "
        f"(at first+{killed_at:.0f}) ticks={len(window.ticks)} "
        f"({window.ticks[0]:.0f}..{window.ticks[-1]:.0f}) jobs={len(jobs)} "
        f"duplicates={window.duplicates} misses={window.misses} missed={record.missed} "
        f"skipped={record.skipped}"
    )
    assert window.duplicates == 0 and window.misses == 0, window.ticks
    assert window.consecutive_from(first + 1), window.ticks
    assert window.ticks[-1] == record.last_tick
    assert len(window.ticks) >= WINDOW
    assert len(set(window.job_ids)) == len(window.job_ids) == len(window.ticks)
    assert set(window.job_ids) == set(jobs)  # every entry's job stored, and no other job
    assert record.last_job_id == window.job_ids[-1]
    assert record.missed == 0 and record.skipped == 0
    missed_before, t_s = record.missed, record.last_tick

    # -- phase 2: all stopped for 10 s, then two schedulers catch up ----------------------------
    time.sleep(DOWNTIME)  # the scenario: no scheduler runs for this long
    restarted_at = time.time()
    backfill = backfill_of(catch_up)
    schedulers[:] = [
        processes.start(scheduler_command(), env, "restarted") for _ in range(RESTARTED)
    ]

    def restart_tick() -> float | None:
        """``t_r``: the ``backfill``-th post-gap SUBMITTED tick, once claimed."""
        check_alive(processes, schedulers)
        record = read_record(reader)
        assert record is not None
        after = Ticks.of([e for e in oldest_first(record) if e.tick > t_s]).ticks
        return after[backfill - 1] if len(after) >= backfill else None

    t_r = wait_until(restart_tick, WAIT, "the restarted schedulers' first ticks")
    wait_until(lambda: last_tick() >= t_r + AFTER_RESTART, WAIT, f"tick t_r + {AFTER_RESTART}")
    stop(processes, schedulers)

    record = read_record(reader)
    assert record is not None and record.last_tick is not None
    everything = oldest_first(record)
    assert len(everything) < lifecycle.SCHEDULE_TICKS_KEPT  # nothing trimmed: every tick is here
    assert everything[: len(entries)] == entries  # phase 1's ticks as they were
    after_gap = Ticks.of(everything[len(entries) :])
    assert len(after_gap.ticks) == len(everything) - len(entries)  # all SUBMITTED
    all_ticks = Ticks.of(everything)
    jobs = tick_jobs(reader)
    gap_missed = record.missed - missed_before
    expected_missed = int(t_r - t_s) - backfill
    restart_run = after_gap.ticks[:backfill]
    post_gap_jobs = [jobs[job_id] for job_id in after_gap.job_ids]
    print(
        f"{label} phase 2: downtime={DOWNTIME:.0f}s t_s={t_s:.0f} t_r=t_s+{t_r - t_s:.0f} "
        f"restart_run=[{', '.join(f't_r{tick - t_r:+.0f}' for tick in restart_run)}] "
        f"missed_added={gap_missed} (expected {expected_missed}) "
        f"ticks_after_restart={len(after_gap.ticks)} total_ticks={len(all_ticks.ticks)} "
        f"jobs={len(jobs)} duplicates={all_ticks.duplicates} "
        f"misses_after_restart={after_gap.misses} duration={time.monotonic() - began:.1f}s"
    )
    # The policy's run at restart: exactly t_r - backfill + 1 ... t_r, then every tick on.
    assert after_gap.consecutive_from(t_r - backfill + 1), after_gap.ticks
    assert t_r >= math.floor(restarted_at)  # no pass ran before the restart
    assert t_r - t_s >= DOWNTIME > backfill  # a real gap, wider than the backfill
    assert gap_missed == expected_missed  # every tick in (t_s, t_r - backfill] missed
    # Every post-gap job was created after the restart, and the restart run's once t_r was
    # due: the older ones were submitted late, by the catch-up.
    assert all(job.created_at >= restarted_at for job in post_gap_jobs)
    assert all(job.created_at >= t_r for job in post_gap_jobs[:backfill])
    # No job for any tick in (t_s, t_r - backfill]: the stored jobs are exactly the entries'.
    assert len(set(all_ticks.job_ids)) == len(all_ticks.job_ids) == len(jobs)
    assert set(all_ticks.job_ids) == set(jobs)
    assert all_ticks.duplicates == 0 and after_gap.misses == 0
    assert record.skipped == 0
