"""Unique keys: a live job (waiting, delayed or active) holds its key, so a submit with the
same key returns that job marked ``deduplicated`` (``submit_many`` as ``submit`` would, one
after another); a finished job frees the key; an operator retry cannot take a key another
live job holds.
"""

from __future__ import annotations

import pytest

from jobqueue.engine import Engine
from jobqueue.errors import JobStateError
from jobqueue.job import JobError, JobState
from jobqueue.testing.clock import ManualClock
from jobqueue.testing.contract.support import ContractBase, MakeJob


class DedupContract(ContractBase):
    """Contract tests of unique keys (see the module docstring)."""

    def test_unique_key_returns_the_live_job(self, backend: Engine, new_job: MakeJob) -> None:
        first = backend.submit(new_job(data=1, unique_key="reindex:u1"))
        again = backend.submit(new_job(data=2, unique_key="reindex:u1"))
        assert again.id == first.id and again.data == 1
        assert again.deduplicated and not first.deduplicated
        assert not backend.get(first.id).deduplicated  # type: ignore[union-attr]
        other = backend.submit(new_job(data=3, unique_key="reindex:u2"))
        assert other.id != first.id
        claim = self._claim(backend, "a")
        assert backend.submit(new_job(unique_key="reindex:u1")).id == first.id  # still active
        backend.complete(claim.job.id, claim.token, None, None)
        fresh = backend.submit(new_job(data=4, unique_key="reindex:u1"))
        assert fresh.id != first.id and fresh.data == 4 and not fresh.deduplicated
        assert backend.count_by_state()[JobState.WAITING] == 2

    def test_retry_refused_while_another_job_holds_the_unique_key(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        first = backend.submit(new_job(unique_key="k"))
        backend.cancel(first.id)
        second = backend.submit(new_job(unique_key="k"))
        with pytest.raises(JobStateError):
            backend.retry(first.id)
        assert backend.retry_many(JobState.CANCELLED) == 0
        backend.cancel(second.id)
        assert backend.retry(first.id) is not None
        assert backend.submit(new_job(unique_key="k")).id == first.id

    def test_a_delayed_or_retrying_job_holds_its_key(
        self, backend: Engine, new_job: MakeJob, clock: ManualClock
    ) -> None:
        later = backend.submit(new_job(data=1, unique_key="later", run_at=clock() + 60))
        again = backend.submit(new_job(data=2, unique_key="later"))
        assert again.id == later.id and again.deduplicated and again.state is JobState.DELAYED
        retrying = backend.submit(new_job(data=3, unique_key="retrying", attempts=2))
        claim = self._claim(backend, "a")
        assert claim.job.id == retrying.id
        state = backend.fail(retrying.id, claim.token, JobError("E", "x"), clock() + 30)
        assert state is JobState.DELAYED  # waiting for its next attempt: still live
        held = backend.submit(new_job(data=4, unique_key="retrying"))
        assert held.id == retrying.id and held.deduplicated and held.data == 3
        assert backend.count_by_state()[JobState.DELAYED] == 2

    def test_a_job_failed_for_good_frees_its_key(self, backend: Engine, new_job: MakeJob) -> None:
        first = backend.submit(new_job(data=1, unique_key="k"))
        claim = self._claim(backend, "a")
        assert backend.fail(first.id, claim.token, JobError("E", "x"), None) is JobState.FAILED
        fresh = backend.submit(new_job(data=2, unique_key="k"))
        assert fresh.id != first.id and not fresh.deduplicated and fresh.data == 2
        assert backend.retry_many(JobState.FAILED) == 0  # its key is taken: skipped
        stored = backend.get(first.id)
        assert stored is not None and stored.state is JobState.FAILED

    def test_submit_many_deduplicates_as_submit_would(
        self, backend: Engine, new_job: MakeJob
    ) -> None:
        holder = backend.submit(new_job(data=0, unique_key="held"))
        stored = backend.submit_many(
            [
                new_job(data=1, unique_key="held"),
                new_job(data=2),
                new_job(data=3, unique_key="new"),
                new_job(data=4, unique_key="new"),
            ]
        )
        assert [job.deduplicated for job in stored] == [True, False, False, True]
        assert stored[0].id == holder.id and stored[0].data == 0
        assert stored[3].id == stored[2].id and stored[3].data == 3
        assert backend.count_by_state()[JobState.WAITING] == 3
