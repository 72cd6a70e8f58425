"""What the pages need to know about job states, served at ``GET /api/meta`` so the script
never restates it: the states in display order, which are finished, and which actions each
state allows on one job and in bulk.

The per-job table follows the queue's own rules (``JobQueue.retry_job``, ``run_job_now``,
``cancel_job``, ``remove_job``); the bulk one is the table the bulk routes check
(``openapi.BULK_ACTIONS``). ``tests/test_dashboard_api.py`` checks both against what the
API really does in every state.
"""

from __future__ import annotations

from typing import Any

from jobqueue.dashboard.openapi import BULK_ACTIONS
from jobqueue.job import FINISHED_STATES, JobState

JOB_ACTIONS: dict[str, frozenset[JobState]] = {
    "retry": frozenset({JobState.FAILED, JobState.CANCELLED}),
    "run-now": frozenset({JobState.DELAYED}),
    # An active job is asked to stop (once: not again while cancel_requested is set).
    "cancel": frozenset({JobState.WAITING, JobState.DELAYED, JobState.ACTIVE, JobState.BLOCKED}),
    "remove": frozenset(JobState),
}
"""Per action on one job (``POST /api/jobs/{id}/<action>``, ``DELETE`` for remove): the
states it applies to. In the order the pages show their buttons."""


def meta() -> dict[str, Any]:
    """The answer of ``GET /api/meta``: the same for every request of a release."""
    return {
        "states": [
            {
                "name": state.value,
                "finished": state in FINISHED_STATES,
                "actions": [name for name, states in JOB_ACTIONS.items() if state in states],
                "bulk": [
                    name for name, (states, _) in BULK_ACTIONS.items() if state.value in states
                ],
            }
            for state in JobState  # the enum's order is the display order
        ]
    }
