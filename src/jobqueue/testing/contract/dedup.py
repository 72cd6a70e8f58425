"""Unique keys: a live job (waiting, delayed or active) holds its key, so a submit with the
same key returns that job marked ``deduplicated``; a finished job frees the key; an operator
retry cannot take a key another live job holds.
"""

from __future__ import annotations

import pytest

from jobqueue.backend import (
    Backend,
)
from jobqueue.errors import (
    JobStateError,
)
from jobqueue.job import (
    JobState,
)
from jobqueue.testing.contract.support import (
    ContractBase,
    MakeJob,
)


class DedupContract(ContractBase):
    """Contract tests of unique keys (see the module docstring)."""

    def test_unique_key_returns_the_live_job(self, backend: Backend, new_job: MakeJob) -> None:
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
        self, backend: Backend, new_job: MakeJob
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
