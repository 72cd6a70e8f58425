"""A hypothesis state machine that drives a backend and checks it against a simple model.

Random submits (small flows too), claims (of paused names too), renewals, heartbeats,
completions, failures, releases, cancels (of every state, one or in bulk), delayed jobs
run now, retries, purges, removals, pauses, maintenance, clock jumps, and periodic schedules'
tick claims (their jobs joining the model's) with pauses and removals of schedules; after
every step: no job in two states, none lost, every state, count, lease deadline, outcome
count, pause and schedule record exactly as the model has them (claims promote due jobs;
only ``maintain`` and ``recover_expired`` recover expired leases), and every read — counts,
listings, ``get``, ``paused``, ``dispatchers``, outcome counts, schedule records — called
twice gives the same answer and changes nothing. During steps: no claim of a job whose lease
is live, the highest ready priority claimed first, nothing claimed before it is due or while
its name is paused, no stale token accepted, a cancel-requested job never runs again.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from jobqueue import lifecycle
from jobqueue.backend import (
    Backend,
    BackendOptions,
    DispatcherInfo,
    LeaseStatus,
    ScheduleRecord,
    TickClaim,
    TickEntry,
    TickOutcome,
    WorkSpec,
)
from jobqueue.engine import Engine
from jobqueue.errors import JobStateError, LeaseLostError
from jobqueue.job import Job, JobError, JobState
from jobqueue.testing.clock import ManualClock
from jobqueue.testing.flow_steps import FlowSteps
from jobqueue.testing.model import (
    DISPATCHERS,
    FINISHED,
    FIRST_TICK,
    MAX_STALLS,
    NAMES,
    RETRYABLE,
    SCHEDULES,
    ModelBook,
    ModelJob,
    ModelSchedule,
)


def make_state_machine(
    make_backend: Callable[[BackendOptions], Backend],
    dispose_backend: Callable[[Backend], None],
) -> type[RuleBasedStateMachine]:
    """Build the machine class for one backend factory (a new, empty backend per example)."""

    class BackendStateMachine(FlowSteps, ModelBook, RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.clock = ManualClock()
            options = BackendOptions(clock=self.clock, max_stalls=MAX_STALLS)
            self.backend = Engine(make_backend(options))
            self.jobs: dict[str, ModelJob] = {}
            self.removed: list[str] = []  # ids of jobs the backend no longer has
            self.stale_tokens: list[tuple[str, str]] = []  # (job id, token) no longer valid
            # job id -> (token, call) of the complete/finish_cancelled that ended its last
            # lease: repeating that very call is answered with its outcome (idempotent).
            self.repeatable: dict[str, tuple[str, str]] = {}
            self.paused: set[str] = set()
            self.dispatchers: dict[str, tuple[DispatcherInfo, float]] = {}  # id -> (info, expiry)
            self.outcomes: dict[int, dict[str, int]] = {}  # minute -> outcome -> attempts
            self.first_minute = lifecycle.outcome_minute(self.clock())  # nothing counted before
            self.schedules: dict[str, ModelSchedule] = {}
            self.recovered: list[str] = []  # ids recovered from expired leases, not reported

        def teardown(self) -> None:
            dispose_backend(self.backend.store)

        def _any_id(self, data: st.DataObject) -> str:
            """A job id: mostly of a job the backend has, now and then of a removed one."""
            known = sorted(self.jobs)
            if self.removed and (not known or data.draw(st.integers(0, 4)) == 0):
                return data.draw(st.sampled_from(self.removed))
            return data.draw(st.sampled_from(known))

        # -- rules ----------------------------------------------------------------------------

        @rule(
            name=st.sampled_from(NAMES),
            priority=st.integers(-2, 2),
            delay=st.sampled_from([0.0, 0.0, 0.0, 5.0, 20.0]),
        )
        def submit(self, name: str, priority: int, delay: float) -> None:
            now = self.clock()
            stored = self.backend.submit(
                Job(
                    id="",
                    name=name,
                    data={"p": priority},
                    priority=priority,
                    created_at=now,
                    run_at=now + delay,
                )
            )
            assert stored.id not in self.jobs, "backend reused a job id"
            state = JobState.DELAYED if delay > 0 else JobState.WAITING
            assert stored.state is state
            self.jobs[stored.id] = ModelJob(stored.id, name, priority, now + delay, state)

        @rule(
            names=st.sampled_from([("a",), ("b",), ("a", "b"), ("a", "b")]),
            lease=st.sampled_from([5.0, 30.0]),
            dispatcher=st.sampled_from([None, *DISPATCHERS]),
        )
        def claim(self, names: tuple[str, ...], lease: float, dispatcher: str | None) -> None:
            self._promote()
            ready = self._ready(names)
            claim = self.backend.claim(
                WorkSpec(names=names, lease_seconds=lease, dispatcher=dispatcher)
            )
            if not ready:
                assert claim is None, f"claimed {claim and claim.job.id} with nothing ready"
                return
            assert claim is not None, f"nothing claimed though {[j.id for j in ready]} ready"
            job = self.jobs.get(claim.job.id)
            assert job is not None, "claimed a job the model never saw"
            assert job in ready, f"claimed job {job.id} in state {job.state} (not ready)"
            assert job.priority == max(j.priority for j in ready), "priority not honoured"
            assert claim.job.attempts_made == job.attempts_made + 1
            assert claim.job.stalls == job.stalls
            assert claim.job.dispatcher == dispatcher
            assert not claim.job.cancel_requested
            job.state, job.token = JobState.ACTIVE, claim.token
            job.lease_deadline = self.clock() + lease
            job.attempts_made += 1
            self.repeatable.pop(job.id, None)  # claimed again: the old token is fenced

        @precondition(lambda self: bool(self._active()))
        @rule(data=st.data(), lease=st.sampled_from([5.0, 30.0]))
        def renew(self, data: st.DataObject, lease: float) -> None:
            job = data.draw(st.sampled_from(self._active()))
            assert job.token is not None
            live = self._live(job)
            assert self.backend.renew(job.id, job.token, lease) is live
            if live:
                job.lease_deadline = self.clock() + lease

        @precondition(lambda self: bool(self._active()))
        @rule(
            data=st.data(),
            outcome=st.sampled_from(["complete", "fail", "retry", "release", "cancelled"]),
        )
        def finish(self, data: st.DataObject, outcome: str) -> None:
            job = data.draw(st.sampled_from(self._active()))
            token = job.token
            assert token is not None
            live = self._live(job)
            now = self.clock()
            try:
                if outcome == "complete":
                    self.backend.complete(job.id, token, {"done": job.id}, None, self._edges(job))
                elif outcome in ("fail", "retry"):
                    retry_at = now + 10 if outcome == "retry" else None
                    state = self.backend.fail(
                        job.id, token, JobError("E", "x"), retry_at, self._edges(job)
                    )
                    expected = (
                        JobState.CANCELLED
                        if job.cancel_requested
                        else JobState.DELAYED
                        if retry_at is not None
                        else JobState.FAILED
                    )
                    assert state is expected, f"fail of job {job.id}: {state}, not {expected}"
                elif outcome == "release":
                    assert self.backend.release(job.id, token) is live, f"release of {job.id}"
                else:
                    held = self.backend.finish_cancelled(job.id, token, None, self._edges(job))
                    assert held is live, f"finish_cancelled of {job.id}"
            except LeaseLostError:
                assert not live, f"live lease of job {job.id} refused on {outcome}"
                return
            if not live:
                assert outcome in ("release", "cancelled"), (
                    f"expired lease of job {job.id} accepted on {outcome}"
                )
                return
            if outcome in ("complete", "cancelled"):
                self.repeatable[job.id] = (token, outcome)
            if outcome == "complete":  # a cancel that came too late: the result is kept
                self._finish(job, JobState.COMPLETED)
                job.result = {"done": job.id}
                self._count("completed")
            elif outcome == "cancelled" or job.cancel_requested:
                if outcome == "release":
                    job.attempts_made -= 1
                self._finish(job, JobState.CANCELLED)
                self._count("cancelled")
            elif outcome == "fail":
                self._finish(job, JobState.FAILED)
                self._count("failed")
            elif outcome == "retry":
                self._requeue(job, now + 10)
                self._count("retried")
            else:  # a release hands the job back: no attempt counted
                self._requeue(job, now)
                job.attempts_made -= 1

        @precondition(lambda self: bool(self.jobs or self.removed))
        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            active = [job.id for job in self._active()]  # the interesting case: half the time
            aimed = bool(active) and data.draw(st.booleans())
            job_id = data.draw(st.sampled_from(active)) if aimed else self._any_id(data)
            state = self.backend.cancel(job_id)
            job = self.jobs.get(job_id)
            if job is None:
                assert state is None, f"cancel of removed job {job_id} returned {state}"
                return
            if job.state in (JobState.WAITING, JobState.DELAYED, JobState.BLOCKED):
                self._finish(job, JobState.CANCELLED)
            elif job.state is JobState.ACTIVE:
                job.cancel_requested = True
            assert state is job.state, f"cancel of job {job_id}: {state}, not {job.state}"

        @rule(
            state=st.sampled_from(sorted([*lifecycle.NOT_STARTED, JobState.ACTIVE])),
            name=st.sampled_from([None, *NAMES]),
        )
        def cancel_many(self, state: JobState, name: str | None) -> None:
            matching = [
                j for j in self.jobs.values() if j.state is state and name in (None, j.name)
            ]
            if state is JobState.ACTIVE:
                matching = [j for j in matching if not j.cancel_requested]
            assert self.backend.cancel_many(state, name) == len(matching)
            if state is JobState.ACTIVE:
                for job in matching:
                    job.cancel_requested = True
                return
            for job in matching:  # the page is written first, then each one's flow follows
                self._finish(job, JobState.CANCELLED, follow=False)
            for job in matching:
                self._cascade(job)

        @precondition(lambda self: bool(self.jobs or self.removed))
        @rule(data=st.data())
        def promote(self, data: st.DataObject) -> None:
            delayed = [j.id for j in self.jobs.values() if j.state is JobState.DELAYED]
            aimed = bool(delayed) and data.draw(st.booleans())
            job_id = data.draw(st.sampled_from(sorted(delayed))) if aimed else self._any_id(data)
            job = self.jobs.get(job_id)
            try:
                stored = self.backend.promote(job_id)
            except JobStateError:
                assert job is not None and job.state is not JobState.DELAYED, (
                    f"promote of job {job_id} ({job and job.state}) refused"
                )
                return
            if job is None:
                assert stored is None, f"promote of removed job {job_id} returned {stored}"
                return
            assert job.state is JobState.DELAYED, f"promote of {job.state} job {job_id} accepted"
            job.state, job.run_at = JobState.WAITING, self.clock()
            assert stored is not None and stored.state is JobState.WAITING
            assert stored.run_at == job.run_at

        @precondition(lambda self: bool(self.jobs or self.removed))
        @rule(data=st.data())
        def retry(self, data: st.DataObject) -> None:
            job_id = self._any_id(data)
            job = self.jobs.get(job_id)
            try:
                stored = self.backend.retry(job_id)
            except JobStateError:
                assert job is not None and job.state not in RETRYABLE, (
                    f"retry of job {job_id} ({job and job.state}) refused"
                )
                return
            if job is None:
                assert stored is None, f"retry of removed job {job_id} returned {stored}"
                return
            assert job.state in RETRYABLE, f"retry of {job.state} job {job_id} accepted"
            self._retried(job)
            assert stored is not None and stored.id == job_id
            assert stored.state is JobState.WAITING
            assert (stored.attempts_made, stored.stalls) == (0, 0)
            assert not stored.cancel_requested and stored.result is None
            assert stored.finished_at is None

        @rule(state=st.sampled_from(RETRYABLE), name=st.sampled_from([None, *NAMES]))
        def retry_many(self, state: JobState, name: str | None) -> None:
            doomed = [j for j in self.jobs.values() if j.state is state and name in (None, j.name)]
            # Listed newest first; the page is written first, then each one's flow follows.
            doomed.sort(key=lambda j: (j.finished_at or 0.0, int(j.id)), reverse=True)
            assert self.backend.retry_many(state, name) == len(doomed)
            for job in doomed:
                self._retried(job, revive=False)
            for job in doomed:
                self._revive(job)

        @rule(
            state=st.sampled_from(FINISHED),
            name=st.sampled_from([None, *NAMES]),
            before=st.sampled_from([None, 0.0, -10.0]),
        )
        def purge(self, state: JobState, name: str | None, before: float | None) -> None:
            cutoff = None if before is None else self.clock() + before
            doomed = [
                j.id
                for j in self.jobs.values()
                if j.state is state
                and name in (None, j.name)
                and (cutoff is None or (j.finished_at or 0.0) < cutoff)
            ]
            assert self.backend.purge(state, name, cutoff) == len(doomed)
            for job_id in doomed:
                self._forget(job_id)

        @rule(name=st.sampled_from(NAMES), pause=st.sampled_from([True, False, False]))
        def pause_or_resume(self, name: str, pause: bool) -> None:
            if pause:
                self.backend.pause(name)
                self.paused.add(name)
            else:
                self.backend.resume(name)
                self.paused.discard(name)

        @rule(
            data=st.data(),
            dispatcher=st.sampled_from(DISPATCHERS),
            lease=st.sampled_from([5.0, 30.0]),
        )
        def heartbeat(self, data: st.DataObject, dispatcher: str, lease: float) -> None:
            held = [(j.id, j.token) for j in self._active() if j.token is not None]
            pool = held + self.stale_tokens[-5:]
            leases: list[tuple[str, str]] = (
                data.draw(st.lists(st.sampled_from(pool), max_size=3, unique=True)) if pool else []
            )
            now = self.clock()
            expected = []
            for job_id, token in leases:
                job = self.jobs.get(job_id)
                if job is None or job.token != token or not self._live(job):
                    expected.append(LeaseStatus.LOST)
                    continue
                job.lease_deadline = now + lease
                expected.append(LeaseStatus.CANCEL if job.cancel_requested else LeaseStatus.HELD)
            started = {"d1": 1_600_000_000.0, "d2": 1_600_000_001.0}[dispatcher]
            info = DispatcherInfo(dispatcher, "host", 7, NAMES, 2, started)
            statuses = self.backend.heartbeat(info, leases, lease)
            assert list(statuses) == expected, f"heartbeat: {statuses}, not {expected}"
            recorded = DispatcherInfo(
                dispatcher, "host", 7, NAMES, 2, started, now, tuple(i for i, _ in leases)
            )
            self.dispatchers[dispatcher] = (recorded, now + lease)

        @rule(dispatcher=st.sampled_from(DISPATCHERS))
        def remove_dispatcher(self, dispatcher: str) -> None:
            self.backend.remove_dispatcher(dispatcher)
            self.dispatchers.pop(dispatcher, None)

        @precondition(lambda self: bool(self.stale_tokens))
        @rule(data=st.data())
        def use_stale_token(self, data: st.DataObject) -> None:
            # Prefer tokens of jobs that were claimed again: the case fencing exists for.
            retaken = [
                (job_id, token)
                for job_id, token in self.stale_tokens
                if job_id in self.jobs and self.jobs[job_id].state is JobState.ACTIVE
            ]
            job_id, token = data.draw(st.sampled_from(retaken or self.stale_tokens))
            # The call that ended this very lease may be repeated (it reports its outcome and
            # changes nothing); every other use of a stale token is refused.
            ended = self.repeatable.get(job_id) if job_id in self.jobs else None
            repeat = ended[1] if ended is not None and ended[0] == token else None
            assert self.backend.renew(job_id, token, 30) is False
            answered = self.backend.finish_cancelled(job_id, token, None)
            assert answered is (repeat == "cancelled"), f"finish_cancelled of {job_id}: {answered}"
            try:
                self.backend.complete(job_id, token, "stale", None)
            except LeaseLostError:
                assert repeat != "complete", f"a repeated completion of {job_id} was refused"
            else:
                assert repeat == "complete", f"stale token completed job {job_id}"

        @precondition(lambda self: bool(self.jobs))
        @rule(data=st.data())
        def remove(self, data: st.DataObject) -> None:
            job_id = data.draw(st.sampled_from(sorted(self.jobs)))
            assert self.backend.remove(job_id) is True
            self._forget(job_id)
            assert self.backend.get(job_id) is None

        @rule(
            schedule=st.sampled_from(SCHEDULES),
            number=st.integers(0, 12),
            with_job=st.sampled_from([True, True, True, False]),
            overlap=st.sampled_from(["skip", "allow", "queue"]),
            missed=st.integers(0, 2),
            name=st.sampled_from(NAMES),
            delay=st.sampled_from([0.0, 0.0, 5.0]),
        )
        def claim_tick(
            self,
            schedule: str,
            number: int,
            with_job: bool,
            overlap: str,
            missed: int,
            name: str,
            delay: float,
        ) -> None:
            now = self.clock()
            tick = FIRST_TICK + 60 * number
            job = Job(id="", name=name, data={"t": number}, created_at=now, run_at=now + delay)
            claim = TickClaim(
                schedule, "{}", tick, job if with_job else None, missed=missed, overlap=overlap
            )
            result = self.backend.claim_tick(claim)
            model = self.schedules.get(schedule)
            if model is not None and model.last_tick is not None and tick <= model.last_tick:
                assert result.outcome is TickOutcome.ALREADY_CLAIMED, (claim, result)
                assert result.job is None
                return
            model = self.schedules.setdefault(schedule, ModelSchedule())
            last = None if model.last_job_id is None else self.jobs.get(model.last_job_id)
            running = None if last is None else last.state  # a removed job blocks nothing
            queued = running in (JobState.WAITING, JobState.DELAYED)
            expected: TickOutcome | None = None  # submitted
            if not with_job:
                expected = TickOutcome.RECORDED
            elif model.paused:
                expected = TickOutcome.PAUSED
            elif (overlap == "skip" and (queued or running is JobState.ACTIVE)) or (
                overlap == "queue" and queued
            ):
                expected = TickOutcome.OVERLAP_SKIPPED
            assert result.outcome is (expected or TickOutcome.SUBMITTED), (claim, result)
            model.last_tick, model.definition, model.updated_at = tick, "{}", now
            model.missed += missed
            entry_job = model.last_job_id if expected is TickOutcome.OVERLAP_SKIPPED else None
            if expected in (TickOutcome.OVERLAP_SKIPPED, TickOutcome.PAUSED):
                model.skipped += 1
            if expected is None:
                stored = result.job
                assert stored is not None and stored.id not in self.jobs, "a job id reused"
                state = JobState.DELAYED if delay > 0 else JobState.WAITING
                assert stored.state is state and stored.data == {"t": number}
                self.jobs[stored.id] = ModelJob(stored.id, name, 0, now + delay, state)
                model.last_job_id = entry_job = stored.id
            else:
                assert result.job is None
            model.recent.insert(0, TickEntry(tick, result.outcome, entry_job))

        @rule(
            schedule=st.sampled_from(SCHEDULES),
            call=st.sampled_from(["pause", "resume", "remove"]),
        )
        def steer_schedule(self, schedule: str, call: str) -> None:
            if call == "remove":
                had = self.backend.remove_schedule(schedule)
                assert had is (self.schedules.pop(schedule, None) is not None)
                return
            paused = call == "pause"
            getattr(self.backend, f"{call}_schedule")(schedule)
            model = self.schedules.get(schedule)
            if model is None:
                model = self.schedules[schedule] = ModelSchedule(updated_at=self.clock())
            if model.paused is not paused:
                model.paused, model.updated_at = paused, self.clock()

        @rule(seconds=st.sampled_from([0.5, 3.0, 10.0, 40.0]))
        def advance_clock(self, seconds: float) -> None:
            self.clock.advance(seconds)

        @rule()
        def recover_expired(self) -> None:
            reported = self.backend.recover_expired()
            self._recover_expired()
            self._check_reported(reported)

        @rule()
        def maintain(self) -> None:
            reported = self.backend.maintain()
            self._maintain()
            self._check_reported(reported)
            now = self.clock()
            for dispatcher_id, (_, expiry) in list(self.dispatchers.items()):
                if expiry <= now:
                    del self.dispatchers[dispatcher_id]

        def _check_reported(self, reported: list[Job]) -> None:
            """Every recovery of this call, once each (in any order: compared sorted)."""
            expected = sorted(job_id for job_id in self.recovered if job_id in self.jobs)
            self.recovered.clear()
            assert sorted(job.id for job in reported) == expected, (reported, expected)
            for job in reported:
                model = self.jobs[job.id]
                assert (job.state, job.stalls) == (model.state, model.stalls), job.id

        # -- invariants -----------------------------------------------------------------------

        def _read_everything(
            self,
        ) -> tuple[
            dict[JobState, int],
            dict[JobState, list[Job]],
            frozenset[str],
            list[DispatcherInfo],
            dict[str, dict[JobState, int]],
            dict[int, dict[str, int]],
            list[ScheduleRecord],
        ]:
            return (
                self.backend.count_by_state(),
                {state: self.backend.list_jobs(state, 0, 10_000) for state in JobState},
                self.backend.paused(),
                self.backend.dispatchers(),
                self.backend.count_by_name(),
                self.backend.outcome_counts(self.first_minute),
                self.backend.schedule_records(),
            )

        @rule()
        def read_twice(self) -> None:
            """Every read, twice over: the same answers, ``get`` agreeing with the listings
            (the invariant then finds the state unchanged: a read that wrote shows up there)."""
            first = self._read_everything()
            jobs = {job_id: self.backend.get(job_id) for job_id in sorted(self.jobs)}
            gone = [self.backend.get(job_id) for job_id in self.removed[-3:]]
            second = self._read_everything()
            assert first == second, "reading twice gave different answers (a read wrote)"
            assert jobs == {job_id: self.backend.get(job_id) for job_id in sorted(self.jobs)}
            assert gone == [None] * len(gone), "a removed job came back"
            listed = {job.id: job for in_state in first[1].values() for job in in_state}
            assert jobs == {job_id: listed.get(job_id) for job_id in jobs}, "get and list differ"

        @invariant()
        def reads_agree_with_the_model(self) -> None:
            counts, listed, paused, dispatchers, by_name, outcomes, schedules = (
                self._read_everything()
            )
            seen: dict[str, Job] = {}
            for state, in_state in listed.items():
                for job in in_state:
                    assert job.id not in seen, (
                        f"job {job.id} listed as {seen[job.id].state} and {state}"
                    )
                    assert job.state is state
                    seen[job.id] = job
            assert set(seen) == set(self.jobs), "backend and model hold different jobs"
            expected_counts = dict.fromkeys(JobState, 0)
            expected_by_name: dict[str, dict[JobState, int]] = {}
            for model in self.jobs.values():
                expected_counts[model.state] += 1
                named = expected_by_name.setdefault(model.name, dict.fromkeys(JobState, 0))
                named[model.state] += 1
                stored = seen[model.id]
                assert stored.state is model.state, (
                    f"job {model.id}: {stored.state}, the model says {model.state}"
                )
                assert (stored.attempts_made, stored.stalls) == (
                    model.attempts_made,
                    model.stalls,
                ), f"job {model.id}: attempts/stalls {stored.attempts_made}/{stored.stalls}"
                assert stored.cancel_requested is model.cancel_requested, f"job {model.id}"
                assert stored.result == model.result, f"job {model.id}: result {stored.result}"
                assert stored.finished_at == model.finished_at, f"job {model.id}: finished_at"
                assert [e.job_id for e in stored.depends_on] == model.depends_on, model.id
                assert [e.job_id for e in stored.dependents] == model.dependents, model.id
                deadline = model.lease_deadline if model.state is JobState.ACTIVE else None
                assert stored.lease_expires_at == deadline, (
                    f"job {model.id}: lease deadline {stored.lease_expires_at}, not {deadline}"
                )
            assert counts == expected_counts, f"counts {counts}, the model says {expected_counts}"
            assert by_name == expected_by_name, (
                f"counts by name {by_name}, the model says {expected_by_name}"
            )
            assert paused == frozenset(self.paused)
            now = self.clock()
            kept = lifecycle.first_kept_minute(now)
            expected_outcomes = {m: c for m, c in self.outcomes.items() if m >= kept}
            assert outcomes == expected_outcomes, (
                f"outcome counts {outcomes}, the model says {expected_outcomes}"
            )
            live = sorted(
                (info for info, expiry in self.dispatchers.values() if expiry > now),
                key=lambda info: (info.started_at, info.id),
            )
            assert dispatchers == live, f"dispatchers {dispatchers}, the model says {live}"
            modelled = [self.schedules[name].record(name) for name in sorted(self.schedules)]
            assert schedules == modelled, f"schedules {schedules}, the model says {modelled}"
            for record in modelled:
                assert self.backend.schedule_record(record.name) == record

    return BackendStateMachine
